"""CogPO's Critique–Rethink–Verify as a job: `run(CrvJob, ctx)` turns a CoT dataset into typed preference pairs.

Three stages on the synthesis runner, each reply recorded in `<output>.crv.ndjson` as it arrives (the checkpoint: a
resumed job asks only for what a row lacks):
1. critique — the critic labels each chain of thought easy / medium / hard for the target student size
   (`<label>…</label>`, else the last of the three words in its reply);
2. rethink — easy chains are extended (the short2long operator), hard ones simplified (long2short): the synthesis
   operators' own units, templates and parsers, so the rewrite carries `expansion_ratio` / `compression_ratio`;
3. verify — the rewrite must reach the same answer: math-verify (or exact match) against the reference column, else
   against the original's final answer; or a judge's 1/0 on the crv_verify rubric.
A verified rewrite becomes a pair (chosen = rewrite, rejected = original, `pair_type` = the operator); medium rows,
unverified or identical rewrites and failed requests go to the rejects file with the label, rewrite and verdict, so
nothing is silently dropped. The β per pair type is the trainer's: this job only records `pair_type`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from core.config.pairs_jobs import CrvJob
from core.cot.scores import parse_score
from core.data.rows import prompt_text
from core.errors import UserError
from core.jobs.context import JobContext
from core.llm.base import SamplingParams
from core.pairs.common import (
    SEP,
    Backends,
    Ledger,
    Sink,
    close_dataset,
    open_dataset,
    read_inputs,
    run_stage,
    target_for,
    written,
)
from core.pairs.ranking import same_text
from core.synth.operators import OpParams, Unit, _cot_of, make_units, parse_reply, reject_record
from core.synth.parsing import ParseFailure, find_tag, strip_think
from core.synth.runner import Outcome
from core.synth.templates import check_template, load_template, render

OPERATOR = {"easy": "short2long", "hard": "long2short"}  # what the rethinker does to each label
RATIO = {"short2long": "expansion_ratio", "long2short": "compression_ratio"}
_LABEL_WORD = re.compile(r"\b(easy|medium|hard)\b", re.I)
_DROP = {"instruction", "input", "output", "messages", "system", "chosen", "rejected", "thought", "solution"}


def parse_label(text: str) -> str:
    """easy / medium / hard from a critic's reply: the <label> tag, else the last of the three words it uses."""
    body = strip_think(text) or text
    tag = find_tag(body, "label", allow_unclosed=False)
    for source in (tag, body):
        if source:
            words = _LABEL_WORD.findall(source)
            if words:
                return words[-1].lower()
    raise ParseFailure("no easy / medium / hard label in the critic's reply")


def cot_of(row: dict) -> str | None:
    try:
        return _cot_of(row)
    except UserError:
        return None


@dataclass
class CrvState:
    row: dict
    original: str
    label: str | None = None
    critique: dict | None = None  # ledger entries
    rewrite: dict | None = None
    verdict: dict | None = None
    failed: tuple[str, str] | None = None  # (stage, reason)
    settled: bool = False

    @property
    def id(self) -> str:
        return str(self.row["id"])


class Templates:
    """The texts each stage renders, checked before any call (a broken template costs nothing)."""

    def __init__(self, config: CrvJob, ws: Any):
        self.critique = self._load("crv_critique", config.critique_template, ws)
        self.rethink = {"short2long": self._load("short2long", config.short2long_template, ws),
                        "long2short": self._load("long2short", config.long2short_template, ws)}
        self.verify = self._load("crv_verify", config.verify_template, ws) if config.verifier == "judge" else None

    @staticmethod
    def _load(name: str, ref: str | None, ws: Any) -> str:
        text = load_template(name, ref, ws)
        check_template(name, text)
        return text


class CrvPipeline:
    """Moves rows through critique → rethink → verify and writes each out once it is settled."""

    def __init__(self, config: CrvJob, templates: Templates, sink: Sink, ledger: Ledger, states: dict[str, CrvState]):
        self.config, self.templates, self.sink, self.ledger = config, templates, sink, ledger
        self.states = states

    def _system(self) -> list[dict]:
        return [{"role": "system", "content": self.config.system_prompt}] if self.config.system_prompt else []

    def gold(self, row: dict) -> str | None:
        v = row.get(self.config.answer_field) if self.config.answer_field else None
        return None if v in (None, "") else str(v)

    # ---------------------------------------------------------------------------------------------- units
    def critique_unit(self, st: CrvState) -> Unit:
        text = render(self.templates.critique, {"instruction": prompt_text(st.row), "cot": st.original,
                                                "student": self.config.student_size})
        return Unit(f"{st.id}{SEP}critique", st.row, [*self._system(), {"role": "user", "content": text}])

    def rethink_unit(self, st: CrvState) -> Unit:
        op = OPERATOR[st.label or ""]
        units, _ = make_units(op, [st.row], OpParams(template=self.templates.rethink[op],
                                                     system_prompt=self.config.system_prompt))
        return Unit(f"{st.id}{SEP}rethink", st.row, units[0].messages)

    def verify_unit(self, st: CrvState) -> Unit:
        assert self.templates.verify is not None and st.rewrite is not None
        text = render(self.templates.verify, {"instruction": prompt_text(st.row), "original": st.original,
                                              "rewrite": st.rewrite["rewrite"]})
        return Unit(f"{st.id}{SEP}verify", st.row, [*self._system(), {"role": "user", "content": text}])

    # ---------------------------------------------------------------------------------------------- parsers
    @staticmethod
    def parse_critique(unit: Unit, text: str, params: OpParams) -> dict:
        return {"id": unit.id, "label": parse_label(text), "reply": text}

    def parse_rethink(self, unit: Unit, text: str, params: OpParams) -> dict:
        op = OPERATOR[self.states[str(unit.row["id"])].label or ""]
        out = parse_reply(op, unit, text, params)  # the synthesis operator's own parser: strips <think>, ratio
        return {"id": unit.id, "operator": op, "rewrite": out["output"], RATIO[op]: out[RATIO[op]], "reply": text}

    @staticmethod
    def parse_verdict(unit: Unit, text: str, params: OpParams) -> dict:
        return {"id": unit.id, "verified": parse_score(text, "correctness"), "reply": text}

    # ---------------------------------------------------------------------------------------------- state
    def restore(self, st: CrvState) -> None:
        st.critique = self.ledger.get(f"{st.id}{SEP}critique")
        st.label = st.critique["label"] if st.critique else None
        st.rewrite = self.ledger.get(f"{st.id}{SEP}rethink")
        st.verdict = self.ledger.get(f"{st.id}{SEP}verify")

    def on_outcome(self, stage: str, name_of: Callable[[], str], o: Outcome) -> None:
        st = self.states[o.unit.id.rsplit(SEP, 1)[0]]
        self.sink.count(o)
        if o.row is None:
            st.failed = (str(o.reject["stage"]), f"{stage}: {o.reject['reason']}")
            self.advance(st)
            return
        entry = {**o.row, "row_id": st.id, "what": stage, "model": name_of()}
        if o.row.get("truncated"):
            entry["truncated"] = True
        self.ledger.add(entry)
        if stage == "critique":
            st.critique, st.label = entry, entry["label"]
        elif stage == "rethink":
            st.rewrite = entry
        else:
            st.verdict = entry
        self.advance(st)

    def math_verdict(self, st: CrvState) -> dict:
        """Same answer by math-verify (or exact match, for answers that are not math) against the reference, else
        against the original's final answer."""
        from core.eval.answers import exact_match, extract_short_answer, math_verify_match

        assert st.rewrite is not None
        gold = self.gold(st.row)
        ref, against = (gold, "reference") if gold is not None else (extract_short_answer(st.original), "original")
        rewrite = st.rewrite["rewrite"]
        ok = math_verify_match(rewrite, ref) or exact_match(rewrite, ref)
        return {"verified": int(ok), "model": "math-verify", "against": against}

    def advance(self, st: CrvState) -> None:
        """Settle the row once its stages are in: a pair, or a reject saying which stage stopped it."""
        if st.settled:
            return
        if st.failed:
            return self._reject(st, st.failed[1], st.failed[0])
        if st.label is None:
            return
        if st.label == "medium":
            return self._reject(st, f"labelled medium for a {self.config.student_size} student: it fits as it is, "
                                "no rethink pair", "critique", drop="medium")
        if st.rewrite is None:
            return
        if same_text(st.rewrite["rewrite"], st.original):
            return self._reject(st, "identical pair: the rewrite equals the original", "rethink", drop="identical")
        if self.config.verifier == "math_verify":
            st.verdict = self.math_verdict(st)
        elif st.verdict is None:
            return
        verified = st.verdict.get("verified")
        if verified is None:
            return self._reject(st, "no 1/0 verdict in the verifier's reply", "parse")
        if verified:
            return self._pair(st, st.rewrite["rewrite"], st.original, st.rewrite["operator"])
        if self.config.corrupted_pairs and self._original_correct(st):
            return self._pair(st, st.original, st.rewrite["rewrite"], "corrupted")
        self._reject(st, f"the {st.rewrite['operator']} rewrite does not reach the same answer", "verify",
                     drop="unverified")

    def _original_correct(self, st: CrvState) -> bool:
        from core.eval.answers import math_verify_match

        gold = self.gold(st.row)
        return gold is not None and math_verify_match(st.original, gold)

    def _record(self, st: CrvState) -> dict[str, Any]:
        """What the stages said about a row, carried by its output row or its reject."""
        rec: dict[str, Any] = {"difficulty": st.label, "student_size": self.config.student_size}
        if st.critique:
            rec.update(critique=st.critique.get("reply", ""), critic=st.critique.get("model", ""))
        if st.rewrite:
            op = st.rewrite["operator"]
            rec.update(rethink_operator=op, rewrite=st.rewrite["rewrite"], rethinker=st.rewrite.get("model", ""))
            rec[RATIO[op]] = st.rewrite.get(RATIO[op])
            if st.rewrite.get("truncated"):
                rec["rewrite_truncated"] = True
        if st.verdict:
            rec.update(verified=None if st.verdict.get("verified") is None else bool(st.verdict["verified"]),
                       verified_by=st.verdict.get("model", ""))
            if st.verdict.get("against"):
                rec["verified_against"] = st.verdict["against"]
        return rec

    def _pair(self, st: CrvState, chosen: str, rejected: str, pair_type: str) -> None:
        row = st.row
        out: dict[str, Any] = {"id": st.id}
        if row.get("system"):
            out["system"] = row["system"]
        out.update(instruction=prompt_text(row), chosen=chosen, rejected=rejected, pair_type=pair_type)
        rec = self._record(st)
        rec.pop("rewrite", None)  # it is chosen or rejected
        out.update(rec)
        out.update({k: v for k, v in row.items() if k not in _DROP and k not in out})
        self.sink.ok(out)
        st.settled = True

    def _reject(self, st: CrvState, reason: str, stage: str, drop: str | None = None) -> None:
        rec = reject_record(st.id, reason, stage, {**st.row, **self._record(st)})
        if drop:
            rec["drop"] = drop
        self.sink.bad(rec)
        st.settled = True


def unusable(row: dict) -> str | None:
    if not prompt_text(row).strip():
        return "the row has no instruction"
    if cot_of(row) is None:
        return "the row has no chain of thought (output, or thought/solution) to critique"
    return None


def run(config: CrvJob, ctx: JobContext) -> None:
    ws = ctx.workspace
    target = target_for(ws, config, "crv")
    templates = Templates(config, ws)
    inputs = read_inputs(ws, config, target, ctx, unusable)
    retry = config.retry_rejects
    # retry_rejects: an unparseable verdict is asked again; labels and rewrites on record are kept
    ledger = Ledger(target, "crv").load(lambda e: retry and e.get("what") == "verify" and e.get("verified") is None)
    done = inputs.done
    states = {str(r["id"]): CrvState(r, cot_of(r) or "") for r in inputs.rows if str(r["id"]) not in done}
    inputs.note_resume(ctx, ledger, len(states))
    open_dataset(ws, config, target, ctx, "crv")
    rethinker = config.rethinker or config.critic
    verifier = config.verify_judge or config.critic
    with Sink(target, ctx, inputs.total) as sink, ledger, Backends(ws, ctx) as backends:
        sink.start(inputs)
        pipe = CrvPipeline(config, templates, sink, ledger, states)
        for st in states.values():
            pipe.restore(st)
            pipe.advance(st)
        sink.report(force=True)
        stages: list[tuple[str, Any, Callable[[CrvState], bool], Callable[[CrvState], Unit], Any, SamplingParams]] = [
            ("critique", config.critic, lambda s: s.label is None, pipe.critique_unit, pipe.parse_critique,
             SamplingParams.from_sampling(config.critic_sampling)),
            ("rethink", rethinker, lambda s: s.label in OPERATOR and s.rewrite is None, pipe.rethink_unit,
             pipe.parse_rethink, SamplingParams.from_sampling(config.rethink_sampling)),
        ]
        if config.verifier == "judge":
            stages.append(("verify", verifier, lambda s: s.rewrite is not None and s.verdict is None,
                           pipe.verify_unit, pipe.parse_verdict, SamplingParams.from_sampling(config.critic_sampling)))
        for i, (stage, spec, wants, unit_of, parser, params) in enumerate(stages):
            if ctx.should_stop():
                break
            units = [unit_of(st) for st in states.values() if not st.settled and not st.failed and wants(st)]
            if units:
                run_stage(units, parser, spec, params, backends, ctx,
                          partial(pipe.on_outcome, stage, partial(backends.name, spec)),
                          parse_retries=config.parse_retries)
            backends.release(spec, keep=[later[1] for later in stages[i + 1:]])
        stopped, stats = sink.finish(inputs, crv_stats)
    close_dataset(ws, target, sink, stopped, [str(r["id"]) for r in inputs.rows], stats)
    ctx.event(f"{'stopped' if stopped else 'done'}: {sink.n_ok} pairs in {target.label} "
              f"({', '.join(f'{k}: {v}' for k, v in stats['pair_types'].items()) or 'none'}), {sink.n_bad} rejects "
              f"in {target.rejects.name}; labels, rewrites and verdicts in {ledger.path.name}")


def crv_stats(rows_path, rejects_path) -> dict[str, Any]:
    """Pairs per type, labels over every settled row, rejects by kind — read from the files (they hold across
    resumes)."""
    pairs, rejects = written(rows_path, rejects_path)
    labels = Counter(str(r.get("difficulty")) for r in pairs)
    labels.update(str((r.get("input") or {}).get("difficulty")) for r in rejects
                  if (r.get("input") or {}).get("difficulty"))
    return {
        "pairs": len(pairs), "rejected": len(rejects),
        "pair_types": dict(sorted(Counter(str(r.get("pair_type")) for r in pairs).items())),
        "labels": dict(sorted(labels.items())),
        "rejects": dict(sorted(Counter(str(r.get("drop") or r.get("stage")) for r in rejects).items())),
    }
