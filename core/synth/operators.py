"""The synthesis operators of REFERENCE §2 as two pure steps: rows -> requests ("units"), reply -> output row.

A unit is one teacher request with the id its output row will carry (the resume key): the input row's id for the
one-to-one operators, `expand-s<seed>-<k>` for the k-th new instruction of `expand`. Every random choice comes from
a generator seeded with (seed, k), so a resumed job rebuilds exactly the same requests. The original question stays
in `instruction` (1.x overwrote it with the whole operator prompt); rewritten text goes to the fields named below.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.data.ops import DEFAULT_SHARES
from core.data.rows import prompt_text, response_text, to_messages
from core.errors import UserError
from core.synth.parsing import ParseFailure, answer_or_whole, instruction_response, match_category, thought_solution
from core.synth.templates import render

WRITES_OUTPUT = {"label", "extract", "cot_generate", "long2short", "short2long"}  # rows whose answer the teacher wrote
OPERATORS = ("label", "expand", "refine", "extract", "cot_generate", "long2short", "short2long", "classify")
DEFAULT_CATEGORIES = list(DEFAULT_SHARES)


class InputProblem(UserError, ValueError):
    """An input row the operator cannot use (no instruction, no chain of thought, ...): it goes to rejects."""


@dataclass
class OpParams:
    template: str
    system_prompt: str = "You are a helpful assistant."
    num_in_context_samples: int = 3
    num_output_samples: int = 10
    seed: int = 42
    categories: list[str] = field(default_factory=lambda: list(DEFAULT_CATEGORIES))
    teacher: str = ""  # recorded on output rows


@dataclass
class Unit:
    id: str
    row: dict  # the input row (expand: {"examples": [rows]})
    messages: list[dict]


def reject_record(unit_id: str, reason: str, stage: str, row: dict | None = None, reply: str | None = None,
                  attempts: int = 0) -> dict:
    """One line of a rejects file: what failed, why, and what to look at."""
    rec: dict[str, Any] = {"id": unit_id, "reason": reason, "stage": stage}
    if attempts:
        rec["attempts"] = attempts
    if reply is not None:
        rec["reply"] = reply[:4000]
    if row is not None:
        rec["input"] = row
    return rec


def _system(params: OpParams) -> list[dict]:
    return [{"role": "system", "content": params.system_prompt}] if params.system_prompt else []


def _need_instruction(row: dict) -> str:
    text = prompt_text(row)
    if not text.strip():
        raise InputProblem("the row has no instruction")
    return text


def _cot_of(row: dict) -> str:
    """The chain of thought long2short/short2long rewrite: the output, else thought + solution."""
    out = response_text(row)
    if out and str(out).strip():
        return str(out)
    if row.get("thought"):
        return f"{row['thought']}\n\n{row.get('solution') or ''}".strip()
    raise InputProblem("the row has no chain of thought (output, or thought/solution) to rewrite")


def make_units(operator: str, rows: list[dict], params: OpParams) -> tuple[list[Unit], list[dict]]:
    """The requests for `rows`, plus reject records for rows the operator cannot use."""
    if operator not in OPERATORS:
        raise ValueError(f"unknown operator {operator!r}; choose one of {', '.join(OPERATORS)}")
    if operator == "expand":
        return _expand_units(rows, params)
    units, rejects = [], []
    for row in rows:
        rid = str(row["id"])
        try:
            units.append(Unit(rid, row, _messages(operator, row, params)))
        except InputProblem as e:
            rejects.append(reject_record(rid, str(e), "input", row))
    return units, rejects


def _messages(operator: str, row: dict, params: OpParams) -> list[dict]:
    t = params.template
    if operator == "label":
        if row.get("messages"):
            msgs = to_messages(row, include_output=False)
            if not msgs or msgs[-1]["role"] != "user":
                raise InputProblem("the conversation does not end with a user turn to answer")
            msgs[-1] = {"role": "user", "content": render(t, {"instruction": msgs[-1]["content"]})}
            if not any(m["role"] == "system" for m in msgs):
                msgs = _system(params) + msgs
            return msgs
        system = [{"role": "system", "content": row["system"]}] if row.get("system") else _system(params)
        return system + [{"role": "user", "content": render(t, {"instruction": _need_instruction(row)})}]
    if operator in ("refine", "cot_generate"):
        return _system(params) + [{"role": "user", "content": render(t, {"instruction": _need_instruction(row)})}]
    if operator == "extract":
        text = row.get("text") or row.get("output") or row.get("instruction")
        if not text or not str(text).strip():
            raise InputProblem("the row has no text to extract from")
        return _system(params) + [{"role": "user", "content": render(t, {"text": str(text)})}]
    if operator in ("long2short", "short2long"):
        values = {"instruction": _need_instruction(row), "cot": _cot_of(row)}
        return _system(params) + [{"role": "user", "content": render(t, values)}]
    if operator == "classify":
        values = {"instruction": _need_instruction(row), "categories": ", ".join(params.categories)}
        return _system(params) + [{"role": "user", "content": render(t, values)}]
    raise ValueError(operator)


def _expand_units(rows: list[dict], params: OpParams) -> tuple[list[Unit], list[dict]]:
    pool = [r for r in rows if prompt_text(r).strip()]
    if not pool:
        raise ValueError("expand needs at least one input row with an instruction")
    k = min(params.num_in_context_samples, len(pool)) or 1
    units = []
    for j in range(params.num_output_samples):
        rng = random.Random(f"{params.seed}:{j}")  # per-unit generator: a resumed job rebuilds the same request
        examples = rng.sample(pool, k)
        block = "\n".join(f"{i + 1}. {prompt_text(e).strip()}" for i, e in enumerate(examples))
        msgs = _system(params) + [{"role": "user", "content": render(params.template, {"examples": block})}]
        units.append(Unit(f"expand-s{params.seed}-{j}", {"examples": examples}, msgs))
    return units, []


# ------------------------------------------------------------------------------------------------------- parsing


def _label(unit: Unit, text: str, params: OpParams) -> dict:
    if not text.strip():
        raise ParseFailure("empty reply")
    row = dict(unit.row)
    if row.get("output") not in (None, "") and row["output"] != text:
        row["reference_output"] = row["output"]
    row["output"] = text
    if row.get("messages"):
        msgs = to_messages(row, include_output=False)
        row["messages"] = msgs + [{"role": "assistant", "content": text}]
    return row


def _expand(unit: Unit, text: str, params: OpParams) -> dict:
    new = answer_or_whole(text)
    examples = unit.row["examples"]
    if any(new.strip().lower() == prompt_text(e).strip().lower() for e in examples):
        raise ParseFailure("the new instruction copies one of the examples")
    return {"id": unit.id, "instruction": new, "expanded_from": [e["id"] for e in examples]}


def _refine(unit: Unit, text: str, params: OpParams) -> dict:
    new = answer_or_whole(text)
    keep = {k: v for k, v in unit.row.items() if k not in ("instruction", "input", "output", "messages")}
    return {**keep, "instruction": new, "original_instruction": prompt_text(unit.row)}


def _extract(unit: Unit, text: str, params: OpParams) -> dict:
    ins, resp = instruction_response(text)
    src = unit.row.get("text") or unit.row.get("output") or unit.row.get("instruction")
    return {"id": unit.id, "instruction": ins, "output": resp, "source_text": src}


def _cot(unit: Unit, text: str, params: OpParams) -> dict:
    thought, solution = thought_solution(text)
    row = dict(unit.row)
    if row.get("output") not in (None, ""):
        row["reference_output"] = row["output"]
    row.update(thought=thought, solution=solution, output=f"<think>\n{thought}\n</think>\n\n{solution}")
    return row


def _rewrite(ratio_key: str) -> Callable[[Unit, str, OpParams], dict]:
    def parse(unit: Unit, text: str, params: OpParams) -> dict:
        from core.synth.parsing import strip_think

        new = strip_think(text).strip()
        if not new:
            raise ParseFailure("empty reply")
        old = _cot_of(unit.row)
        row = dict(unit.row)
        row.update(original_output=old, output=new)
        row[ratio_key] = round(len(new) / max(1, len(old)), 4)
        for k in ("thought", "solution"):  # they described the old chain of thought
            row.pop(k, None)
        return row

    return parse


def _classify(unit: Unit, text: str, params: OpParams) -> dict:
    if not text.strip():
        raise ParseFailure("empty reply")
    cat, raw = match_category(text, params.categories)
    row = dict(unit.row)
    # Like the DistilQwen recipe, an answer outside the list counts as "Others" (kept, and marked, not dropped).
    row["category"] = cat or ("Others" if "Others" in params.categories else params.categories[-1])
    if cat is None:
        row["category_unmatched"] = raw[:200]
    return row


PARSERS: dict[str, Callable[[Unit, str, OpParams], dict]] = {
    "label": _label, "expand": _expand, "refine": _refine, "extract": _extract, "cot_generate": _cot,
    "long2short": _rewrite("compression_ratio"), "short2long": _rewrite("expansion_ratio"), "classify": _classify,
}


def parse_reply(operator: str, unit: Unit, text: str, params: OpParams) -> dict:
    """The output row for a reply (ParseFailure says why there is none). The row always carries the unit's id."""
    row = PARSERS[operator](unit, text, params)
    row["id"] = unit.id
    if params.teacher and operator in WRITES_OUTPUT:
        row["teacher"] = params.teacher
    return row
