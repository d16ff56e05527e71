"""Datasets in the workspace: `datasets/<name>.jsonl` (canonical rows with ids) + `<name>.meta.json` (source, format,
rows, created by) + optional `<name>.rejects.jsonl` (rows that could not be imported or synthesized, with reasons).

Import reads any supported file, detects (or is told) its format and column mapping, and writes canonical rows. Bad
records either go to the rejects file (`on_error="skip"`) or stop the import with the full list (`"stop"`), each
with file, line and reason. Writes are atomic: a failed import leaves no half dataset behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from core.data.errors import DataError, RowError, RowInvalid, excerpt
from core.data.formats import (
    FORMATS,
    Detection,
    detect,
    extra_name,
    kind_of,
    normalize,
    unused_columns,
    used_columns,
)
from core.data.io import count_lines, iter_records, peek_records
from core.data.rows import IdAssigner, with_id_first
from core.said import Said, of_error
from core.workspace import PathOutsideWorkspace, Workspace

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$")
SUFFIXES = (".meta.json", ".rejects.jsonl", ".jsonl")


def check_name(name: str) -> str:
    """A dataset name is also a file name: letters, digits, '.', '_', '-' (no folders, no spaces)."""
    name = (name or "").strip()
    if name.endswith(".jsonl"):
        name = name[: -len(".jsonl")]
    if not NAME_RE.match(name) or name.endswith(".rejects") or name.endswith(".meta"):
        raise DataError(f"'{name}' is not a valid dataset name: use letters, digits, '.', '_' or '-' (max 120)",
                        code="dataset_name_chars", params={"name": name})
    return name


def dataset_path(ws: Workspace, name: str) -> Path:
    """The file of dataset `name`; LinkOutsideWorkspace when it is a link leading out (never read or written)."""
    return ws.inside(ws.datasets / f"{check_name(name)}.jsonl")


def meta_path(ws: Workspace, name: str) -> Path:
    return ws.inside(ws.datasets / f"{check_name(name)}.meta.json")


def rejects_path(ws: Workspace, name: str) -> Path:
    return ws.inside(ws.datasets / f"{check_name(name)}.rejects.jsonl")


def exports_dir(ws: Workspace) -> Path:
    p = ws.inside(ws.datasets / "exports")
    p.mkdir(parents=True, exist_ok=True)
    return p


def read_meta(ws: Workspace, name: str) -> dict:
    p = meta_path(ws, name)
    try:
        return json.loads(p.read_text(encoding="utf-8")) if p.exists() else {}
    except json.JSONDecodeError:
        return {}


def write_meta(ws: Workspace, name: str, **fields) -> dict:
    """Merge `fields` into the sidecar (atomic replace)."""
    meta = read_meta(ws, name)
    meta.update({"name": check_name(name), **fields, "updated_at": time.time()})
    meta.setdefault("created_at", meta["updated_at"])
    p = meta_path(ws, name)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, p)
    return meta


@dataclass
class DatasetInfo:
    name: str
    path: Path
    rows: int
    format: str
    created_by: str
    source: str
    size_bytes: int
    rejects: int = 0


def list_datasets(ws: Workspace) -> list[DatasetInfo]:
    """Every dataset in the workspace, newest first (row counts from the sidecar, counted when it has none)."""
    out = []
    for p in ws.datasets.glob("*.jsonl"):
        if p.name.endswith(".rejects.jsonl") or p.name.startswith("."):
            continue
        name = p.name[: -len(".jsonl")]
        try:
            check_name(name)
        except DataError:
            continue
        try:
            dataset_path(ws, name)
            meta = read_meta(ws, name)
            rej = rejects_path(ws, name)
        except PathOutsideWorkspace:  # a link leading out: listed (picking it says why it cannot open), never read
            out.append(DatasetInfo(name, p, 0, "link outside the workspace", "", "", 0))
            continue
        if not p.is_file():  # a dangling link inside the workspace
            continue
        rows = meta.get("rows")
        if not isinstance(rows, int) or meta.get("growing"):
            rows = count_lines(p)
        out.append(DatasetInfo(name, p, rows, meta.get("format", "canonical"), str(meta.get("created_by", "")),
                               str(meta.get("source", "")), p.stat().st_size, count_lines(rej) if rej.exists() else 0))
    out.sort(key=lambda d: d.path.lstat().st_mtime, reverse=True)
    return out


def dataset_names(ws: Workspace) -> list[str]:
    return [d.name for d in list_datasets(ws)]


# ---------------------------------------------------------------------------------------------------------- import


@dataclass
class ImportResult:
    name: str
    path: Path
    rows: int
    format: str
    mapping: dict[str, str]
    errors: list[RowError] = field(default_factory=list)  # the rejected records (skip mode)
    rejects_path: Path | None = None
    unused: dict[str, int] = field(default_factory=dict)  # column the format does not read -> records holding it
    notes: list[str] = field(default_factory=list)  # what the import did differently from the source (said once)

    def summary(self) -> str:
        s = f"imported {self.rows} row(s) as '{self.name}' (format: {self.format})"
        if self.errors:
            s += f"; {len(self.errors)} bad record(s) written to {self.rejects_path.name if self.rejects_path else '?'}"
        if self.unused:
            s += ("\ncolumns the format does not use (kept on each row as extra fields, not in prompts or answers): "
                  + self.unused_text())
        return s + "".join(f"\nnote: {n}" for n in self.notes)

    def unused_items(self) -> list[tuple[str, str, int]]:
        """(column, the name it has on the rows, records holding it), most frequent first."""
        return [(c, extra_name(c), n) for c, n in sorted(self.unused.items(), key=lambda kv: (-kv[1], kv[0]))]

    def unused_text(self) -> str:
        """`topic (20 rows), output as src_output (3 rows)`: what the import summary lists."""
        return ", ".join(f"{c if kept == c else f'{c} as {kept}'} ({n} row{'s' if n != 1 else ''})"
                         for c, kept, n in self.unused_items())


def detect_file(path: str | os.PathLike, sample: int = 50) -> tuple[Detection, list]:
    """The detected format of a file and its first records (for the import preview)."""
    recs = peek_records(path, sample)
    return detect([r.value for r in recs if r.error is None]), recs


def iter_normalized(path: str | os.PathLike, fmt: str, mapping: dict[str, str] | None = None,
                    source_name: str | None = None, unused: Counter | None = None) -> Iterator[dict | RowError]:
    """Canonical rows (with unique ids) of any file, or a RowError per bad record, in file order. `unused` counts,
    per column the format does not read, the imported records that hold something in it."""
    src = source_name or Path(path).name
    ids = IdAssigner()
    used = used_columns(fmt, mapping) if fmt in FORMATS else set()
    for rec in iter_records(path):
        if rec.error:
            yield RowError(src, rec.line, rec.error, excerpt(rec.value), rec.index)
            continue
        try:
            rows = normalize(rec.value, fmt, mapping)
        except RowInvalid as e:
            yield RowError(src, rec.line, of_error(e), excerpt(json.dumps(rec.value, ensure_ascii=False,
                                                                           default=str)), rec.index)
            continue
        if unused is not None:
            unused.update(unused_columns(rec.value, used))
        for row in rows:
            yield with_id_first(ids.assign(row))


def import_file(ws: Workspace, src: str | os.PathLike, name: str, fmt: str | None = None,
                mapping: dict[str, str] | None = None, on_error: Literal["skip", "stop"] = "skip",
                created_by: str = "import", overwrite: bool = False, source_label: str | None = None) -> ImportResult:
    """Import a JSON/JSONL/CSV/Parquet file as workspace dataset `name`.

    `fmt=None` detects the format; `mapping` corrects field names. With on_error="stop" any bad record raises a
    DataError listing every bad record (file, line, reason) and nothing is written. Columns the format does not
    read are kept on the rows and counted in `ImportResult.unused` (the summary lists them).
    """
    name = check_name(name)
    src = Path(src)
    label = source_label or src.name
    _check_target(ws, name, overwrite)
    if fmt is None:
        det, recs = detect_file(src)
        if not recs:
            raise DataError(f"{label}: the file has no records (it is empty)", code="file_empty",
                            params={"file": label})
        if det.format is None:
            raise DataError(f"{label}: could not recognise the format ({det.note}); choose a format and mapping",
                            code="format_not_recognised", params={"file": label})
        fmt, mapping = det.format, {**det.mapping, **(mapping or {})}
    if fmt not in FORMATS:
        raise DataError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}", code="format_unknown",
                        params={"format": fmt, "choices": ", ".join(FORMATS)})
    unused: Counter = Counter()
    items = iter_normalized(src, fmt, mapping, label, unused)
    return write_import(ws, name, items, label, fmt, mapping or {}, on_error, created_by, unused)


def _check_target(ws: Workspace, name: str, overwrite: bool) -> None:
    if dataset_path(ws, name).exists() and not overwrite:
        raise DataError(f"a dataset named '{name}' already exists; choose another name or allow overwriting",
                        code="dataset_exists", params={"name": name})


def write_import(ws: Workspace, name: str, items: Iterable[dict | RowError], label: str, fmt: str,
                 mapping: dict, on_error: Literal["skip", "stop"] = "skip", created_by: str = "import",
                 unused: Counter | None = None, **meta) -> ImportResult:
    """Write canonical rows (and RowErrors, set aside) as dataset `name`, atomically: a failed import, or one
    stopped at its first bad record with on_error="stop", leaves no half dataset behind. `unused` is read after
    `items` is exhausted (a generator may fill it as it goes)."""
    target = dataset_path(ws, name)
    errors: list[RowError] = []
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=ws.datasets)
    n = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for item in items:
                if isinstance(item, RowError):
                    errors.append(item)
                    continue
                f.write(json.dumps(item, ensure_ascii=False) + "\n")
                n += 1
        if errors and on_error == "stop":
            raise DataError(f"{label}: {len(errors)} bad record(s); nothing was imported", errors, code="rows_bad_stop",
                            params={"file": label, "n": len(errors)})
        if n == 0:
            raise DataError(f"{label}: no usable rows ({len(errors)} bad record(s))" if errors else
                            f"{label}: the file has no records (it is empty)", errors,
                            code="rows_none_usable" if errors else "file_empty",
                            params={"file": label, "n": len(errors)})
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    rej = rejects_path(ws, name)
    if errors:
        with open(rej, "w", encoding="utf-8") as f:
            for e in errors:
                f.write(json.dumps(e.to_dict(), ensure_ascii=False) + "\n")
    else:
        rej.unlink(missing_ok=True)
    unused_cols = dict(unused or {})
    write_meta(ws, name, source=label, format=fmt, mapping=mapping, rows=n, rejected=len(errors),
               created_by=created_by, growing=False, unused_columns=unused_cols, **meta)
    return ImportResult(name, target, n, fmt, mapping, errors, rej if errors else None, unused_cols)


def save_rows(ws: Workspace, name: str, rows: list[dict], created_by: str, source: str = "", fmt: str = "canonical",
              overwrite: bool = True, **meta) -> Path:
    """Write rows (which already carry ids) as dataset `name` with its sidecar."""
    from core.data.io import write_records

    target = dataset_path(ws, name)
    if target.exists() and not overwrite:
        raise DataError(f"a dataset named '{name}' already exists", code="dataset_exists", params={"name": name})
    n = write_records(target, (with_id_first(r) for r in rows), "jsonl")
    write_meta(ws, name, source=source, format=fmt, rows=n, created_by=created_by, growing=False, **meta)
    return target


def take_upload(ws: Workspace, tmp_path: str | os.PathLike) -> Path:
    """Copy a browser upload into `datasets/uploads/` and return the copy: the server's temp file may be cleaned up
    any time, while the preview, the import and a later re-import read the file again."""
    src = Path(tmp_path)
    if not src.is_file():
        raise DataError(f"the uploaded file '{src.name}' is no longer there; upload it again", code="upload_gone",
                        params={"file": src.name})
    folder = ws.inside(ws.datasets / "uploads")
    folder.mkdir(parents=True, exist_ok=True)
    dst = ws.inside(folder / src.name)
    shutil.copyfile(src, dst)
    return dst


# ------------------------------------------------------------------------------------------------ reading inputs


def resolve_dataset(ws: Workspace, ref: str, confined: bool = True) -> Path:
    """A workspace dataset name, or a file path (inside the workspace when `confined`, as for web visitors)."""
    ref = (ref or "").strip()
    if not ref:
        raise DataError("no dataset given")
    if NAME_RE.match(ref.removesuffix(".jsonl")) and "/" not in ref:
        p = ws.datasets / f"{ref.removesuffix('.jsonl')}.jsonl"
        if os.path.lexists(p):
            return ws.inside(p)
    p = ws.resolve(ref) if confined else ws.local(ref, ws.root)
    if not p.is_file():
        raise DataError(f"dataset '{ref}' not found (neither a workspace dataset nor a file)", code="dataset_not_found",
                        params={"name": ref})
    return p


def is_workspace_dataset(ws: Workspace, path: Path) -> bool:
    return path.parent == ws.datasets and path.suffix == ".jsonl" and not path.name.endswith(".rejects.jsonl")


def iter_input(ws: Workspace, ref: str, confined: bool = True) -> Iterator[dict | RowError]:
    """The canonical rows of a dataset or file in order, or a RowError (file and line) for each record that cannot
    be read: a workspace dataset's lines are checked too (a user may have edited or copied the file), none skipped."""
    path = resolve_dataset(ws, ref, confined)
    if is_workspace_dataset(ws, path):
        ids = IdAssigner()
        for rec in iter_records(path, "jsonl"):
            if rec.error is None and not isinstance(rec.value, dict):
                rec.error = Said(f"expected a JSON object with named fields, got {kind_of(rec.value)}",
                                 "errors.row_not_object", {"kind": kind_of(rec.value)})
            if rec.error:
                yield RowError(path.name, rec.line, rec.error, excerpt(rec.value))
            else:
                yield rec.value if rec.value.get("id") else ids.assign(rec.value)
        return
    det, _ = detect_file(path)
    if det.format is None:
        raise DataError(f"{path.name}: could not recognise the format ({det.note}); import it in the Data tab first")
    yield from iter_normalized(path, det.format, det.mapping)


def load_rows(ws: Workspace, ref: str, confined: bool = True) -> tuple[list[dict], list[RowError]]:
    """All canonical rows of a dataset or file, plus the records that could not be read (with file and line)."""
    rows, errors = [], []
    for item in iter_input(ws, ref, confined):
        (errors if isinstance(item, RowError) else rows).append(item)
    return rows, errors


def load_job_rows(ws: Workspace, ref: str, limit: int = 0) -> list[dict]:
    """The rows a job runs on: those of `ref` (the first `limit` when > 0; reading stops there). A record that
    cannot be read refuses the whole input before anything runs, with every bad record up to that point named by
    file and line: a job never runs on part of its input with the rest dropped silently (and a rejects entry could
    not hold a record that was never read). Paths are not confined: the job's config was checked when submitted."""
    rows: list[dict] = []
    errors: list[RowError] = []
    for item in iter_input(ws, ref, confined=False):
        if isinstance(item, RowError):
            errors.append(item)
            continue
        rows.append(item)
        if limit and len(rows) >= limit:
            break
    if errors:
        more = f" (and {len(errors) - 1} more bad record(s))" if len(errors) > 1 else ""
        raise DataError(f"{errors[0]}{more}. A job's input must be readable throughout: fix the file at that place and "
                        "Resume, or import it in the Data tab (bad records are set aside in its rejects file) and use "
                        "that dataset; nothing was run", errors)
    return rows
