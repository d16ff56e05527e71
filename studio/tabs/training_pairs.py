"""The Training tab's "Preference pairs" section: build DPO pairs (teacher vs student answers, or best vs worst of N
teacher samples) and CogPO's Critique–Rethink–Verify pairs, then hand the pairs dataset to the DPO method.

Widgets and wiring only. The forms are core.pairs.form's PAIRS_FORM and CRV_FORM rendered by FormView (fields,
defaults, bounds and help from PairsJob / CrvJob; YAML / command preview, presets, loading); which fields a mode,
ranking or verifier uses comes from the form's `shown`. Both jobs run in their own processes through the job manager;
their status lines come from core.jobs.summary. "Use for DPO" puts the job's output dataset into the Training form's
dataset picker and switches the method to DPO (the Training tab passes the switch in). Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

from core.errors import UserError
from core.pairs.form import CRV_FORM, PAIRS_FORM
from studio.forms import FormView
from studio.ui import UIContext

PARTS = {"build": ("pairs.build", PAIRS_FORM, "pairs"), "crv": ("pairs.crv", CRV_FORM, "crv")}
# The fields whose value decides which other fields a form shows.
SWITCHES = {"build": ("mode", "rank_by"), "crv": ("verifier",)}


def layout(ui: UIContext) -> dict[str, Any]:
    """The section's widgets, where the layout is now (inside the Training tab)."""
    p: dict[str, Any] = {part: FormView(ui, prefix, form) for part, (prefix, form, _) in PARTS.items()}
    with ui.reg("pairs.title", gr.Accordion(ui.t("pairs.title"), open=False, elem_id="pairs-section")):
        ui.reg("pairs.intro", gr.Markdown(ui.t("pairs.intro")), "value")
        with ui.reg("pairs.build_title", gr.Accordion(ui.t("pairs.build_title"), open=True)):
            _form(p, "build")
            _run_row(ui, p, "build")
        with ui.reg("pairs.crv_title", gr.Accordion(ui.t("pairs.crv_title"), open=False)):
            _form(p, "crv")
            _run_row(ui, p, "crv")
    p["timer"] = gr.Timer(2.0)
    return p


BUILD_ROWS = (("input", "mode", "output"), ("student", "teacher", "backend", "num_samples"),
              ("rank_by", "answer_field", "min_margin", "length_alpha"), ("judge", "judge_metric", "judge_template"),
              ("temperature", "max_new_tokens", "system_prompt"), ("limit", "retry_rejects", "name"))
CRV_ROWS = (("input", "student_size", "output"), ("critic", "rethinker", "backend"),
            ("verifier", "verify_judge", "answer_field", "corrupted_pairs"),
            ("critique_template", "short2long_template", "long2short_template", "verify_template"),
            ("critic_max_new_tokens", "rethink_temperature", "rethink_max_new_tokens"),
            ("limit", "retry_rejects", "name"))
ROWS = {"build": BUILD_ROWS, "crv": CRV_ROWS}


def _form(p: dict[str, Any], part: str) -> None:
    """The form's fields in rows, those the default mode does not use hidden (a row of hidden fields too), then its
    tools."""
    view, form = p[part], PARTS[part][1]
    shown = form.shown(form.defaults())
    p[f"{part}_rows"] = []
    for names in ROWS[part]:
        with gr.Row(visible=any(shown.get(n, True) for n in names)) as row:
            for name in names:
                view.render(name, visible=shown.get(name, True))
        p[f"{part}_rows"].append((row, names))
    view.tools()


def _run_row(ui: UIContext, p: dict[str, Any], part: str) -> None:
    """Start / Stop / Resume, the job picker, Use for DPO, a message and the job's status line of one form."""
    t = ui.t
    with gr.Row():
        p[f"{part}_start"] = ui.reg(f"pairs.{part}_start", gr.Button(
            t(f"pairs.{part}_start"), variant="primary", elem_id=f"pairs-{part}-start"))
        p[f"{part}_stop"] = ui.reg("pairs.stop", gr.Button(t("pairs.stop"), variant="stop",
                                                          elem_id=f"pairs-{part}-stop"))
        p[f"{part}_resume"] = ui.reg("pairs.resume", gr.Button(t("pairs.resume"), elem_id=f"pairs-{part}-resume"))
        p[f"{part}_job"] = ui.reg("pairs.job", gr.Dropdown(
            choices=_jobs(ui, part), value=None, label=t("pairs.job"), allow_custom_value=True,
            elem_id=f"pairs-{part}-job"))
        p[f"{part}_use"] = ui.reg("pairs.use_for_dpo", gr.Button(t("pairs.use_for_dpo"),
                                                                 elem_id=f"pairs-{part}-use"))
    p[f"{part}_message"] = gr.Markdown(elem_id=f"pairs-{part}-message")
    p[f"{part}_status"] = gr.Markdown(elem_id=f"pairs-{part}-status")


# ------------------------------------------------------------------------------------------------ wiring

def wire(ui: UIContext, p: dict[str, Any], to_dpo: Callable[[str, Any], dict[Any, Any]], dpo_inputs: list[Any],
         dpo_outputs: list[Any]) -> None:
    """Events of both forms. `to_dpo(dataset, *dpo_inputs)` gives the Training form's updates (dataset picked,
    method DPO and its sections) over `dpo_outputs`."""
    for part in PARTS:
        _wire_shown(p, part)
        _wire_jobs(ui, p, part)
        _wire_use(ui, p, part, to_dpo, dpo_inputs, dpo_outputs)
    _wire_tick(ui, p)


def _wire_shown(p: dict[str, Any], part: str) -> None:
    """A mode / ranking / verifier switch shows the fields it uses and hides the others."""
    view, form = p[part], PARTS[part][1]
    switches = [view.comps[n] for n in SWITCHES[part]]

    rows = p[f"{part}_rows"]

    def on_switch(*vals: Any) -> dict[Any, Any]:
        shown = form.shown(dict(zip(SWITCHES[part], vals, strict=True)))
        out = {c: gr.update(visible=shown.get(n, True)) for n, c in view.comps.items()}
        out.update({row: gr.update(visible=any(shown.get(n, True) for n in names)) for row, names in rows})
        return out

    outputs = [*view.comps.values(), *(row for row, _ in rows)]
    for comp in switches:
        comp.change(on_switch, inputs=switches, outputs=outputs, show_progress="hidden")


def _wire_jobs(ui: UIContext, p: dict[str, Any], part: str) -> None:
    view, job, message = p[part], p[f"{part}_job"], p[f"{part}_message"]

    def on_start(data: dict[Any, Any]) -> dict[Any, Any]:
        try:
            job_id = ui.jobs().submit(view.build(data))
        except UserError as e:  # a field to fix, a path outside the workspace
            return {message: f"⚠️ {ui.error_text(e)}"}
        return {message: ui.t("pairs.started", job=job_id), job: gr.update(choices=_jobs(ui, part), value=job_id)}

    p[f"{part}_start"].click(on_start, inputs=view.inputs(), outputs=[message, job])
    p[f"{part}_stop"].click(lambda j: ui.job_action("stop", j, "pairs.stopping", "pairs.no_job"), job, message)
    p[f"{part}_resume"].click(lambda j: ui.job_action("resume", j, "pairs.resumed", "pairs.no_job"), job, message)
    job.focus(lambda: gr.update(choices=_jobs(ui, part)), None, job, show_progress="hidden")


def _wire_tick(ui: UIContext, p: dict[str, Any]) -> None:
    """Both status lines from the jobs' run folders (every 2 s, and when a job is picked)."""
    from core.jobs.summary import status_line

    def line(job_id: str | None) -> Any:
        if not job_id:
            return gr.skip()
        try:
            return status_line(ui.jobs().get(job_id), ui.job_words())
        except UserError as e:  # deleted, or an id typed by hand that names no job
            return f"⚠️ {ui.error_text(e)}"

    jobs, lines = [p[f"{part}_job"] for part in PARTS], [p[f"{part}_status"] for part in PARTS]
    p["timer"].tick(lambda a, b: (line(a), line(b)), jobs, lines, show_progress="hidden")
    for job, status in zip(jobs, lines, strict=True):
        job.change(line, job, status, show_progress="hidden")


def _written_dataset(ui: UIContext, job_id: str | None) -> tuple[str | None, str]:
    """(the dataset a succeeded pairs / CRV job wrote, or None with the message saying why not)."""
    from core.forms.loading import config_of_job
    from core.pairs.form import output_dataset
    from core.pickers import dataset_choices

    if not job_id:
        return None, ui.t("pairs.no_job")
    try:
        info = ui.jobs().get(job_id)
        name = output_dataset(ui.workspace, config_of_job(ui.jobs(), job_id))
    except UserError as e:
        return None, f"⚠️ {ui.error_text(e)}"
    if info.status != "succeeded" or name is None or name not in dataset_choices(ui.workspace):
        return None, ui.t("pairs.not_written", job=job_id)
    return name, ""


def _wire_use(ui: UIContext, p: dict[str, Any], part: str, to_dpo: Callable[..., dict[Any, Any]],
              dpo_inputs: list[Any], dpo_outputs: list[Any]) -> None:
    """'Use for DPO': the job's pairs dataset in the Training form's dataset picker, method DPO."""
    message = p[f"{part}_message"]

    def use(job_id: str | None, *args: Any) -> dict[Any, Any]:
        name, why = _written_dataset(ui, job_id)
        if name is None:
            return {message: why}
        return {message: ui.t("pairs.used", dataset=name), **to_dpo(name, *args)}

    p[f"{part}_use"].click(use, [p[f"{part}_job"], *dpo_inputs], [message, *dpo_outputs])


def _jobs(ui: UIContext, part: str) -> list[tuple[str, str]]:
    from core.pickers import job_choices

    return job_choices(ui.jobs(), (PARTS[part][2],))
