"""Rows as a person browses them: a page as table cells (truncated, never the whole file), and one row as its system
text, the conversation it holds and its JSON.

Pages come from core.data.preview's line index, so page 4,000 of a 100k-row file reads one page of lines. The studio
shows what these functions return; the CLI and tests can call them the same way.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.data.preview import read_page, read_row, row_count
from core.data.rows import to_messages
from core.data.store import dataset_path, rejects_path
from core.workspace import Workspace

CELL_CHARS = 300  # a table cell shows this much; the row view shows everything
FIRST_COLUMNS = ("id", "instruction", "input", "output", "category", "reason", "line", "file")
MORE_COLUMNS = 6  # columns beyond FIRST_COLUMNS a page shows (the row's JSON has the rest)


def cell_text(value: Any, limit: int = CELL_CHARS) -> str:
    """A value as one table cell: text as is, anything else as JSON, cut to `limit` characters with an ellipsis."""
    s = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def rows_table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Headers and cells for a page of rows: id and the main text fields first, then whatever else the rows have."""
    seen: list[str] = []
    for r in rows:
        seen += [k for k in r if k not in seen]
    cols = [c for c in FIRST_COLUMNS if c in seen] + [c for c in seen if c not in FIRST_COLUMNS][:MORE_COLUMNS]
    return cols, [[cell_text(r.get(c, "")) for c in cols] for r in rows]


def browse_file(ws: Workspace, name: str | None, rejects: bool = False) -> Path | None:
    """The file behind a dataset (or its rejects); None when there is none to show."""
    if not name:
        return None
    p = rejects_path(ws, name) if rejects else dataset_path(ws, name)
    return p if p.exists() else None


@dataclass
class PageView:
    """One page of a file, ready for a table: `page` is clamped into 1..pages."""

    columns: list[str]
    cells: list[list[str]]
    page: int
    pages: int
    rows: int  # rows in the whole file


def page_view(path: str | os.PathLike, page: int, page_size: int = 20) -> PageView:
    """Page `page` (1-based) of a JSONL file as table cells."""
    size = max(1, int(page_size or 20))
    rows, pages = read_page(path, int(page or 1), size)
    cols, cells = rows_table(rows)
    return PageView(cols, cells, min(max(1, int(page or 1)), pages), pages, row_count(path))


def row_on_page(path: str | os.PathLike, page: int, page_size: int, position: int) -> dict | None:
    """The row at `position` of page `page` (what a click on the table points at); None past the end."""
    index = (max(1, int(page or 1)) - 1) * max(1, int(page_size or 20)) + int(position)
    return read_row(path, index) if index >= 0 else None


@dataclass
class RowView:
    """One row to read: its system prompt, its user/assistant turns, a DPO row's rejected answer, and its JSON."""

    json: str
    system: str = ""
    chat: list[dict] = field(default_factory=list)  # {"role": "user"|"assistant", "content": ...}
    rejected: str | None = None


def row_view(row: dict, is_reject: bool = False) -> RowView:
    """How a row reads as a conversation; a reject (or a row without a prompt) is shown as JSON only."""
    dump = json.dumps(row, ensure_ascii=False, indent=2)
    if is_reject or not (row.get("instruction") or row.get("messages")):
        return RowView(dump)
    msgs = to_messages(row)
    system = "\n".join(m["content"] for m in msgs if m["role"] == "system")
    chat = [{"role": m["role"], "content": m["content"]} for m in msgs if m["role"] in ("user", "assistant")]
    rejected = row["rejected"] if row.get("chosen") is not None and row.get("rejected") is not None else None
    return RowView(dump, system, chat, None if rejected is None else str(rejected))
