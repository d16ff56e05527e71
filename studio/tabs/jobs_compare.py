"""The Jobs tab's "Compare runs" section: pick 2–4 finished runs, see their curves overlaid, the config keys that
differ (dotted paths, values side by side), their final metrics and their evaluation results side by side.

Widgets and wiring only: the runs, the figure and the tables come from core.jobs.compare and
core.eval.compare.side_by_side (the same views `easydistill jobs compare` prints).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from core.errors import UserError
from core.eval.compare import side_by_side
from core.jobs import compare
from studio.ui import UIContext

PICK_LIMIT = 200  # finished runs offered, newest first
FIRST_COLUMNS = ("key", "metric", "evaluation", "role")  # table headers worded in the page's language


def run_choices(infos: list[Any]) -> list[tuple[str, str]]:
    """(label, id) of the finished runs among `infos` (newest first, as listed)."""
    return [(f"{i.name or i.kind} · {i.kind} · {i.id}", i.id) for i in infos if i.finished]


def build_compare(ui: UIContext) -> None:
    """The section, at the bottom of the Jobs tab (collapsed: nothing is read until Compare is pressed)."""
    t = ui.t
    with ui.reg("jobs.compare", gr.Accordion(t("jobs.compare"), open=False, elem_id="jobs-compare")):
        with gr.Row():
            pick = ui.reg("jobs.compare_runs", gr.Dropdown(
                choices=_choices(ui), value=[], multiselect=True, max_choices=compare.MAX_RUNS,
                label=t("jobs.compare_runs"), info=t("jobs.compare_runs_info"), elem_id="jobs-compare-runs",
                scale=4), "label", "info")
            button = ui.reg("jobs.compare_btn", gr.Button(t("jobs.compare_btn"), variant="primary", scale=0,
                                                          min_width=160, elem_id="jobs-compare-btn"), "value")
        note = gr.Markdown("", elem_id="jobs-compare-note")
        plot = gr.Plot(show_label=False, elem_id="jobs-compare-plot")
        with gr.Row():
            diff = ui.reg("jobs.compare_diff", gr.Dataframe(interactive=False, wrap=True, max_height=420,
                                                            label=t("jobs.compare_diff"), elem_id="jobs-compare-diff"))
            finals = ui.reg("jobs.compare_metrics", gr.Dataframe(
                interactive=False, wrap=True, max_height=420, label=t("jobs.compare_metrics"),
                elem_id="jobs-compare-metrics"))
        evals = ui.reg("jobs.compare_eval", gr.Dataframe(interactive=False, wrap=True, max_height=420,
                                                         label=t("jobs.compare_eval"), elem_id="jobs-compare-eval"))
    pick.focus(lambda: gr.update(choices=_choices(ui)), None, pick, show_progress="hidden")
    outputs = [note, plot, diff, finals, evals]
    button.click(lambda ids: show(ui, ids), [pick], outputs)
    ui.on_language(lambda ids: show(ui, ids) if ids else (gr.skip(),) * len(outputs), [pick], outputs)


def _choices(ui: UIContext) -> list[tuple[str, str]]:
    return run_choices(ui.jobs().list(status="finished", limit=PICK_LIMIT, refresh=False))


def show(ui: UIContext, ids: list[str] | None) -> tuple:
    """(note, figure, config diff, final metrics, evaluations) of the picked runs, or a note saying what to pick."""
    t, ids = ui.t, list(ids or [])
    blank = (None, None, None, gr.update(value=None, visible=False))
    if not compare.MIN_RUNS <= len(ids) <= compare.MAX_RUNS:
        return (t("jobs.compare_pick", low=compare.MIN_RUNS, high=compare.MAX_RUNS), *blank)
    try:
        runs = compare.load_runs(ui.jobs(), ids)
    except UserError as e:  # a run deleted meanwhile
        return (f"⚠️ {ui.error_text(e)}", *blank)
    dh, drows = compare.diff_table(runs)
    mh, mrows = compare.metrics_table(runs)
    eh, erows = side_by_side([(r.label, r.run_dir) for r in runs], ui.workspace)
    note = t("jobs.compare_note", n=len(runs), changed=len(drows))
    if not erows:
        note += "\n\n" + t("jobs.compare_no_eval")
    return (note, compare.curves_figure(runs), _table(ui, dh, drows), _table(ui, mh, [_worded(ui, r) for r in mrows]),
            gr.update(value=_table(ui, eh, erows), visible=bool(erows)))


def _worded(ui: UIContext, row: list[Any]) -> list[Any]:
    """The metrics table's status and duration rows in the page's language (a state as the Jobs table words it)."""
    if row[0] == "status":
        return [ui.t("jobs.compare_row_status"), *[ui.t(f"jobs.status_{v}") for v in row[1:]]]
    if row[0] == "duration":
        return [ui.t("jobs.compare_row_duration"), *row[1:]]
    return row


def _table(ui: UIContext, headers: list[str], rows: list[list[Any]]) -> dict[str, Any]:
    """A table whose fixed first headers read in the page's language (the runs' columns keep their labels)."""
    words = [ui.t(f"jobs.compare_col_{h}") if h in FIRST_COLUMNS else h for h in headers]
    return {"headers": words, "data": rows}
