"""The Evaluate section of the Chat tab: submit an `evaluate` job, read its results, compare two runs.

The form becomes an EvaluateJob in core.eval.form; results, drill-down, plots, exports and comparisons come from
core.eval. While the selected evaluation runs, a timer reloads its (partial) results.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from core.chat.servers import model_choices
from core.eval import results as R
from core.eval.compare import compare
from core.eval.form import build_job, evaluation_runs
from core.eval.plots import judge_figure, summary_figure
from core.forms.pickers import dataset_choices
from studio.ui import UIContext

METRICS = ["exact_match", "math_verify", "judge_winrate", "kl", "perplexity"]
EMPTY_SUMMARY = {"headers": ["role", "model", "rows"], "data": []}
EMPTY_ROWS = {"headers": R.DRILL_COLUMNS, "data": []}


def build_eval(ui: UIContext) -> None:
    from studio.tabs.chat import label_info

    jobs = ui.jobs()
    ws = ui.workspace
    models = model_choices(ws)
    runs = evaluation_runs(jobs)

    with ui.reg("chat.eval_new", gr.Accordion(ui.t("chat.eval_new"), open=not runs, elem_id="eds-eval-form")):
        with gr.Row():
            model = ui.reg("chat.eval_model", gr.Dropdown(models, value=None, label=ui.t("chat.eval_model"),
                                                          elem_id="eds-eval-model"))
            reference = ui.reg("chat.eval_reference", gr.Dropdown(
                _optional(models), value="", **label_info(ui, "chat.eval_reference"), elem_id="eds-eval-reference"),
                "label", "info")
            judge = ui.reg("chat.eval_judge", gr.Dropdown(
                _optional(models), value="", **label_info(ui, "chat.eval_judge"), elem_id="eds-eval-judge"),
                "label", "info")
        with gr.Row():
            dataset = ui.reg("chat.eval_dataset", gr.Dropdown(
                dataset_choices(ws), value=None, **label_info(ui, "chat.eval_dataset"), allow_custom_value=True,
                elem_id="eds-eval-dataset"), "label", "info")
            metrics = ui.reg("chat.eval_metrics", gr.CheckboxGroup(METRICS, value=["exact_match"],
                                                                   **label_info(ui, "chat.eval_metrics"),
                                                                   elem_id="eds-eval-metrics"), "label", "info")
        with gr.Row():
            limit = ui.reg("chat.eval_limit", gr.Number(value=0, precision=0, minimum=0,
                                                        label=ui.t("chat.eval_limit")))
            answer_field = ui.reg("chat.eval_answer_field", gr.Textbox(
                **label_info(ui, "chat.eval_answer_field"), placeholder="answer"), "label", "info")
            top_k = ui.reg("chat.eval_top_k", gr.Number(value=20, precision=0, minimum=1,
                                                        **label_info(ui, "chat.eval_top_k")), "label", "info")
            max_new = ui.reg("chat.max_tokens", gr.Number(value=512, precision=0, minimum=1,
                                                          label=ui.t("chat.max_tokens")))
            backend = ui.reg("chat.backend", gr.Radio(["transformers", "vllm"], value="transformers",
                                                      **label_info(ui, "chat.backend")), "label", "info")
        with gr.Row():
            submit = ui.reg("chat.eval_submit", gr.Button(ui.t("chat.eval_submit"), variant="primary",
                                                          elem_id="eds-eval-submit"), "value")
            refresh_lists = ui.reg("chat.refresh", gr.Button(ui.t("chat.refresh"), scale=0, min_width=120), "value")
        submitted = gr.Markdown("", elem_id="eds-eval-submitted")

    with gr.Row():
        run = ui.reg("chat.eval_run", gr.Dropdown(runs, value=runs[0][1] if runs else None,
                                                  label=ui.t("chat.eval_run"), elem_id="eds-eval-run", scale=4))
        reload_btn = ui.reg("chat.eval_reload", gr.Button(ui.t("chat.eval_reload"), scale=0, min_width=120), "value")
    run_status = gr.Markdown("", elem_id="eds-eval-status")
    summary = gr.Dataframe(EMPTY_SUMMARY, interactive=False, wrap=True, elem_id="eds-eval-summary", show_label=False)
    with gr.Row():
        plot = gr.Plot(show_label=False, elem_id="eds-eval-plot")
        jplot = gr.Plot(show_label=False, visible=False, elem_id="eds-eval-judge-plot")
    notes = gr.Markdown("", elem_id="eds-eval-notes")
    with ui.reg("chat.eval_rows", gr.Accordion(ui.t("chat.eval_rows"), open=True)):
        with gr.Row():
            how = ui.reg("chat.eval_filter", gr.Dropdown(list(R.DRILLDOWN_FILTERS), value="all",
                                                         label=ui.t("chat.eval_filter"), elem_id="eds-eval-filter"))
        rows = gr.Dataframe(EMPTY_ROWS, interactive=False, wrap=True, max_height=420, elem_id="eds-eval-rows",
                            show_label=False)
        detail = gr.Markdown("", elem_id="eds-eval-detail")
    with gr.Row():
        fmt = ui.reg("chat.eval_export_format", gr.Radio(list(R.EXPORT_FORMATS), value="md",
                                                         label=ui.t("chat.eval_export_format")))
        export_btn = ui.reg("chat.eval_export", gr.Button(ui.t("chat.eval_export"), elem_id="eds-eval-export"),
                            "value")
        export_file = gr.File(show_label=False, visible=False, elem_id="eds-eval-export-file")
    with ui.reg("chat.eval_compare", gr.Accordion(ui.t("chat.eval_compare"), open=False, elem_id="eds-eval-compare")):
        with gr.Row():
            run_a = ui.reg("chat.eval_run_a", gr.Dropdown(runs, label=ui.t("chat.eval_run_a")))
            run_b = ui.reg("chat.eval_run_b", gr.Dropdown(runs, label=ui.t("chat.eval_run_b")))
            cmp_btn = ui.reg("chat.eval_compare_btn", gr.Button(ui.t("chat.eval_compare_btn"), scale=0,
                                                                min_width=120), "value")
        cmp_note = gr.Markdown("")
        cmp_summary = gr.Dataframe(interactive=False, wrap=True, show_label=False)
        cmp_rows = gr.Dataframe(interactive=False, wrap=True, max_height=360, show_label=False)
    timer = gr.Timer(3.0)

    # --- submit ---------------------------------------------------------------------------------------------------

    def on_submit(m, r, j, d, ms, lim, af, k, mx, be):
        try:
            job = build_job(ws, {"model": m, "reference": r, "judge": j, "dataset": d, "metrics": ms, "limit": lim,
                                 "answer_field": af, "top_k": k, "max_new_tokens": mx, "backend": be})
            job_id = jobs.submit(job)
        except Exception as e:  # noqa: BLE001 - shown to the user, who can fix the form
            return ui.t("chat.eval_error", error=_first_line(e)), gr.update(), gr.update(), gr.update()
        choices = evaluation_runs(jobs)
        return (ui.t("chat.eval_submitted", job=job_id), gr.update(choices=choices, value=job_id),
                gr.update(choices=choices), gr.update(choices=choices))

    submit.click(on_submit, inputs=[model, reference, judge, dataset, metrics, limit, answer_field, top_k, max_new,
                                    backend], outputs=[submitted, run, run_a, run_b])

    def on_refresh_lists(m, r, j, d):
        ch = model_choices(ws)
        ds = dataset_choices(ws)
        runs_now = evaluation_runs(jobs)
        return (gr.update(choices=ch, value=m), gr.update(choices=_optional(ch), value=r),
                gr.update(choices=_optional(ch), value=j),
                gr.update(choices=ds, value=d), gr.update(choices=runs_now), gr.update(choices=runs_now),
                gr.update(choices=runs_now))

    refresh_lists.click(on_refresh_lists, inputs=[model, reference, judge, dataset],
                        outputs=[model, reference, judge, dataset, run, run_a, run_b])

    # --- results --------------------------------------------------------------------------------------------------

    def load_run(job_id: str | None, filt: str):
        empty = (EMPTY_SUMMARY, gr.update(value=None), gr.update(visible=False), "", EMPTY_ROWS, "")
        if not job_id:
            return ("", *empty)
        try:
            info = jobs.get(job_id, refresh=False)
            state = f"**{info.name}** · {info.status}"
            if info.progress is not None and not info.finished:
                state += f" · {100 * info.progress:.0f}%"
            if info.reason:
                state += f" · {info.reason}"
        except Exception:  # noqa: BLE001 - a deleted job still has no results to show
            state = job_id
        try:
            ev = R.load(job_id, ws)
        except (FileNotFoundError, ValueError):
            return (state + " · " + ui.t("chat.eval_no_results"), *empty)
        headers, table = R.summary_table(ev.results)
        dh, drows = R.drilldown(ev.rows, filt or "all")
        has_judge = bool(ev.results.get("judge"))
        note_lines = [f"- {n}" for n in ev.results.get("notes", [])]
        if not ev.results.get("complete", True):
            note_lines.insert(0, "- " + ui.t("chat.eval_partial", done=ev.results.get("rows_done", 0),
                                              total=ev.results.get("rows_total", 0)))
        return (state, {"headers": headers, "data": table}, summary_figure(ev.results),
                gr.update(value=judge_figure(ev.results) if has_judge else None, visible=has_judge),
                "\n".join(note_lines), {"headers": dh, "data": drows}, "")

    run_outputs = [run_status, summary, plot, jplot, notes, rows, detail]
    run.change(load_run, inputs=[run, how], outputs=run_outputs)
    how.change(load_run, inputs=[run, how], outputs=run_outputs)
    reload_btn.click(load_run, inputs=[run, how], outputs=run_outputs)

    def tick(job_id: str | None, filt: str):
        """While the selected evaluation runs (and once just after it ended), show its latest partial results."""
        keep = [gr.update()] * (len(run_outputs) - 1)
        if not job_id:
            return keep
        try:
            info = jobs.get(job_id)
        except Exception:  # noqa: BLE001 - a deleted job: nothing to refresh
            return keep
        if info.finished and info.ended_at and info.ended_at < _now() - 10:
            return keep
        return list(load_run(job_id, filt))[:-1]  # the row detail the user opened stays

    timer.tick(tick, inputs=[run, how], outputs=run_outputs[:-1], show_progress="hidden")

    def on_select(job_id: str | None, evt: gr.SelectData):
        if not job_id:
            return ""
        try:
            ev = R.load(job_id, ws)
        except (FileNotFoundError, ValueError):
            return ""
        row_id = None
        if isinstance(evt.row_value, list) and evt.row_value:
            row_id = evt.row_value[0]
        rec = R.row_detail(ev.rows, str(row_id)) if row_id is not None else None
        return _detail_markdown(ui, rec) if rec else ""

    rows.select(on_select, inputs=[run], outputs=detail)

    def on_export(job_id: str | None, f: str):
        if not job_id:
            gr.Warning(ui.t("chat.eval_pick_run"))
            return gr.update(visible=False)
        try:
            path = R.export(R.load(job_id, ws), f)
        except (FileNotFoundError, ValueError) as e:
            gr.Warning(_first_line(e))
            return gr.update(visible=False)
        return gr.update(value=str(path), visible=True)

    export_btn.click(on_export, inputs=[run, fmt], outputs=export_file)

    def on_compare(a: str | None, b: str | None):
        if not a or not b:
            return ui.t("chat.eval_pick_two"), gr.update(value=None), gr.update(value=None)
        try:
            ra, rb = R.load(a, ws), R.load(b, ws)
        except (FileNotFoundError, ValueError) as e:
            return _first_line(e), gr.update(value=None), gr.update(value=None)
        c = compare(ra, rb)
        sh, sr = c.summary_table()
        ch, cr = c.changed_table()
        note = ui.t("chat.eval_compare_note", common=c.common, only_a=c.only_a, only_b=c.only_b,
                    changed=len(c.changed))
        note += "".join(f"\n- {n}" for n in c.notes)
        return note, {"headers": sh, "data": sr}, {"headers": ch, "data": cr}

    cmp_btn.click(on_compare, inputs=[run_a, run_b], outputs=[cmp_note, cmp_summary, cmp_rows])


def _optional(choices: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [("—", ""), *choices]


def _now() -> float:
    import time

    return time.time()


def _first_line(e: Exception) -> str:
    return (str(e).strip() or type(e).__name__).splitlines()[0][:400]


def _detail_markdown(ui: UIContext, rec: dict[str, Any]) -> str:
    """The full record of one row: prompt, gold, both answers, checks, judge replies."""
    def block(title: str, text: Any) -> str:
        if text in (None, ""):
            return ""
        return f"**{title}**\n\n```text\n{text}\n```\n"

    parts = [f"#### {rec.get('id')}", block(ui.t("chat.eval_prompt"), rec.get("prompt")),
             block(ui.t("chat.eval_gold"), rec.get("gold")),
             block(ui.t("chat.eval_model_answer") + f" ({_check(rec, 'model')})", rec.get("model_answer")),
             block(ui.t("chat.eval_reference_answer") + f" ({_check(rec, 'reference')})", rec.get("reference_answer"))]
    if rec.get("judge_outcome"):
        parts.append(f"**{ui.t('chat.eval_verdict')}**: {rec['judge_outcome']} "
                     f"({rec.get('judge_model_first') or '-'} / {rec.get('judge_model_second') or '-'})")
        parts.append(block(ui.t("chat.eval_judge_first"), rec.get("judge_raw_first")))
        parts.append(block(ui.t("chat.eval_judge_second"), rec.get("judge_raw_second")))
    extra = [f"{k} = {rec[k]:.4g}" for k in ("kl", "model_perplexity", "reference_perplexity")
             if isinstance(rec.get(k), float)]
    if extra:
        parts.append(" · ".join(extra))
    return "\n".join(p for p in parts if p)


def _check(rec: dict[str, Any], role: str) -> str:
    ok = R.correct(rec, role)
    return "-" if ok is None else ("✔" if ok else "✘")
