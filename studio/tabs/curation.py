"""The CoT Curation tab: ① judge chains of thought by Reasoning Verbosity, Cognitive Difficulty and correctness,
② curate them for a student's size — filters and the RV/CD mixer with live counts and plots — and write the selection
as System-2 / System-1 SFT data that opens in the Training tab.

Widgets and wiring only. The forms are core.cot.form's JudgeForm and CurateForm rendered by FormView (fields, defaults,
bounds and help from JudgeJob / CurateJob; YAML / command preview, presets, loading a config back); both jobs run in
their own processes through the job manager, their status lines come from core.jobs.summary. The live preview
(studio.tabs.curation_explore) never passes over a dataset in this process: it runs core's `select` on the dataset's
cached score frame (score columns only, core.cot.explore) and reads the texts of a heatmap cell's few rows only.
Nothing here imports torch.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from core.cot.form import CURATE_FORM, JUDGE_FORM
from core.errors import UserError
from studio.forms import FormView
from studio.tabs import curation_explore
from studio.ui import UIContext

JUDGE, CURATE = "curation.judge", "curation.curate"  # the forms' i18n / elem-id prefixes


def build(ui: UIContext) -> None:
    w: dict[str, Any] = {"judge": FormView(ui, JUDGE, JUDGE_FORM), "curate": FormView(ui, CURATE, CURATE_FORM)}
    ui.reg("curation.intro", gr.Markdown(ui.t("curation.intro"), elem_id="curation-intro"), "value")
    with ui.reg("curation.judge_title", gr.Accordion(ui.t("curation.judge_title"), open=False)):
        _judge_section(ui, w)
    with ui.reg("curation.curate_title", gr.Accordion(ui.t("curation.curate_title"), open=True)):
        curation_explore.layout(ui, w)
        _export_section(ui, w)
    w["timer"] = gr.Timer(2.0)
    curation_explore.wire(ui, w)
    _wire_jobs(ui, w, "judge")
    _wire_jobs(ui, w, "curate")
    _wire_tick(ui, w)
    _wire_to_curate(ui, w)
    ui.after_build(lambda: _wire_open_training(ui, w))


# ------------------------------------------------------------------------------------------------ layout

def _judge_section(ui: UIContext, w: dict[str, Any]) -> None:
    view = w["judge"]
    ui.reg("curation.judge_help", gr.Markdown(ui.t("curation.judge_help")), "value")
    with gr.Row():
        view.render("input", "judge", "backend")
    with gr.Row():
        view.render("metrics", "answer_field")
    with gr.Row():
        view.render("rescore", "retry_rejects", "limit", "max_new_tokens")
    with gr.Row():
        view.render("output", "name")
    view.tools()
    _run_row(ui, w, "judge")
    w["to_curate"] = ui.reg("curation.to_curate", gr.Button(ui.t("curation.to_curate"), elem_id="curation-to-curate"))


def _export_section(ui: UIContext, w: dict[str, Any]) -> None:
    view = w["curate"]
    ui.reg("curation.export_title", gr.Markdown(ui.t("curation.export_title")), "value")
    with gr.Row():
        view.render("export", "output", "name")
    view.tools()
    _run_row(ui, w, "curate")
    w["open_training"] = ui.reg("curation.open_training", gr.Button(
        ui.t("curation.open_training"), elem_id="curation-open-training"))


def _run_row(ui: UIContext, w: dict[str, Any], part: str) -> None:
    """Start / Stop / Resume, the job picker, a message and the job's status line of one form."""
    t = ui.t
    with gr.Row():
        w[f"{part}_start"] = ui.reg(f"curation.{part}_start", gr.Button(
            t(f"curation.{part}_start"), variant="primary", elem_id=f"curation-{part}-start"))
        w[f"{part}_stop"] = ui.reg("curation.stop", gr.Button(t("curation.stop"), variant="stop",
                                                             elem_id=f"curation-{part}-stop"))
        w[f"{part}_resume"] = ui.reg("curation.resume", gr.Button(t("curation.resume"),
                                                                 elem_id=f"curation-{part}-resume"))
        w[f"{part}_job"] = ui.reg("curation.job", gr.Dropdown(
            choices=_jobs(ui, part), value=None, label=t("curation.job"), allow_custom_value=True,
            elem_id=f"curation-{part}-job"))
    w[f"{part}_message"] = gr.Markdown(elem_id=f"curation-{part}-message")
    w[f"{part}_status"] = gr.Markdown(elem_id=f"curation-{part}-status")


# ------------------------------------------------------------------------------------------------ wiring

def _wire_jobs(ui: UIContext, w: dict[str, Any], part: str) -> None:
    view, job, message = w[part], w[f"{part}_job"], w[f"{part}_message"]

    def on_start(data: dict[Any, Any]) -> dict[Any, Any]:
        try:
            job_id = ui.jobs().submit(view.build(data))
        except UserError as e:  # a field to fix, a path outside the workspace
            return {message: f"⚠️ {ui.error_text(e)}"}
        return {message: ui.t("curation.started", job=job_id), job: gr.update(choices=_jobs(ui, part), value=job_id)}

    w[f"{part}_start"].click(on_start, inputs=view.inputs(), outputs=[message, job])
    w[f"{part}_stop"].click(lambda j: ui.job_action("stop", j, "curation.stopping", "curation.no_job"), job, message)
    w[f"{part}_resume"].click(lambda j: ui.job_action("resume", j, "curation.resumed", "curation.no_job"), job,
                              message)
    job.focus(lambda: gr.update(choices=_jobs(ui, part)), None, job, show_progress="hidden")


def _wire_tick(ui: UIContext, w: dict[str, Any]) -> None:
    """Both status lines from the jobs' run folders (every 2 s, and when a job is picked)."""
    from core.jobs.summary import status_line

    def line(job_id: str | None) -> Any:
        if not job_id:
            return gr.skip()
        try:
            return status_line(ui.jobs().get(job_id), ui.job_words())
        except UserError as e:  # deleted, or an id typed by hand that names no job
            return f"⚠️ {ui.error_text(e)}"

    jobs, lines = [w["judge_job"], w["curate_job"]], [w["judge_status"], w["curate_status"]]
    w["timer"].tick(lambda a, b: (line(a), line(b)), jobs, lines, show_progress="hidden")
    for job, status in zip(jobs, lines, strict=True):
        job.change(line, job, status, show_progress="hidden")


def _written_dataset(ui: UIContext, job_id: str | None) -> tuple[str | None, str]:
    """(the dataset a judge / curate job wrote, or None with the message saying why not)."""
    from core.cot.form import output_dataset
    from core.forms.loading import config_of_job
    from core.pickers import dataset_choices

    if not job_id:
        return None, ui.t("curation.no_job")
    try:
        name = output_dataset(ui.workspace, config_of_job(ui.jobs(), job_id))
    except UserError as e:
        return None, f"⚠️ {ui.error_text(e)}"
    if name is None or name not in dataset_choices(ui.workspace):
        return None, ui.t("curation.not_written", job=job_id)
    return name, ""


def _wire_to_curate(ui: UIContext, w: dict[str, Any]) -> None:
    """'Curate its output': the judge job's dataset becomes the curate form's input (its preview follows)."""
    target = w["curate"].comps["input"]

    def to_curate(job_id: str | None) -> tuple[Any, Any]:
        name, why = _written_dataset(ui, job_id)
        if name is None:
            return why, gr.update()
        return ui.t("curation.to_curate_done", dataset=name), gr.update(value=name)

    w["to_curate"].click(to_curate, w["judge_job"], [w["judge_message"], target])


def _wire_open_training(ui: UIContext, w: dict[str, Any]) -> None:
    """'Open in Training': the curate job's dataset in the Training tab's dataset picker, and that tab shown."""
    tabs, picker = ui.shared.get("tabs"), ui.shared.get("training.dataset")
    if tabs is None or picker is None:
        return
    message = w["curate_message"]

    def open_training(job_id: str | None) -> tuple[Any, Any, Any]:
        from core.pickers import dataset_choices

        name, why = _written_dataset(ui, job_id)
        if name is None:
            return why, gr.update(), gr.update()
        return (ui.t("curation.opened", dataset=name), gr.Tabs(selected="training"),
                gr.update(choices=dataset_choices(ui.workspace), value=name))

    w["open_training"].click(open_training, w["curate_job"], [message, tabs, picker])


def _jobs(ui: UIContext, part: str) -> list[tuple[str, str]]:
    from core.pickers import job_choices

    return job_choices(ui.jobs(), (part,))
