"""The Curation tab's live part: a scored dataset, the filter sliders and mixer, counts and plots that follow every
move, a student-size preset, and the traces of one RV×CD cell with their reasoning folded.

No job runs for this and no dataset is read here: core.cot.explore selects on the dataset's cached score frame (score
columns only, held for the last few datasets) and reads the texts of at most one cell's few rows. Plotly figures come
from core.cot.plots with labels in the page's language. A plotly click on a heatmap cell does not reach the server in
Gradio 6 (gr.Plot has no select event), so the cell is picked with two dropdowns under the heatmaps.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from core.cot.form import CURATE_FORM
from core.cot.sizes import PUBLISHED, STUDENT_SIZES
from core.errors import UserError
from studio.ui import UIContext

LEVELS = list(range(10))
NOT_PREVIEWED = ("export", "output", "name")  # fields that change what is written, not what is selected
DROP_WORDS = ("correctness", "rv", "cd", "teacher", "response_chars")


def layout(ui: UIContext, w: dict[str, Any]) -> None:
    t, view = ui.t, w["curate"]
    with gr.Row():
        view.render("input", scale=3)
        w["size"] = ui.reg("curation.size", gr.Dropdown(
            _sizes(ui), value=None, label=t("curation.size"), info=t("curation.size_info"), scale=2,
            elem_id="curation-size"), "label", "info")
    with gr.Row():
        view.render("min_correctness", "rv_min", "rv_max", "cd_min", "cd_max")
    with gr.Row():
        view.render("teachers", "min_response_chars", "max_response_chars")
    with ui.reg("curation.mixer_title", gr.Accordion(t("curation.mixer_title"), open=False)):
        with gr.Row():
            view.render("samples_per_bin", "cd_edges", "rv_target", "one_per_question", "seed")
    w["counts"] = gr.Markdown(t("curation.no_dataset"), elem_id="curation-counts")
    with gr.Column(visible=False) as w["plots"]:  # shown once a dataset is previewed
        w["hist"] = gr.Plot(elem_id="curation-hist", show_label=False)
        w["heatmap"] = gr.Plot(elem_id="curation-heatmap", show_label=False)
        with gr.Row():
            w["length"] = gr.Plot(elem_id="curation-length", show_label=False)
            w["teachers_plot"] = gr.Plot(elem_id="curation-teachers", show_label=False)
    _cell_layout(ui, w)


def _cell_layout(ui: UIContext, w: dict[str, Any]) -> None:
    t = ui.t
    ui.reg("curation.cell_title", gr.Markdown(t("curation.cell_title")), "value")
    within = (("curation.within_selected", "selected"), ("curation.within_all", "all"))
    with gr.Row():
        w["cell_rv"] = ui.reg("curation.cell_rv", gr.Dropdown(LEVELS, value=None, label=t("curation.cell_rv"),
                                                              elem_id="curation-cell-rv", scale=1))
        w["cell_cd"] = ui.reg("curation.cell_cd", gr.Dropdown(LEVELS, value=None, label=t("curation.cell_cd"),
                                                              elem_id="curation-cell-cd", scale=1))
        w["cell_within"] = ui.reg("curation.cell_within", gr.Radio(
            [(t(k), v) for k, v in within], value="selected", label=t("curation.cell_within"),
            elem_id="curation-cell-within", scale=2), choices=within)
        w["cell_row"] = ui.reg("curation.cell_row", gr.Dropdown(
            [], value=None, label=t("curation.cell_row"), elem_id="curation-cell-row", scale=4))
    w["cell_note"] = gr.Markdown(elem_id="curation-cell-note")
    w["cell_chat"] = ui.reg("curation.cell_chat", gr.Chatbot(
        label=t("curation.cell_chat"), height=420, elem_id="curation-cell-chat",
        reasoning_tags=[("<think>", "</think>")]))
    w["cell_rows"] = gr.State([])


# ------------------------------------------------------------------------------------------------ wiring

def wire(ui: UIContext, w: dict[str, Any]) -> None:
    view = w["curate"]
    outputs = [w["counts"], w["plots"], w["hist"], w["heatmap"], w["length"], w["teachers_plot"]]

    def refresh(data: dict[Any, Any]) -> tuple[Any, ...]:
        return _preview(ui, view.values(data))

    for name, comp in view.comps.items():
        if name not in NOT_PREVIEWED:
            comp.change(refresh, inputs=view.inputs(), outputs=outputs, show_progress="hidden",
                        trigger_mode="always_last")

    def apply_size(size: str | None) -> dict[Any, Any]:
        from core.cot.form import values_for_size

        return view.updates(values_for_size(size)) if size else {}

    w["size"].input(apply_size, w["size"], list(view.comps.values()))
    ui.on_language(refresh, view.inputs(), outputs)  # counts and plot titles in the new language
    _wire_cell(ui, w)


def _preview(ui: UIContext, values: dict[str, Any]) -> tuple[Any, ...]:
    """Counts, the plots' visibility and the four figures of the form's curation over its dataset (core's select
    on the score frame)."""
    from core.cot import explore, plots

    t = ui.t
    if not str(values.get("input") or "").strip():
        return t("curation.no_dataset"), gr.update(visible=False), None, None, None, None
    try:
        spec = CURATE_FORM.spec(ui.workspace, values)
        p = explore.preview(ui.workspace, values["input"], spec)
    except UserError as e:  # a field to fix, a dataset that is not there (or outside the workspace)
        return f"⚠️ {ui.error_text(e)}", gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
    names = (t("curation.plot_all"), t("curation.plot_selected"))
    return (
        _counts_text(ui, p),
        gr.update(visible=True),
        plots.score_histograms(p.stats, (t("curation.plot_rv"), t("curation.plot_cd")), names),
        plots.rv_cd_heatmaps(p.stats, names, t("curation.axis_rv"), t("curation.axis_cd")),
        plots.length_by_rv(p.stats, t("curation.plot_length"), names, t("curation.axis_rv"),
                           t("curation.axis_chars")),
        plots.teachers(p.stats, t("curation.plot_teachers"), names),
    )


def _counts_text(ui: UIContext, p: Any) -> str:
    """The live counts: selected of total, what each filter drops, the mixer's bins, unscored rows."""
    t, c = ui.t, p.counts
    head = [t("curation.counts", selected=c["selected"], total=c["total"], passing=c["passing_filters"])]
    dropped = [t("curation.dropped_item", what=t(f"curation.drop_{k}"), n=n) for k, n in c["dropped_by"].items()
               if k in DROP_WORDS]
    if dropped:
        head.append(t("curation.dropped_by", items=" · ".join(dropped)))
    if p.scored < c["total"]:
        head.append(t("curation.unscored", n=c["total"] - p.scored))
    text = "  \n".join(head)
    if c["bins"]:
        table = [f"| {t('curation.bin')} | {t('curation.bin_target')} | {t('curation.bin_available')} | "
                 f"{t('curation.bin_selected')} |", "|---|---|---|---|"]
        table += [f"| CD {b['bin']} | {b['target_rv']:g} | {b['available']} | {b['selected']} |" for b in c["bins"]]
        text += "\n\n" + "\n".join(table)
    return text


def _wire_cell(ui: UIContext, w: dict[str, Any]) -> None:
    """A heatmap cell (RV, CD; in the selection or in every row) → its first rows → one trace as a conversation."""
    view = w["curate"]
    cell = [w["cell_rv"], w["cell_cd"], w["cell_within"]]
    outputs = [w["cell_rows"], w["cell_row"], w["cell_chat"], w["cell_note"]]

    def on_cell(data: dict[Any, Any]) -> tuple[Any, ...]:
        from core.cot import explore

        rv, cd, within, values = data[w["cell_rv"]], data[w["cell_cd"]], data[w["cell_within"]], view.values(data)
        if rv is None or cd is None or not str(values.get("input") or "").strip():
            return [], gr.update(choices=[], value=None), [], ""
        try:
            spec = CURATE_FORM.spec(ui.workspace, values)
            rows = explore.cell_rows(ui.workspace, values["input"], spec, int(rv), int(cd), within)
        except UserError as e:
            return [], gr.update(choices=[], value=None), [], f"⚠️ {ui.error_text(e)}"
        if not rows:
            return [], gr.update(choices=[], value=None), [], ui.t("curation.cell_empty", rv=rv, cd=cd)
        choices = [(explore.row_label(r), i) for i, r in enumerate(rows)]
        note = ui.t("curation.cell_shown", n=len(rows), rv=rv, cd=cd)
        return rows, gr.update(choices=choices, value=0), explore.trace_chat(rows[0]), note

    def pick_row(rows: list[dict], i: Any) -> list[dict]:
        from core.cot.explore import trace_chat

        return trace_chat(rows[int(i)]) if rows and i is not None and 0 <= int(i) < len(rows) else []

    inputs = {*cell, *view.inputs()}
    for comp in cell:
        comp.change(on_cell, inputs=inputs, outputs=outputs, show_progress="hidden", trigger_mode="always_last")
    w["cell_row"].input(pick_row, [w["cell_rows"], w["cell_row"]], w["cell_chat"], show_progress="hidden")


def _sizes(ui: UIContext) -> list[tuple[str, str]]:
    """The student-size presets; the published recipe is marked by its name (language-neutral, so the labels need no
    switching with the page's language)."""
    return [(f"{s} (ThoughtX)" if s in PUBLISHED else s, s) for s in STUDENT_SIZES]
