"""The `evaluate` job: score a model on a held-out set against gold answers, a reference model and a judge.

Stages, each loading one model at a time (a teacher and a student rarely fit on one device together):

1. reference — generates its answers (for the judge, the table and as the teacher responses KL, perplexity and
   ROUGE-L are measured on) and scores those responses (teacher-forced top-k, kept in memory in compact arrays for
   stage 2); once, however many models are evaluated;
2. each evaluated model in turn (`model`, then `students`: `model`, `model_2`, ... in the results) — generates its
   answers, scores the teacher responses: KL(reference ‖ model) and perplexity;
3. reward model — a trained reward model (train_reward) scores every model's answers and the reference's;
4. judge — compares each model's answers with the reference's in both orders (position swap).

ROUGE-L (core.eval.rouge) needs no model: it is computed from the answers when results are assembled.

Every stage appends what it produced per row to `output/work/*.jsonl` as it goes, so a stopped or crashed job keeps
it, and a resumed job skips rows already done. After each stage `results.json` + `rows.jsonl` are rewritten from
what exists, so the studio shows partial results while the job runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.chat.reasoning import final_answer
from core.config.base import BackendSpec
from core.config.train import EvaluateJob
from core.data.io import JsonlAppender, iter_records
from core.data.rows import content_id, iter_jsonl_rows, prompt_text, to_messages
from core.data.store import resolve_dataset
from core.eval import answers, judge, results
from core.eval.divergence import TokenizerMismatch, TopK, Totals, compact, row_kl, row_nll
from core.eval.rouge import rouge_l
from core.jobs.context import JobContext
from core.llm.base import SamplingParams
from core.said import Said, said_dict

WORK = "work"
CHECKS = ("exact_match", "math_verify")
REWARD_MAX_LENGTH = 4096  # tokens of prompt + answer a reward model reads (longer conversations are cut)
REWARD_BATCH = 8


@dataclass
class Row:
    id: str
    row: dict
    prompt: list[dict]  # the conversation up to (not including) the answer
    question: str
    gold: str | None


@dataclass
class Plan:
    """What each stage must do, decided once from the config and the data."""

    checks: list[str]
    reference_answers: bool
    response_source: str | None  # "reference" | "dataset" | None (no kl/perplexity)
    kl: bool
    perplexity: bool
    judge: bool
    notes: list[str] = field(default_factory=list)
    reward: bool = False  # the reward_model metric: a trained reward model scores every answer
    rouge: bool = False  # rouge_l: each answer against the teacher response (see response_source)

    @property
    def model_answers(self) -> bool:
        """Whether the evaluated models must write answers (checks, judge, ROUGE-L and reward model read them)."""
        return bool(self.checks) or self.judge or self.reward or self.rouge

    @property
    def scoring(self) -> bool:
        """Whether the models score the teacher responses (teacher-forced top-k)."""
        return self.kl or self.perplexity


def load_rows(config: EvaluateJob, ctx: JobContext) -> tuple[list[Row], str]:
    path = resolve_dataset(ctx.workspace, config.dataset, confined=False)  # confined at submit, if from the web
    rows: list[Row] = []
    seen: set[str] = set()
    bad = 0
    for rec in iter_records(path):
        if rec.error or not isinstance(rec.value, dict):
            bad += 1
            continue
        r = rec.value
        rid = str(r.get("id")) if r.get("id") not in (None, "") else content_id(r)
        if rid in seen:
            rid = f"{rid}-{rec.line}"
        seen.add(rid)
        prompt = to_messages(r, include_output=False, system=config.system_prompt)
        if not prompt or prompt[-1].get("role") != "user":
            bad += 1
            continue
        gold = answers.gold_answer(r, config.answer_field)
        rows.append(Row(rid, r, prompt, prompt_text(r) or str(prompt[-1].get("content", "")), gold))
        if config.limit and len(rows) >= config.limit:
            break
    if bad:
        ctx.event(f"{bad} row(s) of {path.name} skipped: not an object or no user turn")
    if not rows:
        raise ValueError(f"dataset {path} has no usable rows (each needs an instruction or messages ending in a user "
                         "turn)")
    return rows, str(path)


def make_plan(config: EvaluateJob, rows: list[Row]) -> Plan:
    m = set(config.metrics)
    checks = [c for c in CHECKS if c in m]
    notes = []
    if checks:
        missing = sum(r.gold is None for r in rows)
        if missing == len(rows):
            field_name = config.answer_field or "answer/gold/reference/solution/output"
            raise ValueError(f"{', '.join(checks)} need gold answers, but no row has a '{field_name}' column; set "
                             "answer_field to the column holding them")
        if missing:
            notes.append(Said(f"{missing} row(s) have no gold answer and are not checked", "evaluate.note_no_gold",
                              {"n": missing}))
    source = None
    if m & {"kl", "perplexity", "rouge_l"}:
        source = config.responses
        if source == "auto":
            source = "reference" if config.reference is not None else "dataset"
        if source == "dataset" and not any(r.row.get("output") for r in rows):
            raise ValueError("perplexity/kl/rouge_l on the dataset's responses needs an 'output' column; or give a "
                             "reference model (responses: reference)")
    reward = "reward_model" in m
    reference_answers = config.reference is not None and (
        bool(checks) or "judge_winrate" in m or source == "reference" or reward
    )
    return Plan(checks, reference_answers, source, "kl" in m, "perplexity" in m, "judge_winrate" in m, notes,
                reward=reward, rouge="rouge_l" in m)


def scores_stage(role: str) -> str:
    """The work file of a model's teacher-forced scores (`scores` for the first, as before several students)."""
    return "scores" if role == "model" else f"scores-{role}"


def judge_stage(role: str) -> str:
    return "judge" if role == "model" else f"judge-{role}"


def evaluated(config: EvaluateJob) -> list[tuple[str, BackendSpec]]:
    """(role, spec) of each evaluated model: `model`, `model_2`, ..."""
    return [(results.student_role(i), spec) for i, spec in enumerate(config.evaluated)]


class Work:
    """The per-stage files under output/work/: rows done so far, by id."""

    def __init__(self, folder: Path):
        self.folder = folder / WORK
        self.folder.mkdir(parents=True, exist_ok=True)
        self.checked: dict[tuple[str, str, str], bool] = {}  # (role, row id, check) -> result, across saves
        self.rouge: dict[tuple[str, str], float] = {}  # (role, row id) -> ROUGE-L, across saves

    def done(self, stage: str) -> dict[str, dict]:
        p = self.folder / f"{stage}.jsonl"
        return {str(r["id"]): r for r in iter_jsonl_rows(p)} if p.exists() else {}

    def appender(self, stage: str) -> JsonlAppender:
        return JsonlAppender(self.folder / f"{stage}.jsonl")


class Stopped(Exception):
    pass


def _chunks(items: list, n: int) -> Iterable[list]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def _chunk_size(spec: BackendSpec) -> int:
    if spec.type == "openai" and spec.endpoint is not None:
        return max(spec.batch_size, spec.endpoint.concurrency)
    return spec.batch_size


class Progress:
    """One progress counter over all stages, so the Jobs tab shows one bar and an ETA."""

    def __init__(self, ctx: JobContext, total: int):
        self.ctx, self.total, self.done = ctx, max(total, 1), 0

    def add(self, n: int, phase: str, **scalars: Any) -> None:
        self.done += n
        self.ctx.progress(self.done, self.total, phase=phase, **scalars)
        if self.ctx.should_stop():
            raise Stopped()


def open_backend(spec: BackendSpec, ctx: JobContext, role: str):
    from core.llm import make_backend

    ctx.event(f"loading {role}: {describe(spec)}")
    t0 = time.time()
    backend = make_backend(spec, workspace=ctx.workspace, devices=ctx.devices, log_dir=ctx.run_dir)
    ctx.event(f"{role} ready in {time.time() - t0:.1f}s")
    return backend


def describe(spec: BackendSpec | None) -> str | None:
    if spec is None:
        return None
    if spec.type == "openai" and spec.endpoint is not None:
        return f"{spec.endpoint.model or spec.model or '(served model)'} @ {spec.endpoint.base_url}"
    return f"{spec.model} ({spec.type})"


def generate(backend: Any, role: str, rows: list[Row], work: Work, params: Any, chunk: int, prog: Progress) -> None:
    """Answers of one model for the rows it has not answered yet; appended per row."""
    done = work.done(f"answers-{role}")
    todo = [r for r in rows if r.id not in done]
    with work.appender(f"answers-{role}") as out:
        for part in _chunks(todo, chunk):
            comps = backend.chat([r.prompt for r in part], params)
            for r, c in zip(part, comps, strict=True):
                out.write({"id": r.id, "text": c.text, "completion_tokens": c.completion_tokens,
                           "finish_reason": c.finish_reason, "error": c.error})
            prog.add(len(part), f"{role} answers")


def response_for(r: Row, plan: Plan, ref_answers: dict[str, dict]) -> str | None:
    if plan.response_source == "dataset":
        out = r.row.get("output")
        return str(out) if out not in (None, "") else None
    a = ref_answers.get(r.id)
    return a["text"] if a and not a.get("error") and a.get("text") else None


def score_rows(backend: Any, part: list[Row], responses: dict[str, str], k: int) -> dict[str, TopK | str]:
    """Teacher-forced top-k of each row's response: compact arrays, or the error text for that row."""
    convs = [[*r.prompt, {"role": "assistant", "content": responses[r.id]}] for r in part]
    scored = backend.score(convs, k)
    return {r.id: (s.error if getattr(s, "error", None) else compact(s)) for r, s in zip(part, scored, strict=True)}


def run_judge(backend: Any, role: str, rows: list[Row], work: Work, template: str, params: Any, chunk: int,
              prog: Progress) -> None:
    """Both orders per row: the model's answer as A, then as B. Raw judge replies are kept for the drill-down."""
    mine, ref = work.done(f"answers-{role}"), work.done("answers-reference")
    done = work.done(judge_stage(role))
    todo = [r for r in rows if r.id not in done and _ok(mine.get(r.id)) and _ok(ref.get(r.id))]
    with work.appender(judge_stage(role)) as out:
        for part in _chunks(todo, max(1, chunk // 2)):
            convs = []
            for r in part:
                a, b = _shown(mine[r.id]["text"]), _shown(ref[r.id]["text"])
                convs.append(judge.judge_conversation(r.question, a, b, template))
                convs.append(judge.judge_conversation(r.question, b, a, template))
            comps = backend.chat(convs, params)
            for i, r in enumerate(part):
                first, second = comps[2 * i], comps[2 * i + 1]
                out.write({
                    "id": r.id,
                    "model_first": None if first.error else judge.parse_verdict(first.text),
                    "model_second": None if second.error else judge.parse_verdict(second.text),
                    "raw_first": first.error or first.text, "raw_second": second.error or second.text,
                })
            prog.add(len(part), f"judge {role}")


def run_reward(config: EvaluateJob, ctx: JobContext, rows: list[Row], work: Work, prog: Progress) -> None:
    """The reward model's score of each row's answers (every evaluated model's, and the reference's where it
    answered), as the reward model was trained: prompt + answer through its chat template. Appended per row."""
    from core.eval.reward_model import RewardScorer
    from core.models.registry import resolve_model

    done = work.done("reward")
    every = [role for role, _ in evaluated(config)] + ["reference"]
    ans = {role: work.done(f"answers-{role}") for role in every}
    todo = [r for r in rows if r.id not in done and any(_ok(ans[role].get(r.id)) for role in every[:-1])]
    if not todo:
        return
    assert config.reward_model is not None  # the config refuses the metric without one
    ctx.event(f"loading reward model: {config.reward_model}")
    cpu = bool(ctx.devices) and all(d == "cpu" for d in ctx.devices)
    scorer = RewardScorer(resolve_model(config.reward_model, ctx.workspace), REWARD_MAX_LENGTH, cpu)
    try:
        with work.appender("reward") as out:
            for part in _chunks(todo, REWARD_BATCH):
                recs: dict[str, dict[str, Any]] = {r.id: {"id": r.id} for r in part}
                for role in every:
                    answered = [r for r in part if _ok(ans[role].get(r.id))]
                    if answered:
                        scores = scorer.score([r.prompt for r in answered],
                                              [ans[role][r.id]["text"] or "" for r in answered])
                        for r, v in zip(answered, scores, strict=True):
                            recs[r.id][f"{role}_reward"] = float(v)
                for r in part:
                    out.write(recs[r.id])
                prog.add(len(part), "reward model")
    finally:
        del scorer


def _ok(a: dict | None) -> bool:
    return bool(a) and not a.get("error")


def _shown(text: str) -> str:
    """What the judge sees: the answer without its reasoning (judges favour long thoughts), else the whole reply."""
    return final_answer(text) or text


def assemble(config: EvaluateJob, rows: list[Row], plan: Plan, work: Work, dataset: str, complete: bool,
             extra_notes: list[str]) -> tuple[dict, list[dict]]:
    """results.json and rows.jsonl from the work files (partial ones too)."""
    models = [role for role, _ in evaluated(config)]
    every = [*models, "reference"]
    ans = {role: work.done(f"answers-{role}") for role in every}
    jdg = {role: work.done(judge_stage(role)) for role in models}
    scores = {role: work.done(scores_stage(role)) for role in models}
    rewards = work.done("reward")
    wins = {role: judge.WinRate() for role in models}
    tally = Tally(plan, every)
    out_rows = [_assemble_row(r, plan, work, ans, jdg, scores, rewards, wins, tally) for r in rows]
    summary: dict[str, dict[str, Any]] = {}
    for role in every:
        sm = tally.summary(role)
        if role in wins and plan.judge and wins[role].winrate is not None:
            sm["judge_winrate"] = wins[role].winrate
        if sm:
            summary[role] = sm
    notes = list(plan.notes) + list(extra_notes)
    estimated = sum(t.estimated for t in tally.kl.values())
    if estimated:
        notes.append(Said(f"kl: at {estimated} position(s) a teacher top-{config.top_k} token was outside the model's "
                          "top-k and its probability was estimated; raise top_k for an exact value",
                          "evaluate.note_kl_estimated", {"n": estimated, "k": config.top_k}))
    described = {role: describe(spec) for role, spec in evaluated(config)}
    doc = {
        "name": config.name or "evaluate",
        "dataset": dataset,
        "rows_total": len(rows),
        "rows_done": sum(1 for r in rows if any(r.id in ans[role] for role in every)
                         or any(r.id in scores[role] for role in models) or r.id in rewards),
        "complete": complete,
        "metrics": list(config.metrics),
        "evaluated": models,
        "models": {**described, "reference": describe(config.reference), "judge": describe(config.judge),
                   "reward_model": config.reward_model},
        "response_source": plan.response_source,
        "summary": summary,
        "judge": wins["model"].summary() if plan.judge else None,
        "judges": {role: w.summary() for role, w in wins.items()} if plan.judge else None,
        "notes": notes,
        "note_words": [said_dict(n) for n in notes],  # the studio words each note by its code (None: as written)
        "updated_at": time.time(),
    }
    return doc, out_rows


class Tally:
    """Per-role sums over the rows: answer checks, ROUGE-L, rewards, token-weighted KL and NLL."""

    def __init__(self, plan: Plan, roles: list[str]):
        self.plan = plan
        self.checked: dict[str, dict[str, list[bool]]] = {role: {c: [] for c in plan.checks} for role in roles}
        self.rouge: dict[str, list[float]] = {role: [] for role in roles}
        self.rewarded: dict[str, list[float]] = {role: [] for role in roles}
        self.kl: dict[str, Totals] = {role: Totals() for role in roles}
        self.nll: dict[str, Totals] = {role: Totals() for role in roles}

    def summary(self, role: str) -> dict[str, Any]:
        plan, sm = self.plan, {}
        for c in plan.checks:
            vals = self.checked[role][c]
            if vals:
                sm[c] = sum(vals) / len(vals)
                sm[f"{c}_n"] = len(vals)
        for metric, vals, on in (("rouge_l", self.rouge[role], plan.rouge),
                                 ("reward_model", self.rewarded[role], plan.reward)):
            if on and vals:
                sm[metric] = sum(vals) / len(vals)
                sm[f"{metric}_n"] = len(vals)
        if plan.perplexity and self.nll[role].perplexity is not None:
            sm["perplexity"] = self.nll[role].perplexity
        if plan.kl and self.kl[role].kl is not None:
            sm["kl"] = self.kl[role].kl
        return sm


def _assemble_row(r: Row, plan: Plan, work: Work, ans: dict[str, dict[str, dict]], jdg: dict[str, dict[str, dict]],
                  scores: dict[str, dict[str, dict]], rewards: dict[str, dict], wins: dict[str, judge.WinRate],
                  tally: Tally) -> dict[str, Any]:
    """One row of rows.jsonl (and its share of the tallies)."""
    rec: dict[str, Any] = {"id": r.id, "prompt": r.question, "gold": r.gold}
    teacher = response_for(r, plan, ans["reference"]) if plan.rouge else None
    for role, answered in ans.items():
        a = answered.get(r.id)
        if a is None:
            continue
        rec[f"{role}_answer"] = a.get("text")
        rec[f"{role}_tokens"] = a.get("completion_tokens")
        if a.get("error"):
            rec[f"{role}_error"] = a["error"]
            continue
        for c in plan.checks:
            if r.gold is None:
                continue
            key = (role, r.id, c)
            if key not in work.checked:
                fn = answers.exact_match if c == "exact_match" else answers.math_verify_match
                work.checked[key] = fn(a.get("text") or "", r.gold)
            rec[f"{role}_{c}"] = work.checked[key]
            tally.checked[role][c].append(work.checked[key])
        if teacher is not None and not (role == "reference" and plan.response_source == "reference"):
            if (role, r.id) not in work.rouge:
                work.rouge[(role, r.id)] = rouge_l(a.get("text") or "", teacher)
            rec[f"{role}_rouge_l"] = work.rouge[(role, r.id)]
            tally.rouge[role].append(work.rouge[(role, r.id)])
    for role, judged in jdg.items():
        j, p = judged.get(r.id), results.prefix(role)
        if j is not None:
            outcome = wins[role].add(j.get("model_first"), j.get("model_second"))
            rec.update({f"{p}judge_model_first": j.get("model_first"), f"{p}judge_model_second": j.get("model_second"),
                        f"{p}judge_outcome": outcome, f"{p}judge_raw_first": j.get("raw_first"),
                        f"{p}judge_raw_second": j.get("raw_second")})
    for role in ans:
        v = (rewards.get(r.id) or {}).get(f"{role}_reward")
        if v is not None:
            rec[f"{role}_reward"] = v
            tally.rewarded[role].append(v)
    reference_scored = False  # the reference's NLL of a row is in every model's scores: counted once
    for role, scored in scores.items():
        s, p = scored.get(r.id), results.prefix(role)
        if s is None:
            continue
        rec["response_source"] = plan.response_source
        if s.get("error"):
            rec[f"{p}score_error"] = s["error"]
        if s.get("kl_tokens"):
            rec[f"{p}kl"] = s["kl_sum"] / s["kl_tokens"]
            tally.kl[role].kl_sum += s["kl_sum"]
            tally.kl[role].kl_tokens += s["kl_tokens"]
            tally.kl[role].estimated += s.get("kl_estimated", 0)
        for who, target in (("model", role), ("reference", "reference")):
            n = s.get(f"{who}_nll_tokens")
            if not n or (target == "reference" and reference_scored):
                continue
            rec[f"{target}_perplexity"] = _exp(s[f"{who}_nll_sum"] / n)
            tally.nll[target].nll_sum += s[f"{who}_nll_sum"]
            tally.nll[target].nll_tokens += n
            tally.nll[target].bounded += s.get(f"{who}_nll_bounded", 0)
            reference_scored = reference_scored or target == "reference"
    return rec


def _exp(x: float) -> float:
    import math

    return math.exp(min(x, 700.0))


def run(config: EvaluateJob, ctx: JobContext) -> None:
    rows, dataset = load_rows(config, ctx)
    plan = make_plan(config, rows)
    work = Work(ctx.output_dir)
    notes: list[str] = []
    params = SamplingParams.from_sampling(config.sampling)
    models = evaluated(config)

    def save(complete: bool) -> None:
        doc, out_rows = assemble(config, rows, plan, work, dataset, complete, notes)
        results.save(ctx.output_dir, doc, out_rows)

    def left(stage: str) -> int:
        have = work.done(stage)
        return sum(r.id not in have for r in rows)

    # rows each model still has to score; the reference scores the union of them, once
    score_todo = {role: [r for r in rows if r.id not in work.done(scores_stage(role))] if plan.scoring else []
                  for role, _ in models}
    pending = {r.id for todo in score_todo.values() for r in todo}
    ref_todo = [r for r in rows if r.id in pending]
    total = (left("answers-reference") if plan.reference_answers else 0) + (len(ref_todo) if plan.kl else 0)
    for role, _ in models:
        total += len(score_todo[role]) + (left(f"answers-{role}") if plan.model_answers else 0)
        total += left(judge_stage(role)) if plan.judge else 0
    total += left("reward") if plan.reward else 0
    prog = Progress(ctx, total)
    ctx.event(f"evaluating {len(rows)} row(s) with {len(models)} model(s): {', '.join(config.metrics)}")
    complete = False
    try:
        ref_scores: dict[str, TopK | str] = {}
        responses: dict[str, str] = {}
        if plan.reference_answers or (plan.kl and ref_todo):
            backend = open_backend(config.reference, ctx, "reference")
            try:
                if plan.reference_answers:
                    generate(backend, "reference", rows, work, params, _chunk_size(config.reference), prog)
                    save(False)
                responses = _responses(ref_todo, plan, work)
                if plan.kl and responses:
                    for part in _chunks([r for r in ref_todo if r.id in responses], _chunk_size(config.reference)):
                        ref_scores.update(score_rows(backend, part, responses, config.top_k))
                        prog.add(len(part), "reference scoring")
            finally:
                backend.close()
        elif plan.scoring:
            responses = _responses(ref_todo, plan, work)
        for role, spec in models:
            todo = [r for r in score_todo[role] if r.id in responses]
            if not todo and not (plan.model_answers and left(f"answers-{role}")):
                continue  # done in an earlier attempt: the model is not loaded again
            backend = open_backend(spec, ctx, role)
            try:
                if plan.model_answers:
                    generate(backend, role, rows, work, params, _chunk_size(spec), prog)
                    save(False)
                k = config.top_k if plan.kl else 1
                for part in _chunks(todo, _chunk_size(spec)):
                    mine = score_rows(backend, part, responses, k)
                    _write_scores(work, role, part, mine, ref_scores, plan, notes)
                    prog.add(len(part), f"{role} scoring")
                if todo:
                    save(False)
            finally:
                backend.close()
        if plan.reward:
            run_reward(config, ctx, rows, work, prog)
            save(False)
        if plan.judge:
            template = judge.load_template(_template_path(config.judge_template, ctx))
            jparams = SamplingParams.from_sampling(config.sampling)
            jparams.temperature, jparams.max_new_tokens, jparams.stop = 0.0, config.judge_max_new_tokens, []
            backend = open_backend(config.judge, ctx, "judge")
            try:
                for role, _ in models:
                    run_judge(backend, role, rows, work, template, jparams, _chunk_size(config.judge), prog)
            finally:
                backend.close()
        complete = True
    except Stopped:
        ctx.event("stop requested: saving the rows evaluated so far")
    finally:
        save(complete)
    doc = json.loads((ctx.output_dir / results.RESULTS_FILE).read_text(encoding="utf-8"))
    ctx.event("results: " + json.dumps(doc.get("summary", {}), ensure_ascii=False))
    final = {f"{role}_{k}": v for role, s in doc.get("summary", {}).items() for k, v in s.items()
             if isinstance(v, float)}
    ctx.progress(prog.done, prog.total, phase="done" if complete else "stopped", **final)


def _responses(todo: list[Row], plan: Plan, work: Work) -> dict[str, str]:
    ref = work.done("answers-reference")
    out = {}
    for r in todo:
        text = response_for(r, plan, ref)
        if text:
            out[r.id] = text
    return out


def _write_scores(work: Work, role: str, todo: list[Row], mine: dict[str, TopK | str], ref: dict[str, TopK | str],
                  plan: Plan, notes: list[str]) -> None:
    """One model's scores of the teacher responses, in its own work file (`model_*` keys there are this model's)."""
    mismatch = None
    with work.appender(scores_stage(role)) as out:
        for r in todo:
            m = mine.get(r.id)
            if m is None:
                continue
            rec: dict[str, Any] = {"id": r.id}
            t = ref.get(r.id) if plan.kl else None
            errors = [e for e in (m, t) if isinstance(e, str)]
            if errors:
                rec["error"] = "; ".join(errors)
                out.write(rec)
                continue
            if plan.perplexity:
                nll = row_nll(m)
                rec.update(model_nll_sum=nll.nll_sum, model_nll_tokens=nll.tokens,
                           model_nll_bounded=nll.bounded_positions)
                if isinstance(t, TopK):
                    tn = row_nll(t)
                    rec.update(reference_nll_sum=tn.nll_sum, reference_nll_tokens=tn.tokens,
                               reference_nll_bounded=tn.bounded_positions)
            if plan.kl and isinstance(t, TopK):
                try:
                    kl = row_kl(t, m, r.id)
                    rec.update(kl_sum=kl.kl_sum, kl_tokens=kl.tokens, kl_estimated=kl.estimated_positions)
                except TokenizerMismatch as e:
                    mismatch = mismatch or e
                    rec["error"] = "tokenizers differ"
            out.write(rec)
    if mismatch:
        notes.append(Said(f"kl not computed: {mismatch}", "evaluate.note_kl_not_computed",
                          {"error": str(mismatch), **mismatch.params}))


def _template_path(ref: str | None, ctx: JobContext) -> Path | None:
    if not ref:
        return None
    p = Path(ref).expanduser()
    if p.is_absolute():
        return p
    for c in (ctx.workspace.templates / ref, ctx.workspace.root / ref):
        if c.is_file():
            return c
    raise FileNotFoundError(f"judge template '{ref}' not found under {ctx.workspace.templates} or the workspace")
