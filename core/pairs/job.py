"""The pairs job: `run(PairsJob, ctx)` builds DPO rows (instruction, chosen, rejected + id), resumable by row id.

Two stages on the synthesis runner (core.synth.runner): samples — the student's answer per prompt (student mode) or N
teacher samples, one pass per sample index with its own seed so the N differ and a rerun redraws alike — then, where
the ranking needs one, a judge score per answer (the judge job's rubric templates and score parser). Every sample and
score is recorded in `<output>.pairs.ndjson` as it arrives; a row is written once, to the output when its answers
make a pair, else to the rejects file with why (request failed, unparseable, tie, identical, student better). The
output rows are the canonical DPO rows core.data reads (the Data tab previews chosen against rejected), with the
scores and which model wrote each side; the sidecar (or `<output>.stats.json`) gets the stats.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from core.config.data_jobs import JudgeJob
from core.config.pairs_jobs import PairsJob
from core.cot.judge_job import judge_messages
from core.cot.scores import parse_score
from core.data.rows import prompt_text, response_text, to_messages
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
    seeded,
    target_for,
    written,
)
from core.pairs.ranking import NoPair, best_vs_worst, scorer_score, teacher_over_student, verify
from core.synth.operators import OpParams, Unit, reject_record
from core.synth.parsing import ParseFailure
from core.synth.runner import Outcome
from core.synth.templates import check_template, load_template

# Input keys not carried into a pair row: the prompt is rewritten into instruction/system, the answers into chosen and
# rejected.
_DROP = {"instruction", "input", "output", "messages", "system", "chosen", "rejected", "thought", "solution"}
JUDGE_SYSTEM = JudgeJob.model_fields["system_prompt"].default


def candidates(config: PairsJob) -> list[str]:
    """Answer keys per row: the dataset's teacher answer and the student's, or the N samples."""
    if config.mode == "student":
        return ["teacher", "student"]
    return [f"s{k}" for k in range(config.num_samples)]


def generated(config: PairsJob) -> list[str]:
    return ["student"] if config.mode == "student" else candidates(config)


def gold_of(config: PairsJob, row: dict) -> str | None:
    v = row.get(config.answer_field) if config.answer_field else None
    return None if v in (None, "") else str(v)


def judge_metric(config: PairsJob) -> str | None:
    """The rubric the judge scores answers by: the ranking's, or correctness where the scorer lacks a reference."""
    if config.rank_by == "judge":
        return config.judge_metric
    if config.rank_by == "scorer" and config.judge is not None:
        return "correctness"
    return None


def prompt_messages(row: dict, system_prompt: str) -> list[dict]:
    """The conversation the student or teacher answers: the row without its answer (and a system turn if asked)."""
    msgs = to_messages(row, include_output=False)
    if system_prompt and not any(m["role"] == "system" for m in msgs):
        msgs = [{"role": "system", "content": system_prompt}, *msgs]
    return msgs


def unusable(config: PairsJob, row: dict) -> str | None:
    msgs = prompt_messages(row, "")
    if not msgs or msgs[-1]["role"] != "user" or not str(msgs[-1]["content"]).strip():
        return "the row has no prompt to answer (no instruction, or a conversation not ending with a user turn)"
    if config.mode == "student" and not str(response_text(row) or "").strip():
        return "the row has no teacher answer (output, messages or chosen) to put against the student's"
    needs_gold = config.rank_by == "verifier" or (config.rank_by == "scorer" and config.judge is None)
    if needs_gold and gold_of(config, row) is None:
        return f"the row has no reference answer in '{config.answer_field}'"
    return None


@dataclass
class PairState:
    row: dict
    texts: dict[str, str] = field(default_factory=dict)
    truncated: set[str] = field(default_factory=set)
    models: dict[str, str] = field(default_factory=dict)
    judged: dict[str, tuple[int | None, str]] = field(default_factory=dict)  # cand -> (score, judge)
    failed: dict[str, tuple[str, str]] = field(default_factory=dict)  # cand or cand/judge -> (stage, reason)
    waiting: int = 0
    settled: bool = False

    @property
    def id(self) -> str:
        return str(self.row["id"])


def _sample_parser(unit: Unit, text: str, params: OpParams) -> dict:
    if not text.strip():
        raise ParseFailure("empty reply")
    return {"id": unit.id, "text": text}


def _judge_parser(metric: str):
    def parse(unit: Unit, text: str, params: OpParams) -> dict:
        return {"id": unit.id, "score": parse_score(text, metric), "reply": text}

    return parse


class PairBuilder:
    """Settles rows as their answers and scores come in."""

    def __init__(self, config: PairsJob, sink: Sink, ledger: Ledger):
        self.config, self.sink, self.ledger = config, sink, ledger
        self.cands = candidates(config)
        self.metric = judge_metric(config)

    def needs_judge(self, st: PairState, cand: str) -> bool:
        if self.metric is None:
            return False
        return self.config.rank_by == "judge" or gold_of(self.config, st.row) is None

    def restore(self, st: PairState) -> None:
        """Fill a row's state from the dataset and from replies recorded by earlier runs."""
        if self.config.mode == "student":
            st.texts["teacher"] = str(response_text(st.row))
            st.models["teacher"] = str(st.row.get("teacher") or "dataset")
        for c in self.cands:
            e = self.ledger.get(f"{st.id}{SEP}{c}")
            if e is not None:
                st.texts[c] = e["text"]
                st.models[c] = e.get("model", "")
                if e.get("truncated"):
                    st.truncated.add(c)
            j = self.ledger.get(f"{st.id}{SEP}{c}{SEP}judge")
            if j is not None:
                st.judged[c] = (j.get("score"), j.get("judge", ""))

    def scores(self, st: PairState) -> dict[str, float] | None:
        cfg, gold = self.config, gold_of(self.config, st.row)
        if cfg.rank_by == "none":
            return None
        out = {}
        for c in self.cands:
            text = st.texts[c]
            if cfg.rank_by == "verifier":
                out[c] = verify(text, gold or "")
            elif cfg.rank_by == "judge":
                out[c] = float(st.judged[c][0])  # type: ignore[arg-type]
            else:
                correct = verify(text, gold) if gold is not None else float(st.judged[c][0] or 0)
                out[c] = scorer_score(correct, text, cfg.length_alpha)
        return out

    def advance(self, st: PairState) -> None:
        """Write the row out (pair or reject) once nothing it needs is missing or in flight."""
        if st.settled or st.waiting:
            return
        if st.failed:
            stage = "request" if any(s == "request" for s, _ in st.failed.values()) else "parse"
            reason = "; ".join(f"{k}: {r}" for k, (_, r) in sorted(st.failed.items()))
            return self._reject(st, reason, stage)
        if any(c not in st.texts for c in self.cands):
            return
        if any(self.needs_judge(st, c) and c not in st.judged for c in self.cands):
            return
        unscored = [c for c in self.cands if self.needs_judge(st, c) and st.judged[c][0] is None]
        if unscored:
            return self._reject(st, f"no score in the judge's reply for {', '.join(unscored)}", "parse")
        scores = self.scores(st)
        try:
            if self.config.mode == "student":
                pair = teacher_over_student(st.texts, scores, self.config.min_margin)
            else:
                pair = best_vs_worst(st.texts, scores or {}, self.config.min_margin)
        except NoPair as e:
            return self._reject(st, str(e), "rank", drop=e.code, scores=scores)
        self.sink.ok(self._pair_row(st, pair.chosen, pair.rejected, scores, pair.margin))
        st.settled = True

    def _reject(self, st: PairState, reason: str, stage: str, drop: str | None = None,
                scores: dict[str, float] | None = None) -> None:
        seen = {**st.row, "answers": {c: st.texts[c] for c in self.cands if c in st.texts}}
        if scores:
            seen["scores"] = scores
        rec = reject_record(st.id, reason, stage, seen)
        if drop:
            rec["drop"] = drop
        self.sink.bad(rec)
        st.settled = True

    def _pair_row(self, st: PairState, chosen: str, rejected: str, scores: dict[str, float] | None,
                  margin: float | None) -> dict[str, Any]:
        cfg, row = self.config, st.row
        msgs = prompt_messages(row, "")
        system = "\n".join(str(m["content"]) for m in msgs if m["role"] == "system")
        turns = [m for m in msgs if m["role"] != "system"]
        out: dict[str, Any] = {"id": st.id}
        if system:
            out["system"] = system
        out["instruction"] = prompt_text(row) if not row.get("messages") else str(turns[-1]["content"])
        if len(turns) > 1:
            out["history"] = turns[:-1]  # earlier turns of a conversation, kept for the record
        out.update(chosen=st.texts[chosen], rejected=st.texts[rejected], pair_source=cfg.mode, rank_by=cfg.rank_by,
                   chosen_by=st.models.get(chosen, ""), rejected_by=st.models.get(rejected, ""))
        if cfg.mode == "best_of_n":
            out.update(chosen_sample=int(chosen[1:]), rejected_sample=int(rejected[1:]))
        if scores is not None:
            out.update(chosen_score=round(scores[chosen], 6), rejected_score=round(scores[rejected], 6),
                       margin=round(margin or 0.0, 6))
            if cfg.mode == "best_of_n":
                out["scores"] = [round(scores[c], 6) for c in self.cands]
        for side, c in (("chosen", chosen), ("rejected", rejected)):
            if c in st.truncated:
                out[f"{side}_truncated"] = True
        out.update({k: v for k, v in row.items() if k not in _DROP and k not in out})
        return out

    # ---------------------------------------------------------------------------------------------- outcomes
    def on_sample(self, states: dict[str, PairState], model_of: Callable[[], str], o: Outcome) -> None:
        rid, cand = o.unit.id.rsplit(SEP, 1)
        st = states[rid]
        if o.row is not None:
            model = model_of()  # asked per reply: an endpoint names its model only once it has answered
            entry = {"id": o.unit.id, "row_id": rid, "what": "sample", "cand": cand, "text": o.row["text"],
                     "model": model}
            if o.row.get("truncated"):
                entry["truncated"] = True
                st.truncated.add(cand)
            self.ledger.add(entry)
            st.texts[cand], st.models[cand] = o.row["text"], model
        else:
            st.failed[cand] = (str(o.reject["stage"]), str(o.reject["reason"]))
        st.waiting -= 1
        self.sink.count(o)
        self.advance(st)

    def on_judged(self, states: dict[str, PairState], judge_of: Callable[[], str], o: Outcome) -> None:
        rid, cand, _ = o.unit.id.rsplit(SEP, 2)
        st = states[rid]
        if o.row is not None:
            judge_name = judge_of()
            self.ledger.add({"id": o.unit.id, "row_id": rid, "what": "judge", "cand": cand, "metric": self.metric,
                             "score": o.row["score"], "reply": o.row["reply"], "judge": judge_name})
            st.judged[cand] = (o.row["score"], judge_name)
        else:
            st.failed[f"{cand} judge"] = (str(o.reject["stage"]), str(o.reject["reason"]))
        st.waiting -= 1
        self.sink.count(o)
        self.advance(st)


def _judge_template(config: PairsJob, ws) -> str | None:
    metric = judge_metric(config)
    if metric is None:
        return None
    name = f"judge_{metric}"
    text = load_template(name, config.judge_template if config.rank_by == "judge" else None, ws)
    check_template(name, text)  # before any call: a broken rubric costs nothing
    return text


def run(config: PairsJob, ctx: JobContext) -> None:
    ws = ctx.workspace
    target = target_for(ws, config, "pairs")
    template = _judge_template(config, ws)
    inputs = read_inputs(ws, config, target, ctx, partial(unusable, config))
    retry = config.retry_rejects
    ledger = Ledger(target, "pairs").load(lambda e: retry and e.get("what") == "judge" and e.get("score") is None)
    done = inputs.done
    states = {str(r["id"]): PairState(r) for r in inputs.rows if str(r["id"]) not in done}
    inputs.note_resume(ctx, ledger, len(states))
    open_dataset(ws, config, target, ctx, f"pairs:{config.mode}")
    gen_spec = config.student if config.mode == "student" else config.teacher
    assert gen_spec is not None  # the config's validator
    with Sink(target, ctx, inputs.total) as sink, ledger, Backends(ws, ctx) as backends:
        sink.start(inputs)
        builder = PairBuilder(config, sink, ledger)
        for st in states.values():
            builder.restore(st)
            builder.advance(st)
        sink.report(force=True)
        for k, cand in enumerate(generated(config)):  # one pass per sample index: its own seed
            if ctx.should_stop():
                break
            units = []
            for st in states.values():
                if not st.settled and not st.failed and cand not in st.texts:
                    st.waiting += 1
                    units.append(Unit(f"{st.id}{SEP}{cand}", st.row, prompt_messages(st.row, config.system_prompt)))
            if units:
                run_stage(units, _sample_parser, gen_spec, seeded(config.sampling, k), backends, ctx,
                          partial(builder.on_sample, states, partial(backends.name, gen_spec)))
            for st in states.values():  # rows whose last unit was never sent (stop) stay pending
                st.waiting = 0
        backends.release(gen_spec, keep=[config.judge])
        if template is not None and config.judge is not None and not ctx.should_stop():
            units = []
            for st in states.values():
                if st.settled or st.failed or any(c not in st.texts for c in builder.cands):
                    continue
                for c in builder.cands:
                    if builder.needs_judge(st, c) and c not in st.judged:
                        row = {"instruction": prompt_text(st.row) or str(prompt_messages(st.row, "")[-1]["content"]),
                               "output": st.texts[c]}
                        units.append(Unit(f"{st.id}{SEP}{c}{SEP}judge", st.row,
                                          judge_messages(template, row, JUDGE_SYSTEM)))
                        st.waiting += 1
            if units:
                run_stage(units, _judge_parser(builder.metric or "helpfulness"), config.judge,
                          SamplingParams.from_sampling(config.judge_sampling), backends, ctx,
                          partial(builder.on_judged, states, partial(backends.name, config.judge)), parse_retries=0)
        stopped, stats = sink.finish(inputs, pair_stats)
    close_dataset(ws, target, sink, stopped, [str(r["id"]) for r in inputs.rows], stats)
    ctx.event(f"{'stopped' if stopped else 'done'}: {sink.n_ok} pairs in {target.label}, {sink.n_bad} rejects in "
              f"{target.rejects.name} ({', '.join(f'{k}: {v}' for k, v in stats['rejects'].items()) or 'none'}); "
              f"replies in {ledger.path.name}")


def pair_stats(rows_path, rejects_path) -> dict[str, Any]:
    """Pairs, rejects by kind, mean margin and answer lengths — read from the files, so they hold across resumes."""
    pairs, rejects = written(rows_path, rejects_path)
    kinds = Counter(str(r.get("drop") or r.get("stage") or "other") for r in rejects)
    margins = [float(r["margin"]) for r in pairs if r.get("margin") is not None]

    def mean(xs: list[float]) -> float | None:
        return round(sum(xs) / len(xs), 4) if xs else None

    return {
        "pairs": len(pairs), "rejected": len(rejects), "rejects": dict(sorted(kinds.items())),
        "mean_margin": mean(margins),
        "mean_chosen_chars": mean([float(len(str(r.get("chosen", "")))) for r in pairs]),
        "mean_rejected_chars": mean([float(len(str(r.get("rejected", "")))) for r in pairs]),
    }
