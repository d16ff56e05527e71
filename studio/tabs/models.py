"""The Models tab: what models exist (workspace, extra folders, hub ids, endpoints), the offline demo pair, deriving
a student by layer pruning, the logit-KD compatibility check and remote endpoints.

Handlers are thin calls into core.models; long work (deriving, preparing the demo) is submitted as a job and polled.
Nothing here imports torch: facts come from config.json and safetensors headers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import gradio as gr

from core.llm.base import BackendError
from core.models import registry
from core.workspace import PathOutsideWorkspace
from studio.ui import UIContext

COLS = ("name", "source", "architecture", "params", "layers", "vocab", "dtype", "chat", "size", "note")
STRATEGIES = ("head_tail", "even", "first")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,99}$")


def table_rows(ws, extra: list[str]) -> list[list]:
    """One row per model for the table (endpoint rows show their URL)."""
    paths, hubs = [], []
    for item in extra:
        (hubs if registry.HUB_ID.match(item) and not (ws.root / item).exists() else paths).append(item)
    rows = []
    for m in registry.list_models(ws, [str(ws.resolve(p)) for p in paths], hubs):
        if m.source == "endpoint":
            rows.append([m.name, m.source, m.architecture, "", "", "", "", "", "", f"{m.base_url}"
                         + (f" (key: ${m.api_key_env})" if m.api_key_env else "")])
            continue
        chat = "" if m.chat_template is None else ("yes" if m.chat_template else "NO")
        rows.append([m.name, m.source, m.architecture or "", registry.human_params(m.params), m.num_layers or "",
                     m.vocab_size or "", m.dtype or "", chat, registry.human_bytes(m.disk_bytes), m.error or ""])
    return rows


def local_model_names(ws) -> list[str]:
    """Workspace models that are loadable folders (for pickers)."""
    return [m.name for m in registry.list_models(ws) if m.source == "workspace" and not m.error and not m.is_adapter]


def build(ui: UIContext) -> None:
    ws = ui.workspace
    t = ui.t

    ui.reg("models.intro", gr.Markdown(t("models.intro"), elem_id="models-intro"))

    # ------------------------------------------------------------------------------------------------ the table
    headers = [t(f"models.col_{c}") for c in COLS]
    with gr.Row():
        extra = ui.reg("models.extra", gr.Textbox(label=t("models.extra"), info=t("models.extra_info"),
                                                  placeholder=t("models.extra_placeholder"), elem_id="models-extra",
                                                  scale=4), "label", "info", "placeholder")
        refresh = ui.reg("models.refresh", gr.Button(t("models.refresh"), elem_id="models-refresh", scale=1))
    table = gr.Dataframe(value={"headers": headers, "data": table_rows(ws, [])}, interactive=False, wrap=True,
                         elem_id="models-table", show_label=False)
    table_msg = gr.Markdown(elem_id="models-table-msg")

    # ------------------------------------------------------------------------------------------------ demo pair
    with ui.reg("models.demo_title", gr.Accordion(t("models.demo_title"), open=False, elem_id="models-demo")):
        ui.reg("models.demo_text", gr.Markdown(t("models.demo_text")))
        with gr.Row():
            demo_layers = ui.reg("models.demo_layers", gr.Number(15, precision=0,
                                                                 label=t("models.demo_layers"),
                                                                 elem_id="models-demo-layers"))
            demo_btn = ui.reg("models.demo_button", gr.Button(t("models.demo_button"), elem_id="models-demo-button"))

    # ------------------------------------------------------------------------------------------------ derive
    with ui.reg("models.derive_title", gr.Accordion(t("models.derive_title"), open=True, elem_id="models-derive")):
        ui.reg("models.derive_text", gr.Markdown(t("models.derive_text")))
        with gr.Row():
            teacher = ui.reg("models.teacher", gr.Dropdown(choices=local_model_names(ws), value=None,
                                                           label=t("models.teacher"), elem_id="models-teacher",
                                                           allow_custom_value=False))
            # no `minimum`: an empty field arrives as 0 and would be refused before our handler says what to do
            layers = ui.reg("models.layers", gr.Number(None, precision=0, label=t("models.layers"),
                                                       elem_id="models-layers"))
            strategy = ui.reg("models.strategy", gr.Radio(
                choices=[(t(f"models.strategy_{s}"), s) for s in STRATEGIES], value="head_tail",
                label=t("models.strategy"), info=t("models.strategy_info"), elem_id="models-strategy"),
                "label", "info")
            out_name = ui.reg("models.out_name", gr.Textbox(label=t("models.out_name"), elem_id="models-out-name"))
        preview = gr.Markdown(elem_id="models-derive-preview")
        derive_btn = ui.reg("models.derive_button", gr.Button(t("models.derive_button"), variant="primary",
                                                              elem_id="models-derive-button"))
    job_msg = gr.Markdown(elem_id="models-job-msg")
    job_state = gr.State("")
    timer = gr.Timer(2.0, active=False)

    # ------------------------------------------------------------------------------------------------ compatibility
    with ui.reg("models.compat_title", gr.Accordion(t("models.compat_title"), open=False, elem_id="models-compat")):
        with gr.Row():
            c_teacher = ui.reg("models.compat_teacher", gr.Dropdown(choices=local_model_names(ws),
                                                                    label=t("models.compat_teacher"),
                                                                    elem_id="models-compat-teacher"))
            c_student = ui.reg("models.compat_student", gr.Dropdown(choices=local_model_names(ws),
                                                                    label=t("models.compat_student"),
                                                                    elem_id="models-compat-student"))
            c_btn = ui.reg("models.compat_button", gr.Button(t("models.compat_button"), elem_id="models-compat-button"))
        c_msg = gr.Markdown(elem_id="models-compat-msg")

    # ------------------------------------------------------------------------------------------------ endpoints
    with ui.reg("models.ep_title", gr.Accordion(t("models.ep_title"), open=False, elem_id="models-endpoints")):
        ui.reg("models.ep_text", gr.Markdown(t("models.ep_text")))
        with gr.Row():
            ep_name = ui.reg("models.ep_name", gr.Textbox(label=t("models.ep_name"), elem_id="models-ep-name"))
            ep_url = ui.reg("models.ep_url", gr.Textbox(label=t("models.ep_url"), placeholder="http://127.0.0.1:8000/v1",
                                                        elem_id="models-ep-url"))
            ep_model = ui.reg("models.ep_model", gr.Textbox(label=t("models.ep_model"), info=t("models.ep_model_info"),
                                                            elem_id="models-ep-model"), "label", "info")
            ep_key = ui.reg("models.ep_key_env", gr.Textbox(label=t("models.ep_key_env"),
                                                            info=t("models.ep_key_env_info"),
                                                            placeholder="DASHSCOPE_API_KEY",
                                                            elem_id="models-ep-key-env"), "label", "info")
        with gr.Row():
            ep_save = ui.reg("models.ep_save", gr.Button(t("models.ep_save"), elem_id="models-ep-save"))
            ep_test = ui.reg("models.ep_test", gr.Button(t("models.ep_test"), elem_id="models-ep-test"))
            ep_remove = ui.reg("models.ep_remove", gr.Button(t("models.ep_remove"), elem_id="models-ep-remove"))
        ep_msg = gr.Markdown(elem_id="models-ep-msg")

    # ------------------------------------------------------------------------------------------------ handlers
    pickers = [teacher, c_teacher, c_student]

    def extra_items(text: str | None) -> list[str]:
        return [x.strip() for x in (text or "").replace("\n", ",").split(",") if x.strip()]

    def on_refresh(text: str | None):
        names = local_model_names(ws)
        try:
            data, msg = table_rows(ws, extra_items(text)), ""
        except (PathOutsideWorkspace, BackendError) as e:
            data, msg = table_rows(ws, []), f"⚠️ {e}"
        return ({"headers": headers, "data": data}, msg, *[gr.update(choices=names) for _ in pickers])

    refresh.click(on_refresh, extra, [table, table_msg, *pickers])
    extra.submit(on_refresh, extra, [table, table_msg, *pickers])

    def on_teacher(name: str | None, n, strat: str):
        if not name:
            return gr.update(), gr.update(), ""
        info = registry.inspect_model_dir(ws.models / name, name)
        total = info.num_layers or 0
        keep = int(n) if n else max(1, total // 2)
        return keep, f"{name}-{keep}l", describe(name, keep, strat)

    def describe(name: str | None, n, strat: str) -> str:
        from core.models.derive import estimate_params, select_layers

        if not name or not n:
            return ""
        info = registry.inspect_model_dir(ws.models / name, name)
        if info.error or not info.num_layers:
            return f"⚠️ {info.error or t('models.no_layers')}"
        try:
            keep = select_layers(info.num_layers, int(n), strat)
            before, after = estimate_params(ws.models / name, keep)
        except (ValueError, BackendError, OSError) as e:
            return f"⚠️ {e}"
        return t("models.preview", n=len(keep), total=info.num_layers, kept=keep,
                 before=registry.human_params(before), after=registry.human_params(after))

    teacher.change(on_teacher, [teacher, layers, strategy], [layers, out_name, preview])
    layers.change(describe, [teacher, layers, strategy], preview)
    strategy.change(describe, [teacher, layers, strategy], preview)

    def on_derive(name: str | None, n, strat: str, out: str | None):
        from core.config.train import DeriveJob

        out = (out or "").strip()
        if not name:
            return t("models.need_teacher"), gr.update(), gr.update()
        if not n or int(n) < 1:
            return t("models.need_layers"), gr.update(), gr.update()
        if not NAME_RE.match(out):
            return t("models.bad_name"), gr.update(), gr.update()
        if (ws.models / out).exists():
            return t("models.name_taken", name=out), gr.update(), gr.update()
        try:
            job_id = ui.jobs().submit(DeriveJob(teacher=name, layers=int(n), strategy=strat, output=out))
        except Exception as e:  # a config the job system refuses: a message, not a traceback
            return f"⚠️ {type(e).__name__}: {e}", gr.update(), gr.update()
        return t("models.submitted", job=job_id), job_id, gr.Timer(active=True)

    derive_btn.click(on_derive, [teacher, layers, strategy, out_name], [job_msg, job_state, timer])

    def on_demo(n):
        from core.config.train import PrepareDemoJob

        if not n or not 1 <= int(n) <= 30:
            return t("models.need_layers"), gr.update(), gr.update()
        try:
            job_id = ui.jobs().submit(PrepareDemoJob(student_layers=int(n or 15)))
        except Exception as e:
            return f"⚠️ {type(e).__name__}: {e}", gr.update(), gr.update()
        return t("models.submitted", job=job_id), job_id, gr.Timer(active=True)

    demo_btn.click(on_demo, demo_layers, [job_msg, job_state, timer])

    def poll(job_id: str, text: str | None):
        if not job_id:
            return gr.update(), gr.Timer(active=False), gr.update(), *[gr.update() for _ in pickers]
        try:
            jm = ui.jobs()
            info = jm.get(job_id)
            events = [m["event"] for m in jm.metrics(job_id) if "event" in m]
        except Exception as e:
            return f"⚠️ {e}", gr.Timer(active=False), gr.update(), *[gr.update() for _ in pickers]
        pct = "" if info.progress is None else f" {round(100 * info.progress)}%"
        msg = t("models.job_status", job=job_id, status=info.status, pct=pct)
        if events:
            msg += "\n\n" + events[-1]
        if info.reason:
            msg += f"\n\n{info.reason}"
        if not info.finished:
            return msg, gr.Timer(active=True), gr.update(), *[gr.update() for _ in pickers]
        report = Path(info.run_dir) / "output" / "derive_report.json"
        if info.status == "succeeded" and report.exists():
            from core.models.derive import DeriveReport

            msg += "\n\n" + DeriveReport(**json.loads(report.read_text())).summary()
        table_update, _, *picker_updates = on_refresh(text)
        return msg, gr.Timer(active=False), table_update, *picker_updates

    timer.tick(poll, [job_state, extra], [job_msg, timer, table, *pickers], show_progress="hidden")

    def on_check(a: str | None, b: str | None):
        if not a or not b:
            return t("models.need_pair")
        try:
            res = registry.check_logit_kd(ws.models / a, ws.models / b)
        except (BackendError, OSError) as e:
            return f"⚠️ {e}"
        return ("✅ " if res.ok else "❌ ") + res.message

    c_btn.click(on_check, [c_teacher, c_student], c_msg)

    def entry(name, url, model, key_env) -> registry.EndpointEntry:
        return registry.EndpointEntry((name or "").strip(), (url or "").strip(), (model or "").strip() or None,
                                      (key_env or "").strip() or None)

    def on_ep_save(name, url, model, key_env, text):
        try:
            registry.save_endpoint(ws, entry(name, url, model, key_env))
        except BackendError as e:
            return f"⚠️ {e}", gr.update()
        return t("models.ep_saved", name=name), on_refresh(text)[0]

    def on_ep_test(name, url, model, key_env):
        e = entry(name, url, model, key_env)
        if not e.base_url:
            return t("models.ep_need_url")
        try:
            served = registry.probe_endpoint(e)
        except (BackendError, ValueError) as err:
            return f"⚠️ {err}"
        if e.model and e.model not in served:
            return t("models.ep_model_missing", model=e.model, served=", ".join(served))
        return t("models.ep_ok", served=", ".join(served) or "-")

    def on_ep_remove(name, text):
        if not registry.remove_endpoint(ws, (name or "").strip()):
            return t("models.ep_unknown", name=name), gr.update()
        return t("models.ep_removed", name=name), on_refresh(text)[0]

    ep_save.click(on_ep_save, [ep_name, ep_url, ep_model, ep_key, extra], [ep_msg, table])
    ep_test.click(on_ep_test, [ep_name, ep_url, ep_model, ep_key], ep_msg)
    ep_remove.click(on_ep_remove, [ep_name, extra], [ep_msg, table])
