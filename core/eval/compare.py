"""Comparing evaluation runs: two of them, what changed per metric and which rows flipped (`compare`); or the
evaluations of several jobs side by side, one column per job (`side_by_side`: the Jobs tab's "Compare runs" and
`easydistill jobs compare`, where a job may be an evaluate job or a pipeline with evaluate steps).

Typical use: the student before and after distillation on the same held-out set. Rows are paired by id (never by
position), so two runs with different limits or orders still compare correctly; rows only one run has are counted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from core.eval.results import HIGHER_IS_BETTER, EvalRun, correct, find_all, load, metric_columns, roles
from core.said import Said
from core.workspace import Workspace


@dataclass
class Comparison:
    summary: list[dict[str, Any]]  # role, metric, a, b, delta, better ("a" | "b" | "=" | None)
    changed: list[dict[str, Any]]  # rows whose answer check or judge outcome differs between the runs
    common: int = 0
    only_a: int = 0
    only_b: int = 0
    notes: list[str] = field(default_factory=list)

    def summary_table(self) -> tuple[list[str], list[list[Any]]]:
        headers = ["role", "metric", "A", "B", "B − A", "better"]
        return headers, [[s["role"], s["metric"], s["a"], s["b"], s["delta"], s["better"]] for s in self.summary]

    def changed_table(self) -> tuple[list[str], list[list[Any]]]:
        headers = ["id", "prompt", "change", "A answer", "B answer"]
        return headers, [[c["id"], c["prompt"], c["change"], c["a_answer"], c["b_answer"]] for c in self.changed]


def compare(a: EvalRun, b: EvalRun) -> Comparison:
    summary = []
    metrics = [m for m in metric_columns(a.results) if m in set(metric_columns(b.results))]
    for role in [r for r in roles(a.results) if r in roles(b.results)]:
        sa, sb = a.summary(role), b.summary(role)
        for m in metrics:
            va, vb = sa.get(m), sb.get(m)
            if va is None and vb is None:
                continue
            delta = vb - va if isinstance(va, (int, float)) and isinstance(vb, (int, float)) else None
            better = None
            if delta is not None:
                better = "=" if abs(delta) < 1e-12 else ("b" if (delta > 0) == HIGHER_IS_BETTER[m] else "a")
            summary.append({"role": role, "metric": m, "a": _r(va), "b": _r(vb), "delta": _r(delta),
                            "better": better})
    rows_a = {str(r.get("id")): r for r in a.rows}
    rows_b = {str(r.get("id")): r for r in b.rows}
    common = [i for i in rows_a if i in rows_b]
    changed = []
    for rid in common:
        ra, rb = rows_a[rid], rows_b[rid]
        ca, cb = correct(ra, "model"), correct(rb, "model")
        change = None
        if ca is not None and cb is not None and ca != cb:
            change = "fixed" if cb else "broken"
        elif ra.get("judge_outcome") and rb.get("judge_outcome") and ra["judge_outcome"] != rb["judge_outcome"]:
            change = f"judge {ra['judge_outcome']} → {rb['judge_outcome']}"
        if change:
            changed.append({"id": rid, "prompt": ra.get("prompt"), "change": change,
                            "a_answer": ra.get("model_answer"), "b_answer": rb.get("model_answer")})
    notes = []
    da, db = a.results.get("dataset"), b.results.get("dataset")
    if da != db:
        notes.append(Said(f"the runs used different datasets ({da} vs {db}): only rows with the same id are paired",
                          "evaluate.note_other_datasets", {"a": da, "b": db}))
    return Comparison(summary, changed, len(common), len(rows_a) - len(common), len(rows_b) - len(common), notes)


def _r(v: Any) -> Any:
    return round(v, 4) if isinstance(v, float) else v


def side_by_side(runs: list[tuple[str, str | os.PathLike]], ws: Workspace | None = None
                 ) -> tuple[list[str], list[list[Any]]]:
    """The evaluations of several jobs, one column per job: `runs` are (label, run folder). A row per (evaluation,
    role, metric) — the evaluation is a pipeline's step name ("" for an evaluate job's own) — plus a `model` row per
    role naming the model scored, so a column says which student it is. No rows when no job holds an evaluation."""
    cells: dict[tuple[str, str, str], dict[str, Any]] = {}
    for label, run_dir in runs:
        for step, folder in find_all(run_dir):
            try:
                ev = load(folder, ws)
            except (FileNotFoundError, ValueError):
                continue
            cols = metric_columns(ev.results)
            for role in roles(ev.results):
                s = ev.summary(role)
                if not any(m in s for m in cols):
                    continue
                cells.setdefault((step, role, "model"), {})[label] = ev.results.get("models", {}).get(role)
                for m in cols:
                    if m in s:
                        cells.setdefault((step, role, m), {})[label] = _r(s[m])
    labels = [label for label, _ in runs]
    headers = ["evaluation", "role", "metric", *labels]
    return headers, [[*key, *(vals.get(label) for label in labels)] for key, vals in cells.items()]
