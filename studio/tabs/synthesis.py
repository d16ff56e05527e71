"""The Synthesis tab: pick an input dataset, an operator, a teacher, a prompt template (editable, saved in the
workspace) and sampling; "Try on N rows" shows inputs next to outputs; "Run on all" submits a resumable job whose
progress (rows, rejects, rows/s, tokens, ETA) is polled from its run folder; Stop and Resume act on it. Instruction
balancing: classify with the teacher, then resample toward the category shares of an editable table.

Widgets and wiring only. `core.synth.form.FORM` turns the widget values into a SynthJob (errors name the field),
decides which fields an operator or teacher kind shows, runs the trial (a local teacher in a child process, never in
this one), submits, and balances; `FormView.tools()` gives the YAML / CLI preview, presets and loading a config back;
`core.jobs.summary` words the job's status.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import gradio as gr

from core.errors import BackendError, UserError
from core.synth.form import FORM, SHARES, default_shares
from core.synth.templates import placeholder_list
from studio.forms import FormView
from studio.ui import UIContext

PREFIX = "synthesis"
TRIAL_COLUMNS = ("id", "input", "output", "status")  # the trial table's columns (`synthesis.col_<name>`)
# elem_ids the browser tests (and users' bookmarks of old screenshots) know; other fields get `synthesis-<name>`
ELEM_IDS = {"input": "synth-input", "operator": "synth-operator", "output": "synth-output", "backend": "synth-backend",
            "model": "synth-model", "base_url": "synth-base-url", "served_model": "synth-served-model",
            "template": "synth-template", "template_text": "synth-template-text", "max_new_tokens": "synth-max-new"}


@dataclass
class Parts:
    """The tab's components besides the form's fields (those are `FormView.comps`)."""

    op_help: Any = None
    placeholders: Any = None
    template_name: Any = None
    template_save: Any = None
    template_msg: Any = None
    balance_box: Any = None
    balance_now: Any = None
    balance_md: Any = None
    n_try: Any = None
    try_btn: Any = None
    run_btn: Any = None
    retry_btn: Any = None
    resume_btn: Any = None
    stop_btn: Any = None
    msg: Any = None
    trial: Any = None
    job_state: Any = None
    job_md: Any = None
    timer: Any = None


def _problem(ui: UIContext, e: Exception) -> str:
    return f"⚠️ {ui.error_text(e, where='synthesis')}"


def build(ui: UIContext) -> None:
    view = FormView(ui, PREFIX, FORM)
    p = _layout(ui, view)
    _wire_visibility(ui, view, p)
    _wire_templates(ui, view, p)
    _wire_jobs(ui, view, p)
    _wire_balance(ui, view, p)


# ---------------------------------------------------------------------------------------------------------- layout
def _render(view: FormView, *names: str, **kwargs: Any) -> None:
    """Render fields with their known elem_ids, hidden when the default operator / teacher does not use them."""
    shown = FORM.shown(FORM.defaults())
    for n in names:
        extra = {"elem_id": ELEM_IDS[n]} if n in ELEM_IDS else {}
        view.render(n, visible=shown[n], **extra, **kwargs)


def _layout(ui: UIContext, view: FormView) -> Parts:
    t, p = ui.t, Parts()
    with gr.Row():
        _render(view, "input", scale=3)
        _render(view, "operator", scale=2)
        _render(view, "output", scale=2)
    p.op_help = gr.Markdown(t("synthesis.help_label"), elem_id="synth-op-help")
    with ui.reg("synthesis.teacher_title", gr.Accordion(t("synthesis.teacher_title"), open=True)):
        with gr.Row():
            _render(view, "backend", "model", "batch_size")
        with gr.Row():
            _render(view, "endpoint", "base_url", "served_model", "api_key_env", "concurrency")
        _render(view, "replicas")
    with ui.reg("synthesis.template_title", gr.Accordion(t("synthesis.template_title"), open=False)):
        with gr.Row():
            _render(view, "template", scale=2)
            p.template_name = ui.reg("synthesis.template_name", gr.Textbox(label=t("synthesis.template_name"),
                                                                           scale=2))
            p.template_save = ui.reg("synthesis.template_save", gr.Button(t("synthesis.template_save"), scale=0,
                                                                          min_width=140))
        p.placeholders = gr.Markdown(t("synthesis.placeholders", names=placeholder_list("label")))
        _render(view, "template_text")
        p.template_msg = gr.Markdown()
    with ui.reg("synthesis.sampling_title", gr.Accordion(t("synthesis.sampling_title"), open=False)):
        with gr.Row():
            _render(view, "temperature", "top_p", "max_new_tokens", "sampling_seed")
        _render(view, "system_prompt")
        with gr.Row():
            _render(view, "n_ctx", "n_out", "limit", "seed", "parse_retries")
    _layout_balance(ui, view, p)
    with gr.Row():
        p.n_try = ui.reg("synthesis.n_try", gr.Number(5, label=t("synthesis.n_try"), precision=0, minimum=1,
                                                      maximum=50, scale=0, min_width=120))
        p.try_btn = ui.reg("synthesis.try", gr.Button(t("synthesis.try"), elem_id="synth-try"))
        p.run_btn = ui.reg("synthesis.run", gr.Button(t("synthesis.run"), variant="primary", elem_id="synth-run"))
        p.retry_btn = ui.reg("synthesis.retry", gr.Button(t("synthesis.retry"), elem_id="synth-retry"))
        p.resume_btn = ui.reg("synthesis.resume", gr.Button(t("synthesis.resume"), elem_id="synth-resume"))
        p.stop_btn = ui.reg("synthesis.stop", gr.Button(t("synthesis.stop"), variant="stop", elem_id="synth-stop"))
    p.msg = gr.Markdown(elem_id="synth-message")
    p.trial = ui.reg("synthesis.trial", gr.Dataframe(headers=[t(f"synthesis.col_{c}") for c in TRIAL_COLUMNS],
                                                     label=t("synthesis.trial"), interactive=False, wrap=True,
                                                     max_height=520, elem_id="synth-trial", visible=False),
                     headers=tuple(f"synthesis.col_{c}" for c in TRIAL_COLUMNS))
    p.job_state = gr.State("")
    p.job_md = gr.Markdown(elem_id="synth-job")
    p.timer = gr.Timer(2.0, active=False)
    view.tools(on_loaded=lambda values: _visibility(ui, view, p, values, with_values=True),
               extra_outputs=[p.balance_box, p.op_help, p.placeholders])
    return p


def _layout_balance(ui: UIContext, view: FormView, p: Parts) -> None:
    """Classify's section: the category/share table (a form value FormView has no widget for) and the balancing."""
    t = ui.t
    with ui.reg("synthesis.balance_title", gr.Accordion(t("synthesis.balance_title"), open=False,
                                                        visible=False)) as p.balance_box:
        ui.reg("synthesis.balance_help", gr.Markdown(t("synthesis.balance_help")), "value")
        view.comps[SHARES] = ui.reg("synthesis.shares", gr.Dataframe(
            value=default_shares(), headers=[t("synthesis.col_category"), t("synthesis.col_share")],
            datatype=["str", "number"], interactive=True, column_count=(2, "fixed"), label=t("synthesis.shares"),
            max_height=300, elem_id="synth-shares"), headers=("synthesis.col_category", "synthesis.col_share"))
        with gr.Row():
            _render(view, "balance_after", "balance_total", "upsample")
            p.balance_now = ui.reg("synthesis.balance_now", gr.Button(t("synthesis.balance_now")))
        p.balance_md = gr.Markdown()


# ---------------------------------------------------------------------------------------------------------- wiring
def _visibility(ui: UIContext, view: FormView, p: Parts, values: dict[str, Any],
                with_values: bool = False) -> dict[Any, Any]:
    """Show the fields the operator and teacher kind use, the operator's help and placeholders (and, after loading a
    config, the loaded values in the same updates)."""
    shown = FORM.shown(values)
    out = {c: gr.update(visible=shown.get(n, True), **({"value": values[n]} if with_values and n in values else {}))
           for n, c in view.comps.items()}
    op = values.get("operator") or "label"
    out[p.balance_box] = gr.update(visible=shown[SHARES])
    out[p.op_help] = ui.t(f"synthesis.help_{op}")
    out[p.placeholders] = ui.t("synthesis.placeholders", names=placeholder_list(op))
    return out


def _wire_visibility(ui: UIContext, view: FormView, p: Parts) -> None:
    c = view.comps
    keys = [c["operator"], c["backend"], c["endpoint"]]
    outputs = [*c.values(), p.balance_box, p.op_help, p.placeholders]

    def show(operator: str, backend: str, endpoint: str | None) -> dict[Any, Any]:
        return _visibility(ui, view, p, {"operator": operator, "backend": backend, "endpoint": endpoint})

    for comp in keys:
        comp.change(show, keys, outputs, show_progress="hidden")
    ui.on_language(show, keys, outputs)  # the operator's help and placeholders in the new language
    # a person switching the operator gets its default template (not a config being loaded: that sets its own)
    c["operator"].input(lambda op: view.updates(FORM.operator_defaults(op)), c["operator"],
                        [c["template"], c["template_text"]])


def _wire_templates(ui: UIContext, view: FormView, p: Parts) -> None:
    from core.synth.templates import list_templates, save_template, template_text
    from studio.forms import picker_choices

    c, t, ws = view.comps, ui.t, ui.workspace

    def on_choice(operator: str, choice: str | None):
        try:
            text = template_text(ws, operator, choice)
        except UserError as e:
            return gr.update(), gr.update(), _problem(ui, e)
        return text, choice or "", ""

    c["template"].input(on_choice, [c["operator"], c["template"]], [c["template_text"], p.template_name,
                                                                    p.template_msg])

    def on_save(operator: str, name: str, text: str):
        try:
            path = save_template(ws, name or "", operator, text or "")
        except UserError as e:
            return _problem(ui, e), gr.update()
        return (t("synthesis.template_saved", path=ws.relative(path)),
                gr.update(choices=picker_choices(ui, "text", True, list_templates), value=path.stem))

    p.template_save.click(on_save, [c["operator"], p.template_name, c["template_text"]], [p.template_msg,
                                                                                         c["template"]])


def _wire_jobs(ui: UIContext, view: FormView, p: Parts) -> None:
    """Try on N rows, Run / Retry rejects, Stop / Resume, and the polled status of the job this tab started."""
    from core.synth.form import output_label

    t, ws = ui.t, ui.workspace

    def on_try(data: dict[Any, Any]):
        try:
            res = FORM.trial(ws, view.values(data), data[p.n_try])
        except (UserError, BackendError) as e:  # an endpoint that refuses, a model that cannot load: say so
            return _problem(ui, e), gr.update()
        ok = sum(r.status == "ok" for r in res.rows)
        head = t("synthesis.trial_done", ok=ok, n=len(res.rows), seconds=res.seconds,
                 tokens=res.prompt_tokens + res.completion_tokens)
        cols = [t(f"synthesis.col_{c}") for c in TRIAL_COLUMNS]
        rows = [[r.id, r.input, r.output, r.status] for r in res.rows]
        return head, gr.update(value={"headers": cols, "data": rows}, visible=True)

    p.try_btn.click(on_try, {p.n_try, *view.inputs()}, [p.msg, p.trial])

    def submit(data: dict[Any, Any], retry: bool):
        try:
            job_id, job = FORM.submit(ws, ui.jobs(), view.values(data), retry)
        except UserError as e:
            return _problem(ui, e), gr.update(), gr.update()
        return t("synthesis.submitted", job=job_id, output=output_label(job)), job_id, gr.Timer(active=True)

    outputs = [p.msg, p.job_state, p.timer]
    p.run_btn.click(lambda data: submit(data, False), view.inputs(), outputs)
    p.retry_btn.click(lambda data: submit(data, True), view.inputs(), outputs)

    def poll(job_id: str):
        from core.jobs.summary import status_line
        from core.synth.form import progress_counts

        if not job_id:
            return "", gr.Timer(active=False)
        try:
            jobs = ui.jobs()
            info, counts = jobs.get(job_id), progress_counts(jobs.metrics(job_id))
        except UserError as e:
            return _problem(ui, e), gr.Timer(active=False)
        line = status_line(dataclasses.replace(info, done=None, total=None), ui.job_words())  # rows: next line
        return f"{line}  \n{t('synthesis.job_counts', **counts)}", gr.Timer(active=not info.finished)

    p.timer.tick(poll, p.job_state, [p.job_md, p.timer], show_progress="hidden")
    ui.on_language(poll, [p.job_state], [p.job_md, p.timer])
    p.stop_btn.click(lambda job_id: ui.job_action("stop", job_id, "synthesis.stopping", "synthesis.no_job"),
                     p.job_state, p.msg)
    p.resume_btn.click(lambda job_id: (ui.job_action("resume", job_id, "synthesis.resumed", "synthesis.no_job"),
                                       gr.Timer(active=bool(job_id))), p.job_state, [p.msg, p.timer])


def _wire_balance(ui: UIContext, view: FormView, p: Parts) -> None:
    """"Balance the input now": resample an already classified input toward the table's shares."""
    from core.synth.form import balance_dataset

    t = ui.t

    def on_balance(data: dict[Any, Any]):
        try:
            name, n, table = balance_dataset(ui.workspace, view.values(data))
        except UserError as e:
            return _problem(ui, e)
        head = f"| {t('synthesis.col_category')} | {t('synthesis.col_before')} | {t('synthesis.col_target')} | " \
               f"{t('synthesis.col_after')} |\n|---|---|---|---|\n"
        return t("synthesis.balanced", name=name, rows=n) + "\n\n" + head + "\n".join(
            f"| {cat} | {before} | {target} | {after} |" for cat, before, target, after in table)

    p.balance_now.click(on_balance, view.inputs(), p.balance_md)
