"""LLM-judge pairwise comparison with position swapping.

A judge shown two answers tends to prefer one position. Every row is therefore judged twice, once with the evaluated
model's answer first and once with it second; a row counts as a win only when the model wins in both orders, a loss
when it loses in both, and a tie otherwise (including the case where the judge simply picked the same position both
times — that is order bias, and swapping cancels it). The verdict parser accepts the `[[A]]` / `[[B]]` / `[[C]]`
convention of MT-Bench and the usual variants; an unparseable verdict is kept (raw text) and counted separately.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_TEMPLATE = """You are a fair judge. Compare two AI assistants' answers to the user's question below.
Judge helpfulness, correctness, relevance and clarity. Ignore the order in which the answers appear and their length.

[Question]
{question}

[Answer A]
{answer_a}

[Answer B]
{answer_b}

Explain your comparison briefly, then give your verdict on the last line in exactly this form:
[[A]] if answer A is better, [[B]] if answer B is better, [[C]] for a tie."""

SYSTEM = "You compare answers and output a verdict."
PLACEHOLDERS = ("{question}", "{answer_a}", "{answer_b}")

_BRACKETS = re.compile(r"\[\[\s*(A|B|C|TIE)\s*\]\]", re.IGNORECASE)
_VERDICT_TAG = re.compile(r"<verdict>\s*(A|B|C|TIE)\s*</verdict>", re.IGNORECASE)
# Letters are matched case-sensitively ("the winner is a tie" must not read as A); the words around them are not.
_WORDED = re.compile(
    r"(?i:verdict|winner|better answer|better response|preferred answer)\s*(?i:is|:|=)?\s*[\"'*(\[]*\s*"
    r"(?i:answer\s+|assistant\s+)?(A|B|C|(?i:tie))\b"
)
_LONE = re.compile(r"^\W*(A|B|C|(?i:tie))\W*$")
_TIE_WORDS = re.compile(r"\b(tie|draw|equally good|equally bad|both equal)\b", re.IGNORECASE)


def load_template(path: str | Path | None) -> str:
    """The judge prompt: a user template file with the three placeholders, or the built-in one."""
    if not path:
        return DEFAULT_TEMPLATE
    text = Path(path).read_text(encoding="utf-8")
    missing = [p for p in PLACEHOLDERS if p not in text]
    if missing:
        raise ValueError(f"judge template {path}: missing placeholder(s) {', '.join(missing)}")
    return text


def judge_conversation(question: str, answer_a: str, answer_b: str, template: str = DEFAULT_TEMPLATE) -> list[dict]:
    prompt = template.replace("{question}", question).replace("{answer_a}", answer_a).replace("{answer_b}", answer_b)
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]


def parse_verdict(text: str) -> str | None:
    """'A', 'B' or 'C' (tie) from a judge's reply; None when it gives no recognisable verdict.

    The last explicit marker wins (judges often quote the format before answering): `[[A]]`, `<verdict>A</verdict>`,
    "Verdict: A" / "the better answer is B", a last line that is only the letter, tie words.
    """
    if not text:
        return None
    for pattern in (_BRACKETS, _VERDICT_TAG, _WORDED):
        found = pattern.findall(text)
        if found:
            return _letter(found[-1])
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if lines:
        m = _LONE.match(lines[-1])
        if m:
            return _letter(m.group(1))
    if _TIE_WORDS.search(lines[-1] if lines else ""):
        return "C"
    return None


def _letter(s: str) -> str:
    s = s.upper()
    return "C" if s == "TIE" else s


def model_score(verdict: str | None, model_position: str) -> float | None:
    """1 / 0.5 / 0 for the evaluated model in one game, given which position ('A'|'B') its answer had."""
    if verdict is None:
        return None
    if verdict == "C":
        return 0.5
    return 1.0 if verdict == model_position else 0.0


def combine(model_first: str | None, model_second: str | None) -> str | None:
    """The row's outcome for the model from both orders: 'win' | 'loss' | 'tie' | None (no verdict at all).

    `model_first` is the verdict when the model's answer was A, `model_second` when it was B. With one verdict
    missing the other decides alone (recorded as such by the caller).
    """
    scores = [s for s in (model_score(model_first, "A"), model_score(model_second, "B")) if s is not None]
    if not scores:
        return None
    mean = sum(scores) / len(scores)
    return "win" if mean > 0.5 else "loss" if mean < 0.5 else "tie"


@dataclass
class WinRate:
    """Aggregate of all judged rows. `winrate` counts a tie as half a win."""

    wins: int = 0
    ties: int = 0
    losses: int = 0
    unjudged: int = 0  # rows where neither order gave a parseable verdict
    games: int = 0  # parseable single-order verdicts
    consistent: int = 0  # rows whose two verdicts name the same answer (or both tie)
    both_judged: int = 0
    first_position_wins: int = 0  # games won by whichever answer was shown first
    decisive_games: int = 0

    def add(self, model_first: str | None, model_second: str | None) -> str | None:
        outcome = combine(model_first, model_second)
        for v in (model_first, model_second):
            if v is not None:
                self.games += 1
                if v != "C":
                    self.decisive_games += 1
                    self.first_position_wins += v == "A"
        if model_first is not None and model_second is not None:
            self.both_judged += 1
            self.consistent += model_score(model_first, "A") == model_score(model_second, "B")
        if outcome is None:
            self.unjudged += 1
        else:
            self.wins += outcome == "win"
            self.ties += outcome == "tie"
            self.losses += outcome == "loss"
        return outcome

    @property
    def judged(self) -> int:
        return self.wins + self.ties + self.losses

    @property
    def winrate(self) -> float | None:
        return (self.wins + 0.5 * self.ties) / self.judged if self.judged else None

    def summary(self) -> dict:
        return {
            "winrate": self.winrate,
            "wins": self.wins,
            "ties": self.ties,
            "losses": self.losses,
            "unjudged": self.unjudged,
            "consistency": self.consistent / self.both_judged if self.both_judged else None,
            "first_position_rate": self.first_position_wins / self.decisive_games if self.decisive_games else None,
        }
