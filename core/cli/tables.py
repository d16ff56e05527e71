"""A plain-text table for the CLI's views (`eval show|compare`, `jobs compare`): columns padded, long cells cut."""

from __future__ import annotations

from typing import Any


def text_table(headers: list[str], rows: list[list[Any]], width: int = 40) -> str:
    def cell(v: Any) -> str:
        s = "" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))
        s = s.replace("\n", " ")
        return s if len(s) <= width else s[: width - 1] + "…"

    cells = [[cell(h) for h in headers]] + [[cell(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
