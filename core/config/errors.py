"""Config problems as sentences a person can act on: which key, what is wrong, what to change."""

from __future__ import annotations

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
