"""GRPO / RLOO reward functions, picked by name in a `train_grpo` config: math_verify, format, length, reward_model,
judge.

Each is a callable object with TRL's reward signature `(prompts, completions, completion_ids, **columns) -> list`
and a `__name__` (TRL logs `rewards/<name>/mean` per function, so the curves carry the names the form shows). A reward
that cannot judge a completion (no reference answer, a judge call that failed) returns None: TRL leaves it out of the
mean instead of scoring it 0. Model output is only ever parsed (math-verify, regular expressions, a judge's
`<score>`), never executed — 1.x's grounding reward ran `eval` on it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.config.train import GrpoJob
from core.eval.reward_model import RewardModelError, RewardScorer
from core.jobs.context import JobContext

REFERENCE_COLUMN = "reference_answer"  # the dataset column TRL hands to math_verify / judge (filled by core.train.grpo)

JUDGE_TEMPLATE = """Rate how well the response answers the question, from 0 (wrong, off-topic or empty) to 9 \
(correct, complete and clear).{reference}

[Question]
{question}

[Response]
{response}

Write a short analysis, then end with the score in exactly this form: <score>N</score>"""


class RewardSetupError(RewardModelError):
    """A reward function that cannot be built as configured (missing template, model)."""


def completion_text(c: Any) -> str:
    """A completion as text: TRL passes [{"role": "assistant", "content": ...}] for chat prompts, else a string."""
    if isinstance(c, list):
        return "".join(str(m.get("content") or "") for m in c if isinstance(m, dict))
    return str(c or "")


def question_text(p: Any) -> str:
    """The last user turn of a chat prompt (or the prompt string)."""
    if isinstance(p, list):
        users = [m for m in p if isinstance(m, dict) and m.get("role") == "user"]
        return str(users[-1].get("content") or "") if users else ""
    return str(p or "")


class MathVerifyReward:
    """1 when the completion's final answer equals the reference answer (math-verify: 1/2 = 0.5 = \\frac{1}{2})."""

    __name__ = "math_verify"

    def __call__(self, prompts: Sequence, completions: Sequence, completion_ids: Sequence | None = None,
                 **kw: Any) -> list[float | None]:
        from core.eval.answers import math_verify_match

        golds = kw.get(REFERENCE_COLUMN) or [None] * len(completions)
        return [None if not g else float(math_verify_match(completion_text(c), str(g)))
                for c, g in zip(completions, golds, strict=True)]


class FormatReward:
    """1 when the completion is `<tag>reasoning</tag>` followed by an answer (one reasoning block, both non-empty)."""

    __name__ = "format"

    def __init__(self, tag: str = "think"):
        t = re.escape(tag)
        self.pattern = re.compile(rf"^\s*<{t}>(?:(?!<{t}>).)*?\S(?:(?!<{t}>).)*?</{t}>\s*\S", re.DOTALL)

    def __call__(self, prompts: Sequence, completions: Sequence, completion_ids: Sequence | None = None,
                 **kw: Any) -> list[float]:
        return [1.0 if self.pattern.match(completion_text(c)) else 0.0 for c in completions]


class LengthReward:
    """1 for an answer of min_length..max_length tokens; shorter: length/min, longer: max/length (a slope, not a
    cliff, so a group always has a better and a worse answer to learn from)."""

    __name__ = "length"

    def __init__(self, low: int, high: int):
        self.low, self.high = low, high

    def score(self, n: int) -> float:
        if n < self.low:
            return n / self.low
        return 1.0 if n <= self.high else self.high / n

    def __call__(self, prompts: Sequence, completions: Sequence, completion_ids: Sequence | None = None,
                 **kw: Any) -> list[float]:
        if completion_ids is None:
            completion_ids = [completion_text(c).split() for c in completions]
        return [self.score(len(ids)) for ids in completion_ids]


class RewardModelReward(RewardScorer):
    """The score of a trained reward model (a `train_reward` output) on prompt + completion (core.eval.reward_model:
    the same scorer the evaluate job's reward_model metric uses)."""

    __name__ = "reward_model"
    error = RewardSetupError

    def __call__(self, prompts: Sequence, completions: Sequence, completion_ids: Sequence | None = None,
                 **kw: Any) -> list[float]:
        return self.score(prompts, [completion_text(c) for c in completions])


class JudgeReward:
    """An LLM judge's 0-9 score (through any core.llm backend: local, vLLM, an endpoint), scaled to 0..1."""

    __name__ = "judge"

    def __init__(self, backend: Any, template: str, max_new_tokens: int = 512):
        self.backend, self.template, self.max_new_tokens = backend, template, max_new_tokens

    def prompt(self, question: str, response: str, reference: str | None) -> str:
        ref = f"\n\n[Reference answer]\n{reference}" if reference else ""
        # plain replacement, not str.format: model output is full of braces
        return (self.template.replace("{reference}", ref).replace("{question}", question)
                .replace("{response}", response))

    def __call__(self, prompts: Sequence, completions: Sequence, completion_ids: Sequence | None = None,
                 **kw: Any) -> list[float | None]:
        from core.cot.scores import Metric, parse_score
        from core.llm.base import SamplingParams

        golds = kw.get(REFERENCE_COLUMN) or [None] * len(completions)
        convs = [[{"role": "user", "content": self.prompt(question_text(p), completion_text(c), g)}]
                 for p, c, g in zip(prompts, completions, golds, strict=True)]
        replies = self.backend.chat(convs, SamplingParams(temperature=0.0, max_new_tokens=self.max_new_tokens))
        metric = Metric("judge", 0, 9, "how well the response answers the question")
        out: list[float | None] = []
        for r in replies:
            score = parse_score(r.text, metric) if r.ok else None
            out.append(None if score is None else score / 9.0)
        return out


def _judge_template(ctx: JobContext, ref: str | None) -> str:
    if not ref:
        return JUDGE_TEMPLATE
    for cand in (ctx.workspace.templates / ref, Path(ref).expanduser()):
        if cand.is_file():
            text = cand.read_text(encoding="utf-8")
            if "{response}" not in text:
                raise RewardSetupError(f"judge_template: {ref} has no {{response}} placeholder: the judge would not "
                                       "see the answer")
            return text
    raise RewardSetupError(f"judge_template: '{ref}' not found (looked in workspace/templates and {ref})")


def build_rewards(config: GrpoJob, ctx: JobContext, cpu: bool) -> tuple[list[Any], list[float]]:
    """(reward callables, weights) in the order of `config.reward_funcs`."""
    funcs: list[Any] = []
    for name in config.reward_funcs:
        if name == "math_verify":
            funcs.append(MathVerifyReward())
        elif name == "format":
            funcs.append(FormatReward(config.reasoning_tag))
        elif name == "length":
            funcs.append(LengthReward(config.min_length, config.max_length_tokens))
        elif name == "reward_model":
            from core.train.common import resolve_model_path

            assert config.reward_model is not None  # the config refuses reward_model without one
            path = resolve_model_path(ctx, config.reward_model)
            funcs.append(RewardModelReward(path, config.max_length + config.max_completion_length, cpu))
        elif name == "judge":
            from core.llm.factory import make_backend

            assert config.judge is not None
            backend = make_backend(config.judge, ctx.workspace, devices=ctx.devices, log_dir=ctx.run_dir)
            funcs.append(JudgeReward(backend, _judge_template(ctx, config.judge_template)))
    weights = list(config.reward_weights) if config.reward_weights else [1.0] * len(funcs)
    return funcs, weights


def close_rewards(funcs: Sequence[Any]) -> None:
    """Release what the rewards hold (a judge's backend: a managed vLLM server, a worker)."""
    for f in funcs:
        if isinstance(f, JudgeReward):
            f.backend.close()
