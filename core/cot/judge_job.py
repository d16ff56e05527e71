"""The judge job: `run(JudgeJob, ctx)` scores rows with an LLM judge, one call per (row, metric), resumable.

It runs on the synthesis machinery (core.synth.runner: batched or pipelined calls, backend retries, stop between
units, "judge unavailable" after a streak of failed requests) with a score parser in place of an operator's parser.

- Every judge reply is appended to `<output>.judge.ndjson` as it arrives ({id: "<row id>::<metric>", row_id, metric,
  score, reply, judge}); it is both the raw-reply record and the checkpoint of finished calls, so a resumed job never
  asks again for a (row, metric) it already has. (Not `.jsonl`: the workspace would list it as a dataset.)
- Once a row's metrics are all settled it goes, once, to the output (scores in `rv`, `cd`, `correctness`, ... and
  the judge in `<metric>_judge`) or to the rejects file: a request that failed after the backend's retries, or a reply
  with no score in range (flagged in `judge_flags`). Rows already scored (imported OmniThought traces) are not asked
  again unless `rescore`; `correctness` is checked with math-verify where `answer_field` gives a reference answer.
- Restart after a stop, a crash or `kill -9`: ids in the output and rejects are skipped, replies already recorded are
  reused; `retry_rejects` sets the rejects file aside and asks again only for what those rows lack.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.config.data_jobs import JudgeJob
from core.cot.scores import parse_score
from core.data.io import JsonlAppender, repair_tail, write_records
from core.data.rows import iter_jsonl_rows, prompt_text, response_text
from core.data.store import load_job_rows, read_meta, write_meta
from core.jobs.context import JobContext
from core.llm.base import SamplingParams
from core.synth.job import OutputTarget, dispatch, ids_in, make_teacher, output_target, set_aside_rejects
from core.synth.operators import OpParams, Unit, reject_record
from core.synth.runner import run_units
from core.synth.sharded import open_teachers, progress_fields
from core.synth.sharded import report as report_replicas
from core.synth.templates import check_template, load_template, render
from core.workspace import Workspace

SEP = "::"  # unit id = <row id>::<metric>
make_judge = make_teacher  # module-level so tests can put a scripted judge in its place


def replies_path(target: OutputTarget) -> Path:
    return target.rows.with_name(target.rows.stem + ".judge.ndjson")


def templates_for(config: JudgeJob, ws: Workspace) -> dict[str, str]:
    """The rubric text of each metric (checked before any call, so a broken template costs nothing)."""
    out = {}
    for m in config.metrics:
        name = f"judge_{m}"
        text = load_template(name, config.templates.get(m), ws)
        check_template(name, text)
        out[m] = text
    return out


def cot_response(row: dict) -> str:
    """What the judge grades: the full response, else thought + solution (OmniThought fields)."""
    out = response_text(row)
    if out not in (None, "") and str(out).strip():
        return str(out)
    if row.get("thought") or row.get("solution"):
        return f"<think>\n{row.get('thought') or ''}\n</think>\n\n{row.get('solution') or ''}".strip()
    return ""


def judge_messages(template: str, row: dict, system_prompt: str) -> list[dict]:
    user = render(template, {"instruction": prompt_text(row), "response": cot_response(row)})
    return ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [{"role": "user",
                                                                                          "content": user}]


def read_replies(path: Path, drop_unscored: bool = False) -> dict[tuple[str, str], dict]:
    """(row id, metric) -> the latest recorded reply; with `drop_unscored`, replies without a score are forgotten
    (retry_rejects asks again for them)."""
    if not path.exists():
        return {}
    repair_tail(path)
    out = {}
    for e in iter_jsonl_rows(path):
        key = (str(e.get("row_id")), str(e.get("metric")))
        if drop_unscored and e.get("score") is None:
            out.pop(key, None)
        else:
            out[key] = e
    return out


def math_verify_correctness(row: dict, answer_field: str | None) -> int | None:
    """1/0 from math-verify against the row's reference answer; None when the row has none (the judge decides)."""
    if not answer_field or row.get(answer_field) in (None, ""):
        return None
    from core.eval.answers import math_verify_match

    return int(math_verify_match(cot_response(row), str(row[answer_field])))


@dataclass
class RowState:
    """A row waiting for its metrics: what is scored so far and what went wrong."""

    row: dict
    waiting: int = 0
    scores: dict[str, tuple[int | None, str]] = field(default_factory=dict)  # metric -> (score, judge)
    failed: dict[str, str] = field(default_factory=dict)  # metric -> request error


def finish_row(state: RowState) -> tuple[dict | None, dict | None]:
    """(output row, None) when every metric has a score, else (None, reject record)."""
    row = dict(state.row)
    flags = sorted(m for m, (s, _) in state.scores.items() if s is None)
    for m, (score, judge) in state.scores.items():
        row[m] = score
        row[f"{m}_judge"] = judge
    rid = str(row["id"])
    if state.failed:
        reason = "; ".join(f"{m}: request failed: {err}" for m, err in sorted(state.failed.items()))
        return None, reject_record(rid, reason, "request", {**row, "judge_flags": sorted(state.failed) + flags})
    if flags:
        row["judge_flags"] = flags
        return None, reject_record(rid, f"no score in the judge's reply for {', '.join(flags)}", "parse", row)
    return row, None


def _score_parser(metric_of: dict[str, tuple[str, str]]):
    def parse(unit: Unit, text: str, params: OpParams) -> dict:
        rid, metric = metric_of[unit.id]
        return {"id": unit.id, "row_id": rid, "metric": metric, "score": parse_score(text, metric), "reply": text}

    return parse


def run(config: JudgeJob, ctx: JobContext) -> None:
    ws = ctx.workspace
    target = output_target(ws, config, "judge")
    side = replies_path(target)
    rows = load_job_rows(ws, config.input, config.limit or 0)  # a malformed record refuses the input, by file:line
    templates = templates_for(config, ws)

    rejects_now: list[dict] = []
    seen: set[str] = set()
    unique = []
    for k, r in enumerate(rows):
        rid = str(r["id"])
        if rid in seen:  # its own reject id: the kept row's id in the rejects file would mark that row as done
            rejects_now.append(reject_record(f"{rid}#duplicate-at-{k}", "duplicate id in the input (kept the first "
                                             "row)", "input", r))
        elif not prompt_text(r).strip() or not cot_response(r):
            seen.add(rid)
            rejects_now.append(reject_record(rid, "the row has no instruction or no response to judge", "input", r))
        else:
            seen.add(rid)
            unique.append(r)
    total = len(unique) + len(rejects_now)

    if config.retry_rejects:
        set_aside_rejects(target, ctx)
    done_ok, done_bad = ids_in(target.rows), ids_in(target.rejects)
    done = done_ok | done_bad
    replies = read_replies(side, drop_unscored=config.retry_rejects)

    states: dict[str, RowState] = {}
    units: list[Unit] = []
    metric_of: dict[str, tuple[str, str]] = {}
    for r in unique:
        rid = str(r["id"])
        if rid in done:
            continue
        st = states[rid] = RowState(r)
        for m in config.metrics:
            if r.get(m) is not None and not config.rescore:
                continue  # already scored (OmniThought levels, an earlier judge): kept as it is
            if m == "correctness":
                verified = math_verify_correctness(r, config.answer_field)
                if verified is not None:
                    st.scores[m] = (verified, "math-verify")
                    continue
            got = replies.get((rid, m))
            if got is not None:
                st.scores[m] = (got.get("score"), str(got.get("judge") or ""))
                continue
            uid = f"{rid}{SEP}{m}"
            metric_of[uid] = (rid, m)
            units.append(Unit(uid, r, judge_messages(templates[m], r, config.system_prompt)))
            st.waiting += 1
    if ctx.resumed or done or replies:
        ctx.event(f"resuming: {len(done_ok)} rows and {len(done_bad)} rejects written, {len(replies)} replies on "
                  f"record, {len(units)} judge calls to go")
    if target.dataset:
        meta = read_meta(ws, target.dataset)
        write_meta(ws, target.dataset, source=config.input, format="canonical", growing=True,
                   created_by=f"judge:{','.join(config.metrics)} ({ctx.job_id})",
                   created_at=meta.get("created_at", time.time()))

    n_ok, n_bad = len(done_ok), len(done_bad)
    calls = ptok = ctok = 0
    t0 = last = time.time()
    with JsonlAppender(target.rows) as out, JsonlAppender(target.rejects) as rej, JsonlAppender(side) as log:

        def settle(st: RowState) -> None:
            nonlocal n_ok, n_bad
            row, bad = finish_row(st)
            if row is not None:
                out.write(row)
                n_ok += 1
            else:
                rej.write(bad)
                n_bad += 1

        for r in rejects_now:
            if r["id"] not in done:
                rej.write(r)
                n_bad += 1
        for st in states.values():
            if st.waiting == 0:
                settle(st)
        ctx.progress(n_ok + n_bad, total, unit="rows", ok=n_ok, rejected=n_bad, calls=0, rows_per_s=0.0, tokens=0)
        if units:
            backend = open_teachers(config.judge, config.backends, ws, ctx, make_judge)
            judge_name = getattr(backend, "name", "") or config.judge.model
            pipelined, window = dispatch(config.judge)
            sampling = SamplingParams.from_sampling(config.sampling)
            try:
                for o in run_units(_score_parser(metric_of), units, backend, sampling,
                                   OpParams(template="", teacher=judge_name), window=window, pipelined=pipelined,
                                   parse_retries=0, should_stop=ctx.should_stop):
                    rid, metric = metric_of[o.unit.id]
                    st = states[rid]
                    if o.row is not None:
                        judge_name = getattr(backend, "name", "") or judge_name  # an endpoint names its model late
                        entry = {**o.row, "judge": judge_name}
                        log.write(entry)
                        st.scores[metric] = (entry["score"], judge_name)
                    else:
                        st.failed[metric] = o.reject["reason"].removeprefix("request failed: ")
                    st.waiting -= 1
                    if st.waiting == 0:
                        settle(st)
                    calls += 1
                    ptok += o.prompt_tokens
                    ctok += o.completion_tokens
                    now = time.time()
                    if now - last >= 0.5:
                        last = now
                        ctx.progress(n_ok + n_bad, total, ok=n_ok, rejected=n_bad, calls=calls, tokens=ptok + ctok,
                                     rows_per_s=round((out.count + rej.count) / max(now - t0, 1e-6), 3), unit="rows",
                                     **progress_fields(backend))
            finally:
                report_replicas(backend, ctx)
                close = getattr(backend, "close", None)
                if close:
                    close()
    stopped = n_ok + n_bad < total
    ctx.progress(n_ok + n_bad, total, unit="rows", ok=n_ok, rejected=n_bad, calls=calls, tokens=ptok + ctok,
                 rows_per_s=round((n_ok + n_bad - len(done)) / max(time.time() - t0, 1e-6), 3))
    if target.dataset:
        write_meta(ws, target.dataset, rows=n_ok, rejected=n_bad, growing=False, stopped=stopped)
    if target.json_path and not stopped:  # a JSON array in input order, as 1.x pipelines expect
        order = {str(r["id"]): i for i, r in enumerate(unique)}
        done_rows = sorted(iter_jsonl_rows(target.rows), key=lambda r: order.get(str(r.get("id")), len(order)))
        write_records(target.json_path, done_rows, "json")
    ctx.event(f"{'stopped' if stopped else 'done'}: {n_ok} rows scored in {target.label}, {n_bad} rejects in "
              f"{target.rejects.name}, {calls} judge calls; replies in {side.name}",
              summary=json.dumps({"ok": n_ok, "rejected": n_bad, "calls": calls}))
