"""The Training tab: SFT (black-box KD), white-box KD from a teacher logit cache, on-policy KD, DPO / CogPO, reward
model, GRPO / RLOO.

Widgets and wiring only. The form is core.train.form's TrainingForm rendered by FormView (fields, defaults, bounds and
help from the job configs; its YAML / command preview, presets and loading), so what the preview shows is exactly
what Start submits. The method switch shows the method's sections and applies its defaults (core's
`method_defaults`). A job runs in its own process through the job manager; the tab polls its run folder with a timer
(status line from core.jobs.summary, curves from core.jobs.plots), so closing the browser never stops training. Until a
job is picked by hand the panel follows the newest training job that runs, a pipeline with a training step included
(the Start tab's ② Train), and its timer sleeps while nothing it shows runs (studio.job_panel.live_timer).
Nothing here imports torch.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from core.errors import UserError
from core.train.form import FORM, PER_METHOD, method_defaults
from studio.forms import FormView
from studio.job_panel import follow, live_timer, running
from studio.tabs import training_pairs
from studio.ui import UIContext

# Sections shown only for some methods, and the field whose kinds decide it.
SECTIONS = {"teacher_box": "teacher", "pairs_box": "rejected_from", "kd_box": "kd_ratio", "op_box": "lmbda",
            "dpo_box": "dpo_beta", "rm_box": "center_rewards_coefficient", "rl_box": "num_generations"}
FORM_SPECS = {f.name: f for f in FORM.fields}
START_KIND = FORM.kind_of(FORM.defaults())  # the method the form opens with


def build(ui: UIContext) -> None:
    w: dict[str, Any] = {"form": FormView(ui, "training", FORM)}
    ui.reg("training.intro", gr.Markdown(ui.t("training.intro")), "value")
    _main_section(w)
    w["pairs"] = training_pairs.layout(ui)  # build the pairs DPO trains on, then "Use for DPO"
    _kd_section(ui, w)
    _onpolicy_section(ui, w)
    _dpo_section(ui, w)
    _reward_section(ui, w)
    _rl_section(ui, w)
    _lora_section(ui, w)
    _hp_section(ui, w)
    w["form"].tools(on_loaded=lambda values: _sections(w, FORM.kind_of(values)),
                    extra_outputs=[w[k] for k in SECTIONS])
    _run_section(ui, w)
    _wire_method(ui, w)
    _wire_run(ui, w)
    _wire_pairs(ui, w)


def _shown(kind: str) -> dict[str, bool]:
    """Which method sections a job kind uses (from the form's field kinds)."""
    return {box: FORM_SPECS[name].shown_for(kind) for box, name in SECTIONS.items()}



def _sections(w: dict[str, Any], kind: str) -> dict[Any, Any]:
    return {w[box]: gr.update(visible=v) for box, v in _shown(kind).items()}


# ------------------------------------------------------------------------------------------------ layout

def _main_section(w: dict[str, Any]) -> None:
    view, shown = w["form"], _shown(START_KIND)
    view.render("method")
    with gr.Row():
        view.render("student")
        with gr.Column(visible=shown["teacher_box"], min_width=160) as w["teacher_box"]:
            view.render("teacher")
        view.render("dataset")
        with gr.Column(visible=shown["pairs_box"], min_width=160) as w["pairs_box"]:
            view.render("rejected_from")
    view.ui.shared["training.dataset"] = view.comps["dataset"]  # other tabs open a dataset here (Curation)
    with gr.Row():
        view.render("output", "eval_split", "gpus")


def _kd_section(ui: UIContext, w: dict[str, Any]) -> None:
    t, view = ui.t, w["form"]
    box = gr.Accordion(t("training.kd_title"), open=True, visible=_shown(START_KIND)["kd_box"])
    with ui.reg("training.kd_title", box) as w["kd_box"]:
        w["kd_check"] = gr.Markdown(elem_id="training-kd-check")  # how KD distils this teacher/student pair
        with gr.Row():
            view.render("capture_first", "logits", "top_k")
        w["cache_info"] = gr.Markdown(elem_id="training-cache-info")
        with gr.Row():
            view.render("teachers", "uld_hybrid")
        with gr.Row():
            view.render("kd_ratio", "temperature", "divergence")
        with gr.Row():
            view.render("beta", "alpha", "support")


def _onpolicy_section(ui: UIContext, w: dict[str, Any]) -> None:
    box = gr.Accordion(ui.t("training.op_title"), open=True, visible=_shown(START_KIND)["op_box"])
    with ui.reg("training.op_title", box) as w["op_box"]:
        with gr.Row():
            w["form"].render(group="onpolicy")


def _dpo_section(ui: UIContext, w: dict[str, Any]) -> None:
    box = gr.Accordion(ui.t("training.dpo_title"), open=True, visible=_shown(START_KIND)["dpo_box"])
    with ui.reg("training.dpo_title", box) as w["dpo_box"]:
        with gr.Row():
            w["form"].render(group="dpo")
        ui.reg("training.cogpo_note", gr.Markdown(ui.t("training.cogpo_note")), "value")
        with gr.Row():
            w["form"].render(group="cogpo")


def _reward_section(ui: UIContext, w: dict[str, Any]) -> None:
    box = gr.Accordion(ui.t("training.rm_title"), open=True, visible=_shown(START_KIND)["rm_box"])
    with ui.reg("training.rm_title", box) as w["rm_box"]:
        ui.reg("training.rm_note", gr.Markdown(ui.t("training.rm_note")), "value")
        with gr.Row():
            w["form"].render(group="reward")


def _rl_section(ui: UIContext, w: dict[str, Any]) -> None:
    view = w["form"]
    box = gr.Accordion(ui.t("training.rl_title"), open=True, visible=_shown(START_KIND)["rl_box"])
    with ui.reg("training.rl_title", box) as w["rl_box"]:
        with gr.Row():
            view.render("rl_trainer", "reward_funcs", "reward_weights")
        with gr.Row():
            view.render("num_generations", "max_completion_length", "rl_temperature", "rl_beta")
        with gr.Row():
            view.render("rl_loss_type", "use_vllm", "answer_field", "reasoning_tag")
        with gr.Row():
            view.render("min_length", "max_length_tokens")
        with gr.Row():
            view.render("reward_model", "judge", "judge_template")


def _lora_section(ui: UIContext, w: dict[str, Any]) -> None:
    with ui.reg("training.lora_title", gr.Accordion(ui.t("training.lora_title"), open=False)):
        with gr.Row():
            w["form"].render(group="lora")


def _hp_section(ui: UIContext, w: dict[str, Any]) -> None:
    view = w["form"]
    with ui.reg("training.hp_title", gr.Accordion(ui.t("training.hp_title"), open=False)):
        with gr.Row():
            view.render("num_train_epochs", "max_steps", "per_device_train_batch_size", "gradient_accumulation_steps")
        with gr.Row():
            view.render("learning_rate", "weight_decay", "warmup_ratio", "lr_scheduler_type")
        with gr.Row():
            view.render("max_length", "save_steps", "save_total_limit", "logging_steps")
        with gr.Row():
            view.render("precision", "gradient_checkpointing", "seed")
        with gr.Row():
            view.render(group="layout")


def _run_section(ui: UIContext, w: dict[str, Any]) -> None:
    t = ui.t
    with gr.Row():
        w["start"] = ui.reg("training.start", gr.Button(t("training.start"), variant="primary",
                                                        elem_id="training-start"))
        w["stop"] = ui.reg("training.stop", gr.Button(t("training.stop"), variant="stop", elem_id="training-stop"))
        w["resume"] = ui.reg("training.resume", gr.Button(t("training.resume"), elem_id="training-resume"))
        w["job"] = ui.reg("training.job", gr.Dropdown(choices=_training_jobs(ui), value=None, label=t("training.job"),
                                                      elem_id="training-job", allow_custom_value=True))
    w["message"] = gr.Markdown(elem_id="training-message")
    w["status"] = gr.Markdown(elem_id="training-status")
    w["plot"] = gr.Plot(elem_id="training-plot", show_label=False)
    w["timer"] = live_timer(ui, 2.0)
    w["pinned"] = gr.State(False)  # True once a job is picked by hand: the panel stops following new ones


# ------------------------------------------------------------------------------------------------ wiring

def _wire_method(ui: UIContext, w: dict[str, Any]) -> None:
    """Method and LoRA switches (user input only: loading a config sets values without resetting them)."""
    view = w["form"]
    method, use_lora, lr = view.comps["method"], view.comps["use_lora"], view.comps["learning_rate"]

    def on_method(m: str, lora: bool) -> dict[Any, Any]:
        return {**_sections(w, FORM.kind_of({"method": m})), **view.updates(method_defaults(m, lora))}

    method.input(on_method, inputs=[method, use_lora],
                 outputs=[*(w[k] for k in SECTIONS), *(view.comps[n] for n in PER_METHOD)])

    def on_lora(m: str, lora: bool) -> Any:
        return gr.update(value=method_defaults(m, lora)["learning_rate"])

    use_lora.input(on_lora, inputs=[method, use_lora], outputs=lr)

    def on_cache(name: str | None) -> str:
        return _cache_text(ui, name) if name else ""

    view.comps["logits"].change(on_cache, inputs=view.comps["logits"], outputs=w["cache_info"],
                                show_progress="hidden")
    pair = [view.comps["teacher"], view.comps["student"]]
    for comp in pair:
        comp.change(lambda t, s: _kd_check_text(ui, t, s), inputs=pair, outputs=w["kd_check"], show_progress="hidden")


def _wire_pairs(ui: UIContext, w: dict[str, Any]) -> None:
    """'Use for DPO' in the pairs section: its dataset picked here, method DPO with its sections and defaults."""
    from core.pickers import dataset_choices

    view = w["form"]
    method, dataset = view.comps["method"], view.comps["dataset"]
    per_method = [view.comps[n] for n in PER_METHOD]

    def to_dpo(name: str, lora: bool) -> dict[Any, Any]:
        return {**_sections(w, FORM.kind_of({"method": "dpo"})), **view.updates(method_defaults("dpo", lora)),
                method: gr.update(value="dpo"), dataset: gr.update(choices=dataset_choices(ui.workspace), value=name)}

    training_pairs.wire(ui, w["pairs"], to_dpo, [view.comps["use_lora"]],
                        [method, dataset, *(w[k] for k in SECTIONS), *per_method])


def _wire_run(ui: UIContext, w: dict[str, Any]) -> None:
    view, job, message = w["form"], w["job"], w["message"]

    def on_start(data: dict[Any, Any]) -> dict[Any, Any]:
        try:
            job_id = ui.jobs().submit(view.build(data))
        except UserError as e:  # a field to fix, a path outside the workspace, devices this machine lacks
            return {message: f"⚠️ {ui.error_text(e)}"}
        return {message: ui.t("training.started", job=job_id),
                job: gr.update(choices=_training_jobs(ui), value=job_id)}

    w["start"].click(on_start, inputs=view.inputs(), outputs=[message, job])
    w["stop"].click(lambda j: ui.job_action("stop", j, "training.stopping", "training.no_job"), job, message)
    w["resume"].click(lambda j: (ui.job_action("resume", j, "training.resumed", "training.no_job"),
                                 gr.Timer(active=True)), job, [message, w["timer"]])
    job.focus(lambda: gr.update(choices=_training_jobs(ui)), None, job, show_progress="hidden")
    job.input(lambda j: bool(j), job, w["pinned"], show_progress="hidden")  # picked by hand (ticks set it silently)
    _wire_status(ui, w)


def _wire_status(ui: UIContext, w: dict[str, Any]) -> None:
    """The followed job's status line and curves, on each tick and when another job is picked."""
    job, outputs = w["job"], [w["status"], w["plot"], w["timer"], w["job"]]

    def on_tick(job_id: str | None, pinned: bool):
        from core.jobs.plots import metrics_figure
        from core.jobs.summary import status_line

        jm = ui.jobs()
        kinds = set(FORM.kinds())
        mine = [i for i in jm.list(limit=200, refresh=False) if i.kind in kinds or kinds & set(i.step_kinds)]
        shown = job_id if pinned and job_id else follow(job_id, False, mine)
        picker = gr.update(choices=_training_jobs(ui), value=shown) if shown != job_id else gr.skip()
        if not shown:
            return gr.skip(), gr.skip(), gr.Timer(active=False), picker
        try:
            info, records = jm.get(shown), jm.metrics(shown)
        except UserError as e:  # the job was deleted, or an id typed by hand names none
            return f"⚠️ {ui.error_text(e)}", gr.skip(), gr.Timer(active=False), picker
        return status_line(info, ui.job_words()), metrics_figure(records), gr.Timer(active=running(info)), picker

    w["timer"].tick(on_tick, inputs=[job, w["pinned"]], outputs=outputs, show_progress="hidden")
    job.change(on_tick, inputs=[job, w["pinned"]], outputs=outputs, show_progress="hidden")


def _training_jobs(ui: UIContext) -> list[tuple[str, str]]:
    from core.pickers import job_choices

    return job_choices(ui.jobs(), FORM.kinds(), pipelines=True)


def _kd_check_text(ui: UIContext, teacher: str | None, student: str | None) -> str:
    """How a KD job distils this pair (the tokenizer check's method): logits, truncation, or cross-tokenizer ULD."""
    check = FORM.kd_check(ui.workspace, {"teacher": teacher, "student": student})
    if check is None:
        return ""
    return ui.t(f"training.kd_method_{check.method or 'none'}", **check.details, reason=check.message)


def _cache_text(ui: UIContext, name: str) -> str:
    """One line about the picked logit cache: teacher, k, τ, rows, positions, bytes per token."""
    from core.train.logit_cache import cache_summary

    try:
        s = cache_summary(ui.workspace, name)
    except UserError as e:
        return f"⚠️ {ui.error_text(e)}"
    per = s["bytes_per_token"]
    per_token = ui.t("training.cache_per_token", bytes=f"{per:.0f}") if per else ui.t("training.cache_empty")
    return ui.t("training.cache_info", **{**s, "per_token": per_token})
