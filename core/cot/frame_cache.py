"""The score frame of a dataset, cached as Parquet so the curation preview opens a big dataset in well under a second.

Building the frame reads every row's JSON once (seconds on a million long traces); the cache then holds only the
score columns (a few MB) under `workspace/cache/cot/`, keyed by the file's path, size and modification time, so an
edited or still-growing dataset gets a fresh frame and a stale one is never used.

Row k of a frame is the k-th row of the file (`core.data.store.iter_input`, the reader every job uses), which is what
lets the curate job and the tab's cell view pick rows by position. A record that cannot be read (broken JSON, not an
object, not UTF-8) is never skipped: building the frame stops with a DataError naming every bad record by file and
line (issue 16: "Malformed rows are reported with file and line; nothing is lost").
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from core.cot.mix import FRAME_COLUMNS, frame_from_rows, read_frame, write_frame
from core.data.errors import DataError, RowError
from core.data.store import iter_input, resolve_dataset
from core.workspace import Workspace

FRAME_VERSION = 2  # 2: built by iter_input (bad records refused, not skipped): a frame of version 1 is rebuilt


def cache_path(ws: Workspace, path: Path) -> Path:
    st = path.stat()
    key = hashlib.sha1(f"v{FRAME_VERSION}:{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]
    return ws.cache / "cot" / f"{path.stem}-{key}.parquet"


def dataset_frame(ws: Workspace, ref: str, confined: bool = True, ids: bool = True) -> pd.DataFrame:
    """The score frame (core.cot.mix) of a workspace dataset or file, from the cache when it is current."""
    path = resolve_dataset(ws, ref, confined)
    if path.suffix == ".parquet":
        try:
            return read_frame(path, ids=ids)  # already a score frame (e.g. written by write_frame)
        except (KeyError, ValueError):
            pass  # a Parquet dataset of rows: build the frame below
    cached = cache_path(ws, path)
    if cached.exists():
        return read_frame(cached, ids=ids)
    frame = frame_from_rows(readable_rows(ws, ref, confined))  # streamed: a million traces are never all held
    cached.parent.mkdir(parents=True, exist_ok=True)
    for old in cached.parent.glob(f"{path.stem}-*.parquet"):  # frames of earlier versions of this file
        old.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{cached.name}.", suffix=".tmp", dir=cached.parent)
    os.close(fd)
    try:
        write_frame(frame, tmp)
        os.replace(tmp, cached)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return frame if ids else frame.loc[:, [c for c in FRAME_COLUMNS if c != "id"]]


def readable_rows(ws: Workspace, ref: str, confined: bool = True) -> Iterator[dict]:
    """Every row of a dataset or file in order, streamed; once the end is reached, a DataError listing each record
    that could not be read (file:line) if there was any, so no row is left out of a frame without a word."""
    errors: list[RowError] = []
    for item in iter_input(ws, ref, confined):
        if isinstance(item, RowError):
            errors.append(item)
        elif not errors:  # after the first bad record, only the rest of the list is wanted
            yield item
    if errors:
        raise refusal(errors)


def refusal(errors: list[RowError]) -> DataError:
    """The error of an input with records that cannot be read: the first by file:line, how many more, what to do."""
    more = f" (and {len(errors) - 1} more bad record(s))" if len(errors) > 1 else ""
    return DataError(f"{errors[0]}{more}. Curation scores every row, so each must be readable: fix the file at that "
                     "place, or import it in the Data tab (bad records are set aside in its rejects file) and curate "
                     "that dataset; nothing was selected", errors)
