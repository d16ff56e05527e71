"""The data-operation jobs (`data_split`, `data_dedupe`, `data_stats`, `data_export`, `data_balance`): the Data tab's
whole-dataset buttons run here, in a job process rather than the studio's, streamed in bounded memory (core.data.ops,
core.data.stats, core.data.convert), with progress in rows and a Stop that leaves nothing half-written (outputs are
renamed into place only once complete).

Each job writes what it makes (new datasets, an export file) and `output/result.json` in its run folder: the numbers
the tab shows when the job ends (`result_of`). `op_job` builds a job from the tab's values; `writes` names what a job
writes, so that two jobs never write one dataset at once (core.jobs.outputs asks).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.config.data_jobs import (
    DATA_OP_JOBS,
    DataBalanceJob,
    DataDedupeJob,
    DataExportJob,
    DataSplitJob,
    DataStatsJob,
)
from core.data.stream import Stopped, Tracker
from core.jobs.context import JobContext
from core.said import said_dict
from core.workspace import Workspace

RESULT_FILE = "result.json"
KINDS = {c.model_fields["kind"].default: c for c in DATA_OP_JOBS}


def run(config: Any, ctx: JobContext) -> None:
    track = Tracker(lambda done, total: ctx.progress(done, total, unit="rows"), ctx.should_stop)
    try:
        result = _OPS[config.kind](config, ctx.workspace, track)
    except Stopped:
        ctx.event(f"stopped on request after {track.done:,} rows read: nothing written")
        return
    (ctx.output_dir / RESULT_FILE).write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
    ctx.event(result["message"])


def _base(ref: str) -> str:
    """What outputs are named after by default (as core.data.stream.Source.base)."""
    return Path(ref).stem if "/" in ref else ref


def _split(c: DataSplitJob, ws: Workspace, track: Tracker) -> dict:
    from core.data.ops import split_dataset

    tn, nt, en, ne = split_dataset(ws, c.input, c.eval_share, c.seed, c.train_output or None, c.eval_output or None,
                                   confined=False, track=track, group_key=c.group_key)
    return {"train": tn, "train_rows": nt, "eval": en, "eval_rows": ne,
            "message": f"split {c.input}: {tn} {nt} rows, {en} {ne} rows"}


def _dedupe(c: DataDedupeJob, ws: Workspace, track: Tracker) -> dict:
    from core.data.ops import dedupe_dataset

    new, kept, removed = dedupe_dataset(ws, c.input, c.by, c.output or None, confined=False, track=track)
    return {"name": new, "kept": kept, "removed": removed,
            "message": f"dedupe of {c.input} by {c.by}: {new} keeps {kept} rows, {removed} duplicates removed"}


def _stats(c: DataStatsJob, ws: Workspace, track: Tracker) -> dict:
    from core.data.stats import compute_stats, tokenizer_dir
    from core.data.store import resolve_dataset

    tok = tokenizer_dir(ws, c.tokenizer) if (c.tokenizer or "").strip() else None
    st = compute_stats(resolve_dataset(ws, c.input, confined=False), tok, c.token_sample, track=track)
    return {"stats": st.to_dict(), "message": f"statistics of {c.input}: {st.rows} rows, "
            f"{st.duplicate_instructions} duplicate instructions, {st.duplicate_pairs} duplicate pairs"}


def _export(c: DataExportJob, ws: Workspace, track: Tracker) -> dict:
    from core.data.convert import export_dataset

    done = export_dataset(ws, c.input, c.format, keep_id=c.keep_ids, llamafactory=c.llamafactory, track=track)
    res = done.result
    return {"path": str(res.path), "written": res.written, "skipped": len(res.skipped),
            "first_skipped": list(res.skipped[0]) if res.skipped else None, "lost": res.lost, "format": res.fmt,
            "first_skipped_reason": said_dict(res.skipped[0][1]) if res.skipped else None,
            "info_path": str(done.info_path) if done.info_path else None, "info_name": done.info_name,
            "message": res.summary()}


def _balance(c: DataBalanceJob, ws: Workspace, track: Tracker) -> dict:
    from core.data.ops import balance_dataset

    new, n, rep = balance_dataset(ws, c.input, c.shares, c.total, c.seed, c.upsample, c.output or None,
                                  confined=False, track=track)
    return {"name": new, "rows": n, "before": rep.before, "after": rep.after, "target": rep.target,
            "short": rep.short, "message": f"balanced {c.input} into {new}: {n} rows"}


_OPS = {"data_split": _split, "data_dedupe": _dedupe, "data_stats": _stats, "data_export": _export,
        "data_balance": _balance}


# ------------------------------------------------------------------------------------------ for the jobs and the tab


def writes(config: Any, ws: Workspace) -> list[Path]:
    """The datasets / file the job writes (the job system keeps a second writer of one of them waiting)."""
    from core.data.convert import EXPORT_FORMATS
    from core.data.store import dataset_path

    base = _base(config.input)
    if config.kind == "data_split":
        return [dataset_path(ws, config.train_output or f"{base}-train"),
                dataset_path(ws, config.eval_output or f"{base}-eval")]
    if config.kind == "data_dedupe":
        return [dataset_path(ws, config.output or f"{base}-dedup")]
    if config.kind == "data_balance":
        return [dataset_path(ws, config.output or f"{base}-balanced")]
    if config.kind == "data_export":
        return [ws.datasets / "exports" / f"{config.input}-{config.format}{EXPORT_FORMATS[config.format]}"]
    return []


def op_job(ws: Workspace, kind: str, dataset: str, **values: Any) -> Any:
    """The job a Data tab button submits: `kind` over workspace dataset `dataset` with the section's values,
    validated and confined to the workspace (a FormError says what is wrong)."""
    from pydantic import ValidationError

    from core.config.errors import explain
    from core.forms.form import FormError
    from core.refs import confine_paths

    try:
        job = KINDS[kind].model_validate({"input": dataset, "name": f"{kind.removeprefix('data_')} {dataset}",
                                          **values})
    except ValidationError as e:
        raise FormError("; ".join(explain(e))) from None
    confine_paths(job, ws)
    return job


def result_of(info: Any) -> dict | None:
    """What a finished data job made (its result.json), or None: not finished, failed, stopped, or no result."""
    if info is None or info.status != "succeeded" or not info.run_dir:
        return None
    path = Path(info.run_dir) / "output" / RESULT_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
