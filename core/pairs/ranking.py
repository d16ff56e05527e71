"""Ranking answers into a (chosen, rejected) pair: the scores and the rules that drop a pair.

Scores: a verifier (math-verify against a reference: 1/0), a judge's rubric score, or EasyDistill 2.0's DPO-data
scorer, correct × 1/(1 + α·length in characters) — correct answers win, and among them the concise one. A pair is
only worth training on when the two sides differ: equal scores (a tie, or a margin below `min_margin`) and texts that
are the same once whitespace is normalised are dropped, with the reason, instead of teaching noise.
"""

from __future__ import annotations

from dataclasses import dataclass


class NoPair(ValueError):
    """The answers do not make a pair; the message is the reject reason, `code` its kind for the stats (tie,
    identical, margin, student_better)."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


def scorer_score(correct: float, text: str, alpha: float) -> float:
    """EasyDistill 2.0: correct × 1/(1 + α·length), length in characters."""
    return float(correct) / (1.0 + alpha * len(text))


def verify(text: str, gold: str) -> float:
    """1.0 when the answer's final result matches the reference under math-verify, else 0.0."""
    from core.eval.answers import math_verify_match

    return 1.0 if math_verify_match(text, gold) else 0.0


def same_text(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


@dataclass
class Pair:
    chosen: str  # candidate keys
    rejected: str
    margin: float | None  # chosen score - rejected score (None when unranked)


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def teacher_over_student(texts: dict[str, str], scores: dict[str, float] | None, min_margin: float) -> Pair:
    """Student mode: the teacher's answer is chosen; with scores, only when it beats the student's by > min_margin."""
    if same_text(texts["teacher"], texts["student"]):
        raise NoPair("identical pair: the student's answer equals the teacher's", "identical")
    if scores is None:
        return Pair("teacher", "student", None)
    t, s = scores["teacher"], scores["student"]
    if t - s <= min_margin:
        if t == s:
            raise NoPair(f"tie: the teacher's and the student's answers both scored {_fmt(t)}", "tie")
        if s > t:
            raise NoPair(f"the student's answer scored higher ({_fmt(s)} > {_fmt(t)}): not a teacher-over-student pair",
                         "student_better")
        raise NoPair(f"margin {_fmt(t - s)} is not above min_margin {_fmt(min_margin)}", "margin")
    return Pair("teacher", "student", t - s)


def best_vs_worst(texts: dict[str, str], scores: dict[str, float], min_margin: float) -> Pair:
    """Best-of-N: the highest-scored sample against the lowest (first sample wins ties for best, last for worst, so
    the choice is reproducible)."""
    order = list(texts)
    best = max(order, key=lambda c: (scores[c], -order.index(c)))
    worst = min(order, key=lambda c: (scores[c], -order.index(c)))
    hi, lo = scores[best], scores[worst]
    if hi - lo <= min_margin:
        if hi == lo:
            raise NoPair(f"tie: all {len(order)} samples scored {_fmt(hi)}", "tie")
        raise NoPair(f"margin {_fmt(hi - lo)} between best and worst is not above min_margin {_fmt(min_margin)}",
                     "margin")
    if same_text(texts[best], texts[worst]):
        raise NoPair("identical pair: the best and the worst samples are the same text", "identical")
    return Pair(best, worst, hi - lo)
