"""Judge metrics (REFERENCE §3) and reading a score out of a judge's reply.

A judge writes its analysis and should end with `<score>N</score>`. Replies drift from that, so the parser falls back
in a fixed order: the last `<score>` tag; else the last standalone integer in the metric's range (judges conclude at
the end, and an early "step 3" must not win); else, for the true/false metrics, the last true/false word. Nothing
found = None, and the caller flags the row instead of guessing.

For true/false metrics the words are tried before bare integers: "2 errors in step 1, so it is incorrect" must read
as 0, not as the stray "1".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.synth.parsing import find_tag, strip_think


@dataclass(frozen=True)
class Metric:
    name: str
    low: int
    high: int
    question: str  # what the judge is asked, for help texts

    @property
    def binary(self) -> bool:
        return (self.low, self.high) == (0, 1)


METRICS: dict[str, Metric] = {
    "rv": Metric("rv", 0, 9, "Reasoning Verbosity: does the length and step detail fit the problem?"),
    "cd": Metric("cd", 0, 9, "Cognitive Difficulty: competence needed to follow and reproduce the reasoning"),
    "correctness": Metric("correctness", 0, 1, "is the reasoning logically correct and does it reach the answer?"),
    "informativeness": Metric("informativeness", 0, 9, "how much useful information the response gives"),
    "helpfulness": Metric("helpfulness", 0, 9, "how well the response serves the user's request"),
    "generalization": Metric("generalization", 0, 9, "how broadly the instruction-response pair teaches"),
}

# N/M and "N out of M" are one score N; the denominator must not count as a later integer.
_FRACTION = re.compile(r"(?<![\w.])(\d+)\s*(?:/|out of)\s*\d+(?!\w|\.\d)", re.I)
_INT = re.compile(r"(?<![\w.\-])(\d+)(?![\w]|\.\d)")
# "yes"/"no"/"wrong" are left out: "no contradictions", "nothing wrong" are praise, not verdicts.
_WORDS = re.compile(r"\b(?:(not\s+)?(correct|valid|true)|(incorrect|invalid|false))\b", re.I)


def _ints(text: str) -> list[int]:
    return [int(m) for m in _INT.findall(_FRACTION.sub(r"\1", text))]


def _word(text: str) -> int | None:
    found = _WORDS.findall(text)
    if not found:
        return None
    negated, positive, negative = found[-1]
    return 0 if negated or negative else 1


def parse_score(text: str | None, metric: str | Metric) -> int | None:
    """The score a judge reply gives for `metric`, or None when it gives none in range."""
    m = METRICS[metric] if isinstance(metric, str) else metric
    if not text:
        return None
    tag = find_tag(text, "score", allow_unclosed=False)
    if tag is not None:
        values = _ints(tag)
        if values:
            return values[-1] if m.low <= values[-1] <= m.high else None
        return _word(tag) if m.binary else None
    body = strip_think(text) or text  # a reasoning judge's <think> block restates formats; its conclusion follows
    if m.binary:
        w = _word(body)
        if w is not None:
            return w
    in_range = [v for v in _ints(body) if m.low <= v <= m.high]
    return in_range[-1] if in_range else None
