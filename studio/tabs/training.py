"""The Training tab: SFT (black-box KD), white-box KD from a teacher logit cache, on-policy KD.

The form is one mapping from widgets to a job config (`form_config`, pure and tested): what the preview shows as YAML
and CLI is exactly what Start submits. A job runs in its own process through the job manager; the tab only polls its
run folder (progress, ETA, metrics) with a timer, so closing the browser never stops training. Multi-GPU requests
are launched by the manager through `accelerate launch` (data parallel). Nothing here imports torch.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import gradio as gr

from core.config.base import JobBase
from core.workspace import PathOutsideWorkspace, Workspace
from studio.ui import UIContext

METHODS = ("sft", "kd", "onpolicy")
KINDS = ("train_sft", "train_kd", "train_onpolicy", "pipeline")
# Sensible starting points per method (full fine-tuning; LoRA multiplies the learning rate by LORA_LR_FACTOR).
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "sft": {"learning_rate": 2e-5, "num_train_epochs": 3.0, "gradient_accumulation_steps": 8},
    "kd": {"learning_rate": 2e-5, "num_train_epochs": 3.0, "gradient_accumulation_steps": 8},
    "onpolicy": {"learning_rate": 5e-6, "num_train_epochs": 1.0, "gradient_accumulation_steps": 4},
}
LORA_LR_FACTOR = 10.0
GPU_CHOICES = ["auto", "cpu", "1", "2", "4", "8"]
PLOT_GROUPS = (("loss", ("loss", "ce", "kd", "eval_loss")), ("lr", ("lr",)), ("grad_norm", ("grad_norm",)),
               ("tokens_per_s", ("tokens_per_s",)))

# Form fields, in the order their components are passed to handlers.
FIELDS = (
    "method", "student", "teacher", "dataset", "eval_split", "output", "use_lora", "lora_r", "lora_alpha",
    "lora_dropout", "lora_targets", "num_train_epochs", "max_steps", "per_device_train_batch_size",
    "gradient_accumulation_steps", "learning_rate", "weight_decay", "warmup_ratio", "lr_scheduler_type", "max_length",
    "save_steps", "logging_steps", "precision", "gradient_checkpointing", "seed", "gpus", "capture_first", "logits",
    "top_k", "kd_ratio", "temperature", "divergence", "beta", "alpha", "support", "trainer", "lmbda", "op_beta",
    "op_temperature", "max_new_tokens",
)


class FormError(ValueError):
    """The form cannot become a job; the message names the field."""


def _gpus(value: str) -> str | int:
    return int(value) if str(value).isdigit() else (value or "auto")


def _check_ref(ws: Workspace, field: str, ref: str, kind: str) -> str:
    """Refs typed by a visitor: names stay names; anything path-like must be inside the workspace."""
    ref = (ref or "").strip()
    if not ref:
        raise FormError(f"{field}: choose a {kind}")
    if ref.startswith(("/", ".", "~")) or "\\" in ref or (ws.root / ref).exists():
        try:
            ws.resolve(ref)
        except PathOutsideWorkspace as e:
            raise FormError(f"{field}: {e}") from e
    return ref


def form_config(ws: Workspace, f: dict[str, Any]) -> JobBase:
    """The job the form describes: train_sft, train_kd (or capture → train_kd as a pipeline), train_onpolicy."""
    from pydantic import ValidationError

    from core.config.data_jobs import CaptureJob
    from core.config.errors import explain
    from core.config.registry import PipelineJob, PipelineStep
    from core.config.train import KdJob, OnPolicyKdJob, SftJob

    method = f.get("method") or "sft"
    student = _check_ref(ws, "student", f.get("student"), "student model")
    dataset = _check_ref(ws, "dataset", f.get("dataset"), "dataset")
    common: dict[str, Any] = {
        "student": student, "dataset": dataset, "eval_split": float(f.get("eval_split") or 0),
        "output": (f.get("output") or "").strip(),
        "num_train_epochs": float(f["num_train_epochs"]), "max_steps": int(f["max_steps"]),
        "per_device_train_batch_size": int(f["per_device_train_batch_size"]),
        "gradient_accumulation_steps": int(f["gradient_accumulation_steps"]),
        "learning_rate": float(f["learning_rate"]), "weight_decay": float(f["weight_decay"]),
        "warmup_ratio": float(f["warmup_ratio"]), "lr_scheduler_type": f["lr_scheduler_type"],
        "max_length": int(f["max_length"]), "save_steps": int(f["save_steps"]),
        "logging_steps": int(f["logging_steps"]), "precision": f["precision"],
        "gradient_checkpointing": bool(f["gradient_checkpointing"]), "seed": int(f["seed"]),
        "gpus": _gpus(f.get("gpus")),
    }
    if common["output"]:
        common["name"] = common["output"]
    if f.get("use_lora"):
        targets = (f.get("lora_targets") or "all-linear").strip()
        common["lora"] = {
            "r": int(f["lora_r"]), "alpha": int(f["lora_alpha"]), "dropout": float(f["lora_dropout"]),
            "target_modules": "all-linear" if targets == "all-linear" else [
                t.strip() for t in targets.split(",") if t.strip()],
        }
    try:
        if method == "sft":
            return SftJob(**common)
        teacher = _check_ref(ws, "teacher", f.get("teacher"), "teacher model")
        if method == "onpolicy":
            return OnPolicyKdJob(
                **common, teacher=teacher, trainer=f["trainer"], lmbda=float(f["lmbda"]), beta=float(f["op_beta"]),
                temperature=float(f["op_temperature"]), max_new_tokens=int(f["max_new_tokens"]),
            )
        kd = {"teacher": teacher, "kd_ratio": float(f["kd_ratio"]), "temperature": float(f["temperature"]),
              "divergence": f["divergence"], "beta": float(f["beta"]), "alpha": float(f["alpha"]),
              "support": f["support"]}
        if f.get("capture_first") or not (f.get("logits") or "").strip():
            cache = f"{Path(dataset).stem}-{Path(teacher.rstrip('/')).name}-k{int(f['top_k'])}"
            capture = CaptureJob(
                input=dataset, output=cache, teacher={"type": "transformers", "model": teacher},
                top_k=int(f["top_k"]), temperature=float(f["temperature"]), max_length=common["max_length"],
                student=student, gpus=common["gpus"],
            )
            train = KdJob(**common, **kd, logits=cache)
            return PipelineJob(name=common.get("name", ""), gpus=common["gpus"], steps=[
                PipelineStep(name="capture", job=capture), PipelineStep(name="train", job=train)])
        return KdJob(**common, **kd, logits=f["logits"].strip())
    except ValidationError as e:
        raise FormError("; ".join(explain(e))) from e


def preview_texts(ws: Workspace, f: dict[str, Any]) -> tuple[str, str]:
    """(YAML, CLI) of the form's job, or an error message and an empty CLI."""
    from core.config.io import dump_yaml

    try:
        cfg = form_config(ws, f)
    except (FormError, ValueError, KeyError, TypeError) as e:
        return f"# {e}", ""
    name = f"{(cfg.name or cfg.kind).replace(' ', '-')}.yaml"
    cli = f"easydistill --workspace {shlex.quote(str(ws.root))} --config {shlex.quote(name)}"
    return dump_yaml(cfg), cli


def metrics_figure(records: list[dict]):
    """Loss (with CE / KD / eval loss), learning rate, grad norm and tokens/s over steps: one 2×2 plotly figure."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from core.jobs.progress import series

    data = series(records)
    fig = make_subplots(rows=2, cols=2, subplot_titles=[g for g, _ in PLOT_GROUPS], horizontal_spacing=0.08,
                        vertical_spacing=0.14)
    for i, (_, names) in enumerate(PLOT_GROUPS):
        row, col = divmod(i, 2)
        for n in names:
            pts = [(s, v) for s, v, stage in data.get(n, []) if stage in (None, "train")]
            if pts:
                fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], name=n,
                                         mode="lines+markers" if n == "eval_loss" else "lines"),
                              row=row + 1, col=col + 1)
    fig.update_layout(height=460, margin={"l": 40, "r": 10, "t": 40, "b": 30}, legend={"orientation": "h"})
    return fig


def cache_summary(ws: Workspace, name: str) -> str:
    """One line about a logit cache: teacher, k, τ, rows, positions, size per token."""
    from core.train.logit_cache import CacheError, LogitCache

    try:
        s = LogitCache(ws.cache / name).summary()
    except (CacheError, OSError, ValueError) as e:
        return f"⚠️ {e}"
    per = f"{s['bytes_per_token']:.0f} B/token" if s["bytes_per_token"] else "empty"
    return (f"`{name}`: teacher **{s['teacher']}**, k={s['k']}, τ={s['temperature']}, {s['rows']} rows, "
            f"{s['positions']} positions, {per}")


def status_text(ui: UIContext, info) -> str:
    from core.jobs.progress import format_eta

    pct = "" if info.progress is None else f" · {100 * info.progress:.1f}%"
    eta = f" · ETA {format_eta(info.eta_s)}" if info.eta_s else ""
    step = f" · {info.step}" if info.step else ""
    reason = f"\n\n{info.reason}" if info.reason else ""
    return f"**{info.name}** (`{info.id}`) — {info.status}{step}{pct}{eta}{reason}"


def build(ui: UIContext) -> None:
    ws = ui.workspace
    t = ui.t

    def model_names() -> list[str]:
        from core.models.registry import list_models

        return [m.name for m in list_models(ws) if m.source == "workspace" and not m.is_adapter]

    def dataset_names() -> list[str]:
        from core.data.store import dataset_names as names

        return names(ws)

    def cache_names() -> list[str]:
        if not ws.cache.is_dir():
            return []
        return sorted(p.name for p in ws.cache.iterdir() if (p / "meta.json").is_file())

    def training_jobs() -> list[tuple[str, str]]:
        try:
            jobs = [j for j in ui.jobs().list(limit=200) if j.kind in KINDS]
        except Exception:  # the job store is unreadable: show none rather than break the tab
            return []
        return [(f"{j.name} · {j.id}", j.id) for j in jobs[:50]]

    d = METHOD_DEFAULTS["sft"]
    comps: dict[str, Any] = {}

    def reg(key: str, comp, *attrs: str):
        comps[key] = comp
        return ui.reg(f"training.{key}", comp, *attrs)

    ui.reg("training.intro", gr.Markdown(t("training.intro")), "value")
    with gr.Row():
        reg("method", gr.Radio(choices=[(t("training.method_sft"), "sft"), (t("training.method_kd"), "kd"),
                                        (t("training.method_onpolicy"), "onpolicy")], value="sft",
                               label=t("training.method"), info=t("training.method_info"),
                               elem_id="training-method"), "label", "info")
    with gr.Row():
        models = model_names()
        reg("student", gr.Dropdown(choices=models, value=None, allow_custom_value=True, label=t("training.student"),
                                   info=t("training.student_info"), elem_id="training-student"), "label", "info")
        reg("teacher", gr.Dropdown(choices=models, value=None, allow_custom_value=True, label=t("training.teacher"),
                                   info=t("training.teacher_info"), visible=False, elem_id="training-teacher"),
            "label", "info")
        reg("dataset", gr.Dropdown(choices=dataset_names(), value=None, allow_custom_value=True,
                                   label=t("training.dataset"), info=t("training.dataset_info"),
                                   elem_id="training-dataset"), "label", "info")
        refresh_lists = reg("refresh", gr.Button(t("training.refresh"), scale=0, elem_id="training-refresh"))
    with gr.Row():
        reg("output", gr.Textbox(label=t("training.output"), info=t("training.output_info"),
                                 elem_id="training-output"), "label", "info")
        reg("eval_split", gr.Slider(0, 0.3, value=0.05, step=0.01, label=t("training.eval_split"),
                                    info=t("training.eval_split_info"), elem_id="training-eval-split"),
            "label", "info")
        reg("gpus", gr.Dropdown(choices=GPU_CHOICES, value="auto", label=t("training.gpus"),
                                info=t("training.gpus_info"), elem_id="training-gpus"), "label", "info")

    with ui.reg("training.kd_title", gr.Accordion(t("training.kd_title"), open=True, visible=False)) as kd_box:
        with gr.Row():
            reg("capture_first", gr.Checkbox(True, label=t("training.capture_first"),
                                             info=t("training.capture_first_info"),
                                             elem_id="training-capture-first"), "label", "info")
            reg("logits", gr.Dropdown(choices=cache_names(), value=None, allow_custom_value=True,
                                      label=t("training.logits"), info=t("training.logits_info"),
                                      elem_id="training-logits"), "label", "info")
            reg("top_k", gr.Number(10, precision=0, minimum=1, maximum=128, label=t("training.top_k"),
                                   info=t("training.top_k_info")), "label", "info")
        cache_info = gr.Markdown(elem_id="training-cache-info")
        with gr.Row():
            reg("kd_ratio", gr.Slider(0, 1, value=0.5, step=0.05, label=t("training.kd_ratio"),
                                      info=t("training.kd_ratio_info"), elem_id="training-kd-ratio"), "label", "info")
            reg("temperature", gr.Number(1.0, minimum=0.05, label=t("training.temperature"),
                                         info=t("training.temperature_info")), "label", "info")
            reg("divergence", gr.Dropdown(
                choices=["forward_kl", "reverse_kl", "jsd", "skew_kl", "skew_reverse_kl", "tv"], value="forward_kl",
                label=t("training.divergence"), info=t("training.divergence_info"),
                elem_id="training-divergence"), "label", "info")
        with gr.Row():
            reg("beta", gr.Slider(0, 1, value=0.5, step=0.05, label=t("training.beta"),
                                  info=t("training.beta_info")), "label", "info")
            reg("alpha", gr.Slider(0.01, 0.99, value=0.1, step=0.01, label=t("training.alpha"),
                                   info=t("training.alpha_info")), "label", "info")
            reg("support", gr.Radio(choices=["tail_bucket", "renormalize"], value="tail_bucket",
                                    label=t("training.support"), info=t("training.support_info")), "label", "info")

    with ui.reg("training.op_title", gr.Accordion(t("training.op_title"), open=True, visible=False)) as op_box:
        with gr.Row():
            reg("trainer", gr.Radio(choices=["gkd", "distillation"], value="gkd", label=t("training.trainer"),
                                    info=t("training.trainer_info")), "label", "info")
            reg("lmbda", gr.Slider(0, 1, value=0.5, step=0.05, label=t("training.lmbda"),
                                   info=t("training.lmbda_info")), "label", "info")
            reg("op_beta", gr.Slider(0, 1, value=0.5, step=0.05, label=t("training.op_beta"),
                                     info=t("training.op_beta_info")), "label", "info")
            reg("op_temperature", gr.Number(0.9, minimum=0.05, label=t("training.op_temperature")))
            reg("max_new_tokens", gr.Number(128, precision=0, minimum=1, label=t("training.max_new_tokens")))

    with ui.reg("training.lora_title", gr.Accordion(t("training.lora_title"), open=False)):
        with gr.Row():
            reg("use_lora", gr.Checkbox(False, label=t("training.use_lora"), info=t("training.use_lora_info"),
                                        elem_id="training-use-lora"), "label", "info")
            reg("lora_r", gr.Number(16, precision=0, minimum=1, label=t("training.lora_r")))
            reg("lora_alpha", gr.Number(32, precision=0, minimum=1, label=t("training.lora_alpha")))
            reg("lora_dropout", gr.Number(0.05, minimum=0, maximum=0.9, label=t("training.lora_dropout")))
            reg("lora_targets", gr.Textbox("all-linear", label=t("training.lora_targets"),
                                           info=t("training.lora_targets_info")), "label", "info")

    with ui.reg("training.hp_title", gr.Accordion(t("training.hp_title"), open=False)):
        with gr.Row():
            reg("num_train_epochs", gr.Number(d["num_train_epochs"], minimum=0.01,
                                              label=t("training.num_train_epochs")))
            reg("max_steps", gr.Number(-1, precision=0, label=t("training.max_steps"),
                                       info=t("training.max_steps_info"), elem_id="training-max-steps"),
                "label", "info")
            reg("per_device_train_batch_size", gr.Number(1, precision=0, minimum=1,
                                                         label=t("training.per_device_train_batch_size")))
            reg("gradient_accumulation_steps", gr.Number(d["gradient_accumulation_steps"], precision=0, minimum=1,
                                                         label=t("training.gradient_accumulation_steps")))
        with gr.Row():
            reg("learning_rate", gr.Number(d["learning_rate"], minimum=0, label=t("training.learning_rate"),
                                           elem_id="training-lr"))
            reg("weight_decay", gr.Number(0.05, minimum=0, label=t("training.weight_decay")))
            reg("warmup_ratio", gr.Number(0.1, minimum=0, maximum=1, label=t("training.warmup_ratio")))
            reg("lr_scheduler_type", gr.Dropdown(choices=["cosine", "linear", "constant", "constant_with_warmup"],
                                                 value="cosine", label=t("training.lr_scheduler_type")))
        with gr.Row():
            reg("max_length", gr.Number(512, precision=0, minimum=16, label=t("training.max_length")))
            reg("save_steps", gr.Number(100, precision=0, minimum=1, label=t("training.save_steps"),
                                        info=t("training.save_steps_info")), "label", "info")
            reg("logging_steps", gr.Number(1, precision=0, minimum=1, label=t("training.logging_steps")))
            reg("precision", gr.Dropdown(choices=["auto", "fp32", "bf16", "fp16"], value="auto",
                                         label=t("training.precision"), info=t("training.precision_info")),
                "label", "info")
            reg("gradient_checkpointing", gr.Checkbox(False, label=t("training.gradient_checkpointing")))
            reg("seed", gr.Number(42, precision=0, label=t("training.seed")))

    with ui.reg("training.preview_title", gr.Accordion(t("training.preview_title"), open=False)):
        yaml_box = reg("yaml", gr.Code(language="yaml", label=t("training.yaml"), elem_id="training-yaml",
                                       interactive=False))
        cli_box = reg("cli", gr.Textbox(label=t("training.cli"), info=t("training.cli_info"), interactive=False,
                                        elem_id="training-cli"), "label", "info")

    with gr.Row():
        start = reg("start", gr.Button(t("training.start"), variant="primary", elem_id="training-start"))
        stop = reg("stop", gr.Button(t("training.stop"), variant="stop", elem_id="training-stop"))
        resume = reg("resume", gr.Button(t("training.resume"), elem_id="training-resume"))
        job = reg("job", gr.Dropdown(choices=training_jobs(), value=None, label=t("training.job"),
                                     elem_id="training-job", allow_custom_value=True))
    message = gr.Markdown(elem_id="training-message")
    status = gr.Markdown(elem_id="training-status")
    plot = gr.Plot(elem_id="training-plot", show_label=False)
    timer = gr.Timer(2.0)

    inputs = [comps[k] for k in FIELDS]

    def values(*vals) -> dict[str, Any]:
        return dict(zip(FIELDS, vals, strict=True))

    def on_preview(*vals):
        y, c = preview_texts(ws, values(*vals))
        return y, c

    for comp in inputs:
        comp.change(on_preview, inputs=inputs, outputs=[yaml_box, cli_box], show_progress="hidden")

    def on_method(method: str, use_lora: bool):
        dd = METHOD_DEFAULTS.get(method, METHOD_DEFAULTS["sft"])
        lr = dd["learning_rate"] * (LORA_LR_FACTOR if use_lora else 1.0)
        return (gr.update(visible=method != "sft"), gr.update(visible=method == "kd"),
                gr.update(visible=method == "onpolicy"), gr.update(value=lr),
                gr.update(value=dd["num_train_epochs"]), gr.update(value=dd["gradient_accumulation_steps"]))

    comps["method"].change(on_method, inputs=[comps["method"], comps["use_lora"]],
                           outputs=[comps["teacher"], kd_box, op_box, comps["learning_rate"],
                                    comps["num_train_epochs"], comps["gradient_accumulation_steps"]])

    def on_cache(name: str | None):
        return cache_summary(ws, name) if name else ""

    comps["logits"].change(on_cache, inputs=comps["logits"], outputs=cache_info, show_progress="hidden")

    def on_lora(method: str, use_lora: bool):
        base = METHOD_DEFAULTS.get(method, METHOD_DEFAULTS["sft"])["learning_rate"]
        return gr.update(value=base * (LORA_LR_FACTOR if use_lora else 1.0))

    comps["use_lora"].change(on_lora, inputs=[comps["method"], comps["use_lora"]], outputs=comps["learning_rate"])

    def on_refresh():
        m = model_names()
        return (gr.update(choices=m), gr.update(choices=m), gr.update(choices=dataset_names()),
                gr.update(choices=cache_names()), gr.update(choices=training_jobs()))

    refresh_lists.click(on_refresh, outputs=[comps["student"], comps["teacher"], comps["dataset"], comps["logits"],
                                             job])

    def on_start(*vals):
        try:
            cfg = form_config(ws, values(*vals))
            job_id = ui.jobs().submit(cfg)
        except Exception as e:  # bad form, device request the machine cannot meet, ...: a message, not a trace
            return f"⚠️ {e}", gr.update()
        return t("training.started", job=job_id), gr.update(choices=training_jobs(), value=job_id)

    start.click(on_start, inputs=inputs, outputs=[message, job])

    def on_stop(job_id: str | None):
        return ui.job_action("stop", job_id, "training.stopping", "training.no_job")

    stop.click(on_stop, inputs=job, outputs=message)

    def on_resume(job_id: str | None):
        return ui.job_action("resume", job_id, "training.resumed", "training.no_job")

    resume.click(on_resume, inputs=job, outputs=message)

    def on_tick(job_id: str | None):
        if not job_id:
            return gr.skip(), gr.skip()
        try:
            jm = ui.jobs()
            info = jm.get(job_id)
            records = jm.metrics(job_id)
        except Exception as e:
            return f"⚠️ {e}", gr.skip()
        return status_text(ui, info), metrics_figure(records)

    timer.tick(on_tick, inputs=job, outputs=[status, plot], show_progress="hidden")
    job.change(on_tick, inputs=job, outputs=[status, plot], show_progress="hidden")
