"""The Models tab: what models exist (workspace, extra folders, hub ids, endpoints), the offline demo pair, deriving
a student by layer pruning, the logit-KD compatibility check and remote endpoints.

Widgets and wiring only: the table, the derive / demo forms, the preview and the job report live in core.models
(`table`, `form`), endpoints in core.models.registry. Long work (deriving, preparing the demo) is submitted as a job
and polled. Nothing here imports torch: facts come from config.json and safetensors headers.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from core.errors import BackendError, UserError
from core.models import registry
from core.models.form import DEMO_FORM, DERIVE_FORM, job_report, preview, propose
from core.models.table import COLUMNS, model_rows
from core.pickers import local_model_names
from studio.forms import FormView, picker_choices
from studio.i18n import has
from studio.ui import UIContext


def build(ui: UIContext) -> None:
    ui.reg("models.intro", gr.Markdown(ui.t("models.intro"), elem_id="models-intro"))
    w: dict[str, Any] = {}
    _table_section(ui, w)
    _demo_section(ui, w)
    _derive_section(ui, w)
    w["job_msg"] = gr.Markdown(elem_id="models-job-msg")
    w["job_state"] = gr.State("")
    w["timer"] = gr.Timer(2.0, active=False)
    _compat_section(ui, w)
    _endpoint_section(ui, w)
    _wire_table(ui, w)
    _wire_jobs(ui, w)
    _wire_compat_and_endpoints(ui, w)


# ------------------------------------------------------------------------------------------------ layout

def _table_section(ui: UIContext, w: dict[str, Any]) -> None:
    t = ui.t
    with gr.Row():
        w["extra"] = ui.reg("models.extra", gr.Textbox(label=t("models.extra"), info=t("models.extra_info"),
                                                       placeholder=t("models.extra_placeholder"),
                                                       elem_id="models-extra", scale=4), "label", "info", "placeholder")
        w["refresh"] = ui.reg("models.refresh", gr.Button(t("models.refresh"), elem_id="models-refresh", scale=1))
    w["table"] = gr.Dataframe(value=_table_value(ui, model_rows(ui.workspace)), interactive=False, wrap=True,
                              elem_id="models-table", show_label=False)
    w["table_msg"] = gr.Markdown(elem_id="models-table-msg")


def _demo_section(ui: UIContext, w: dict[str, Any]) -> None:
    w["demo"] = FormView(ui, "models", DEMO_FORM)
    with ui.reg("models.demo_title", gr.Accordion(ui.t("models.demo_title"), open=False, elem_id="models-demo")):
        ui.reg("models.demo_text", gr.Markdown(ui.t("models.demo_text")))
        with gr.Row():
            w["demo"].render("demo_layers")
            w["demo_btn"] = ui.reg("models.demo_button", gr.Button(ui.t("models.demo_button"),
                                                                  elem_id="models-demo-button"))


def _derive_section(ui: UIContext, w: dict[str, Any]) -> None:
    w["derive"] = view = FormView(ui, "models", DERIVE_FORM)
    with ui.reg("models.derive_title", gr.Accordion(ui.t("models.derive_title"), open=True, elem_id="models-derive")):
        ui.reg("models.derive_text", gr.Markdown(ui.t("models.derive_text")))
        with gr.Row():
            view.render("teacher", "layers", "strategy", "out_name")
        w["preview"] = gr.Markdown(elem_id="models-derive-preview")
        w["derive_btn"] = ui.reg("models.derive_button", gr.Button(ui.t("models.derive_button"), variant="primary",
                                                                   elem_id="models-derive-button"))
        view.tools()


def _compat_section(ui: UIContext, w: dict[str, Any]) -> None:
    t, names = ui.t, local_model_names(ui.workspace)
    with ui.reg("models.compat_title", gr.Accordion(t("models.compat_title"), open=False, elem_id="models-compat")):
        with gr.Row():
            w["c_teacher"] = ui.reg("models.compat_teacher", gr.Dropdown(
                choices=names, label=t("models.compat_teacher"), elem_id="models-compat-teacher"))
            w["c_student"] = ui.reg("models.compat_student", gr.Dropdown(
                choices=names, label=t("models.compat_student"), elem_id="models-compat-student"))
            w["c_btn"] = ui.reg("models.compat_button", gr.Button(t("models.compat_button"),
                                                                  elem_id="models-compat-button"))
        w["c_msg"] = gr.Markdown(elem_id="models-compat-msg")


def _endpoint_section(ui: UIContext, w: dict[str, Any]) -> None:
    t = ui.t
    with ui.reg("models.ep_title", gr.Accordion(t("models.ep_title"), open=False, elem_id="models-endpoints")):
        ui.reg("models.ep_text", gr.Markdown(t("models.ep_text")))
        with gr.Row():
            w["ep_name"] = ui.reg("models.ep_name", gr.Textbox(label=t("models.ep_name"), elem_id="models-ep-name"))
            w["ep_url"] = ui.reg("models.ep_url", gr.Textbox(label=t("models.ep_url"),
                                                             placeholder="http://127.0.0.1:8000/v1",
                                                             elem_id="models-ep-url"))
            w["ep_model"] = ui.reg("models.ep_model", gr.Textbox(label=t("models.ep_model"),
                                                                 info=t("models.ep_model_info"),
                                                                 elem_id="models-ep-model"), "label", "info")
            w["ep_key"] = ui.reg("models.ep_key_env", gr.Textbox(label=t("models.ep_key_env"),
                                                                 info=t("models.ep_key_env_info"),
                                                                 placeholder="DASHSCOPE_API_KEY",
                                                                 elem_id="models-ep-key-env"), "label", "info")
        with gr.Row():
            w["ep_save"] = ui.reg("models.ep_save", gr.Button(t("models.ep_save"), elem_id="models-ep-save"))
            w["ep_test"] = ui.reg("models.ep_test", gr.Button(t("models.ep_test"), elem_id="models-ep-test"))
            w["ep_remove"] = ui.reg("models.ep_remove", gr.Button(t("models.ep_remove"), elem_id="models-ep-remove"))
        w["ep_msg"] = gr.Markdown(elem_id="models-ep-msg")


def _table_value(ui: UIContext, rows: list[list]) -> dict[str, Any]:
    """The models table in the page's language: its headers, and the words core puts in the source and chat columns."""
    source, chat = COLUMNS.index("source"), COLUMNS.index("chat")
    words = {"yes": ui.t("models.chat_yes"), "NO": ui.t("models.chat_no")}
    for row in rows:
        row[source] = ui.t(f"models.source_{row[source]}") if has(f"models.source_{row[source]}") else row[source]
        row[chat] = words.get(row[chat], row[chat])
    return {"headers": [ui.t(f"models.col_{c}") for c in COLUMNS], "data": rows}


# ------------------------------------------------------------------------------------------------ wiring

def _pickers(w: dict[str, Any]) -> list[Any]:
    """The model pickers that follow the table (a derived model appears in them)."""
    return [w["derive"].comps["teacher"], w["c_teacher"], w["c_student"]]


def _wire_table(ui: UIContext, w: dict[str, Any]) -> None:
    ws = ui.workspace

    def on_refresh(text: str | None):
        try:
            data, msg = model_rows(ws, text), ""
        except (UserError, BackendError) as e:  # a folder outside the workspace, a hub id that cannot be read
            data, msg = model_rows(ws), f"⚠️ {ui.error_text(e)}"
        names = local_model_names(ws)
        return (_table_value(ui, data), msg,
                gr.update(choices=picker_choices(ui, "model")), gr.update(choices=names), gr.update(choices=names))

    w["on_refresh"] = on_refresh
    outputs = [w["table"], w["table_msg"], *_pickers(w)]
    w["refresh"].click(on_refresh, w["extra"], outputs)
    w["extra"].submit(on_refresh, w["extra"], outputs)
    ui.on_language(on_refresh, [w["extra"]], outputs)


def _wire_jobs(ui: UIContext, w: dict[str, Any]) -> None:
    t, derive = ui.t, w["derive"]
    teacher, layers, strategy, out_name = (derive.comps[n] for n in ("teacher", "layers", "strategy", "out_name"))

    def describe(name: str | None, n: Any, strat: str) -> str:
        if not name or not n:
            return ""
        try:
            p = preview(ui.workspace, name, int(n), strat)
        except UserError as e:
            return f"⚠️ {ui.error_text(e)}"
        return t("models.preview", n=len(p.kept), total=p.total, kept=p.kept,
                 before=registry.human_params(p.params_before), after=registry.human_params(p.params_after))

    def on_teacher(name: str | None, n: Any, strat: str):
        if not name:
            return gr.update(), gr.update(), ""
        try:
            keep, out = propose(ui.workspace, name, int(n) if n else None)
        except UserError as e:
            return gr.update(), gr.update(), f"⚠️ {ui.error_text(e)}"
        return keep, out, describe(name, keep, strat)

    teacher.change(on_teacher, [teacher, layers, strategy], [layers, out_name, w["preview"]])
    layers.change(describe, [teacher, layers, strategy], w["preview"])
    strategy.change(describe, [teacher, layers, strategy], w["preview"])

    def submit(view: FormView, data: dict[Any, Any]):
        try:
            job_id = ui.jobs().submit(view.build(data))
        except UserError as e:  # a field to fix, a device request this machine cannot meet
            return f"⚠️ {ui.error_text(e)}", gr.update(), gr.update()
        return t("models.submitted", job=job_id), job_id, gr.Timer(active=True)

    started = [w["job_msg"], w["job_state"], w["timer"]]
    w["derive_btn"].click(lambda data: submit(derive, data), derive.inputs(), started)
    w["demo_btn"].click(lambda data: submit(w["demo"], data), w["demo"].inputs(), started)

    keep_pickers = [gr.update() for _ in _pickers(w)]

    def poll(job_id: str, text: str | None):
        if not job_id:
            return gr.update(), gr.Timer(active=False), gr.update(), *keep_pickers
        try:
            msg, finished = job_report(ui.jobs(), job_id, ui.job_words(), ui.said, lambda r: report_text(ui, r))
        except UserError as e:  # the job was deleted in the Jobs tab meanwhile
            return f"⚠️ {ui.error_text(e)}", gr.Timer(active=False), gr.update(), *keep_pickers
        if not finished:
            return msg, gr.Timer(active=True), gr.update(), *keep_pickers
        table_update, _, *picker_updates = w["on_refresh"](text)
        return msg, gr.Timer(active=False), table_update, *picker_updates

    w["timer"].tick(poll, [w["job_state"], w["extra"]], [w["job_msg"], w["timer"], w["table"], *_pickers(w)],
                    show_progress="hidden")


def report_text(ui: UIContext, r: Any) -> str:
    """A finished derive's report (core.models.derive.DeriveReport) in the page's words: layers kept, parameters
    and, when measured, what pruning cost before training (CE / KL on the teacher's held-out answers)."""
    import math

    t = ui.t
    strategy = t(f"models.strategy_{r.strategy}") if has(f"models.strategy_{r.strategy}") else r.strategy
    text = t("models.report_kept", n=len(r.kept_layers), total=r.teacher_layers, kept=r.kept_layers,
             strategy=strategy, before=f"{r.params_before / 1e6:.1f}M", after=f"{r.params_after / 1e6:.1f}M")
    if r.student_ce is not None:
        text += t("models.report_measured", tokens=r.eval_tokens, ce=f"{r.student_ce:.2f}", kl=f"{r.student_kl:.2f}",
                  teacher_ce=f"{r.teacher_ce:.2f}")
        if r.vocab_size:
            text += t("models.report_uniform", uniform=f"{math.log(r.vocab_size):.1f}")
    return text


def _wire_compat_and_endpoints(ui: UIContext, w: dict[str, Any]) -> None:
    t, ws = ui.t, ui.workspace

    def on_check(a: str | None, b: str | None):
        if not a or not b:
            return t("models.need_pair")
        try:
            res = registry.check_logit_kd(ws.models / a, ws.models / b)
        except (BackendError, OSError) as e:
            return f"⚠️ {ui.error_text(e)}"
        said = t(f"models.compat_{res.code}", **res.params) if has(f"models.compat_{res.code}") else res.message
        return ("✅ " if res.ok else "❌ ") + said

    w["c_btn"].click(on_check, [w["c_teacher"], w["c_student"]], w["c_msg"])

    def entry(name: str | None, url: str | None, model: str | None, key_env: str | None) -> registry.EndpointEntry:
        return registry.EndpointEntry((name or "").strip(), (url or "").strip(), (model or "").strip() or None,
                                      (key_env or "").strip() or None)

    def on_ep_save(name, url, model, key_env, text):
        try:
            registry.save_endpoint(ws, entry(name, url, model, key_env))
        except BackendError as e:
            return f"⚠️ {ui.error_text(e)}", gr.update()
        return t("models.ep_saved", name=name), w["on_refresh"](text)[0]

    def on_ep_test(name, url, model, key_env):
        e = entry(name, url, model, key_env)
        if not e.base_url:
            return t("models.ep_need_url")
        try:
            served = registry.probe_endpoint(e)
        except (BackendError, ValueError) as err:
            return f"⚠️ {ui.error_text(err)}"
        if e.model and e.model not in served:
            return t("models.ep_model_missing", model=e.model, served=", ".join(served))
        return t("models.ep_ok", served=", ".join(served) or "-")

    def on_ep_remove(name, text):
        if not registry.remove_endpoint(ws, (name or "").strip()):
            return t("models.ep_unknown", name=name), gr.update()
        return t("models.ep_removed", name=name), w["on_refresh"](text)[0]

    ep_fields = [w["ep_name"], w["ep_url"], w["ep_model"], w["ep_key"]]
    w["ep_save"].click(on_ep_save, [*ep_fields, w["extra"]], [w["ep_msg"], w["table"]])
    w["ep_test"].click(on_ep_test, ep_fields, w["ep_msg"])
    w["ep_remove"].click(on_ep_remove, [w["ep_name"], w["extra"]], [w["ep_msg"], w["table"]])
