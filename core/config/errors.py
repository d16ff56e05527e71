"""Config problems as sentences a person can act on: which key, what is wrong, what to change."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from core.errors import UserError


class ConfigError(UserError, ValueError):
    """One or more problems in a config. `problems` are complete sentences, one per key."""

    def __init__(self, problems: list[str], source: str | None = None):
        self.problems = problems
        self.source = source
        head = f"{source}: " if source else ""
        super().__init__(head + "; ".join(problems))

    def report(self) -> str:
        where = f" in {self.source}" if self.source else ""
        lines = [f"{len(self.problems)} problem(s){where}:"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


def _loc(loc: tuple) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif str(item) in {"function-after", "function-before", "function-wrap", "union", "tagged-union"}:
            continue
        elif parts and not parts[-1].startswith("["):
            parts.append(f".{item}")
        else:
            parts.append(f"{'.' if parts else ''}{item}")
    return "".join(parts) or "(top level)"


# pydantic error types a person meets in a form, worded by the studio as errors.invalid_<type> with the error's
# context (gt, ge, lt, le, expected, min_length, max_length) and input
WORDED_TYPES = {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "int_parsing", "int_from_float",
                "float_parsing", "bool_parsing", "literal_error", "string_too_short", "string_too_long", "missing",
                "extra_forbidden", "too_short", "too_long"}


@dataclass
class Problem:
    """One pydantic error: its key ('lora.r'), the English sentence, and a code + params the studio can word."""

    key: str
    text: str
    code: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


def problems(err: ValidationError, tags: set[str] | frozenset[str] = frozenset()) -> list[Problem]:
    """`explain`'s sentences with their keys and, for the types in WORDED_TYPES, a code and params."""
    out = []
    for e, text in zip(err.errors(), explain(err, tags), strict=True):
        key = _loc(tuple(x for x in e["loc"] if not (isinstance(x, str) and x in tags)))
        code = f"invalid_{e['type']}" if e["type"] in WORDED_TYPES else None
        shown = repr(e.get("input"))
        params = {**{k: v for k, v in (e.get("ctx") or {}).items() if isinstance(v, (int, float, str))},
                  "input": shown if len(shown) <= 60 else shown[:57] + "...", "setting": key}
        out.append(Problem(key, text, code, params))
    return out


def explain(err: ValidationError, tags: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Turn pydantic's errors into one sentence per problem, naming the key (union tags left out of the path)."""
    out = []
    for e in err.errors():
        key = _loc(tuple(x for x in e["loc"] if not (isinstance(x, str) and x in tags)))
        typ = e["type"]
        if typ == "extra_forbidden":
            out.append(f"'{key}' is not a known setting here; remove it or check its spelling")
        elif typ == "missing":
            out.append(f"'{key}' is required but missing")
        elif typ == "union_tag_invalid" or typ == "union_tag_not_found":
            ctx = e.get("ctx", {})
            out.append(f"'{key}': unknown job kind {ctx.get('tag', '')!r}; expected one of {ctx.get('expected_tags')}")
        elif typ == "literal_error":
            out.append(f"'{key}' = {e.get('input')!r} is not allowed; {e['msg'].lower()}")
        elif typ == "value_error" and not e["loc"]:  # a rule across fields (model_validator): its sentence alone
            out.append(e["msg"].removeprefix("Value error, "))
        else:
            out.append(f"'{key}' = {e.get('input')!r}: {e['msg']}")
    return out
