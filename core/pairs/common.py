"""What the pairs and CRV jobs share: one ledger of model replies, input checks, backends per role, and a stage run.

Both jobs ask several models several things per row (samples, judge scores; critique, rewrite, verdict). Each reply
is appended to `<output>.<suffix>.ndjson` as it arrives, keyed by `<row id>::<what>`; that file is the checkpoint,
so a resumed job asks only for what it lacks (not `.jsonl`: the workspace would list it as a dataset). A row goes,
once, to the output or the rejects file when everything it needs is in; those two files decide which rows are done,
exactly as in synthesis and judging (core.synth.job, core.cot.judge_job), whose runner and output helpers are reused.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config.base import BackendSpec, Sampling
from core.data.io import JsonlAppender, repair_tail, write_records
from core.data.rows import iter_jsonl_rows
from core.data.store import load_job_rows, read_meta, write_meta
from core.jobs.context import JobContext
from core.llm.base import SamplingParams
from core.synth import job as synth_job
from core.synth.job import OutputTarget, dispatch, ids_in, output_target, set_aside_rejects
from core.synth.operators import OpParams, Unit, reject_record
from core.synth.runner import Outcome, Parser, run_units
from core.workspace import Workspace

SEP = "::"  # ledger ids: <row id>::<what>


def make_model(spec: BackendSpec, ws: Workspace, devices: list[str] | None = None, log_dir: Path | None = None):
    """A backend for one role; module-level so tests can put a scripted model in its place."""
    return synth_job.make_teacher(spec, ws, devices=devices, log_dir=log_dir)


class Ledger:
    """Every model reply of a job, one JSON object a line, by id; appended as replies arrive."""

    def __init__(self, target: OutputTarget, suffix: str):
        self.path = target.rows.with_name(f"{target.rows.stem}.{suffix}.ndjson")
        self.entries: dict[str, dict] = {}
        self._out: JsonlAppender | None = None

    def load(self, forget: Callable[[dict], bool] = lambda e: False) -> Ledger:
        """Read what earlier runs recorded; entries `forget` picks are dropped (retry_rejects asks for them again)."""
        if self.path.exists():
            repair_tail(self.path)
            for e in iter_jsonl_rows(self.path):
                if forget(e):
                    self.entries.pop(str(e.get("id")), None)
                else:
                    self.entries[str(e.get("id"))] = e
        return self

    def get(self, key: str) -> dict | None:
        return self.entries.get(key)

    def add(self, entry: dict) -> None:
        assert self._out is not None, "ledger not open"
        self._out.write(entry)
        self.entries[str(entry["id"])] = entry

    def __enter__(self) -> Ledger:
        self._out = JsonlAppender(self.path)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._out is not None:
            self._out.close()


@dataclass
class Inputs:
    """The rows a job will work on, and what was settled before it started."""

    rows: list[dict]
    rejects_now: list[dict]
    done_ok: set[str]
    done_bad: set[str]

    @property
    def done(self) -> set[str]:
        return self.done_ok | self.done_bad

    @property
    def total(self) -> int:
        return len(self.rows) + len(self.rejects_now)

    def note_resume(self, ctx: JobContext, ledger: Ledger, to_go: int) -> None:
        """Say in the job's events what a resumed (or rerun) job found written and on record."""
        if ctx.resumed or self.done or ledger.entries:
            ctx.event(f"resuming: {len(self.done_ok)} pairs and {len(self.done_bad)} rejects written, "
                      f"{len(ledger.entries)} replies on record, {to_go} rows to go")


def read_inputs(ws: Workspace, config: Any, target: OutputTarget, ctx: JobContext,
                unusable: Callable[[dict], str | None]) -> Inputs:
    """Load, cut to `limit`, reject duplicates and rows `unusable` names a reason for; set the rejects file aside on
    `retry_rejects`; read which ids the output and rejects already hold."""
    rows = load_job_rows(ws, config.input, config.limit or 0)  # a malformed record refuses the input, by file:line
    rejects_now: list[dict] = []
    seen: set[str] = set()
    unique = []
    for k, r in enumerate(rows):
        rid = str(r["id"])
        if rid in seen:  # its own id: the kept row's id in the rejects file would mark that row as done
            rejects_now.append(reject_record(f"{rid}#duplicate-at-{k}", "duplicate id in the input (kept the first "
                                             "row)", "input", r))
            continue
        seen.add(rid)
        why = unusable(r)
        if why:
            rejects_now.append(reject_record(rid, why, "input", r))
        else:
            unique.append(r)
    if config.retry_rejects:
        set_aside_rejects(target, ctx)
    return Inputs(unique, rejects_now, ids_in(target.rows), ids_in(target.rejects))


class Backends:
    """One backend per distinct spec (a critic that also rethinks is loaded once), closed together at the end."""

    def __init__(self, ws: Workspace, ctx: JobContext):
        self.ws, self.ctx = ws, ctx
        self._made: dict[str, Any] = {}

    def get(self, spec: BackendSpec) -> Any:
        key = spec.model_dump_json()
        if key not in self._made:
            self._made[key] = make_model(spec, self.ws, devices=self.ctx.devices, log_dir=self.ctx.run_dir)
        return self._made[key]

    def name(self, spec: BackendSpec) -> str:
        return getattr(self.get(spec), "name", "") or spec.model

    def release(self, spec: BackendSpec, keep: Iterable[BackendSpec | None] = ()) -> None:
        """Close the backend of `spec` unless a later stage (`keep`) uses it: a local student leaves the GPU before
        a local judge loads."""
        key = spec.model_dump_json()
        if any(k is not None and k.model_dump_json() == key for k in keep):
            return
        b = self._made.pop(key, None)
        close = getattr(b, "close", None)
        if close:
            close()

    def close(self) -> None:
        for b in self._made.values():
            close = getattr(b, "close", None)
            if close:
                close()
        self._made.clear()

    def __enter__(self) -> Backends:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def seeded(sampling: Sampling, k: int) -> SamplingParams:
    """Sampling for the k-th sample of a prompt: its own seed, so N samples differ and a resumed job redraws alike."""
    params = SamplingParams.from_sampling(sampling)
    if k:
        params.seed = (params.seed if params.seed is not None else 0) + 1009 * k
    return params


def run_stage(units: list[Unit], parser: Parser, spec: BackendSpec, params: SamplingParams, backends: Backends,
              ctx: JobContext, on_outcome: Callable[[Outcome], None], parse_retries: int = 1) -> None:
    """Send `units` to the model of `spec` (batched or pipelined as synthesis does), handing each outcome over as it
    arrives; stops starting new requests once a stop is requested."""
    if not units:
        return
    pipelined, window = dispatch(spec)
    backend = backends.get(spec)
    for o in run_units(parser, units, backend, params, OpParams(template="", teacher=backends.name(spec)),
                       window=window, pipelined=pipelined, parse_retries=parse_retries,
                       should_stop=ctx.should_stop):
        on_outcome(o)


@dataclass
class Sink:
    """The output and rejects files of a running job, with the counts progress reports."""

    target: OutputTarget
    ctx: JobContext
    total: int
    n_ok: int = 0
    n_bad: int = 0
    calls: int = 0
    tokens: int = 0
    t0: float = field(default_factory=time.time)
    _last: float = 0.0
    _out: JsonlAppender | None = None
    _rej: JsonlAppender | None = None

    def __enter__(self) -> Sink:
        self._out, self._rej = JsonlAppender(self.target.rows), JsonlAppender(self.target.rejects)
        return self

    def start(self, inputs: Inputs) -> None:
        """Count what earlier attempts wrote, and reject the input rows refused now that are not settled yet."""
        self.n_ok, self.n_bad = len(inputs.done_ok), len(inputs.done_bad)
        done = inputs.done
        for r in inputs.rejects_now:
            if r["id"] not in done:
                self.bad(r)

    def finish(self, inputs: Inputs, stats_of: Callable[[Path, Path], dict[str, Any]]) -> tuple[bool, dict[str, Any]]:
        """(stopped before every row was settled, the stats `stats_of` reads from the output and rejects files);
        reports the final progress."""
        stopped = self.n_ok + self.n_bad < inputs.total
        stats = stats_of(self.target.rows, self.target.rejects)
        self.report(force=True)
        return stopped, stats

    def __exit__(self, *exc: object) -> None:
        for f in (self._out, self._rej):
            if f is not None:
                f.close()

    def ok(self, row: dict) -> None:
        assert self._out is not None
        self._out.write(row)
        self.n_ok += 1
        self.report()

    def bad(self, rec: dict) -> None:
        assert self._rej is not None
        self._rej.write(rec)
        self.n_bad += 1
        self.report()

    def count(self, o: Outcome) -> None:
        self.calls += 1
        self.tokens += o.prompt_tokens + o.completion_tokens
        self.report()

    def report(self, force: bool = False, **extra: Any) -> None:
        now = time.time()
        if not force and now - self._last < 0.5:
            return
        self._last = now
        written = (self._out.count if self._out else 0) + (self._rej.count if self._rej else 0)
        self.ctx.progress(self.n_ok + self.n_bad, self.total, ok=self.n_ok, rejected=self.n_bad, calls=self.calls,
                          tokens=self.tokens, rows_per_s=round(written / max(now - self.t0, 1e-6), 3), unit="rows",
                          **extra)


def open_dataset(ws: Workspace, config: Any, target: OutputTarget, ctx: JobContext, what: str) -> None:
    """Mark a workspace output dataset as growing (the Data tab previews it while the job runs)."""
    if target.dataset:
        meta = read_meta(ws, target.dataset)
        write_meta(ws, target.dataset, source=config.input, format="canonical", growing=True,
                   created_by=f"{what} ({ctx.job_id})", created_at=meta.get("created_at", time.time()))


def written(rows_path: Path, rejects_path: Path) -> tuple[list[dict], list[dict]]:
    """The rows and rejects in a job's output files (none where a file is not there yet)."""
    return ([*iter_jsonl_rows(rows_path)] if rows_path.exists() else [],
            [*iter_jsonl_rows(rejects_path)] if rejects_path.exists() else [])


def close_dataset(ws: Workspace, target: OutputTarget, sink: Sink, stopped: bool, order: Iterable[str],
                  stats: dict[str, Any]) -> None:
    """Final counts and stats in the sidecar (or a `<output>.stats.json` beside a file output); the JSON array a
    `.json` output asks for, in input order."""
    if target.dataset:
        write_meta(ws, target.dataset, rows=sink.n_ok, rejected=sink.n_bad, growing=False, stopped=stopped,
                   stats=stats)
    else:
        stats_path = target.rows.with_name(target.rows.stem + ".stats.json")
        stats_path.write_text(json.dumps(stats, ensure_ascii=False, indent=2), encoding="utf-8")
    if target.json_path and not stopped:
        pos = {rid: i for i, rid in enumerate(order)}
        rows = sorted(iter_jsonl_rows(target.rows), key=lambda r: pos.get(str(r.get("id")), len(pos)))
        write_records(target.json_path, rows, "json")


def target_for(ws: Workspace, config: Any, suffix: str) -> OutputTarget:
    return output_target(ws, config, suffix)
