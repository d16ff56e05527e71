"""What the Curation tab shows before any job runs: live counts and plot statistics of a curation, and the traces in
one RV×CD cell as a conversation with its reasoning folded.

The UI process never passes over a dataset's texts for this: the counts and plots come from the dataset's score frame
(core.cot.frame_cache: score columns only, cached as Parquet), held here for the last few datasets opened (bounded
memory: `KEEP` frames without their id column) so a slider move costs one columnar `select`, not a file read. Only a
cell's few rows are read as text, streamed up to the last of them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from core.config.data_jobs import CurateSpec
from core.cot.frame_cache import dataset_frame
from core.cot.mix import Selection, plot_stats, select
from core.data.store import resolve_dataset
from core.workspace import Workspace

KEEP = 2  # score frames held in memory (a million traces: ~30 MB each)
CELL_ROWS = 20  # rows a heatmap cell shows
_frames: OrderedDict[tuple, pd.DataFrame] = OrderedDict()
_lock = threading.Lock()


def score_frame(ws: Workspace, ref: str) -> pd.DataFrame:
    """The score frame of a dataset (confined to the workspace), from memory while the file is unchanged."""
    path = resolve_dataset(ws, ref, confined=True)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _lock:
        if key in _frames:
            _frames.move_to_end(key)
            return _frames[key]
    frame = dataset_frame(ws, ref, confined=True, ids=False)
    with _lock:
        for old in [k for k in _frames if k[0] == key[0]]:  # an earlier version of the same file
            del _frames[old]
        _frames[key] = frame
        while len(_frames) > KEEP:
            _frames.popitem(last=False)
    return frame


@dataclass
class Preview:
    """A curation's live result: the selection, its counts, plot statistics before/after, the teachers present."""

    selection: Selection
    stats: dict
    teachers: dict[str, int]
    scored: int  # rows with both RV and CD

    @property
    def counts(self) -> dict:
        return self.selection.counts()


def preview(ws: Workspace, ref: str, spec: CurateSpec) -> Preview:
    """The counts and plot statistics of `spec` over a dataset (what the curate job would select)."""
    frame = score_frame(ws, ref)
    sel = select(frame, spec)
    stats = plot_stats(frame, sel)
    scored = int(np.count_nonzero(~np.isnan(frame["rv"].to_numpy()) & ~np.isnan(frame["cd"].to_numpy())))
    return Preview(sel, stats, stats["before"]["teachers"], scored)


def cell_positions(frame: pd.DataFrame, rv: int, cd: int, index: np.ndarray | None = None,
                   limit: int = CELL_ROWS) -> np.ndarray:
    """Row positions (ascending) in one RV×CD cell, within a selection when `index` is given."""
    pos = np.arange(len(frame)) if index is None else index
    hit = pos[(frame["rv"].to_numpy()[pos] == rv) & (frame["cd"].to_numpy()[pos] == cd)]
    return hit[:limit]


def cell_rows(ws: Workspace, ref: str, spec: CurateSpec, rv: int, cd: int,
              within: Literal["selected", "all"] = "selected", limit: int = CELL_ROWS) -> list[dict]:
    """The first rows of one heatmap cell (of the selection, or of every row): what picking the cell shows."""
    from core.cot.curate_job import selected_rows

    frame = score_frame(ws, ref)  # also confines `ref` to the workspace
    index = select(frame, spec).index if within == "selected" else None
    return selected_rows(ws, ref, cell_positions(frame, rv, cd, index, limit))


def row_label(row: dict) -> str:
    """One line naming a trace in a picker: id, teacher, scores, length."""
    from core.data.rows import response_text

    out = response_text(row)
    chars = len(out) if isinstance(out, str) else 0
    bits = [str(row.get("id", "?")), str(row.get("teacher") or "—")]
    bits += [f"{k.upper() if k != 'correctness' else '✓'} {row[k]}" for k in ("rv", "cd", "correctness")
             if row.get(k) is not None]
    return " · ".join([*bits, f"{chars} chars"])


def trace_chat(row: dict) -> list[dict]:
    """A trace as a conversation: the question, then the answer with its reasoning inside <think>…</think> (a chat
    view folds that part), so long chains stay readable."""
    from core.cot.sft import thought_and_answer
    from core.data.rows import prompt_text

    thought, answer = thought_and_answer(row)
    reply = f"<think>\n{thought}\n</think>\n\n{answer}" if thought else answer
    return [{"role": "user", "content": prompt_text(row)}, {"role": "assistant", "content": reply}]
