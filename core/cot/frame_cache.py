"""The score frame of a dataset, cached as Parquet so the curation preview opens a big dataset in well under a second.

Building the frame reads every row's JSON once (seconds on a million long traces); the cache then holds only the
score columns (a few MB) under `workspace/cache/cot/`, keyed by the file's path, size and modification time, so an
edited or still-growing dataset gets a fresh frame and a stale one is never used.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import pandas as pd

from core.cot.mix import FRAME_COLUMNS, frame_from_rows, read_frame, write_frame
from core.data.rows import iter_jsonl_rows
from core.data.store import is_workspace_dataset, load_rows, resolve_dataset
from core.workspace import Workspace


def cache_path(ws: Workspace, path: Path) -> Path:
    st = path.stat()
    key = hashlib.sha1(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]
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
    rows = iter_jsonl_rows(path) if is_workspace_dataset(ws, path) else load_rows(ws, ref, confined)[0]
    frame = frame_from_rows(rows)
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
