"""The Evaluate section of the Chat tab: submit an `evaluate` job, read its results, compare two runs.

Widgets and wiring only: the form is core.eval.form's EvaluateForm rendered by FormView (with its YAML / command
preview, presets and loading); results, drill-down, plots, exports and comparisons come from core.eval; a run's
status line from core.jobs.summary. While the selected evaluation runs, a timer reloads its (partial) results.
"""

from __future__ import annotations

import re
import time
from typing import Any

import gradio as gr

from core.errors import UserError
from core.eval import results as R
from core.eval.compare import compare
from core.eval.form import FORM, evaluation_runs
from core.eval.plots import judge_figure, summary_figure
from core.jobs.summary import status_line
from core.said import Said
from studio.forms import FormView
from studio.i18n import has
from studio.serving import EVAL_EXPORTS
from studio.ui import UIContext

EMPTY_SUMMARY = ("role", "model", "rows")  # the summary table's headers before a run is picked
RUN_PICKERS = ("run", "run_a", "run_b")  # the dropdowns that list evaluation jobs


def build_eval(ui: UIContext) -> None:
    runs = evaluation_runs(ui.jobs())
    w: dict[str, Any] = {"form": FormView(ui, "evaluate", FORM)}
    _form_section(ui, w, open_=not runs)
    _results_section(ui, w, runs)
    _compare_section(ui, w, runs)
    w["timer"] = gr.Timer(3.0)
    _wire_submit(ui, w)
    _wire_results(ui, w)
    _wire_compare(ui, w)


# ------------------------------------------------------------------------------------------------ layout

def _form_section(ui: UIContext, w: dict[str, Any], open_: bool) -> None:
    t, view = ui.t, w["form"]
    with ui.reg("evaluate.new", gr.Accordion(t("evaluate.new"), open=open_, elem_id="eds-eval-form")):
        with gr.Row():
            for name in ("model", "students", "reference", "judge", "reward_model"):
                view.render(name, elem_id=f"eds-eval-{name}")
        with gr.Row():
            view.render("dataset", elem_id="eds-eval-dataset")
            view.render("metrics", elem_id="eds-eval-metrics")
        with gr.Row():
            view.render("limit", "answer_field", "top_k", "max_new_tokens", "backend", "name")
        with gr.Row():
            w["submit"] = ui.reg("evaluate.submit", gr.Button(t("evaluate.submit"), variant="primary",
                                                              elem_id="eds-eval-submit"), "value")
            w["refresh"] = ui.reg("evaluate.refresh", gr.Button(t("evaluate.refresh"), scale=0, min_width=120,
                                                                elem_id="eds-eval-refresh"), "value")
        w["submitted"] = gr.Markdown("", elem_id="eds-eval-submitted")
        view.tools()


def _results_section(ui: UIContext, w: dict[str, Any], runs: list[tuple[str, str]]) -> None:
    t = ui.t
    with gr.Row():
        w["run"] = ui.reg("evaluate.run", gr.Dropdown(runs, value=runs[0][1] if runs else None,
                                                      label=t("evaluate.run"), elem_id="eds-eval-run", scale=4))
        w["reload"] = ui.reg("evaluate.reload", gr.Button(t("evaluate.reload"), scale=0, min_width=120), "value")
    w["status"] = gr.Markdown("", elem_id="eds-eval-status")
    w["summary"] = gr.Dataframe(_table(ui, EMPTY_SUMMARY), interactive=False, wrap=True, elem_id="eds-eval-summary",
                                show_label=False)
    with gr.Row():
        w["plot"] = gr.Plot(show_label=False, elem_id="eds-eval-plot")
        w["jplot"] = gr.Plot(show_label=False, visible=False, elem_id="eds-eval-judge-plot")
    w["notes"] = gr.Markdown("", elem_id="eds-eval-notes")
    with ui.reg("evaluate.rows", gr.Accordion(t("evaluate.rows"), open=True)):
        with gr.Row():
            filters = tuple((f"evaluate.filter_{f}", f) for f in R.DRILLDOWN_FILTERS)
            w["filter"] = ui.reg("evaluate.filter", gr.Dropdown([(t(k), v) for k, v in filters], value="all",
                                                                label=t("evaluate.filter"), elem_id="eds-eval-filter"),
                                 choices=filters)
        w["rows"] = gr.Dataframe(_table(ui, R.DRILL_COLUMNS), interactive=False, wrap=True, max_height=420,
                                 elem_id="eds-eval-rows", show_label=False)
        w["detail"] = gr.Markdown("", elem_id="eds-eval-detail")
    with gr.Row():
        w["format"] = ui.reg("evaluate.export_format", gr.Radio(list(R.EXPORT_FORMATS), value="md",
                                                                label=t("evaluate.export_format")))
        w["export"] = ui.reg("evaluate.export", gr.Button(t("evaluate.export"), elem_id="eds-eval-export"), "value")
        w["export_file"] = gr.File(show_label=False, visible=False, elem_id="eds-eval-export-file")


def _compare_section(ui: UIContext, w: dict[str, Any], runs: list[tuple[str, str]]) -> None:
    t = ui.t
    with ui.reg("evaluate.compare", gr.Accordion(t("evaluate.compare"), open=False, elem_id="eds-eval-compare")):
        with gr.Row():
            w["run_a"] = ui.reg("evaluate.run_a", gr.Dropdown(runs, label=t("evaluate.run_a")))
            w["run_b"] = ui.reg("evaluate.run_b", gr.Dropdown(runs, label=t("evaluate.run_b")))
            w["compare"] = ui.reg("evaluate.compare_btn", gr.Button(t("evaluate.compare_btn"), scale=0,
                                                                    min_width=120), "value")
        w["cmp_note"] = gr.Markdown("")
        w["cmp_summary"] = gr.Dataframe(interactive=False, wrap=True, show_label=False)
        w["cmp_rows"] = gr.Dataframe(interactive=False, wrap=True, max_height=360, show_label=False)


# ------------------------------------------------------------------------------------------------ wiring

def _wire_submit(ui: UIContext, w: dict[str, Any]) -> None:
    view, pickers = w["form"], [w[k] for k in RUN_PICKERS]

    def on_submit(data: dict[Any, Any]):
        try:
            job_id = ui.jobs().submit(view.build(data))
        except UserError as e:  # a field to fix (named), a path outside the workspace, an unmet device request
            return ui.t("evaluate.error", error=ui.error_text(e).splitlines()[0]), gr.update(), gr.update(), gr.update()
        choices = evaluation_runs(ui.jobs())
        return (ui.t("evaluate.submitted", job=job_id), gr.update(choices=choices, value=job_id),
                gr.update(choices=choices), gr.update(choices=choices))

    w["submit"].click(on_submit, inputs=view.inputs(), outputs=[w["submitted"], *pickers])

    def on_refresh():
        """The form's pickers refresh when opened; this brings in evaluations started elsewhere (CLI, presets)."""
        choices = evaluation_runs(ui.jobs())
        return [gr.update(choices=choices) for _ in pickers]

    w["refresh"].click(on_refresh, None, pickers)


def _wire_results(ui: UIContext, w: dict[str, Any]) -> None:
    ws = ui.workspace
    outputs = [w[k] for k in ("status", "summary", "plot", "jplot", "notes", "rows", "detail")]

    def empty() -> tuple:
        return (_table(ui, EMPTY_SUMMARY), gr.update(value=None), gr.update(visible=False), "",
                _table(ui, R.DRILL_COLUMNS), "")

    def load_run(job_id: str | None, filt: str):
        if not job_id:
            return ("", *empty())
        try:
            state = status_line(ui.jobs().get(job_id, refresh=False), ui.job_words())
        except UserError:  # JobNotFound: deleted in the Jobs tab, its results folder may remain
            state = job_id
        try:
            ev = R.load(job_id, ws)
        except (FileNotFoundError, ValueError):
            return (f"{state}\n\n{ui.t('evaluate.no_results')}", *empty())
        headers, table = R.summary_table(ev.results)
        dh, drows = R.drilldown(ev.rows, filt or "all")
        has_judge = bool(ev.results.get("judge"))
        words = ev.results.get("note_words") or []  # each note's code, where the job recorded one
        notes = [f"- {ui.said(Said.of(words[i]) if i < len(words) and words[i] else n)}"
                 for i, n in enumerate(ev.results.get("notes", []))]
        if not ev.results.get("complete", True):
            notes.insert(0, "- " + ui.t("evaluate.partial", done=ev.results.get("rows_done", 0),
                                        total=ev.results.get("rows_total", 0)))
        return (state, _table(ui, headers, table), summary_figure(ev.results),
                gr.update(value=judge_figure(ev.results) if has_judge else None, visible=has_judge),
                "\n".join(notes), _table(ui, dh, drows), "")

    inputs = [w["run"], w["filter"]]
    w["run"].change(load_run, inputs=inputs, outputs=outputs)
    w["filter"].change(load_run, inputs=inputs, outputs=outputs)
    w["reload"].click(load_run, inputs=inputs, outputs=outputs)

    def tick(job_id: str | None, filt: str):
        """While the selected evaluation runs (and once just after it ended), show its latest partial results."""
        keep = [gr.update()] * (len(outputs) - 1)
        if not job_id:
            return keep
        try:
            info = ui.jobs().get(job_id)
        except UserError:  # JobNotFound: nothing to refresh
            return keep
        if info.finished and info.ended_at and info.ended_at < time.time() - 10:
            return keep
        return list(load_run(job_id, filt))[:-1]  # the row detail the user opened stays

    w["timer"].tick(tick, inputs=inputs, outputs=outputs[:-1], show_progress="hidden")
    ui.on_language(lambda j, f: list(load_run(j, f))[:-1], inputs, outputs[:-1])  # the row detail stays

    def on_select(job_id: str | None, evt: gr.SelectData):
        if not job_id:
            return ""
        try:
            ev = R.load(job_id, ws)
        except (FileNotFoundError, ValueError):
            return ""
        row_id = evt.row_value[0] if isinstance(evt.row_value, list) and evt.row_value else None
        rec = R.row_detail(ev.rows, str(row_id)) if row_id is not None else None
        return _detail_markdown(ui, rec) if rec else ""

    w["rows"].select(on_select, inputs=[w["run"]], outputs=w["detail"])

    def on_export(job_id: str | None, fmt: str):
        if not job_id:
            gr.Warning(ui.t("evaluate.pick_run"))
            return gr.update(visible=False)
        try:
            path = R.export(R.load(job_id, ws), fmt, ws.cache / EVAL_EXPORTS / f"{job_id}-evaluation.{fmt}")
        except (FileNotFoundError, ValueError) as e:
            gr.Warning(_first_line(e))
            return gr.update(visible=False)
        return gr.update(value=str(path), visible=True)

    w["export"].click(on_export, inputs=[w["run"], w["format"]], outputs=w["export_file"])


def _wire_compare(ui: UIContext, w: dict[str, Any]) -> None:
    def on_compare(a: str | None, b: str | None):
        if not a or not b:
            return ui.t("evaluate.pick_two"), gr.update(value=None), gr.update(value=None)
        try:
            ra, rb = R.load(a, ui.workspace), R.load(b, ui.workspace)
        except (FileNotFoundError, ValueError) as e:
            return _first_line(e), gr.update(value=None), gr.update(value=None)
        c = compare(ra, rb)
        sh, sr = c.summary_table()
        ch, cr = c.changed_table()
        note = ui.t("evaluate.compare_note", common=c.common, only_a=c.only_a, only_b=c.only_b,
                    changed=len(c.changed))
        note += "".join(f"\n- {ui.said(n)}" for n in c.notes)
        return note, _table(ui, sh, sr), _table(ui, ch, cr)

    w["compare"].click(on_compare, inputs=[w["run_a"], w["run_b"]],
                       outputs=[w["cmp_note"], w["cmp_summary"], w["cmp_rows"]])


# ------------------------------------------------------------------------------------------------ rendering

def _table(ui: UIContext, headers: list[str] | tuple[str, ...], rows: list[list[Any]] | None = None) -> dict:
    """A results table with its headers in the page's language (`evaluate.col_<header>`; a metric keeps its name)."""
    def word(h: str) -> str:
        key = "evaluate.col_" + re.sub(r"\W+", "_", h).strip("_").lower()
        return ui.t(key) if has(key) else h

    return {"headers": [word(h) for h in headers], "data": list(rows or [])}


def _first_line(e: Exception) -> str:
    return (str(e).strip() or type(e).__name__).splitlines()[0][:400]


def _detail_markdown(ui: UIContext, rec: dict[str, Any]) -> str:
    """The full record of one row: prompt, gold, every model's answer (several students one after another), checks,
    judge replies."""
    def block(title: str, text: Any) -> str:
        if text in (None, ""):
            return ""
        return f"**{title}**\n\n```text\n{text}\n```\n"

    t = ui.t
    parts = [f"#### {rec.get('id')}", block(t("evaluate.prompt"), rec.get("prompt")),
             block(t("evaluate.gold"), rec.get("gold")),
             block(t("evaluate.model_answer") + f" ({_check(rec, 'model')})", rec.get("model_answer")),
             *[block(t("evaluate.student_answer", role=role) + f" ({_check(rec, role)})", rec.get(f"{role}_answer"))
               for role in R.row_roles([rec])[1:]],
             block(t("evaluate.reference_answer") + f" ({_check(rec, 'reference')})", rec.get("reference_answer"))]
    if rec.get("judge_outcome"):
        parts.append(f"**{t('evaluate.verdict')}**: {rec['judge_outcome']} "
                     f"({rec.get('judge_model_first') or '-'} / {rec.get('judge_model_second') or '-'})")
        parts.append(block(t("evaluate.judge_first"), rec.get("judge_raw_first")))
        parts.append(block(t("evaluate.judge_second"), rec.get("judge_raw_second")))
    keys = [k for role in R.row_roles([rec]) for k in (f"{R.prefix(role)}kl", f"{role}_perplexity", f"{role}_rouge_l")]
    extra = [f"{k} = {rec[k]:.4g}" for k in (*keys, "reference_perplexity", "reference_rouge_l")
             if isinstance(rec.get(k), float)]
    if extra:
        parts.append(" · ".join(extra))
    return "\n".join(p for p in parts if p)


def _check(rec: dict[str, Any], role: str) -> str:
    ok = R.correct(rec, role)
    return "-" if ok is None else ("✔" if ok else "✘")
