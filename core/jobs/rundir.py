"""The run folder on disk: `job.yaml`, `status.json`, `metrics.jsonl`, `log.txt`, `output/`, flag files.

Several processes touch a run folder (the worker writes, the studio and CLI read), so writes are atomic (a temp
file renamed over the old one) and readers tolerate a half-written last line in the append-only files.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from core.jobs.context import STOP_FLAG

CANCEL_FLAG = "cancel.request"
STATUS_FILE = "status.json"
CONFIG_FILE = "job.yaml"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "log.txt"
PIPELINE_FILE = "pipeline.json"

# Job states. ACTIVE ones hold devices; FINAL ones never change again (until a resume starts a new attempt).
QUEUED, STARTING, RUNNING, STOPPING = "queued", "starting", "running", "stopping"
SUCCEEDED, FAILED, STOPPED, CANCELLED = "succeeded", "failed", "stopped", "cancelled"
ACTIVE = (STARTING, RUNNING, STOPPING)
FINAL = (SUCCEEDED, FAILED, STOPPED, CANCELLED)
ALL_STATES = (QUEUED, *ACTIVE, *FINAL)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that a concurrent reader sees the old or the new file, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=1, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> dict:
    """A JSON object from disk, or {} when absent or unreadable (a reader must never crash the UI)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_status(run_dir: Path) -> dict:
    return read_json(run_dir / STATUS_FILE)


def update_status(run_dir: Path, **fields: Any) -> dict:
    """Merge fields into status.json (read-modify-write; only one process writes a live job's status)."""
    data = read_status(run_dir)
    data.update(fields)
    data["updated_at"] = time.time()
    write_json_atomic(run_dir / STATUS_FILE, data)
    return data


def parse_jsonl_lines(text: str) -> list[dict]:
    """Complete JSON-object lines of `text`; a torn or garbled line is skipped, never fatal."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


class JsonlTail:
    """Incremental reader of an append-only JSONL file: each call parses only bytes added since the last one.

    A last line without its newline is left for the next call (the writer is mid-line). If the file shrank
    (deleted and recreated), reading starts over.
    """

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self.records: list[dict] = []
        self._ino: int | None = None

    def read(self) -> list[dict]:
        try:
            st = self.path.stat()
        except OSError:
            self.offset, self.records, self._ino = 0, [], None
            return self.records
        if st.st_ino != self._ino or st.st_size < self.offset:
            self.offset, self.records, self._ino = 0, [], st.st_ino
        if st.st_size == self.offset:
            return self.records
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            chunk = f.read(st.st_size - self.offset)
        end = chunk.rfind(b"\n")
        if end < 0:
            return self.records
        self.offset += end + 1
        self.records.extend(parse_jsonl_lines(chunk[: end + 1].decode("utf-8", errors="replace")))
        return self.records


def tail_text(path: Path, lines: int = 200, max_bytes: int = 1 << 20) -> str:
    """The last `lines` lines of a text file without reading all of it (logs can be large)."""
    try:
        size = path.stat().st_size
    except OSError:
        return ""
    want = min(size, max_bytes)
    block = 64 * 1024
    data = b""
    with open(path, "rb") as f:
        pos = size
        while pos > 0 and data.count(b"\n") <= lines and len(data) < want:
            step = min(block, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
    text = data.decode("utf-8", errors="replace")
    parts = text.splitlines()
    if pos > 0 and parts:
        parts = parts[1:]  # the first line is probably cut
    return "\n".join(parts[-lines:]) if lines > 0 else ""


def key_env_names(data: Any, prefix: str = "") -> set[str]:
    """The environment variables a job config's data (`job.yaml`) names with `api_key_env`, those starting with
    `prefix` only (EDS_SECRET_: the ones core.config.io.externalize_secrets invented for inline keys)."""
    out: set[str] = set()
    if isinstance(data, dict):
        for k, v in data.items():
            if k == "api_key_env" and isinstance(v, str) and v and v.startswith(prefix):
                out.add(v)
            else:
                out |= key_env_names(v, prefix)
    elif isinstance(data, list):
        for v in data:
            out |= key_env_names(v, prefix)
    return out


def flag_path(run_dir: Path, which: str) -> Path:
    return run_dir / (STOP_FLAG if which == "stop" else CANCEL_FLAG)


def set_flag(run_dir: Path, which: str) -> None:
    p = flag_path(run_dir, which)
    p.write_text(f"{time.time()}\n", encoding="utf-8")


def clear_flags(run_dir: Path) -> None:
    for which in ("stop", "cancel"):
        flag_path(run_dir, which).unlink(missing_ok=True)


def has_flag(run_dir: Path, which: str) -> bool:
    return flag_path(run_dir, which).exists()
