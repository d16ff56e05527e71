"""A curated selection as SFT rows: System-2 (the reasoning inside <think>…</think>, then the answer) or System-1
(the answer alone), so the same curated traces can train a thinking student or a direct-answer one.

Rows stay canonical (`instruction` / `output`, plus `system` when there is one): the Training tab and every export
format read them through core.data.rows. Scores, teacher and question id ride along for the record.
"""

from __future__ import annotations

from typing import Literal

from core.chat.reasoning import final_answer, thought_text
from core.data.rows import response_text

KEEP = ("id", "system", "question_id", "teacher", "rv", "cd", "correctness")


def thought_and_answer(row: dict) -> tuple[str, str]:
    """(reasoning, answer) of a CoT row: its `thought` / `solution` fields, else split from the full response."""
    thought, solution = row.get("thought"), row.get("solution")
    full = response_text(row)
    full = full if isinstance(full, str) else ""
    if not thought and full:
        thought = thought_text(full)
    if not solution and full:
        solution = final_answer(full)
    return str(thought or "").strip(), str(solution or "").strip()


def sft_row(row: dict, mode: Literal["system1", "system2"]) -> dict | None:
    """The SFT row for `mode`, or None when the trace lacks what that mode needs (reasoning, or an answer)."""
    thought, answer = thought_and_answer(row)
    if not answer or (mode == "system2" and not thought):
        return None
    output = f"<think>\n{thought}\n</think>\n\n{answer}" if mode == "system2" else answer
    out = {k: row[k] for k in KEEP if row.get(k) is not None}
    out["instruction"] = row.get("instruction", "")
    if row.get("input"):
        out["input"] = row["input"]
    out["output"] = output
    return out
