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

from core.pairs.form import CRV_FORM, PAIRS_FORM, output_dataset
from studio.forms import FormView
from studio.job_panel import job_choices, wire_job_buttons, wire_status_lines, written_dataset
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
            choices=job_choices(ui, (PARTS[part][2],)), value=None, label=t("pairs.job"), allow_custom_value=True,
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
        wire_job_buttons(ui, p[part], (p[f"{part}_start"], p[f"{part}_stop"], p[f"{part}_resume"]),
                         p[f"{part}_job"], p[f"{part}_message"], "pairs", (PARTS[part][2],))
        _wire_use(ui, p, part, to_dpo, dpo_inputs, dpo_outputs)
    wire_status_lines(ui, p["timer"], [p[f"{part}_job"] for part in PARTS], [p[f"{part}_status"] for part in PARTS])


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


def _wire_use(ui: UIContext, p: dict[str, Any], part: str, to_dpo: Callable[..., dict[Any, Any]],
              dpo_inputs: list[Any], dpo_outputs: list[Any]) -> None:
    """'Use for DPO': the job's pairs dataset in the Training form's dataset picker, method DPO."""
    message = p[f"{part}_message"]

    def use(job_id: str | None, *args: Any) -> dict[Any, Any]:
        name, why = written_dataset(ui, job_id, output_dataset, "pairs", succeeded_only=True)
        if name is None:
            return {message: why}
        return {message: ui.t("pairs.used", dataset=name), **to_dpo(name, *args)}

    p[f"{part}_use"].click(use, [p[f"{part}_job"], *dpo_inputs], [message, *dpo_outputs])
