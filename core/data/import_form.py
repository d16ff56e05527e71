"""The import form as plain functions: where the source file is, which fields its format asks for, the column
mapping a person corrected in the dropdowns, and a preview of the first rows as they will be imported.

Shaped like core/eval/form.py: widget values in, data out (field names, line numbers, rows), so the Data tab only lays
out widgets and puts the words around them. The import itself is core.data.store.import_file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.data.errors import RowInvalid
from core.data.formats import FORMATS, full_mapping, normalize
from core.data.io import peek_records
from core.data.rows import IdAssigner
from core.said import of_error
from core.workspace import Workspace

PREVIEW_ROWS = 10  # rows the preview shows: enough to judge a mapping, few enough to read the file's head only


def source_path(ws: Workspace, text: str) -> Path | None:
    """The file a typed path names, confined to the workspace (PathOutsideWorkspace otherwise); None when it is
    not a file, so the form can say so in the reader's language."""
    p = ws.resolve(text)
    return p if p.is_file() else None


def format_fields(fmt: str) -> list[str]:
    """A format's fields, required first: the order of the mapping dropdowns."""
    return FORMATS[fmt]["required"] + FORMATS[fmt]["optional"]


def is_required(fmt: str, name: str) -> bool:
    return name in FORMATS[fmt]["required"]


def unmapped(name: str) -> str:
    """The column an unmapped field points to: no file has it, so the field reads as missing, by name."""
    return f"({name}: not mapped)"


@dataclass
class FieldChoice:
    """One mapping dropdown: the format field, whether it is required, and the column it reads ("" = none)."""

    name: str
    required: bool
    column: str


def field_choices(fmt: str, columns: Sequence[str], mapping: dict[str, str] | None = None) -> list[FieldChoice]:
    """The dropdowns for `fmt`: each field with the column it maps to, when the file has that column."""
    m = full_mapping(fmt, mapping)
    return [FieldChoice(f, is_required(fmt, f), m[f] if m.get(f) in columns else "") for f in format_fields(fmt)]


def mapping_from_values(fmt: str | None, values: Sequence[str | None]) -> dict[str, str]:
    """The dropdowns' values (in format_fields order) as a mapping; an empty dropdown maps its field to no column."""
    if not fmt:
        return {}
    return {f: (v or unmapped(f)) for f, v in zip(format_fields(fmt), values, strict=False)}


def missing_required(fmt: str, mapping: dict[str, str]) -> list[str]:
    """Required fields the mapping leaves unmapped: the import would reject every row, so the form asks first."""
    return [f for f in FORMATS[fmt]["required"] if mapping.get(f, unmapped(f)) == unmapped(f)]


@dataclass
class ImportPreview:
    """The first rows as the import would write them, and the problems of the records they came from."""

    rows: list[dict] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)


def preview_import(src: str | os.PathLike, fmt: str, mapping: dict[str, str] | None = None,
                   n: int = PREVIEW_ROWS) -> ImportPreview:
    """Normalise the first `n` records of `src` as `fmt` with `mapping` (reads only the file's head)."""
    out = ImportPreview()
    ids = IdAssigner()
    for rec in peek_records(src, n):
        if rec.error:
            out.problems.append((rec.line, rec.error))
            continue
        try:
            out.rows += [ids.assign(r) for r in normalize(rec.value, fmt, mapping)]
        except RowInvalid as e:
            out.problems.append((rec.line, of_error(e)))
    out.rows = out.rows[:n]
    return out
