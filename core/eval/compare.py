"""Comparing two evaluation runs: what changed per metric, and which rows flipped.

Typical use: the student before and after distillation on the same held-out set. Rows are paired by id (never by
position), so two runs with different limits or orders still compare correctly; rows only one run has are counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.eval.results import HIGHER_IS_BETTER, EvalRun, correct, metric_columns, roles


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
    if a.results.get("dataset") != b.results.get("dataset"):
        notes.append(f"the runs used different datasets ({a.results.get('dataset')} vs {b.results.get('dataset')}): "
                     "only rows with the same id are paired")
    return Comparison(summary, changed, len(common), len(rows_a) - len(common), len(rows_b) - len(common), notes)


def _r(v: Any) -> Any:
    return round(v, 4) if isinstance(v, float) else v
