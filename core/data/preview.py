"""Paged reading of large JSONL datasets: a byte-offset index per file, so page 4,000 of a 100k-row file reads 50
lines, not the whole file. The index lives in memory, keyed by path, and extends itself when the file grows (a
synthesis job appending rows) instead of being rebuilt.
"""

from __future__ import annotations

import json
import os
import threading
from array import array
from dataclasses import dataclass
from pathlib import Path

_LOCK = threading.Lock()


@dataclass
class _Index:
    offsets: array  # start byte of each non-empty line
    scanned: int  # bytes covered
    inode: int


_CACHE: dict[str, _Index] = {}


def _scan(path: Path, idx: _Index) -> None:
    with open(path, "rb") as f:
        f.seek(idx.scanned)
        pos = idx.scanned
        line_start = pos
        pending = b""
        while chunk := f.read(1 << 20):
            data = pending + chunk
            base = pos - len(pending)
            start = 0
            while (k := data.find(b"\n", start)) >= 0:
                if data[start:k].strip():
                    idx.offsets.append(base + start)
                start = k + 1
            pending = data[start:]
            pos += len(chunk)
            line_start = base + start
        idx.scanned = line_start  # a partial last line is re-read next time, once it is complete


def line_index(path: str | os.PathLike) -> array:
    """Offsets of every complete line of `path` (cached; refreshed incrementally when the file grew)."""
    p = Path(path).resolve()
    st = p.stat()
    with _LOCK:
        idx = _CACHE.get(str(p))
        if idx is None or idx.inode != st.st_ino or st.st_size < idx.scanned:
            idx = _Index(array("Q"), 0, st.st_ino)
            _CACHE[str(p)] = idx
        if st.st_size > idx.scanned:
            _scan(p, idx)
        return idx.offsets


def row_count(path: str | os.PathLike) -> int:
    return len(line_index(path))


def read_rows(path: str | os.PathLike, start: int, count: int) -> list[dict]:
    """Rows [start, start + count) of a JSONL file (fewer at the end); unreadable lines come back as an error row."""
    offsets = line_index(path)
    start = max(0, start)
    end = min(len(offsets), start + max(0, count))
    out: list[dict] = []
    if start >= end:
        return out
    with open(path, "rb") as f:
        for i in range(start, end):
            f.seek(offsets[i])
            line = f.readline()
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                out.append({"id": f"(line {i + 1})", "error": f"not valid JSON: {e.msg}"})
    return out


def read_page(path: str | os.PathLike, page: int, page_size: int = 50) -> tuple[list[dict], int]:
    """Rows of 1-based `page` and the number of pages."""
    n = row_count(path)
    pages = max(1, -(-n // max(1, page_size)))
    page = min(max(1, page), pages)
    return read_rows(path, (page - 1) * page_size, page_size), pages


def read_row(path: str | os.PathLike, index: int) -> dict | None:
    rows = read_rows(path, index, 1)
    return rows[0] if rows else None


def find_row(path: str | os.PathLike, row_id: str) -> tuple[int, dict] | None:
    """Position and content of the row with id `row_id` (a scan: used for one lookup, not in loops)."""
    needle = json.dumps(str(row_id), ensure_ascii=False)
    i = -1
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            i += 1
            if needle in line:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if str(row.get("id")) == str(row_id):
                    return i, row
    return None
