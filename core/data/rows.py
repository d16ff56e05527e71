"""The canonical row every workspace dataset holds, one JSON object per line.

    id           str, unique within the dataset, stable across re-imports (source id, else a content hash)
    instruction  the user's question (DPO: the prompt; OmniThought: the question). Synthesis keeps it unchanged.
    input        optional context appended to the instruction when prompting (Alpaca's `input`), on the next line:
                 instruction + "\n" + input, exactly as LLaMA-Factory joins them, so every export prompts alike
    output       the answer (label / SFT target); for CoT rows the full reasoning + answer
    system       optional system prompt
    messages     only for multi-turn conversations: [{"role", "content"}, ...] (the source of truth when present;
                 `instruction` / `output` then mirror its last user and last assistant turn)
    chosen, rejected          preference pairs (DPO)
    thought, solution         chain of thought and final answer of CoT rows
    text                      raw text (input of the `extract` operator)
    question_id, teacher, rv, cd, correctness   OmniThought traces (one row per trace)
    anything else             kept as-is (category, scores, source ids, ...)

Other parts of core (training, judging, curation) read rows only through these helpers, so the schema lives here once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from typing import Any

CONTENT_KEYS = ("system", "instruction", "input", "output", "messages", "chosen", "rejected", "text", "thought",
                "solution")


def prompt_text(row: dict) -> str:
    """The user turn a teacher or student sees: instruction, plus Alpaca's input on the next line (LLaMA-Factory's
    join, so a row prompts the same in our jobs and in every export LLaMA-Factory trains on)."""
    ins = str(row.get("instruction") or "")
    extra = str(row.get("input") or "")
    if not extra.strip():
        return ins
    return f"{ins}\n{extra}" if ins else extra


def to_messages(row: dict, include_output: bool = True, system: str | None = None) -> list[dict]:
    """The conversation of a row in OpenAI `messages` form (what chat templates and trainers take)."""
    if row.get("messages"):
        turns = row["messages"]
        if not isinstance(turns, list) or not all(isinstance(m, dict) and isinstance(m.get("role"), str)
                                                  and isinstance(m.get("content"), str) for m in turns):
            from core.data.errors import RowInvalid

            raise RowInvalid("'messages' must be a list of turns, each with a 'role' and text 'content'",
                             code="row_messages")
        msgs = [dict(m) for m in turns]
        if not include_output and msgs and msgs[-1].get("role") == "assistant":
            msgs = msgs[:-1]
        return msgs
    msgs: list[dict] = []
    sys_text = row.get("system") or system
    if sys_text:
        msgs.append({"role": "system", "content": str(sys_text)})
    msgs.append({"role": "user", "content": prompt_text(row)})
    out = row.get("output")
    if out is None and row.get("chosen") is not None:
        out = row["chosen"]
    if include_output and out is not None:
        msgs.append({"role": "assistant", "content": str(out)})
    return msgs


def content_id(row: dict, n: int = 16) -> str:
    """A short hash of a row's content: the same row imported twice gets the same id."""
    payload = {k: row[k] for k in CONTENT_KEYS if row.get(k) not in (None, "", [])}
    blob = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(blob.encode("utf-8")).hexdigest()[:n]


class IdAssigner:
    """Gives each row a unique id: its own (when the source had one) or its content hash; repeats get `-2`, `-3`."""

    def __init__(self, taken: Iterable[str] = ()):
        self.taken: set[str] = set(taken)
        self._next: dict[str, int] = {}

    def assign(self, row: dict) -> dict:
        base = row.get("id")
        base = str(base).strip() if base not in (None, "") else content_id(row)
        rid = base
        if rid in self.taken:
            k = self._next.get(base, 2)
            while f"{base}-{k}" in self.taken:
                k += 1
            rid = f"{base}-{k}"
            self._next[base] = k + 1
        self.taken.add(rid)
        row["id"] = rid
        return row


def with_id_first(row: dict) -> dict:
    """Key order for files people read: id, the main text fields, then the rest."""
    order = ["id", "system", "instruction", "input", "output", "thought", "solution", "messages", "chosen", "rejected",
             "text"]
    out = {k: row[k] for k in order if k in row}
    out.update({k: v for k, v in row.items() if k not in out})
    return out


def field_text(row: dict, key: str) -> str:
    """A field as text for statistics and previews (conversations flattened, missing = empty)."""
    v = row.get(key)
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, list) and key == "messages":
        return "\n".join(str(m.get("content", "")) for m in v if isinstance(m, dict))
    return json.dumps(v, ensure_ascii=False)


def iter_jsonl_rows(path) -> Iterator[dict]:
    """Rows of a workspace JSONL dataset (our own files: one object per line; a torn last line is skipped)."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            s = line.strip()
            if not s:
                continue
            try:
                yield json.loads(s)
            except json.JSONDecodeError:
                continue  # only possible for a last line cut by a crash; the writer repairs it on next append


def response_text(row: dict) -> Any:
    """The assistant answer of a row, whichever shape it has."""
    if row.get("output") is not None:
        return row["output"]
    if row.get("messages"):
        for m in reversed(row["messages"]):
            if m.get("role") == "assistant":
                return m.get("content")
    return row.get("chosen")
