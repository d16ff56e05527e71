"""An evaluation's results on disk and the views the UI and CLI show of them.

A finished (or stopped) `evaluate` job leaves in its output folder:

    results.json   summary: per model (the evaluated ones, the reference) and metric, the judge's tallies, the config
    rows.jsonl     one object per dataset row: prompt, gold answer, every answer, checks, judge verdicts, KL, NLL

Roles: `model` is the evaluated model (the first one when several students are evaluated in one job: `model_2`,
`model_3`, ... follow, listed in results.json's `evaluated`), `reference` the teacher. A row's per-model keys are
`<role>_<name>` (`model_2_answer`, `model_2_perplexity`); the keys that predate several students carry no role for
the first model (`kl`, `judge_outcome`) and `<role>_` before them for the others (`model_2_kl`): see `prefix`.

The summary table is "one row per model, one column per metric"; the drill-down is the per-row file filtered; exports
are JSON (both files in one), CSV (rows) and Markdown (a short report to paste into a journal or issue).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.data.io import write_records
from core.data.rows import iter_jsonl_rows
from core.jobs.rundir import PIPELINE_FILE, read_json, write_json_atomic
from core.workspace import Workspace

RESULTS_FILE = "results.json"
ROWS_FILE = "rows.jsonl"
FORMAT_VERSION = 1
ROLES = ("model", "reference")  # of a one-model evaluation; with several students see `roles`
METRICS = ("exact_match", "math_verify", "judge_winrate", "kl", "perplexity", "rouge_l", "reward_model")
# Higher is better for these; lower for kl / perplexity (used by compare and the plots' titles).
HIGHER_IS_BETTER = {"exact_match": True, "math_verify": True, "judge_winrate": True, "kl": False,
                    "perplexity": False, "rouge_l": True, "reward_model": True}
_EXTRA_ROLE = re.compile(r"^(model_\d+)_answer$")
DRILLDOWN_FILTERS = ("all", "model_wrong", "model_right", "judge_win", "judge_loss", "judge_tie", "highest_kl")


@dataclass
class EvalRun:
    """results.json + rows.jsonl of one evaluation, loaded."""

    folder: Path
    results: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.results.get("name") or self.folder.parent.name)

    def summary(self, role: str = "model") -> dict[str, Any]:
        return dict(self.results.get("summary", {}).get(role, {}))


def student_role(i: int) -> str:
    """The role of the i-th evaluated model (0-based): `model`, `model_2`, `model_3`, ..."""
    return "model" if i == 0 else f"model_{i + 1}"


def prefix(role: str) -> str:
    """What goes before a per-model row key that predates several students (`kl`, `judge_outcome`, ...)."""
    return "" if role == "model" else f"{role}_"


def evaluated_roles(results: dict[str, Any]) -> list[str]:
    """The evaluated models' roles, in order (`model` alone for results written before several students)."""
    return [str(r) for r in results.get("evaluated") or ["model"]]


def roles(results: dict[str, Any]) -> list[str]:
    """Every role of an evaluation: the evaluated models, then the reference."""
    return [*evaluated_roles(results), "reference"]


def row_roles(rows: list[dict[str, Any]]) -> list[str]:
    """The evaluated roles the rows hold answers of (`model` first, then `model_2`, ... in order)."""
    extra = {m.group(1) for r in rows for k in r for m in [_EXTRA_ROLE.match(k)] if m}
    return ["model", *sorted(extra, key=lambda x: int(x.rsplit("_", 1)[1]))]


def save(folder: Path, results: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """Write both files atomically (readers — the studio polling a running job — never see a torn file)."""
    results = {"format": "eds-eval", "version": FORMAT_VERSION, **results}
    write_records(folder / ROWS_FILE, rows, "jsonl")
    write_json_atomic(folder / RESULTS_FILE, results)


def find_results(ref: str | os.PathLike, ws: Workspace | None = None) -> Path:
    """The folder holding results.json for a job id, a run folder, or the output folder itself."""
    raw = str(ref).strip()
    candidates: list[Path] = []
    if ws is not None and raw and "/" not in raw and os.sep not in raw:
        candidates.append(ws.runs / raw)
    candidates.append(Path(raw).expanduser())
    for c in candidates:
        for folder in (c, c / "output"):
            if (folder / RESULTS_FILE).is_file():
                return folder
        if (c / "output").is_dir():  # inside a pipeline: output/<step>/results.json
            found = sorted((c / "output").glob(f"*/{RESULTS_FILE}"))
            if found:
                return found[0].parent
    raise FileNotFoundError(f"no evaluation results for '{raw}' (looked for {RESULTS_FILE} in "
                            f"{', '.join(str(c) for c in candidates)})")


def find_all(run_dir: str | os.PathLike) -> list[tuple[str, Path]]:
    """Every evaluation one run folder holds, as (step, folder): an evaluate job's own output ("", output/), or a
    pipeline's evaluate steps (their names, in the pipeline's order: output/<step>/)."""
    out_dir = Path(run_dir) / "output"
    if (out_dir / RESULTS_FILE).is_file():
        return [("", out_dir)]
    if not out_dir.is_dir():
        return []
    order = [str(s) for s in read_json(Path(run_dir) / PIPELINE_FILE).get("steps", [])]
    found = {p.parent.name: p.parent for p in out_dir.glob(f"*/{RESULTS_FILE}")}
    names = [n for n in order if n in found] + sorted(n for n in found if n not in order)
    return [(n, found[n]) for n in names]


def load(ref: str | os.PathLike, ws: Workspace | None = None) -> EvalRun:
    folder = find_results(ref, ws)
    for name in (RESULTS_FILE, ROWS_FILE):
        if ws is not None:
            ws.local(folder / name)  # a link planted in a run folder that leads out is never followed
    try:
        results = json.loads((folder / RESULTS_FILE).read_text(encoding="utf-8"))
    except ValueError as e:
        raise ValueError(f"{folder / RESULTS_FILE}: not valid JSON ({e})") from None
    rows = list(iter_jsonl_rows(folder / ROWS_FILE)) if (folder / ROWS_FILE).exists() else []
    return EvalRun(folder, results, rows)


def metric_columns(results: dict[str, Any]) -> list[str]:
    """The metrics this evaluation has values for, in the canonical order."""
    present = {m for role in roles(results) for m in results.get("summary", {}).get(role, {})}
    return [m for m in METRICS if m in present]


def summary_table(results: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows: one row per model (the evaluated ones side by side, then the reference), one column per
    metric; n = rows scored."""
    cols = metric_columns(results)
    headers = ["role", "model", *cols, "rows"]
    table = []
    for role in roles(results):
        s = results.get("summary", {}).get(role)
        if not s:
            continue
        name = results.get("models", {}).get(role, role)
        table.append([role, name, *[_round(s.get(m)) for m in cols], results.get("rows_done", 0)])
    return headers, table


def _round(v: Any, nd: int = 4) -> Any:
    return round(v, nd) if isinstance(v, float) else v


def drill_columns(evaluated: list[str]) -> list[str]:
    """The drill-down's columns for these evaluated roles (DRILL_COLUMNS for one model): answers side by side."""
    cols = ["id", "prompt", "gold"]
    for role in evaluated:
        cols += [f"{role}_answer", f"{role}_correct"]
    cols += ["reference_answer", "reference_correct"]
    for role in evaluated:
        p = prefix(role)
        cols += [f"{p}judge_outcome", f"{p}judge_verdicts", f"{p}kl", f"{role}_perplexity", f"{role}_rouge_l",
                 f"{role}_reward"]
    return [*cols, "reference_rouge_l", "reference_reward"]


DRILL_COLUMNS = drill_columns(["model"])


def correct(row: dict[str, Any], role: str) -> bool | None:
    """A row's answer check for one model: math-verify when run, else exact match; None when not checked."""
    for metric in ("math_verify", "exact_match"):
        v = row.get(f"{role}_{metric}")
        if v is not None:
            return bool(v)
    return None


def drilldown(rows: list[dict[str, Any]], how: str = "all", limit: int = 200,
              text_chars: int = 400) -> tuple[list[str], list[list[Any]]]:
    """Per-row table for the UI: filtered (see DRILLDOWN_FILTERS), long texts cut to `text_chars`."""
    if how not in DRILLDOWN_FILTERS:
        raise ValueError(f"unknown filter '{how}'; use one of {', '.join(DRILLDOWN_FILTERS)}")
    sel = rows
    if how == "model_wrong":
        sel = [r for r in rows if correct(r, "model") is False]
    elif how == "model_right":
        sel = [r for r in rows if correct(r, "model") is True]
    elif how.startswith("judge_"):
        sel = [r for r in rows if r.get("judge_outcome") == how.removeprefix("judge_")]
    elif how == "highest_kl":
        sel = sorted((r for r in rows if r.get("kl") is not None), key=lambda r: -r["kl"])
    columns = drill_columns(row_roles(rows))
    out = [[_cell(r, c, text_chars) for c in columns] for r in sel[:limit]]
    # columns no row has a value in (no reference, no judge, ...) are left out
    keep = [i for i, c in enumerate(columns) if c in ("id", "prompt") or any(row[i] is not None for row in out)]
    return [columns[i] for i in keep], [[row[i] for i in keep] for row in out]


def _cell(r: dict[str, Any], column: str, text_chars: int) -> Any:
    if column.endswith("_correct"):
        return correct(r, column.removesuffix("_correct"))
    if column.endswith("judge_verdicts"):
        p = column.removesuffix("judge_verdicts")
        if not r.get(f"{p}judge_outcome"):
            return None
        return "/".join(str(r.get(f"{p}{k}") or "-") for k in ("judge_model_first", "judge_model_second"))
    v = r.get(column)
    return _cut(v, text_chars) if isinstance(v, str) and column != "id" else _round(v)


def _cut(v: Any, n: int) -> Any:
    if isinstance(v, str) and len(v) > n:
        return v[: n - 1] + "…"
    return v


def row_detail(rows: list[dict[str, Any]], row_id: str) -> dict[str, Any] | None:
    """The full record of one row (for the drill-down's detail view)."""
    return next((r for r in rows if str(r.get("id")) == str(row_id)), None)


EXPORT_FORMATS = ("json", "csv", "md")


def export(run: EvalRun, fmt: str, dest: str | os.PathLike | None = None) -> Path:
    """Write the evaluation as one JSON (summary + rows), a CSV of rows, or a Markdown report. Returns the file."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format '{fmt}'; use one of {', '.join(EXPORT_FORMATS)}")
    path = Path(dest) if dest else run.folder / f"evaluation.{fmt}"
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "json":
        write_json_atomic(path, {"results": run.results, "rows": run.rows})
    elif fmt == "csv":
        write_records(path, run.rows or [{"id": None}], "csv")
    else:
        path.write_text(markdown_report(run), encoding="utf-8")
    return path


def markdown_report(run: EvalRun) -> str:
    res = run.results
    lines = [f"# Evaluation: {run.name}", ""]
    lines.append(f"Dataset: `{res.get('dataset', '?')}` — {res.get('rows_done', 0)} of {res.get('rows_total', 0)} "
                 f"rows{'' if res.get('complete', True) else ' (incomplete: stopped early)'}")
    lines.append("")
    headers, table = summary_table(res)
    lines.append(_md_table(headers, table))
    judges = res.get("judges") or ({"model": res["judge"]} if res.get("judge") else {})
    for role, judge in judges.items():
        if not judge:
            continue
        who = f" ({role})" if len(judges) > 1 else ""
        lines += ["", f"Judge{who} (position-swapped): "
                  f"{judge.get('wins', 0)} wins / {judge.get('ties', 0)} ties / {judge.get('losses', 0)} losses, "
                  f"{judge.get('unjudged', 0)} unjudged; order consistency {_pct(judge.get('consistency'))}, "
                  f"first-position preference {_pct(judge.get('first_position_rate'))}"]
    for note in res.get("notes", []):
        lines.append(f"- {note}")
    return "\n".join(lines) + "\n"


def _pct(v: Any) -> str:
    return "n/a" if v is None else f"{100 * v:.0f}%"


def _md_table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        return "" if v is None else str(v).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(out)
