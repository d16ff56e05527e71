"""Range filters and the RV/CD mixer (REFERENCE §3) over a columnar score frame, plus counts and plot statistics.

Everything here works on whole columns (numpy / pandas), never row by row: the studio re-runs `preview` on every
slider move over up to millions of traces, and the curate job selects with the same `select`.

The frame holds one row per trace and only what curation reads: `rv`, `cd`, `correctness` (floats, NaN = not
scored), `teacher` and `question_id` (categoricals), `response_chars`. Texts stay in the dataset; a selection is a set
of row positions.

Mixer (runs when `samples_per_bin` or `one_per_question` is set):
1. after the filters, rows with CD missing or outside the edges are dropped;
2. CD bins by edges, each bin [lo, hi) except the last, which includes its upper edge (CD = 10 lands in the last bin,
   not in a phantom extra one as in EasyDistill 2.0);
3. a target RV per bin: a number, low/medium/high = 2/5/8, or matched = 2 rising evenly to 8 across the bins — on
   the judge's 0–9 scale (2.0's "matched" aimed at 2/6/10);
4. rows ranked by |RV − target|, ties broken by a seeded random draw per row position (so moving a filter does not
   reshuffle the ties among the rows that stay); one trace per question keeps each question's best-ranked trace;
   each bin keeps its `samples_per_bin` best.
Same frame + same settings + same seed = same selection.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.config.data_jobs import CurateSpec
from core.data.rows import prompt_text, response_text

SCORE_COLUMNS = ("rv", "cd", "correctness")
FRAME_COLUMNS = ("id", "question_id", "rv", "cd", "correctness", "teacher", "response_chars")
RV_WORDS = {"low": 2.0, "medium": 5.0, "high": 8.0}
SCALE = 10  # scores 0..9
_DIST_SCALE = 10_000  # |RV - target| kept to 1e-4 in the integer sort key
_NO_RV = (1 << 30) - 1  # a row without RV ranks after every scored one


def _number(v) -> float:
    """A score as a float; missing or unreadable = NaN (not scored)."""
    if v is None:
        return np.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return np.nan


def frame_from_rows(rows: Iterable[dict]) -> pd.DataFrame:
    """The score frame of canonical rows (judge output, imported OmniThought). Questions without a `question_id` are
    identified by their text."""
    ids, qids, teachers, chars = [], [], [], []
    scores: dict[str, list[float]] = {c: [] for c in SCORE_COLUMNS}
    for r in rows:
        ids.append(str(r.get("id", "")))
        q = r.get("question_id")
        qids.append(str(q) if q not in (None, "") else prompt_text(r))
        t = r.get("teacher")
        teachers.append(str(t) if t not in (None, "") else None)
        out = response_text(r)
        chars.append(len(out) if isinstance(out, str) else len(str(r.get("thought") or "")) + len(
            str(r.get("solution") or "")))
        for c in SCORE_COLUMNS:
            scores[c].append(_number(r.get(c)))
    return pd.DataFrame({
        "id": ids,
        "question_id": pd.Categorical(qids),
        **{c: np.asarray(scores[c], dtype=np.float64) for c in SCORE_COLUMNS},
        "teacher": pd.Categorical(teachers),
        "response_chars": np.asarray(chars, dtype=np.int64),
    })


def read_frame(path, ids: bool = True) -> pd.DataFrame:
    """A score frame stored as Parquet. Only its columns are read, and the row ids only when asked: a preview needs
    counts, and a million id strings cost more to read than all the scores together."""
    return pd.read_parquet(path, columns=[c for c in FRAME_COLUMNS if ids or c != "id"])


def write_frame(frame: pd.DataFrame, path) -> None:
    """Questions are stored as integer codes: the mixer needs only "same question or not", and turning a quarter of a
    million question strings back into a categorical would cost more than reading every score column."""
    out = frame.loc[:, list(FRAME_COLUMNS)].copy()
    q = out["question_id"]
    codes = q.cat.codes if isinstance(q.dtype, pd.CategoricalDtype) else pd.Series(pd.factorize(q)[0])
    out["question_id"] = codes.to_numpy().astype(np.int32)
    out.to_parquet(path, index=False)


# ------------------------------------------------------------------------------------------------------- filters


def filter_masks(frame: pd.DataFrame, spec: CurateSpec) -> dict[str, np.ndarray]:
    """One boolean mask per filter that is set (True = the row passes it)."""
    masks: dict[str, np.ndarray] = {}
    if spec.min_correctness is not None:
        masks["correctness"] = frame["correctness"].to_numpy() >= spec.min_correctness  # NaN compares False
    for col, lo, hi in (("rv", spec.rv_min, spec.rv_max), ("cd", spec.cd_min, spec.cd_max)):
        if lo is not None or hi is not None:
            v = frame[col].to_numpy()
            m = ~np.isnan(v)
            if lo is not None:
                m &= v >= lo
            if hi is not None:
                m &= v <= hi
            masks[col] = m
    if spec.teachers:
        masks["teacher"] = np.asarray(frame["teacher"].isin(spec.teachers))
    if spec.min_response_chars is not None or spec.max_response_chars is not None:
        n = frame["response_chars"].to_numpy()
        m = np.ones(len(n), dtype=bool)
        if spec.min_response_chars is not None:
            m &= n >= spec.min_response_chars
        if spec.max_response_chars is not None:
            m &= n <= spec.max_response_chars
        masks["response_chars"] = m
    return masks


def filter_mask(frame: pd.DataFrame, spec: CurateSpec) -> np.ndarray:
    mask = np.ones(len(frame), dtype=bool)
    for m in filter_masks(frame, spec).values():
        mask &= m
    return mask


# --------------------------------------------------------------------------------------------------------- mixer


def rv_targets(target, n_bins: int) -> np.ndarray:
    """The RV each bin aims at, on the 0–9 scale."""
    if isinstance(target, list):
        if len(target) != n_bins:
            raise ValueError(f"{len(target)} RV targets for {n_bins} CD bins")
        return np.array([RV_WORDS[t] if isinstance(t, str) else float(t) for t in target])
    if target == "matched":
        return np.linspace(2.0, 8.0, n_bins) if n_bins > 1 else np.array([5.0])
    return np.full(n_bins, RV_WORDS[target] if isinstance(target, str) else float(target))


def cd_bins(cd: np.ndarray, edges: list[float]) -> np.ndarray:
    """Bin index per row (-1: CD missing or outside the edges); the last bin includes its upper edge."""
    if len(edges) <= 16:  # a comparison per inner edge beats a binary search for the few bins people use
        b = np.zeros(len(cd), dtype=np.int16)
        for e in edges[1:-1]:
            b += cd >= e
    else:
        b = (np.searchsorted(np.asarray(edges, dtype=np.float64), cd, side="right") - 1).astype(np.int16)
        b[cd == edges[-1]] = len(edges) - 2
    b[~((cd >= edges[0]) & (cd <= edges[-1]))] = -1  # NaN fails both comparisons
    return b


def bin_labels(edges: list[float]) -> list[str]:
    fmt = lambda x: f"{x:g}"  # noqa: E731
    n = len(edges) - 1
    return [f"[{fmt(edges[i])}, {fmt(edges[i + 1])}{']' if i == n - 1 else ')'}" for i in range(n)]


@dataclass
class Selection:
    """The rows a curation keeps (positions into the frame, ascending) and how each step narrowed them."""

    index: np.ndarray
    total: int
    passing: int  # after the filters
    dropped: dict[str, int] = field(default_factory=dict)  # rows each filter alone rejects
    bins: list[dict] = field(default_factory=list)  # per CD bin: label, target, available, selected
    mixed: bool = False

    @property
    def selected(self) -> int:
        return int(len(self.index))

    def counts(self) -> dict:
        return {"total": self.total, "passing_filters": self.passing, "dropped_by": self.dropped,
                "selected": self.selected, "mixer": self.mixed, "bins": self.bins}


def _tie_breaks(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 1 << 32, size=n, dtype=np.int64)


def select(frame: pd.DataFrame, spec: CurateSpec) -> Selection:
    """Apply the filters, then (when asked) the mixer; see the module doc for the rules."""
    n = len(frame)
    masks = filter_masks(frame, spec)
    mask = np.ones(n, dtype=bool)
    for m in masks.values():
        mask &= m
    dropped = {k: int(n - np.count_nonzero(m)) for k, m in masks.items()}
    passing = int(np.count_nonzero(mask))
    if spec.samples_per_bin is None and not spec.one_per_question:
        return Selection(np.flatnonzero(mask), n, passing, dropped)

    edges = spec.cd_edges
    n_bins = len(edges) - 1
    targets = rv_targets(spec.rv_target, n_bins)
    bins = cd_bins(frame["cd"].to_numpy(), edges)
    idx = np.flatnonzero(mask & (bins >= 0))
    b = bins[idx]
    rv = frame["rv"].to_numpy()[idx]
    dist = np.abs(rv - targets[b])
    dist_q = np.where(np.isnan(dist), _NO_RV, np.minimum(np.rint(dist * _DIST_SCALE), _NO_RV - 1)).astype(np.int64)
    key = (dist_q << 32) | _tie_breaks(n, spec.seed)[idx]

    if spec.one_per_question:
        codes = _question_codes(frame["question_id"])[idx]
        best = np.full(int(codes.max()) + 1 if len(codes) else 0, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(best, codes, key)
        keep = key == best[codes]
        keep[keep] = _first_per_code(codes[keep])  # identical keys within a question: keep one
        idx, b, key = idx[keep], b[keep], key[keep]

    chosen = []
    per_bin = []
    labels = bin_labels(edges)
    order = np.argsort(b, kind="stable")  # small integers: a radix sort, then each bin is one slice
    idx, key = idx[order], key[order]
    starts = np.concatenate([[0], np.cumsum(np.bincount(b, minlength=n_bins))])
    for i in range(n_bins):
        cand, kb = idx[starts[i]:starts[i + 1]], key[starts[i]:starts[i + 1]]
        k = spec.samples_per_bin
        if k is not None and len(cand) > k:
            cand = cand[np.argpartition(kb, k - 1)[:k]]
        chosen.append(cand)
        per_bin.append({"bin": labels[i], "target_rv": float(targets[i]), "available": int(starts[i + 1] - starts[i]),
                        "selected": int(len(cand))})
    keep = np.zeros(n, dtype=bool)  # ascending positions without sorting: mark, then scan
    for c in chosen:
        keep[c] = True
    index = np.flatnonzero(keep)
    return Selection(index, n, passing, dropped, per_bin, mixed=True)


def _question_codes(q: pd.Series) -> np.ndarray:
    """0..n-1 per distinct question: categorical codes, stored codes (write_frame), or factorized ids."""
    if isinstance(q.dtype, pd.CategoricalDtype):
        return q.cat.codes.to_numpy()
    if pd.api.types.is_integer_dtype(q.dtype) and (len(q) == 0 or q.min() >= 0):
        return q.to_numpy()
    return pd.factorize(q)[0]


def _first_per_code(codes: np.ndarray) -> np.ndarray:
    _, first = np.unique(codes, return_index=True)
    out = np.zeros(len(codes), dtype=bool)
    out[first] = True
    return out


def preview(frame: pd.DataFrame, spec: CurateSpec | dict) -> dict:
    """Counts for the live UI: rows in, rows each filter drops, rows passing, per bin available/selected."""
    if isinstance(spec, dict):
        spec = CurateSpec(**spec)
    return select(frame, spec).counts()


# ------------------------------------------------------------------------------------------------------ plotting


def cell_ids(frame: pd.DataFrame, rv: int, cd: int, index: np.ndarray | None = None, limit: int = 50) -> list[str]:
    """Ids of the rows in one RV×CD heatmap cell (within a selection when `index` is given): the rows a click on
    the cell shows."""
    pos = np.arange(len(frame)) if index is None else index
    hit = pos[(frame["rv"].to_numpy()[pos] == rv) & (frame["cd"].to_numpy()[pos] == cd)]
    return frame["id"].to_numpy()[hit[:limit]].tolist()


def score_stats(frame: pd.DataFrame, index: np.ndarray | None = None) -> dict:
    """Histograms of RV and CD (0–9, plus missing), the RV×CD count matrix (rows RV, columns CD), rows per teacher
    and mean response length per RV: what the tab's plots draw, before and after a selection."""
    f = frame if index is None else frame.iloc[index]
    rv, cd = f["rv"].to_numpy(), f["cd"].to_numpy()

    def hist(v: np.ndarray) -> list[int]:
        ok = ~np.isnan(v) & (v >= 0) & (v < SCALE)
        return np.bincount(v[ok].astype(np.int64), minlength=SCALE)[:SCALE].tolist()

    both = ~np.isnan(rv) & ~np.isnan(cd) & (rv >= 0) & (rv < SCALE) & (cd >= 0) & (cd < SCALE)
    cells = rv[both].astype(np.int64) * SCALE + cd[both].astype(np.int64)
    matrix = np.bincount(cells, minlength=SCALE * SCALE).reshape(SCALE, SCALE).tolist()
    chars = f["response_chars"].to_numpy()
    rv_ok = ~np.isnan(rv) & (rv >= 0) & (rv < SCALE)
    sums = np.bincount(rv[rv_ok].astype(np.int64), weights=chars[rv_ok], minlength=SCALE)[:SCALE]
    n_rv = np.array(hist(rv))
    mean_chars = [round(float(s / c), 1) if c else None for s, c in zip(sums, n_rv, strict=True)]
    teachers = f["teacher"].value_counts(dropna=True)
    return {
        "rows": int(len(f)),
        "rv_hist": hist(rv), "rv_missing": int(np.isnan(rv).sum()),
        "cd_hist": hist(cd), "cd_missing": int(np.isnan(cd).sum()),
        "rv_cd_matrix": matrix,
        "mean_chars_by_rv": mean_chars,
        "teachers": {str(k): int(v) for k, v in teachers.items() if v},
        "correct": int(np.nansum(f["correctness"].to_numpy() >= 1)),
    }


def plot_stats(frame: pd.DataFrame, selection: Selection) -> dict:
    return {"before": score_stats(frame), "after": score_stats(frame, selection.index)}
