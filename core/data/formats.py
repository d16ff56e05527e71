"""Dataset formats people bring, how to recognise them, and how each record becomes canonical rows (core.data.rows).

Formats (keys used in sidecars, the UI and the CLI):
    instruction  EasyDistill instruction array: {"instruction"} (or {"prompt"}), + "input" where a row has one
    labeled      EasyDistill labeled array: {"instruction", "output"}, + "input" where a row has one
    alpaca       {"instruction", "input", "output"} (+ "system", "history" as LLaMA-Factory writes it)
    sharegpt     {"conversations": [{"from": "human"|"gpt"|"system", "value"}], "system"?}
    messages     OpenAI chat: {"messages": [{"role", "content"}]}
    dpo          {"prompt", "chosen", "rejected"} (strings or TRL conversational lists)
    omnithought  {"question", "reasoning": [trace, ...]}: flattened to one row per trace
    text         raw text {"text"} for the `extract` operator

A mapping renames a format's fields to the file's columns ({"instruction": "question", "output": "answer"}), so a
file with other column names is imported by correcting the mapping rather than editing the file.

Nothing is dropped without a word: an `input` column is the canonical `input` in every instruction format (the prompt
is instruction + "\n" + input, as LLaMA-Factory joins them, even when only one row in a thousand has it), and every
other column a format does not use stays on the row and is counted by `unused_columns` for the import summary.
A record that cannot be used says why in the reader's terms: which field, missing or null or of which kind.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from core.data.errors import RowInvalid
from core.data.rows import content_id

FORMATS: dict[str, dict[str, list[str]]] = {
    "instruction": {"required": ["instruction"], "optional": ["input", "system"]},
    "labeled": {"required": ["instruction", "output"], "optional": ["input", "system"]},
    "alpaca": {"required": ["instruction"], "optional": ["input", "output", "system", "history"]},
    "sharegpt": {"required": ["conversations"], "optional": ["system"]},
    "messages": {"required": ["messages"], "optional": []},
    "dpo": {"required": ["prompt", "chosen", "rejected"], "optional": ["system"]},
    "omnithought": {"required": ["question", "reasoning"], "optional": []},
    "text": {"required": ["text"], "optional": []},
}
FORMAT_LABELS = {
    "instruction": "EasyDistill instructions", "labeled": "EasyDistill labeled (instruction/output)",
    "alpaca": "Alpaca (instruction/input/output)", "sharegpt": "ShareGPT (conversations)",
    "messages": "OpenAI messages", "dpo": "DPO (prompt/chosen/rejected)",
    "omnithought": "OmniThought (question + traces)", "text": "Raw text",
}
PROMPT_ALIASES = ("instruction", "prompt", "question", "query", "problem", "input")
OUTPUT_ALIASES = ("output", "response", "completion", "answer", "solution", "target")

ROLE_MAP = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant",
            "chatgpt": "assistant", "bing": "assistant", "bard": "assistant", "system": "system"}


@dataclass
class Detection:
    format: str | None  # None: not recognised; the user must pick a format and a mapping
    mapping: dict[str, str] = field(default_factory=dict)  # format field -> column in the file
    columns: list[str] = field(default_factory=list)  # every column seen in the sample
    note: str = ""

    def full_mapping(self) -> dict[str, str]:
        return full_mapping(self.format, self.mapping) if self.format else {}


def full_mapping(fmt: str, mapping: dict[str, str] | None = None) -> dict[str, str]:
    spec = FORMATS[fmt]
    out = {k: k for k in spec["required"] + spec["optional"]}
    out.update({k: v for k, v in (mapping or {}).items() if v})
    return out


def kind_of(v: Any) -> str:
    """A JSON value's kind in the words of a person who wrote the file (not Python's type names)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true/false"
    if isinstance(v, (int, float)):
        return f"the number {v!r}"
    if isinstance(v, str):
        return "text"
    if isinstance(v, (list, tuple)):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


def detect(records: list[Any]) -> Detection:
    """Guess the format of a file from a sample of its records (keys present in most records decide)."""
    dicts = [r for r in records if isinstance(r, dict)]
    if not records:
        return Detection(None, note="the file has no records (it is empty)")
    if not dicts:
        kinds = sorted({kind_of(r).removeprefix("the number ").split(" ")[0] if isinstance(r, (int, float))
                        and not isinstance(r, bool) else kind_of(r) for r in records})
        kinds = ["numbers" if k[:1].isdigit() or k[:1] == "-" else k for k in kinds]
        return Detection(None, note="the records are not JSON objects with named fields (found: "
                                    f"{', '.join(sorted(set(kinds)))})")
    counts: Counter[str] = Counter()
    for r in dicts:
        counts.update(r.keys())
    columns = list(counts)
    common = {k for k, c in counts.items() if c * 2 >= len(dicts)}

    def is_list(key: str) -> bool:
        return any(isinstance(r.get(key), list) for r in dicts)

    def first(options: tuple[str, ...], exclude: str = "") -> str | None:
        return next((k for k in options if k in common and k != exclude), None)

    if "conversations" in common and is_list("conversations"):
        return Detection("sharegpt", {}, columns)
    if "messages" in common and is_list("messages"):
        return Detection("messages", {}, columns)
    if "question" in common and "reasoning" in common and is_list("reasoning"):
        return Detection("omnithought", {}, columns)
    if "chosen" in common and "rejected" in common:
        p = first(("prompt", "instruction", "question", "query"))
        if p:
            return Detection("dpo", {"prompt": p} if p != "prompt" else {}, columns)
    if "instruction" in common:
        if "input" in common:
            return Detection("alpaca", {}, columns)
        o = first(OUTPUT_ALIASES)
        if o:
            return Detection("labeled", {"output": o} if o != "output" else {}, columns)
        return Detection("instruction", {}, columns)
    p = first(PROMPT_ALIASES)
    if p:
        o = first(OUTPUT_ALIASES, exclude=p)
        if o:
            return Detection("labeled", {"instruction": p, "output": o}, columns,
                             note=f"'{p}' taken as the instruction and '{o}' as the output")
        return Detection("instruction", {"instruction": p}, columns, note=f"'{p}' taken as the instruction")
    if "text" in common or "content" in common:
        t = "text" if "text" in common else "content"
        return Detection("text", {} if t == "text" else {"text": t}, columns)
    return Detection(None, {}, columns, note="no known field names: choose a format and map its fields to columns")


# ------------------------------------------------------------------------------------------------ normalising


class _Missing:
    """A field the record does not have at all (as opposed to one that is null)."""

    def __repr__(self) -> str:
        return "missing"


MISSING: Any = _Missing()


def _str(v: Any, what: str, allow_empty: bool = False, numbers: bool = False) -> str:
    """Text of a field. `numbers`: an answer written as a number (42) is its text ("42"); a prompt that is a number
    is refused, since it is almost always a column mapped by mistake (an id, a score)."""
    if v is MISSING:
        raise RowInvalid(f"no '{what}' field in this record", code="row_no_field", params={"field": what})
    if v is None:
        raise RowInvalid(f"'{what}' is null; it must be text", code="row_null", params={"field": what})
    if numbers and isinstance(v, (int, float)) and not isinstance(v, bool):
        v = str(v)
    if not isinstance(v, str):
        hint = " (is the right column mapped to it?)" if isinstance(v, (int, float)) else ""
        raise RowInvalid(f"'{what}' must be text, got {kind_of(v)}{hint}",
                         code="row_not_text_number" if hint else "row_not_text",
                         params={"field": what, "kind": kind_of(v)})
    if not allow_empty and not v.strip():
        raise RowInvalid(f"'{what}' is empty", code="row_empty", params={"field": what})
    return v


def _given(v: Any) -> bool:
    """A field with something in it (not absent, null, empty text or an empty list)."""
    return v is not MISSING and v is not None and not (isinstance(v, (str, list)) and not v)


def _instruction_row(get: Any, m: dict[str, str], fmt: str) -> dict:
    """instruction (+ input) (+ output) of the instruction / labeled / alpaca formats."""
    ins, inp = get("instruction"), get("input")
    text_inp = None
    if m["input"] != m["instruction"] and _given(inp):
        text_inp = _str(inp, m["input"], allow_empty=True, numbers=True)
        text_inp = text_inp if text_inp.strip() else None
    if text_inp and (not _given(ins) or (isinstance(ins, str) and not ins.strip())):
        row = {"instruction": text_inp}  # as LLaMA-Factory: an empty instruction leaves the input as the prompt
    else:
        row = {"instruction": _str(ins, m["instruction"])}
        if text_inp:
            row["input"] = text_inp
    out = get("output")
    if fmt == "labeled":
        row["output"] = _str(out, m["output"], allow_empty=True, numbers=True)
    elif fmt == "alpaca" and out is not MISSING and out is not None:
        row["output"] = _str(out, m["output"], allow_empty=True, numbers=True)
    return row


def _content(v: Any, where: str) -> str:
    """Message content: a string, or OpenAI content parts of which only text is supported."""
    if isinstance(v, str):
        return v
    if v is None:
        return ""
    if isinstance(v, list):
        texts = []
        for part in v:
            if isinstance(part, dict) and part.get("type", "text") == "text":
                texts.append(str(part.get("text", "")))
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise RowInvalid(f"{where}: non-text content ({kind}) is not supported", code="row_content_kind",
                                 params={"where": where, "kind": kind})
        return "".join(texts)
    raise RowInvalid(f"{where}: content must be text, got {kind_of(v)}", code="row_content_text",
                     params={"where": where, "kind": kind_of(v)})


def _turns(msgs: Any, what: str, role_key: str, content_key: str, roles: dict[str, str]) -> list[dict]:
    if not isinstance(msgs, list):
        if msgs is MISSING:
            raise RowInvalid(f"no '{what}' field in this record", code="row_no_field", params={"field": what})
        raise RowInvalid(f"'{what}' must be a list of turns, got {kind_of(msgs)}", code="row_turns_list",
                         params={"field": what, "kind": kind_of(msgs)})
    out = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            raise RowInvalid(f"'{what}'[{i}] must be an object with '{role_key}' and '{content_key}'",
                             code="row_turn_object", params={"field": what, "i": i, "role_key": role_key,
                                                             "content_key": content_key})
        raw_role = m.get(role_key)
        role = roles.get(str(raw_role).lower()) if raw_role is not None else None
        if role is None:
            raise RowInvalid(f"'{what}'[{i}]: unknown {role_key} {raw_role!r} (expected one of {sorted(set(roles))})",
                             code="row_turn_role", params={"field": what, "i": i, "role_key": role_key,
                                                           "role": repr(raw_role), "roles": sorted(set(roles))})
        out.append({"role": role, "content": _content(m.get(content_key), f"'{what}'[{i}]")})
    if not any(t["role"] == "user" for t in out):
        raise RowInvalid(f"'{what}' has no user turn", code="row_no_user", params={"field": what})
    return out


def _conversation_row(turns: list[dict], system: str | None = None) -> dict:
    """Single-turn conversations become flat rows; multi-turn ones keep `messages` (plus mirrors for previews)."""
    if turns and turns[0]["role"] == "system":
        system = turns[0]["content"] if not system else system
        turns = turns[1:]
    if any(t["role"] == "system" for t in turns):
        raise RowInvalid("a system turn in the middle of the conversation is not supported", code="row_system_mid")
    row: dict[str, Any] = {}
    if system:
        row["system"] = system
    roles = [t["role"] for t in turns]
    if roles in (["user"], ["user", "assistant"]):
        row["instruction"] = turns[0]["content"]
        if len(turns) == 2:
            row["output"] = turns[1]["content"]
        return row
    msgs = ([{"role": "system", "content": system}] if system else []) + turns
    row["messages"] = msgs
    row["instruction"] = next(t["content"] for t in reversed(turns) if t["role"] == "user")
    if turns[-1]["role"] == "assistant":
        row["output"] = turns[-1]["content"]
    return row


def _history_messages(hist: Any, what: str, row: dict) -> list[dict]:
    """LLaMA-Factory's Alpaca `history` ([[question, answer], ...]) + the row's own turn, as messages."""
    from core.data.rows import prompt_text

    if not isinstance(hist, list) or not all(isinstance(h, list) and len(h) == 2 for h in hist):
        raise RowInvalid(f"'{what}' must be a list of [question, answer] pairs", code="row_history",
                         params={"field": what})
    msgs = [{"role": "system", "content": row["system"]}] if row.get("system") else []
    for q, a in hist:
        msgs += [{"role": "user", "content": str(q)}, {"role": "assistant", "content": str(a)}]
    msgs.append({"role": "user", "content": prompt_text(row)})
    if "output" in row:
        msgs.append({"role": "assistant", "content": row["output"]})
    return msgs


def _response(v: Any, what: str) -> str:
    """A DPO answer: text, or a TRL conversational list (its last assistant turn)."""
    if isinstance(v, list):
        for m in reversed(v):
            if isinstance(m, dict) and m.get("role") == "assistant":
                return _content(m.get("content"), what)
        raise RowInvalid(f"'{what}' has no assistant turn", code="row_no_assistant", params={"field": what})
    return _str(v, what, allow_empty=True, numbers=True)


def _level(v: Any) -> tuple[Any, Any]:
    """(level, judge) of an OmniThought score; a level written as text or as 5.0 becomes the integer it is."""
    level, judge = (v.get("level"), v.get("judge")) if isinstance(v, dict) else (v, None)
    if isinstance(level, str) and level.strip():
        try:
            level = float(level)
        except ValueError:
            return level, judge
    if isinstance(level, float) and level.is_integer():
        level = int(level)
    return level, judge


def normalize(record: Any, fmt: str, mapping: dict[str, str] | None = None) -> list[dict]:
    """Canonical rows (without ids unless the source had one) from one record; RowInvalid says what is wrong."""
    if not isinstance(record, dict):
        raise RowInvalid(f"expected a JSON object with named fields, got {kind_of(record)}", code="row_not_object",
                         params={"kind": kind_of(record)})
    if fmt not in FORMATS:
        raise RowInvalid(f"unknown format {fmt!r}", code="format_unknown", params={"format": fmt,
                                                                                   "choices": ", ".join(FORMATS)})
    m = full_mapping(fmt, mapping)
    used = set(m.values())
    get = lambda key: record.get(m[key], MISSING) if key in m else MISSING  # noqa: E731
    row: dict[str, Any]

    if fmt in ("instruction", "labeled", "alpaca"):
        row = _instruction_row(get, m, fmt)
        if _given(get("system")):
            row["system"] = _str(get("system"), m["system"])
        if fmt == "alpaca" and _given(get("history")):
            row["messages"] = _history_messages(get("history"), m["history"], row)
    elif fmt == "sharegpt":
        turns = _turns(get("conversations"), m["conversations"], "from", "value", ROLE_MAP)
        sys_text = get("system")
        row = _conversation_row(turns, _str(sys_text, m["system"]) if _given(sys_text) else None)
    elif fmt == "messages":
        turns = _turns(get("messages"), m["messages"], "role", "content",
                       {"system": "system", "user": "user", "assistant": "assistant", "developer": "system"})
        row = _conversation_row(turns)
    elif fmt == "dpo":
        prompt = get("prompt")
        if isinstance(prompt, list):
            turns = _turns(prompt, m["prompt"], "role", "content",
                           {"system": "system", "user": "user", "assistant": "assistant"})
            row = _conversation_row(turns)
            row.pop("output", None)
        else:
            row = {"instruction": _str(prompt, m["prompt"])}
        row["chosen"] = _response(get("chosen"), m["chosen"])
        row["rejected"] = _response(get("rejected"), m["rejected"])
        if _given(get("system")):
            row["system"] = _str(get("system"), m["system"])
    elif fmt == "text":
        row = {"text": _str(get("text"), m["text"])}
    else:  # omnithought
        return _omnithought(record, m)
    row.update(_extras(record, used))
    return [row]


def used_columns(fmt: str, mapping: dict[str, str] | None = None) -> set[str]:
    """The columns a format (with its mapping) reads; `id` always counts as read."""
    return set(full_mapping(fmt, mapping).values()) | {"id"}


def unused_columns(record: Any, used: set[str]) -> list[str]:
    """Columns of a record that hold something and that the format does not read (kept on the row as extras)."""
    if not isinstance(record, dict):
        return []
    return [k for k, v in record.items() if k not in used and _given(v)]


def extra_name(column: str) -> str:
    """The name an unused column gets on the row (a column that would shadow a canonical field gets `src_`)."""
    from core.data.rows import CONTENT_KEYS

    return f"src_{column}" if column in CONTENT_KEYS else column


def _extras(record: dict, used: set[str]) -> dict:
    """Columns the mapping did not consume, kept on the row (renamed when they would shadow a canonical field)."""
    out = {}
    for k, v in record.items():
        if k in used:
            continue
        if k == "id":
            if v not in (None, ""):
                out["id"] = str(v)
            continue
        out[extra_name(k)] = v
    return out


def _verdict(ok: Any, where: str) -> int | None:
    """A correctness verdict as 1/0 (true/false, 1/0, "true"/"false", a probability); None when absent."""
    if ok is None or ok == "":
        return None
    if isinstance(ok, str):
        low = ok.strip().lower()
        if low in ("true", "yes", "correct"):
            return 1
        if low in ("false", "no", "incorrect"):
            return 0
    try:
        return int(bool(ok) if isinstance(ok, bool) else float(ok) >= 0.5)
    except (TypeError, ValueError):
        raise RowInvalid(f"{where}: expected true or false, got {ok!r}", code="row_bool",
                         params={"where": where, "value": repr(ok)}) from None


def _omnithought(record: dict, m: dict[str, str]) -> list[dict]:
    question = _str(record.get(m["question"], MISSING), m["question"])
    traces = record.get(m["reasoning"])
    if not isinstance(traces, list) or not traces:
        raise RowInvalid(f"'{m['reasoning']}' must be a non-empty list of reasoning traces", code="row_traces",
                         params={"field": m["reasoning"]})
    qid = str(record["id"]) if record.get("id") not in (None, "") else content_id({"instruction": question}, 12)
    extras = _extras(record, {m["question"], m["reasoning"], "id"})
    rows = []
    for i, t in enumerate(traces):
        if not isinstance(t, dict):
            raise RowInvalid(f"'{m['reasoning']}'[{i}] must be an object", code="row_trace_object",
                             params={"field": m["reasoning"], "i": i})
        thought = t.get("thought")
        solution = t.get("solution")
        full = t.get("full_response")
        if full is None and thought is None and solution is None:
            raise RowInvalid(f"'{m['reasoning']}'[{i}] has none of thought, solution, full_response",
                             code="row_trace_empty", params={"field": m["reasoning"], "i": i})
        if full is None:
            full = f"<think>\n{thought or ''}\n</think>\n\n{solution or ''}"
        rv, rv_judge = _level(t.get("Reasoning_Verbosity", t.get("rv")))
        cd, cd_judge = _level(t.get("Cognitive_Difficulty", t.get("cd")))
        ok = t.get("thought_correctness_verify", t.get("correctness"))
        row: dict[str, Any] = {"id": f"{qid}-{i}", "question_id": qid, "trace_index": i, "instruction": question,
                               "output": str(full)}
        if thought is not None:
            row["thought"] = str(thought)
        if solution is not None:
            row["solution"] = str(solution)
        if t.get("teacher") is not None:
            row["teacher"] = t["teacher"]
        row["correctness"] = _verdict(ok, f"'{m['reasoning']}'[{i}].thought_correctness_verify")
        row["rv"], row["cd"] = rv, cd
        if rv_judge is not None:
            row["rv_judge"] = rv_judge
        if cd_judge is not None:
            row["cd_judge"] = cd_judge
        known = {"thought", "solution", "full_response", "teacher", "thought_correctness_verify", "correctness",
                 "Reasoning_Verbosity", "Cognitive_Difficulty", "rv", "cd"}
        row.update({k: v for k, v in t.items() if k not in known and k not in row})
        row.update({k: v for k, v in extras.items() if k not in row})
        rows.append(row)
    return rows
