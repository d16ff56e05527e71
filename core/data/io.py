"""Reading and writing record files: JSON, JSONL, CSV/TSV, Parquet.

Readers yield records one at a time with the line they came from (JSONL and CSV stream; a JSON array is parsed
element by element so each element still knows its line). A record that cannot be parsed is yielded as a `Record`
with `error` set instead of raising, so an import can skip it into a rejects file or stop with the full list.
Writers replace files atomically (temp file + rename); `JsonlAppender` appends one row at a time and flushes, which
is what lets synthesis resume after a crash without losing or duplicating rows.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import textfile
from core.data.errors import DataError
from core.data.jsonarray import iter_array, starts_array
from core.said import Said

EXTENSIONS = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet",
    ".pq": "parquet",
}
# CSV cells holding these columns are JSON text (a list of turns, a list of traces): decoded on read.
_JSON_COLUMNS = {"messages", "conversations", "reasoning", "chosen", "rejected", "prompt", "history", "tools"}


@dataclass
class Record:
    line: int  # 1-based line in the file (row number for Parquet); 0 = unknown
    value: Any = None
    error: str | None = None
    index: int = 0  # 1-based position in a JSON array (0: not from an array), so one-line arrays still say where


def json_problem(e: json.JSONDecodeError, line: bool = True) -> str:
    """A JSON parse error in words with its place said once: "Expecting value at line 3, column 5", "Unterminated
    string starting at column 29" (the parser's message for some errors already ends in "at")."""
    where = f"line {e.lineno}, column {e.colno}" if line else f"column {e.colno}"
    msg = e.msg.removesuffix(" at")
    return f"{msg} at {where}"


def file_type(path: str | os.PathLike) -> str:
    """The container type by extension; a clear error for anything else."""
    suffix = Path(path).suffix.lower()
    if suffix not in EXTENSIONS:
        raise DataError(
            f"{path}: unsupported file type '{suffix or '(none)'}'; use .json, .jsonl, .csv, .tsv or .parquet",
            code="file_type", params={"file": str(path), "suffix": suffix or "(none)"})
    return EXTENSIONS[suffix]


def iter_records(path: str | os.PathLike, ftype: str | None = None) -> Iterator[Record]:
    """Every record of a file, in order, with its line. Problems with one record come back as `Record.error`;
    a file that is not UTF-8 text (UTF-16, Latin-1, binary) is refused as a whole, by name, before any record."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"file not found: {p}", code="file_not_found", params={"file": str(p)})
    kind = ftype or file_type(p)
    if kind in ("jsonl", "json", "csv", "tsv"):
        why = textfile.problem(p)
        if why:
            raise DataError(textfile.not_text_message(str(p), why), code="not_text",
                            params={"file": str(p), "why": why})
    if kind == "jsonl":
        yield from _iter_jsonl(p)
    elif kind == "json":
        yield from _iter_json(p)
    elif kind in ("csv", "tsv"):
        yield from _iter_csv(p, "\t" if kind == "tsv" else ",")
    elif kind == "parquet":
        yield from _iter_parquet(p)
    else:
        raise DataError(f"{p}: unknown file type {kind!r}")


def _decoded_lines(p: Path) -> Iterator[tuple[int, str, str | None]]:
    """(line number, text, problem) per line of a file read as UTF-8: a line that is not UTF-8 comes back decoded
    with replacement characters and the problem named (its record is rejected, never imported garbled)."""
    with open(p, "rb") as f:
        for i, raw in enumerate(f, 1):
            if i == 1 and raw.startswith(textfile.UTF8_BOM):
                raw = raw[len(textfile.UTF8_BOM):]
            try:
                yield i, raw.decode("utf-8"), None
            except UnicodeDecodeError as e:
                why = textfile.decode_problem(raw, e, i)
                yield i, raw.decode("utf-8", errors="replace"), Said(f"not UTF-8 text ({why})", "errors.row_not_utf8",
                                                                     {"why": why})


def _iter_jsonl(p: Path) -> Iterator[Record]:
    for i, line, bad in _decoded_lines(p):
        s = line.strip()
        if not s:
            continue
        if bad:
            yield Record(i, s[:200], bad)
            continue
        try:
            yield Record(i, json.loads(s))
        except json.JSONDecodeError as e:
            yield Record(i, s[:200], Said(f"not valid JSON ({json_problem(e, line=False)})", "errors.row_json",
                                          {"problem": e.msg.removesuffix(" at"), "column": e.colno}))
        except RecursionError:
            yield Record(i, s[:200], Said("not usable: JSON nested too deeply", "errors.row_json_deep"))


_WS = " \t\r\n"


def _read_text(p: Path) -> str:
    text, why = textfile.decode(p.read_bytes())
    if text is None:
        raise DataError(textfile.not_text_message(str(p), why or "unknown encoding"), code="not_text",
                        params={"file": str(p), "why": why or "unknown encoding"})
    return text


def _iter_json(p: Path) -> Iterator[Record]:
    """A JSON array (one record per element, streamed by core.data.jsonarray: memory holds one record, not the
    file), one JSON object, or JSON Lines saved with a .json name."""
    if starts_array(p):
        for line, k, value in iter_array(p):
            yield Record(line, value, index=k)
        return
    text = _read_text(p)
    pos = _skip_ws(text, 0)
    if pos >= len(text):
        return
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data":  # several objects, one per line: JSON Lines under a .json name
            yield from _iter_jsonl(p)
            return
        raise DataError(f"{p}: not valid JSON ({json_problem(e)})", code="json_invalid",
                        params={"file": str(p), "line": e.lineno, "column": e.colno}) from None
    except RecursionError:
        raise DataError(f"{p}: not usable: JSON nested too deeply", code="json_too_deep",
                        params={"file": str(p)}) from None
    if isinstance(value, dict):
        lists = [v for v in value.values() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
        if len(lists) == 1 and len(value) <= 3:  # {"data": [...]} and similar wrappers
            for k, x in enumerate(lists[0], 1):
                yield Record(0, x, index=k)
            return
    yield Record(1, value)


def _skip_ws(text: str, pos: int) -> int:
    n = len(text)
    while pos < n and text[pos] in _WS:
        pos += 1
    return pos


class _Lines:
    """The lines of a text file for csv.reader, numbered, with the lines of the current record remembered so that
    after a quoting error all but the record's first line can be read again (one broken quote loses no rows)."""

    def __init__(self, p: Path):
        self._src = _decoded_lines(p)
        self._back: list[tuple[int, str, str | None]] = []
        self.record: list[tuple[int, str, str | None]] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        item = self._back.pop() if self._back else next(self._src)
        self.record.append(item)
        return item[1]

    def start_record(self) -> None:
        self.record = []

    def replay_after_first(self) -> None:
        self._back.extend(reversed(self.record[1:]))


def _header(cells: list[str], p: Path) -> list[str]:
    names = [c.strip() or f"column_{j}" for j, c in enumerate(cells, 1)]
    seen: dict[str, int] = {}
    for j, name in enumerate(names, 1):
        if name in seen:
            raise DataError(f"{p}: column '{name}' appears twice in the header line (columns {seen[name]} and {j}); "
                            "rename one so that neither is lost")
        seen[name] = j
    return names


def _iter_csv(p: Path, delimiter: str) -> Iterator[Record]:
    """CSV/TSV records (line 1 is the header). Quoting is read strictly: a quote that is never closed, or text after
    a closing quote, rejects that record by its line and the following lines are read on their own (Python's
    lenient reader would swallow them all into one cell)."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    lines = _Lines(p)
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    header: list[str] | None = None
    while True:
        lines.start_record()
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            first, last = lines.record[0][0], lines.record[-1][0]
            if header is None:
                raise DataError(f"{p}: the header line is not valid CSV ({e})", code="csv_header",
                                params={"file": str(p)}) from None
            if "end of data" in str(e):
                what, code = "a quoted cell is never closed", "errors.row_csv_unclosed"
            elif last > first:
                what = (f"a quote opened on this line is only closed on line {last}, followed by more text: probably "
                        "a quote that is never closed (a quote inside a cell must be doubled: \"\")")
                code = "errors.row_csv_quote_late"
            else:
                what = "text after a closing quote (a quote inside a cell must be doubled: \"\")"
                code = "errors.row_csv_after_quote"
            more = f"; the {last - first} line(s) after it are read as rows of their own" if last > first else ""
            if more and code == "errors.row_csv_unclosed":
                code = "errors.row_csv_unclosed_more"
            yield Record(first, lines.record[0][1][:200], Said(what + more, code, {"last": last, "n": last - first}))
            lines.replay_after_first()
            reader = csv.reader(lines, delimiter=delimiter, strict=True)
            continue
        first, last = lines.record[0][0], lines.record[-1][0]
        bad = next((b for _, _, b in lines.record if b), None)
        if header is None:
            if bad:
                raise DataError(f"{p}: the header line is {bad}")
            header = _header(cells, p)
            continue
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            continue  # a blank line
        if bad:
            yield Record(first, delimiter.join(cells)[:200], bad)
            continue
        if len(cells) > len(header):
            yield Record(first, delimiter.join(cells)[:200], Said(
                f"{len(cells) - len(header)} more cell(s) than the header has columns ({len(header)})",
                "errors.row_csv_cells", {"n": len(cells) - len(header), "columns": len(header)}))
            continue
        if len(cells) < len(header) and last > first:
            yield Record(first, delimiter.join(cells)[:200], Said(
                f"a quoted cell runs from line {first} to line {last} and the row has only {len(cells)} of "
                f"{len(header)} columns: a quote is probably not closed where it should be", "errors.row_csv_short",
                {"first": first, "last": last, "cells": len(cells), "columns": len(header)}))
            continue
        out: dict[str, Any] = {}
        problem = None
        for k, v in zip(header, cells + [""] * (len(header) - len(cells)), strict=True):
            if k in _JSON_COLUMNS and v[:1] in ("[", "{"):
                try:
                    v = json.loads(v)
                except json.JSONDecodeError as e:
                    problem = Said(f"column '{k}' holds invalid JSON ({e.msg})", "errors.row_csv_json",
                                   {"column": k, "problem": e.msg})
                except RecursionError:
                    problem = Said(f"column '{k}' holds JSON nested too deeply", "errors.row_csv_json_deep",
                                   {"column": k})
            out[k] = v
        yield Record(first, out, problem)


def _iter_parquet(p: Path) -> Iterator[Record]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(p)
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise DataError(f"{p}: not a readable Parquet file ({e})", code="parquet_unreadable",
                        params={"file": str(p)}) from None
    n = 0
    for batch in pf.iter_batches(batch_size=2048):
        for row in batch.to_pylist():
            n += 1
            yield Record(n, row)


def peek_records(path: str | os.PathLike, n: int = 50) -> list[Record]:
    """The first `n` records (for format detection and the import preview) without reading the rest of a stream."""
    out = []
    for rec in iter_records(path):
        out.append(rec)
        if len(out) >= n:
            break
    return out


# ---------------------------------------------------------------------------------------------------------- writing


def _atomic_target(path: Path) -> tuple[int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)


def write_records(path: str | os.PathLike, rows: Iterable[dict], ftype: str | None = None) -> int:
    """Write rows to `path` (type by extension unless given), replacing it atomically. Returns the row count."""
    p = Path(path)
    kind = ftype or file_type(p)
    fd, tmp = _atomic_target(p)
    n = 0
    try:
        if kind == "parquet":
            os.close(fd)
            n = _write_parquet(Path(tmp), rows)
        else:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
                if kind == "jsonl":
                    for row in rows:
                        f.write(json.dumps(row, ensure_ascii=False) + "\n")
                        n += 1
                elif kind == "json":
                    f.write("[\n")
                    for row in rows:
                        f.write((",\n" if n else "") + json.dumps(row, ensure_ascii=False, indent=2))
                        n += 1
                    f.write("\n]\n")
                else:
                    n = _write_csv(f, rows, "\t" if kind == "tsv" else ",")
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n


def _write_csv(f, rows: Iterable[dict], delimiter: str) -> int:
    rows = list(rows)
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    w = csv.DictWriter(f, fieldnames=cols, delimiter=delimiter, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v for k, v in r.items()})
    return len(rows)


def _write_parquet(path: Path, rows: Iterable[dict]) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = list(rows)
    try:
        table = pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # Mixed types within a column (a list here, a string there): keep them as JSON text rather than failing.
        table = pa.Table.from_pylist([
            {k: json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v for k, v in r.items()}
            for r in rows
        ])
    pq.write_table(table, path)
    return len(rows)


class JsonlAppender:
    """Append rows to a JSONL file one at a time, flushed per row: a crash loses at most the row being written.

    On open, a half-written last line (the process died mid-write) is cut off so the next row starts on its own line.
    """

    def __init__(self, path: str | os.PathLike, fsync: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair_tail(self.path)
        self._f = open(self.path, "a", encoding="utf-8")
        self._fsync = fsync
        self.count = 0

    def write(self, row: dict) -> None:
        self._f.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._f.flush()
        if self._fsync:
            os.fsync(self._f.fileno())
        self.count += 1

    def close(self) -> None:
        if not self._f.closed:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def repair_tail(path: str | os.PathLike) -> int:
    """Cut a trailing partial line off a JSONL file; returns the bytes removed (0 if the file ends cleanly)."""
    p = Path(path)
    if not p.exists() or p.stat().st_size == 0:
        return 0
    with open(p, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        block = 1 << 16
        pos = size
        while pos > 0:
            start = max(0, pos - block)
            f.seek(start)
            chunk = f.read(pos - start)
            k = chunk.rfind(b"\n")
            if k >= 0:
                cut = start + k + 1
                f.truncate(cut)
                return size - cut
            pos = start
        f.truncate(0)
        return size


def count_lines(path: str | os.PathLike) -> int:
    """Non-empty lines of a text file, counted in binary blocks (fast on 100k+ row files)."""
    p = Path(path)
    if not p.exists():
        return 0
    n = 0
    last = b"\n"
    with open(p, "rb") as f:
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (0 if last == b"\n" else 1)
