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

from core.cot.form import CURATE_FORM, JUDGE_FORM, output_dataset
from studio.forms import FormView
from studio.job_panel import job_choices, wire_job_buttons, wire_status_lines, written_dataset
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
    for part in ("judge", "curate"):
        wire_job_buttons(ui, w[part], (w[f"{part}_start"], w[f"{part}_stop"], w[f"{part}_resume"]),
                         w[f"{part}_job"], w[f"{part}_message"], "curation", (part,))
    wire_status_lines(ui, w["timer"], [w["judge_job"], w["curate_job"]], [w["judge_status"], w["curate_status"]])
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
            choices=job_choices(ui, (part,)), value=None, label=t("curation.job"), allow_custom_value=True,
            elem_id=f"curation-{part}-job"))
    w[f"{part}_message"] = gr.Markdown(elem_id=f"curation-{part}-message")
    w[f"{part}_status"] = gr.Markdown(elem_id=f"curation-{part}-status")


# ------------------------------------------------------------------------------------------------ wiring

def _wire_to_curate(ui: UIContext, w: dict[str, Any]) -> None:
    """'Curate its output': the judge job's dataset becomes the curate form's input (its preview follows)."""
    target = w["curate"].comps["input"]

    def to_curate(job_id: str | None) -> tuple[Any, Any]:
        name, why = written_dataset(ui, job_id, output_dataset, "curation")
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

        name, why = written_dataset(ui, job_id, output_dataset, "curation")
        if name is None:
            return why, gr.update(), gr.update()
        return (ui.t("curation.opened", dataset=name), gr.Tabs(selected="training"),
                gr.update(choices=dataset_choices(ui.workspace), value=name))

    w["open_training"].click(open_training, w["curate_job"], [message, tabs, picker])
