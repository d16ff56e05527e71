"""The curate job: `run(CurateJob, ctx)` — filters + RV/CD mixer over a scored dataset, written as a dataset.

The selection is computed by core.cot.mix on the score columns only; the texts of the selected rows are then written
as they are (`export: rows`) or as SFT rows (System-2 / System-1, core.cot.sft). The counts and the plot statistics
(histograms and the RV×CD matrix before and after) go to `output/curation.json` in the run folder and into the
dataset's sidecar, so the tab can show what a job chose without recomputing it.
"""

from __future__ import annotations

import json

from core.config.data_jobs import CurateJob
from core.cot.frame_cache import dataset_frame, refusal
from core.cot.mix import plot_stats, select
from core.cot.sft import sft_row
from core.data.errors import RowError
from core.data.io import write_records
from core.data.store import iter_input, save_rows
from core.jobs.context import JobContext
from core.synth.job import output_target


def selected_rows(ws, ref: str, index) -> list[dict]:
    """The rows at `index` (ascending positions, as in the score frame) of a dataset or file, streamed up to the last
    of them by the frame's own reader (core.data.store.iter_input), so position k is the frame's row k and a
    million-trace input is never held in memory to keep a few thousand of its rows. A record that cannot be read
    before the last position (the file changed since its frame was built) stops it, by file:line: a position is
    never shifted onto another row."""
    if not len(index):
        return []
    want = iter(index.tolist())
    nxt = next(want, None)
    out: list[dict] = []
    pos = 0
    for item in iter_input(ws, ref, confined=False):
        if isinstance(item, RowError):
            raise refusal([item])
        if pos == nxt:
            out.append(item)
            nxt = next(want, None)
            if nxt is None:
                break
        pos += 1
    return out


def run(config: CurateJob, ctx: JobContext) -> None:
    ws = ctx.workspace
    # The cached score columns (the tab's preview built them). A record that cannot be read refuses the input here,
    # by file:line, before anything is selected or written (core.cot.frame_cache.readable_rows).
    frame = dataset_frame(ws, config.input, confined=False)
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
