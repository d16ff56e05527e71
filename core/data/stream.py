"""What every whole-dataset pass (split, dedupe, stats, export, balance) shares so that it runs in bounded memory and
can be watched and stopped: a dataset read a row at a time, as often as the operation needs (`Source.rows()` starts
a fresh pass), a `Tracker` that reports progress and checks for a stop every few thousand rows, and `DatasetWriter`,
which writes a new dataset beside the others atomically (nothing appears until `commit`; a stopped or failed pass
leaves no half dataset).

A workspace dataset is read as it is stored (canonical rows with ids). Any other file (a CLI user's path) is read
through format detection and normalisation, as an import would; its bad records are counted and left out.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from core.data.errors import DataError, RowError
from core.data.rows import IdAssigner, with_id_first
from core.workspace import Workspace

PROGRESS_S = 1.0  # a progress line at most this often
STOP_CHECK_ROWS = 1024  # a look at the stop flag at most every this many rows (and at the first)


class Stopped(Exception):  # noqa: N818 - it is not an error: the person asked for it
    """A stop was requested: the pass ended early and wrote nothing."""


@dataclass
class Source:
    """A dataset to read in full, as many times as an operation needs."""

    ws: Workspace
    ref: str
    path: Path
    workspace_dataset: bool
    errors: int = 0  # bad records of a file (not a workspace dataset) left out in the last pass
    _fmt: tuple[str, dict] | None = field(default=None, repr=False)
    _layout: tuple[frozenset[int], bool] | None = field(default=None, repr=False)  # (lines skipped, ids missing)

    @property
    def base(self) -> str:
        """What new datasets are named after: the name as given, or a file path's name without its extension."""
        return Path(self.ref).stem if "/" in self.ref else self.ref

    def estimate(self) -> int:
        """An upper estimate of the row count, cheap: lines of a JSONL file, else bytes / 32."""
        from core.data.io import count_lines, file_type

        if self.workspace_dataset or file_type(self.path) == "jsonl":
            return count_lines(self.path)
        return self.path.stat().st_size // 32 + 1

    def rows(self) -> Iterator[dict]:
        """Canonical rows with ids, in file order (a fresh pass each call)."""
        for row, _ in self.records():
            yield row

    def records(self) -> Iterator[tuple[dict, str | None]]:
        """(row, the file's own line for it when that line can be written out as it is, else None), in file order.
        A workspace dataset's rows with ids come with their lines, so a pass that only filters or routes rows writes
        them without encoding them again."""
        if not self.workspace_dataset:
            for row in self._normalized():
                yield row, None
            return
        ids = IdAssigner()
        skipped: list[int] = []
        missing = False
        with open(self.path, encoding="utf-8") as f:
            for no, line in enumerate(f):
                s = line.strip()
                if not s:
                    continue
                try:
                    row = json.loads(s)
                except json.JSONDecodeError:  # a line cut by a crash (the writer repairs it on its next append)
                    skipped.append(no)
                    continue
                if row.get("id"):
                    yield row, s
                else:
                    missing = True
                    yield ids.assign(row), None
        self._layout = (frozenset(skipped), missing)

    def lines(self) -> Iterator[str]:
        """Each row as a JSON line, in the order of `rows()`: the file's own lines, not parsed at all, when the last
        complete pass found every row usable as it is (a workspace dataset whose rows all have ids); else the rows
        encoded anew."""
        if self._layout is None or self._layout[1]:
            for row, line in self.records():
                yield line or json.dumps(with_id_first(row), ensure_ascii=False)
            return
        skipped = self._layout[0]
        with open(self.path, encoding="utf-8") as f:
            for no, line in enumerate(f):
                s = line.strip()
                if s and no not in skipped:
                    yield s

    def _normalized(self) -> Iterator[dict]:
        from core.data.store import detect_file, iter_normalized

        if self._fmt is None:
            det, _ = detect_file(self.path)
            if det.format is None:
                raise DataError(f"{self.path.name}: could not recognise the format ({det.note}); import it in the "
                                "Data tab first")
            self._fmt = (det.format, det.mapping)
        self.errors = 0
        for item in iter_normalized(self.path, *self._fmt):
            if isinstance(item, RowError):
                self.errors += 1
            else:
                yield item


def open_source(ws: Workspace, ref: str, confined: bool = True) -> Source:
    """The dataset `ref` names: a workspace dataset, or a file (confined to the workspace unless `confined=False`,
    for the CLI's local user). DataError / PathOutsideWorkspace say what is wrong."""
    from core.data.store import is_workspace_dataset, resolve_dataset

    path = resolve_dataset(ws, ref, confined)
    return Source(ws, ref, path, is_workspace_dataset(ws, path))


class Tracker:
    """Counts the rows of a pass, reports `progress(done, total)` every PROGRESS_S and raises Stopped once
    `should_stop()` says so. `total` is rows x passes when an operation reads its input more than once."""

    def __init__(self, progress: Callable[[int, int | None], None] | None = None,
                 should_stop: Callable[[], bool] | None = None, total: int | None = None):
        self._progress = progress
        self._should_stop = should_stop
        self.total = total
        self.done = 0
        self._reported = 0.0

    def watch(self, rows: Iterable[dict]) -> Iterator[dict]:
        for row in rows:
            if self.done % STOP_CHECK_ROWS == 0:
                self.check()
            self.done += 1
            yield row

    def check(self) -> None:
        """Stop if asked; report progress if it is time."""
        if self._should_stop is not None and self._should_stop():
            raise Stopped()
        now = time.monotonic()
        if self._progress is not None and now - self._reported >= PROGRESS_S:
            self._reported = now
            self._progress(self.done, self.total)

    def finish(self) -> None:
        """The last progress line: all done (a pass that ended early, as a search for the first pair does, made the
        total an overestimate)."""
        self.total = self.done
        if self._progress is not None:
            self._progress(self.done, self.done)


class DatasetWriter:
    """Rows into workspace dataset `name`, atomically: a hidden temporary file beside the datasets, renamed over the
    dataset (with its sidecar) by `commit`; `abort` (or leaving the `with` block by an exception) leaves nothing."""

    def __init__(self, ws: Workspace, name: str):
        from core.data.store import check_name, dataset_path

        self.ws = ws
        self.name = check_name(name)
        self.path = dataset_path(ws, self.name)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.name}.", suffix=".tmp", dir=self.path.parent)
        self._tmp = Path(tmp)
        self._f = os.fdopen(fd, "w", encoding="utf-8")
        self.rows = 0

    def write(self, row: dict) -> None:
        self._f.write(json.dumps(with_id_first(row), ensure_ascii=False) + "\n")
        self.rows += 1

    def write_line(self, line: str) -> None:
        """A row already in canonical JSON (a line this pass wrote earlier)."""
        self._f.write(line if line.endswith("\n") else line + "\n")
        self.rows += 1

    def commit(self, created_by: str, source: str = "", **meta: object) -> None:
        from core.data.store import write_meta

        self._f.close()
        os.replace(self._tmp, self.path)
        write_meta(self.ws, self.name, source=source, format="canonical", rows=self.rows, created_by=created_by,
                   growing=False, **meta)

    def abort(self) -> None:
        if not self._f.closed:
            self._f.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None or not self._f.closed:  # an exception, or never committed
            self.abort()


def holds_pairs(rows: Iterable[dict]) -> bool:
    """Whether any row is a preference pair (chosen and rejected): stops at the first one."""
    return any(r.get("chosen") is not None and r.get("rejected") is not None for r in rows)
