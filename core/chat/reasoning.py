"""Splitting a model's reply into reasoning and answer.

Reasoning models and CoT data wrap their chain of thought in tags: `<think>…</think>` (Qwen3, DeepSeek-R1,
OmniThought rows), `<thinking>`, `<thought>`, or the `<|begin_of_thought|>…<|end_of_thought|>` /
`<|begin_of_solution|>…<|end_of_solution|>` pair of CoT datasets. The chat tab shows the thought collapsed and the
answer plainly; evaluation checks only the answer. Both read replies through this module, so the tag list lives once.
A reply still streaming may have an opened thought that is not closed yet: it is reported as `closed=False`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

THOUGHT_TAGS: tuple[tuple[str, str], ...] = (
    ("<think>", "</think>"),
    ("<thinking>", "</thinking>"),
    ("<thought>", "</thought>"),
    ("<|begin_of_thought|>", "<|end_of_thought|>"),
)
SOLUTION_TAGS: tuple[tuple[str, str], ...] = (
    ("<|begin_of_solution|>", "<|end_of_solution|>"),
    ("<solution>", "</solution>"),
)

_ALL = [(o, c, "thought") for o, c in THOUGHT_TAGS] + [(o, c, "answer") for o, c in SOLUTION_TAGS]
_OPEN = re.compile("|".join(re.escape(o) for o, _, _ in _ALL))


@dataclass
class Segment:
    kind: str  # "thought" | "answer"
    text: str
    closed: bool = True  # False: a thought whose closing tag has not arrived (yet)


def split_reasoning(text: str) -> list[Segment]:
    """The reply as ordered thought / answer segments; empty segments are dropped, tags removed.

    A lone closing `</think>` with no opening tag (some chat templates put `<think>` into the prompt) marks
    everything before it as thought.
    """
    segments: list[Segment] = []
    pos = 0
    if not _OPEN.search(text):
        for _open, close_tag in THOUGHT_TAGS:
            idx = text.find(close_tag)
            if idx >= 0:
                _add(segments, "thought", text[:idx], True)
                pos = idx + len(close_tag)
                break
    while pos < len(text):
        m = _OPEN.search(text, pos)
        if not m:
            _add(segments, "answer", text[pos:], True)
            break
        _add(segments, "answer", text[pos:m.start()], True)
        open_tag = m.group(0)
        close_tag, kind = next((c, k) for o, c, k in _ALL if o == open_tag)
        end = text.find(close_tag, m.end())
        if end < 0:
            _add(segments, kind, text[m.end():], kind == "answer")
            break
        _add(segments, kind, text[m.end():end], True)
        pos = end + len(close_tag)
    return segments


def _add(segments: list[Segment], kind: str, text: str, closed: bool) -> None:
    text = text.strip()
    if not text:
        return
    if segments and segments[-1].kind == kind == "answer":
        segments[-1].text += "\n\n" + text
        return
    segments.append(Segment(kind, text, closed))


def final_answer(text: str) -> str:
    """The reply without its reasoning: what an answer check compares. An unfinished thought yields ''."""
    return "\n\n".join(s.text for s in split_reasoning(text) if s.kind == "answer").strip()


def thought_text(text: str) -> str:
    return "\n\n".join(s.text for s in split_reasoning(text) if s.kind == "thought").strip()
