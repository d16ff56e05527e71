"""Sending units to a teacher and turning replies into rows or rejects, as results arrive.

Two ways to keep a teacher busy:
- batched (local transformers): chunks of `window` conversations per `chat()` call (one padded generate).
- pipelined (HTTP endpoints): `window` requests in flight, one conversation each; a finished request is yielded at
  once and the next one starts, so one slow or retried request never holds up the others.
Both yield `Outcome`s in completion order; the caller persists each one before asking for the next. `should_stop`
is checked before new work starts: what is in flight finishes and is yielded, nothing new begins.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from core.llm.base import Completion, SamplingParams
from core.synth.operators import OpParams, Unit, parse_reply, reject_record
from core.synth.parsing import ParseFailure


class TeacherUnavailable(RuntimeError):
    """Every recent request failed: the endpoint is down or misconfigured. Unfinished rows stay pending (not
    rejected), so resuming after the fix continues where the job stopped."""


@dataclass
class Outcome:
    unit: Unit
    row: dict | None = None
    reject: dict | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    attempts: int = 0
    completion: Completion | None = None  # the reply the row (or reject) came from: token ids, top-k when asked
    replica: str = ""  # which replica of the teacher answered (core.synth.sharded), when there are several


def _attempt_params(sampling: SamplingParams, attempt: int) -> SamplingParams:
    if attempt == 0:
        return sampling
    base = sampling.seed if sampling.seed is not None else 0
    return dataclasses.replace(sampling, seed=base + 7919 * attempt)


Parser = Callable[[Unit, str, OpParams], dict]  # reply -> output row, ParseFailure when unusable


def _judge(operator: str | Parser, unit: Unit, comp: Completion, params: OpParams, out: Outcome) -> bool:
    """Fill `out` from one completion; True when done (row or final reject), False when a retry may help.

    `operator` is an operator name, or a parser of its own (the judge job reads scores with the same machinery)."""
    out.prompt_tokens += comp.prompt_tokens
    out.completion_tokens += comp.completion_tokens
    out.attempts += 1
    out.completion = comp
    if comp.error:
        out.reject = reject_record(unit.id, f"request failed: {comp.error}", "request", unit.row, attempts=out.attempts)
        return True
    try:
        parse = operator if callable(operator) else lambda u, t, p: parse_reply(operator, u, t, p)
        row = parse(unit, comp.text, params)
    except ParseFailure as e:
        reason = str(e) + (" (reply cut at max_new_tokens)" if comp.finish_reason == "length" else "")
        out.reject = reject_record(unit.id, reason, "parse", unit.row, comp.text, out.attempts)
        return False
    if comp.finish_reason == "length":
        row["truncated"] = True
    out.row, out.reject = row, None
    return True


def run_units(
    operator: str | Parser,
    units: list[Unit],
    backend,
    sampling: SamplingParams,
    params: OpParams,
    *,
    window: int = 8,
    pipelined: bool = False,
    parse_retries: int = 1,
    should_stop: Callable[[], bool] = lambda: False,
    max_consecutive_failures: int | None = None,
    top_logprobs: int = 0,
) -> Iterator[Outcome]:
    """`top_logprobs` > 0 (batched only): each Outcome's completion carries the teacher's top-k per generated
    token, recorded while it generated (core.train.live_capture writes them as a logit cache)."""
    retries = 0 if sampling.greedy else parse_retries  # greedy decoding would only repeat the same reply
    if hasattr(backend, "run_units"):  # several replicas of the teacher (core.synth.sharded) share the rows out
        yield from backend.run_units(operator, units, sampling, params, retries=retries, should_stop=should_stop)
        return
    limit = max_consecutive_failures or max(20, 2 * window)
    if pipelined:
        if top_logprobs:
            raise ValueError("top_logprobs while generating needs the batched (local) path")
        runs = _pipelined(operator, units, backend, sampling, params, max(1, window), retries, should_stop)
    else:
        runs = _batched(operator, units, backend, sampling, params, max(1, window), retries, should_stop,
                        top_logprobs)
    streak = 0
    for out in runs:
        if out.reject is not None and out.reject.get("stage") == "request":
            streak += 1
        else:
            streak = 0
        yield out
        if streak >= limit:
            raise TeacherUnavailable(
                f"the teacher failed {streak} requests in a row; last error: {out.reject['reason']}. Check the model "
                "or endpoint, then resume the job: rows not yet processed are still pending"
            )


def _batched(operator, units, backend, sampling, params, window, retries, should_stop, top_logprobs=0
             ) -> Iterator[Outcome]:
    for start in range(0, len(units), window):
        if should_stop():
            return
        chunk = units[start:start + window]
        outs = {u.id: Outcome(u) for u in chunk}
        pending = list(chunk)
        attempt = 0
        while pending:
            extra = (top_logprobs,) if top_logprobs else ()
            comps = backend.chat([u.messages for u in pending], _attempt_params(sampling, attempt), *extra)
            again = [u for u, c in zip(pending, comps, strict=True) if not _judge(operator, u, c, params, outs[u.id])]
            attempt += 1
            pending = again if attempt <= retries else []
        yield from outs.values()


def _serve_one(operator, unit, backend, sampling, params, retries) -> Outcome:
    out = Outcome(unit)
    for attempt in range(retries + 1):
        try:
            comp = backend.chat([unit.messages], _attempt_params(sampling, attempt))[0]
        except Exception as e:  # a backend that raises instead of reporting: this row failed, the job goes on
            comp = Completion(text="", finish_reason="error", error=f"{type(e).__name__}: {e}")
        if _judge(operator, unit, comp, params, out):
            break
    return out


def _pipelined(operator, units, backend, sampling, params, window, retries, should_stop) -> Iterator[Outcome]:
    it = iter(units)
    with ThreadPoolExecutor(max_workers=window, thread_name_prefix="synth") as pool:
        inflight: set[Future] = set()

        def refill() -> None:
            while len(inflight) < window and not should_stop():
                u = next(it, None)
                if u is None:
                    return
                inflight.add(pool.submit(_serve_one, operator, u, backend, sampling, params, retries))

        refill()
        while inflight:
            done, _ = wait(inflight, return_when=FIRST_COMPLETED)
            for f in done:
                inflight.discard(f)
                yield f.result()
            refill()
