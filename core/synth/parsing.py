"""Reading tagged teacher replies. Lenient where it costs nothing (case, whitespace, an unclosed last tag) and strict
where a wrong guess would poison the data (a missing tag is a parse failure, reported with the reason)."""

from __future__ import annotations

import re


class ParseFailure(ValueError):
    """The reply does not have the shape the operator asked for; the message becomes the reject reason."""


def strip_think(text: str) -> str:
    """The reply without a leading <think>...</think> block (reasoning models put one before the answer)."""
    return re.sub(r"^\s*<think>.*?</think>\s*", "", text, count=1, flags=re.S | re.I)


def find_tag(text: str, tag: str, allow_unclosed: bool = True) -> str | None:
    """Content of the last complete <tag>...</tag> (models often restate the format first); with `allow_unclosed`, a
    final <tag> whose closing tag was cut off by the token limit also counts."""
    matches = re.findall(rf"<{tag}>(.*?)</{tag}>", text, flags=re.S | re.I)
    if matches:
        return matches[-1].strip()
    if allow_unclosed:
        m = re.search(rf"<{tag}>(?!.*<{tag}>)(.*)$", text, flags=re.S | re.I)
        if m and m.group(1).strip():
            return m.group(1).strip()
    return None


def answer_or_whole(text: str) -> str:
    """`<answer>` content, else the whole reply (expand/refine: REFERENCE §2)."""
    body = strip_think(text)
    found = find_tag(body, "answer")
    value = found if found is not None else body.strip()
    if not value:
        raise ParseFailure("empty reply")
    return value


def instruction_response(text: str) -> tuple[str, str]:
    body = strip_think(text)
    ins = find_tag(body, "instruction", allow_unclosed=False)
    resp = find_tag(body, "response")
    if not ins and not resp:
        raise ParseFailure("no <instruction> and <response> tags in the reply")
    if not ins:
        raise ParseFailure("no <instruction>...</instruction> in the reply")
    if not resp:
        raise ParseFailure("no <response>...</response> in the reply")
    return ins, resp


def thought_solution(text: str) -> tuple[str, str]:
    """(thought, solution) from <thought>/<solution> tags, or a <think> block followed by the answer."""
    thought = find_tag(text, "thought", allow_unclosed=False)
    solution = find_tag(text, "solution")
    if thought and solution:
        return thought, solution
    m = re.match(r"^\s*<think>(.*?)</think>(.*)$", text, flags=re.S | re.I)
    if m and m.group(1).strip() and m.group(2).strip():
        rest = m.group(2)
        return m.group(1).strip(), (find_tag(rest, "solution") or find_tag(rest, "answer") or rest.strip())
    if thought and not solution:
        raise ParseFailure("reply has <thought> but no <solution> (cut off by max_new_tokens?)")
    raise ParseFailure("no <thought>/<solution> tags or <think> block in the reply")


def match_category(text: str, categories: list[str]) -> tuple[str | None, str]:
    """(category, raw answer): the tagged answer matched case-insensitively, else the first category named."""
    body = strip_think(text)
    raw = find_tag(body, "answer") or body.strip()
    norm = {re.sub(r"[\s_’'`\"-]+", "", c).lower(): c for c in categories}
    key = re.sub(r"[\s_’'`\"-]+", "", raw).lower()
    if key in norm:
        return norm[key], raw
    low = raw.lower()
    hits = [(low.find(c.lower()), c) for c in categories if c.lower() in low]
    if hits:
        return min(hits)[1], raw
    return None, raw
