"""The curate job: `run(CurateJob, ctx)` — filters + RV/CD mixer over a scored dataset, written as a dataset.

The selection is computed by core.cot.mix on the score columns only; the texts of the selected rows are then written
as they are (`export: rows`) or as SFT rows (System-2 / System-1, core.cot.sft). The counts and the plot statistics
(histograms and the RV×CD matrix before and after) go to `output/curation.json` in the run folder and into the
dataset's sidecar, so the tab can show what a job chose without recomputing it.
"""

from __future__ import annotations

import json

from core.config.data_jobs import CurateJob
from core.cot.frame_cache import dataset_frame
from core.cot.mix import plot_stats, select
from core.cot.sft import sft_row
from core.data.io import write_records
from core.data.rows import iter_jsonl_rows
from core.data.store import is_workspace_dataset, load_rows, resolve_dataset, save_rows
from core.jobs.context import JobContext
from core.synth.job import output_target


def selected_rows(ws, ref: str, index) -> list[dict]:
    """The rows at `index` (ascending positions) of a dataset: a workspace dataset is streamed, so a million-trace
    input is never held in memory just to keep a few thousand of its rows."""
    if not len(index):
        return []
    path = resolve_dataset(ws, ref, confined=False)
    if not is_workspace_dataset(ws, path):
        rows, _ = load_rows(ws, ref, confined=False)
        return [rows[i] for i in index]
    want = iter(index.tolist())
    nxt = next(want, None)
    out = []
    for pos, row in enumerate(iter_jsonl_rows(path)):
        if pos == nxt:
            out.append(row)
            nxt = next(want, None)
            if nxt is None:
                break
    return out


def run(config: CurateJob, ctx: JobContext) -> None:
    ws = ctx.workspace
    frame = dataset_frame(ws, config.input, confined=False)  # cached score columns (the tab's preview built them)
    sel = select(frame, config)
    ctx.progress(1, 2)
    chosen = selected_rows(ws, config.input, sel.index)
    skipped = 0
    if config.export != "rows":
        out_rows = []
        for r in chosen:
            s = sft_row(r, config.export)
            if s is None:
                skipped += 1
            else:
                out_rows.append(s)
        chosen = out_rows
    counts = {**sel.counts(), "export": config.export, "skipped_no_reasoning_or_answer": skipped,
              "written": len(chosen)}
    report = {"counts": counts, "plots": plot_stats(frame, sel)}
    (ctx.output_dir / "curation.json").write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")

    target = output_target(ws, config, "curated")
    if target.dataset:
        save_rows(ws, target.dataset, chosen, created_by=f"curate ({ctx.job_id})", source=config.input,
                  curation=counts)
    else:
        write_records(target.rows, chosen, "jsonl")
    if target.json_path:
        write_records(target.json_path, chosen, "json")
    ctx.progress(2, 2, selected=len(chosen), total_rows=sel.total, passing_filters=sel.passing)
    notes = [f"{sel.passing} passed the filters"]
    if sel.bins:
        notes.append("per CD bin " + ", ".join(f"{b['bin']}: {b['selected']}/{b['available']}" for b in sel.bins))
    if skipped:
        notes.append(f"{skipped} left out for lack of reasoning or answer")
    ctx.event(f"curated {len(chosen)} of {sel.total} rows into {target.label} ({'; '.join(notes)})")
