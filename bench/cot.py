"""Benchmark of CoT curation: range filters + the RV/CD mixer over 1M synthetic scored traces, columnar
(core.cot.mix on a pandas frame) vs EasyDistill 2.0's approach (a list of dicts, one pass over it per CD bin, each bin
sorted by |RV - target|). Also the live preview from disk: read the score columns of a Parquet file, then count.
Prints the seconds of each and the ratio in one run.

Run: .venv/bin/python bench/cot.py [--rows 1000000] [--samples-per-bin 50000]
Goals (issue 12): mixer <= 0.1 s on 1M rows in memory; preview < 1 s on 1M rows from disk.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.config.data_jobs import CurateSpec  # noqa: E402
from core.cot.mix import preview, read_frame, rv_targets, select, write_frame  # noqa: E402


def synthetic_frame(n: int, seed: int = 0) -> pd.DataFrame:
    """n traces, 4 per question, RV/CD 0-9 (a few missing), 80% correct, three teachers."""
    rng = np.random.default_rng(seed)
    rv = rng.integers(0, 10, n).astype(np.float64)
    cd = rng.integers(0, 10, n).astype(np.float64)
    rv[rng.random(n) < 0.01] = np.nan
    cd[rng.random(n) < 0.01] = np.nan
    return pd.DataFrame({
        "id": [f"t{i}" for i in range(n)],
        "question_id": pd.Categorical.from_codes(np.arange(n) // 4, [f"q{i}" for i in range((n + 3) // 4)]),
        "rv": rv,
        "cd": cd,
        "correctness": (rng.random(n) < 0.8).astype(np.float64),
        "teacher": pd.Categorical.from_codes(rng.integers(0, 3, n), ["QwQ-32B", "DeepSeek-R1", "Qwen3-235B"]),
        "response_chars": rng.integers(200, 20000, n),
    })


def as_dicts(frame: pd.DataFrame) -> list[dict]:
    out = frame.astype({"question_id": object, "teacher": object}).to_dict("records")
    for r in out:  # missing scores as None, as JSON rows have them
        for k in ("rv", "cd"):
            if r[k] != r[k]:
                r[k] = None
    return out


def baseline_mix(rows: list[dict], spec: CurateSpec) -> list[dict]:
    """EasyDistill 2.0's shape: one pass over the list per CD bin (correctness filter inside), sort, take k."""
    edges = spec.cd_edges
    targets = rv_targets(spec.rv_target, len(edges) - 1)
    rng = random.Random(spec.seed)
    out = []
    for i, (lo, hi) in enumerate(zip(edges, edges[1:], strict=False)):
        last = i == len(edges) - 2
        bucket = [r for r in rows if r["correctness"] is not None and r["correctness"] >= spec.min_correctness
                  and r["cd"] is not None and (lo <= r["cd"] <= hi if last else lo <= r["cd"] < hi)]
        rng.shuffle(bucket)  # ties in random order
        bucket.sort(key=lambda r: abs(r["rv"] - targets[i]) if r["rv"] is not None else 1e9)
        out.extend(bucket[: spec.samples_per_bin])
    return out


def timed(fn, repeat: int = 3):
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--samples-per-bin", type=int, default=50_000)
    args = ap.parse_args()

    frame = synthetic_frame(args.rows)
    mix = CurateSpec(samples_per_bin=args.samples_per_bin, rv_target="matched")
    ui = CurateSpec(rv_min=2, rv_max=7, cd_min=1, samples_per_bin=args.samples_per_bin, one_per_question=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scores.parquet"
        write_frame(frame, path)
        size_mb = path.stat().st_size / 2**20
        t_disk, counts = timed(lambda: preview(read_frame(path, ids=False), ui))

    t_cols, sel = timed(lambda: select(frame, mix))
    t_cols_q, sel_q = timed(lambda: select(frame, ui))
    rows = as_dicts(frame)
    t_base, base = timed(lambda: baseline_mix(rows, mix), repeat=1)
    assert len(base) == len(sel.index), (len(base), len(sel.index))

    print(f"{args.rows:,} traces, {args.samples_per_bin:,} per CD bin, edges {mix.cd_edges}, matched RV targets")
    print(f"columnar mixer (filters + bins + top-k)        : {t_cols * 1000:8.1f} ms -> {len(sel.index):,} rows")
    print(f"columnar, ranges + one trace per question      : {t_cols_q * 1000:8.1f} ms -> {len(sel_q.index):,} rows")
    print(f"list of dicts, one pass per bin (2.0 approach) : {t_base * 1000:8.1f} ms -> {len(base):,} rows")
    print(f"speed-up columnar vs list of dicts             : {t_base / t_cols:8.1f}x")
    print(f"preview from disk (read {size_mb:.1f} MB Parquet + count): {t_disk * 1000:8.1f} ms -> "
          f"{counts['selected']:,} selected")
    print(json.dumps({"rows": args.rows, "mixer_s": round(t_cols, 4), "mixer_one_per_question_s": round(t_cols_q, 4),
                      "baseline_s": round(t_base, 3), "ratio": round(t_base / t_cols, 1),
                      "preview_from_disk_s": round(t_disk, 3),
                      "goals_met": {"mixer<=0.1s": t_cols <= 0.1, "preview<1s": t_disk < 1.0}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
