"""The synthesis job: `run(SynthJob, ctx)`, resumable by row id, nothing lost under faults.

- Output rows are appended to `<output>.jsonl` as they finish (one line each, flushed); rows that fail (API error
  after the backend's retries, an unparseable reply, an unusable input row) go to `<output>.rejects.jsonl` with the
  reason. Every input row therefore ends up in exactly one of the two files. A record of the input that cannot be
  read at all (broken JSON, not UTF-8, not an object) refuses the input before anything runs, named by file and line
  (`core.data.store.load_job_rows`): a rejects entry could not hold it, and skipping it would lose it silently.
- A restarted job (resume after a stop, a crash or `kill -9`) reads the ids already in both files and sends only the
  rest; a torn last line is cut off first. `retry_rejects` moves the rejects file aside (`.bak`) and runs those rows
  again.
- Progress: rows done / total, rows/s, tokens used, rejects, via ctx.progress (the Jobs tab derives ETA).
- Outputs: a workspace dataset (`workspace/datasets/<name>.jsonl` + sidecar), or a file path (.jsonl, or .json
  written as a JSON array at the end: what EasyDistill 1.x configs and the next pipeline step expect).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config.data_jobs import SynthJob
from core.data.errors import DataError
from core.data.io import JsonlAppender, repair_tail, write_records
from core.data.ops import balance
from core.data.rows import iter_jsonl_rows
from core.data.store import check_name, load_job_rows, read_meta, resolve_dataset, save_rows, write_meta
from core.jobs.context import JobContext
from core.llm.base import SamplingParams
from core.synth.operators import DEFAULT_CATEGORIES, OpParams, make_units, reject_record
from core.synth.runner import run_units
from core.synth.sharded import open_teachers, progress_fields
from core.synth.sharded import report as report_replicas
from core.synth.templates import check_template, load_template
from core.workspace import Workspace


@dataclass
class OutputTarget:
    rows: Path  # the JSONL the job appends to
    rejects: Path
    json_path: Path | None = None  # also written as a JSON array at the end
    dataset: str | None = None  # workspace dataset name (sidecar maintained)

    @property
    def label(self) -> str:
        return self.dataset or str(self.rows)


def default_output_name(config: SynthJob, suffix: str | None = None) -> str:
    stem = Path(config.input).name
    for ext in (".jsonl", ".json", ".csv", ".tsv", ".parquet"):
        stem = stem.removesuffix(ext)
    return f"{stem}-{suffix or config.operator}"


def output_target(ws: Workspace, config: SynthJob, suffix: str | None = None) -> OutputTarget:
    """Where a job writes: a dataset name (no '/'), or a file path ending in .jsonl / .json.

    A relative path is taken against the workspace (a config file's own relative paths were anchored at its folder
    when it was loaded, `core.config.io`). A name, or a path into the workspace, never leads out through a link
    (`Workspace.inside` / `Workspace.local`): every file the job writes is checked before the first row."""
    out = (config.output or default_output_name(config, suffix)).strip()
    if "/" not in out and os.sep not in out:
        name = check_name(out.removesuffix(".json"))
        json_path = ws.datasets / f"{name}.json" if out.endswith(".json") and not out.endswith(".jsonl") else None
        files = (ws.datasets / f"{name}.jsonl", ws.datasets / f"{name}.rejects.jsonl", json_path)
        rows, rejects, json_path = (ws.inside(f) if f is not None else None for f in files)
        return OutputTarget(rows, rejects, json_path, name)  # type: ignore[arg-type]
    p = ws.local(out, ws.root)
    rejects = ws.local(p.with_name(p.stem + ".rejects.jsonl"))
    if p.suffix == ".jsonl":
        return OutputTarget(p, rejects)
    if p.suffix == ".json":
        return OutputTarget(ws.local(p.with_suffix(".jsonl")), rejects, p)
    raise DataError(f"output '{out}': a file output must end in .jsonl or .json (or give a dataset name)")


def set_aside_rejects(target: OutputTarget, ctx: JobContext) -> None:
    """`retry_rejects`: move the rejects file to `.bak` (appended, so earlier rounds stay) so its rows run again."""
    if not target.rejects.exists():
        return
    bak = target.rejects.with_name(target.rejects.name + ".bak")
    with open(bak, "a", encoding="utf-8") as dst, open(target.rejects, encoding="utf-8") as src:
        dst.write(src.read())
    target.rejects.unlink()
    ctx.event(f"retrying rejects: previous rejects kept in {bak.name}")


def ids_in(path: Path) -> set[str]:
    if not path.exists():
        return set()
    repair_tail(path)
    return {str(r.get("id")) for r in iter_jsonl_rows(path)}


def op_params(config: SynthJob, ws: Workspace, teacher_name: str = "") -> OpParams:
    text = load_template(config.operator, config.template, ws, config.prompt)
    check_template(config.operator, text)
    return OpParams(
        template=text, system_prompt=config.system_prompt, num_in_context_samples=config.num_in_context_samples,
        num_output_samples=config.num_output_samples, seed=config.seed,
        categories=list(config.categories or (config.target_shares or {}) or DEFAULT_CATEGORIES), teacher=teacher_name,
    )


def dispatch(spec) -> tuple[bool, int]:
    """(pipelined?, window): HTTP teachers keep `concurrency` requests in flight; local ones batch `batch_size`."""
    if spec.type in ("openai", "vllm"):
        return True, (spec.endpoint.concurrency if spec.endpoint else 32)
    return False, spec.batch_size


def make_teacher(spec, ws: Workspace, devices: list[str] | None = None, log_dir: Path | None = None):
    from core.llm.factory import make_backend  # lazy: a local teacher imports torch

    return make_backend(spec, ws, devices=devices, log_dir=log_dir)


# `capture` (label with a local teacher): a factory (config, target, ctx, backend) -> an object with `k`,
# `add(row_id, prompt, row, completion)`, `force()`, `close()` and `summary()`. The synth job's entry
# (core.train.live_capture.run) passes core.train.live_capture's: the training room builds on this one, not back.
CaptureFactory = Callable[[SynthJob, OutputTarget, JobContext, Any], Any]


def run(config: SynthJob, ctx: JobContext, capture: CaptureFactory | None = None) -> None:
    ws = ctx.workspace
    if config.capture and capture is None:
        raise ValueError("`capture` needs the logit-cache writer: run synth jobs through their entry "
                         "(core.train.live_capture.run)")
    target = output_target(ws, config)
    rows = load_job_rows(ws, config.input, config.limit or 0)  # a malformed record refuses the input, by file:line
    params = op_params(config, ws)
    units, rejects_now = make_units(config.operator, rows, params)
    seen: set[str] = set()
    unique = []
    for k, u in enumerate(units):
        if u.id in seen:  # its own reject id: the kept row's id in the rejects file would mark that row as done
            rejects_now.append(reject_record(f"{u.id}#duplicate-at-{k}", "duplicate id in the input (kept the first "
                                             "row)", "input", u.row))
        else:
            seen.add(u.id)
            unique.append(u)
    units = unique
    total = len(units) + len(rejects_now)

    if config.retry_rejects:
        set_aside_rejects(target, ctx)
    done_ok, done_bad = ids_in(target.rows), ids_in(target.rejects)
    done = done_ok | done_bad
    pending = [u for u in units if u.id not in done]
    if ctx.resumed or done:
        ctx.event(f"resuming: {len(done_ok)} rows and {len(done_bad)} rejects already written, {len(pending)} to go")
    if target.dataset:
        meta = read_meta(ws, target.dataset)
        write_meta(ws, target.dataset, source=config.input, format="canonical", growing=True, operator=config.operator,
                   created_by=f"synth:{config.operator} ({ctx.job_id})", created_at=meta.get("created_at", time.time()))

    n_ok, n_bad = len(done_ok), len(done_bad)
    ptok = ctok = 0
    t0 = time.time()
    last_report = 0.0
    stopped = False
    with JsonlAppender(target.rows) as out, JsonlAppender(target.rejects) as rej:
        for r in rejects_now:
            if r["id"] not in done:
                rej.write(r)
                n_bad += 1
        ctx.progress(n_ok + n_bad, total, unit="rows", ok=n_ok, rejected=n_bad, rows_per_s=0.0, tokens=0)
        if pending:
            backend = open_teachers(config.teacher, config.backends, ws, ctx, make_teacher)
            params.teacher = getattr(backend, "name", "") or config.teacher.model
            pipelined, window = dispatch(config.teacher)
            sampling = SamplingParams.from_sampling(config.sampling)
            live = None
            try:
                live = capture(config, target, ctx, backend) if config.capture and capture else None
                for o in run_units(config.operator, pending, backend, sampling, params,
                                   window=window, pipelined=pipelined, parse_retries=config.parse_retries,
                                   should_stop=ctx.should_stop, top_logprobs=live.k if live else 0):
                    if o.row is not None:
                        out.write(o.row)
                        n_ok += 1
                        if live:
                            live.add(o.unit.id, o.unit.messages, o.row, o.completion)
                    else:
                        rej.write(o.reject)
                        n_bad += 1
                    ptok += o.prompt_tokens
                    ctok += o.completion_tokens
                    now = time.time()
                    if now - last_report >= 0.5:
                        last_report = now
                        ctx.progress(n_ok + n_bad, total, unit="rows", ok=n_ok, rejected=n_bad, tokens=ptok + ctok,
                                     prompt_tokens=ptok, completion_tokens=ctok,
                                     rows_per_s=round((out.count + rej.count) / max(now - t0, 1e-6), 3),
                                     **progress_fields(backend))
                if live:
                    live.force()
            finally:
                report_replicas(backend, ctx)
                close = getattr(backend, "close", None)
                if close:
                    close()
                if live:
                    live.close()
                    ctx.event(live.summary(), captured=live.stored)
            stopped = ctx.should_stop() and n_ok + n_bad < total
    elapsed = max(time.time() - t0, 1e-6)
    ctx.progress(n_ok + n_bad, total, unit="rows", ok=n_ok, rejected=n_bad, tokens=ptok + ctok, prompt_tokens=ptok,
                 completion_tokens=ctok, rows_per_s=round((n_ok + n_bad - len(done)) / elapsed, 3))
    _finish(ws, config, target, n_ok, n_bad, ctx, stopped, {u.id: i for i, u in enumerate(units)})


def _finish(ws: Workspace, config: SynthJob, target: OutputTarget, n_ok: int, n_bad: int, ctx: JobContext,
            stopped: bool, order: dict[str, int]) -> None:
    if target.dataset:
        write_meta(ws, target.dataset, rows=n_ok, rejected=n_bad, growing=False, stopped=stopped)
    if target.json_path:  # the JSON array follows the input order (the JSONL has completion order)
        rows = sorted(iter_jsonl_rows(target.rows), key=lambda r: order.get(str(r.get("id")), len(order)))
        write_records(target.json_path, rows, "json")
    what = "stopped" if stopped else "done"
    ctx.event(f"{what}: {n_ok} rows in {target.label}, {n_bad} rejects in {target.rejects.name}")
    if config.operator == "classify" and config.target_shares and not stopped:
        rows = list(iter_jsonl_rows(target.rows))
        balanced, report = balance(rows, config.target_shares, config.balance_total, config.seed,
                                   config.balance_upsample)
        if target.dataset:
            name = f"{target.dataset}-balanced"
            save_rows(ws, name, balanced, created_by=f"balance ({ctx.job_id})", source=target.dataset,
                      shares=config.target_shares, before=report.before, after=report.after)
        else:
            write_records(target.rows.with_name(target.rows.stem + "-balanced.jsonl"), balanced, "jsonl")
        ctx.event(f"balanced: {len(balanced)} rows; per category {json.dumps(report.after, ensure_ascii=False)}")


def input_path(ws: Workspace, config: SynthJob) -> Path:
    return resolve_dataset(ws, config.input, confined=False)
