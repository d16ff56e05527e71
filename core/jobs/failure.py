"""Why a job failed, in words a user can act on: a full disk (naming the folder), out of memory, a data file that
cannot be used, a missing file, a bad config, a signal, or a Python exception with the last lines of its traceback.

Every failure has a cause: a stable name (`Failure.category`, recorded with the job as its `cause`) with a short
English description and a fix (`CAUSES`); the studio words both in the page's language (`jobs.cause_<name>`,
`jobs.fix_<name>`). `cause_of(job)` gives the cause of any failed job, recorded or not (older jobs: read from the
reason).

The exit status decides *whether* a job failed; this module only explains *why*. Nothing here imports torch:
CUDA's OutOfMemoryError is recognised by name and message.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sqlite3
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import BackendError, UserError
from core.secrets import scrub

OOM_HINT = (
    "try a smaller per-device batch size (raise gradient accumulation to keep the effective batch), "
    "LoRA instead of full fine-tuning, a shorter max length, gradient checkpointing, or fewer concurrent jobs"
)
TRACEBACK_LINES = 12
FULL_BELOW = 4 << 20  # a filesystem with less than this free (bytes) counts as the full one when naming the folder
_DISK_FULL_TEXT = ("no space left on device", "database or disk is full", "disk quota exceeded", "os error 28")
_DATA_ERROR_NAMES = {"DataError", "RowInvalid", "InputProblem", "ParserError", "ArrowInvalid", "CacheError"}


@dataclass(frozen=True)
class Cause:
    """What went wrong, in one line, and what a person does about it. `name` is stable (stored, used as an i18n key)."""

    name: str
    cause: str
    fix: str


CAUSES: dict[str, Cause] = {c.name: c for c in (
    Cause("disk_full", "the disk ran out of space while the job was writing",
          "free space in the folder named (old runs, checkpoints, caches, large files), then Resume: what was "
          "written is kept and nothing is written twice"),
    Cause("oom", "the job ran out of memory", OOM_HINT),
    Cause("data_error", "a data file could not be used (not UTF-8, broken JSON or CSV, wrong columns)",
          "fix the file at the place named (or import it again in the Data tab), then Resume"),
    Cause("missing_file", "a file or folder the job needs does not exist",
          "check the path named (moved, renamed or deleted?), or pick an existing dataset or model, then Resume"),
    Cause("bad_config", "the job's settings are not valid", "correct the fields named and submit the job again"),
    Cause("setup", "the job cannot run as configured", "change what the message names, then submit again"),
    Cause("backend", "the model or server could not be used",
          "start the server or check its address, model name and API key variable, then Resume"),
    Cause("killed", "the job's process was killed by a signal",
          "if nobody stopped it, the machine probably ran out of memory: use a smaller batch, LoRA or fewer "
          "concurrent jobs, then Resume"),
    Cause("terminated", "the job was ended from outside (SIGTERM or SIGINT)",
          "Resume it: it continues from what was saved"),
    Cause("vanished", "the job's process disappeared without recording how it ended",
          "Resume it: it continues from what was saved; if it happens again, look at the machine's memory and disk"),
    Cause("exit_code", "the job's process exited with an error code without recording how it ended",
          "read the last lines of its log, then Resume"),
    Cause("unavailable", "this kind of job is not available in this installation",
          "install the missing part named in the reason"),
    Cause("dependency", "a job this one waited for (it writes this job's input) did not succeed",
          "finish that job first (Resume it), then submit this one again"),
    Cause("secret_lost", "the job's API key was given inline and the process holding it has exited",
          "put the key in an environment variable, reference it with api_key_env, and submit again"),
    Cause("cluster", "the Ray cluster running the job stopped answering, or lost the job",
          "check that the cluster is up at the address named (its dashboard opens), then Resume: it continues from "
          "what the run folder holds"),
    Cause("exception", "an unexpected error in the job's code",
          "the traceback says where it happened; Resume may help if the cause was passing, else report it"),
)}


@dataclass
class Failure:
    category: str  # a CAUSES name: disk_full | oom | data_error | missing_file | bad_config | setup | backend | ...
    reason: str  # one line for tables
    detail: str = ""  # more lines for the job's page (traceback tail, hint)

    @property
    def cause(self) -> Cause:
        return CAUSES.get(self.category, CAUSES["exception"])


# disk full --------------------------------------------------------------------------------------------------------


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def mentions_disk_full(text: str) -> bool:
    """Whether a text (a log's last lines) says a write failed for lack of space."""
    low = text.lower()
    return any(t in low for t in _DISK_FULL_TEXT)


def is_disk_full(exc: BaseException) -> bool:
    """Whether `exc` (or what it wraps) says no space was left: ENOSPC / EDQUOT, SQLite's SQLITE_FULL, or a
    library's message saying so (safetensors, pyarrow and torch word it themselves)."""
    from core.jobs.errors import DiskFull

    for e in _chain(exc):
        if isinstance(e, DiskFull):
            return True
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(e, sqlite3.Error) and getattr(e, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
            return True
        if mentions_disk_full(str(e)):
            return True
    return False


def _folder_of(path: str | os.PathLike) -> Path:
    p = Path(os.path.abspath(path))
    folder = p if p.is_dir() else p.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def full_folder(candidates: Iterable[str | os.PathLike | None]) -> Path | None:
    """The folder of the first candidate (a file or folder) whose filesystem is (nearly) full; else the first
    candidate's folder (space was freed meanwhile); None without candidates."""
    folders = [_folder_of(c) for c in candidates if c]
    for folder in folders:
        try:
            st = os.statvfs(folder)
        except OSError:
            continue
        if st.f_bavail * st.f_frsize < FULL_BELOW:
            return folder
    return folders[0] if folders else None


def shown_folder(folder: Path | None, workspace_root: Path | None = None) -> str:
    """A folder as a message names it: `workspace/datasets` inside the workspace, the path itself elsewhere."""
    if folder is None:
        return "the workspace" if workspace_root is None else shown_folder(workspace_root, workspace_root)
    if workspace_root is not None:
        root = Path(workspace_root)
        if folder == root:
            return "the workspace folder"
        if folder.is_relative_to(root):
            return f"workspace/{folder.relative_to(root)}"
    return str(folder)


def disk_full_error(exc: BaseException, places: Iterable[str | os.PathLike | None] = (),
                    workspace_root: Path | None = None) -> Any:
    """`exc` as a DiskFull naming the full folder (the file it names first, then `places`), or None when `exc` is
    not about space. For edges (CLI, studio) that turn an OSError into a message without a traceback."""
    from core.jobs.errors import DiskFull

    if not is_disk_full(exc):
        return None
    for e in _chain(exc):
        if isinstance(e, DiskFull):
            return e
    named = [getattr(e, name, None) for e in _chain(exc) for name in ("filename", "filename2")]
    folder = full_folder([*named, *places, workspace_root])
    return DiskFull(shown_folder(folder, workspace_root))


# classifying -------------------------------------------------------------------------------------------------------


def _is_data_error(exc: BaseException) -> bool:
    if isinstance(exc, (UnicodeDecodeError, json.JSONDecodeError)):
        return True
    return any(c.__name__ in _DATA_ERROR_NAMES for c in type(exc).__mro__)


def classify_exception(exc: BaseException, secrets: list[str] | tuple[str, ...] = (), *,
                       places: Iterable[str | os.PathLike | None] = (),
                       workspace_root: Path | None = None) -> Failure:
    """Why `exc` ended a job. `places`: what the job writes (its outputs, run folder), to name a full disk's folder;
    `workspace_root`: names inside the workspace are shown relative to it."""
    from core.config.errors import ConfigError

    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    tail = scrub("\n".join(tb.rstrip().splitlines()[-TRACEBACK_LINES:]), secrets)
    msg = scrub(str(exc), secrets).strip()
    name = type(exc).__name__
    first = msg.splitlines()[0][:300] if msg else ""
    full = disk_full_error(exc, places, workspace_root)
    if full is not None:
        return Failure("disk_full", scrub(full.summary, secrets), tail)
    if isinstance(exc, ConfigError):
        problems = scrub("; ".join(exc.problems), secrets)
        return Failure("bad_config", f"bad config: {problems}", scrub(exc.report(), secrets))
    if isinstance(exc, MemoryError) or name == "OutOfMemoryError" or "out of memory" in msg.lower():
        where = "GPU" if ("cuda" in msg.lower() or name == "OutOfMemoryError") else "CPU"
        return Failure("oom", f"{where} out of memory: {first or name}", f"Hint: {OOM_HINT}\n\n{tail}")
    if isinstance(exc, FileNotFoundError):
        missing = exc.filename or msg
        return Failure("missing_file", f"missing file: {scrub(str(missing), secrets)}", tail)
    if _is_data_error(exc):
        report = exc.report() if isinstance(exc, UserError) else msg
        return Failure("data_error", f"data error: {first or name}", scrub(f"{report}\n\n{tail}", secrets))
    category = "backend" if isinstance(exc, BackendError) else "setup" if isinstance(exc, UserError) else "exception"
    return Failure(category, f"{name}: {first}" if first else name, tail)


def signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def classify_exit(returncode: int, log_tail: str = "") -> Failure:
    """A worker that ended without reporting its outcome: explain from its exit status (and its log's last lines:
    a worker that died of a full disk could not say so itself)."""
    if mentions_disk_full(log_tail):
        return Failure("disk_full", "disk full: the worker could not write its outcome (see the log's last lines)",
                       log_tail)
    if returncode < 0:
        sig = -returncode
        reason = f"killed by {signal_name(sig)}"
        if sig == signal.SIGKILL:
            reason += " (if nobody stopped it, the system may have run out of memory)"
        return Failure("killed", reason, log_tail)
    return Failure("exit_code", f"the worker exited with code {returncode} without a final status", log_tail)


# reading a job's cause ---------------------------------------------------------------------------------------------

_REASON_CAUSES = (  # (text in an older reason, cause): for jobs recorded before causes were stored
    ("disk full", "disk_full"), ("out of memory", "oom"), ("missing file", "missing_file"),
    ("bad config", "bad_config"), ("data error", "data_error"), ("killed by", "killed"),
    ("terminated by", "terminated"), ("worker disappeared", "vanished"), ("without a final status", "exit_code"),
    ("not available in this build", "unavailable"), ("api key was given inline", "secret_lost"),
    ("it waited for", "dependency"),
)


def reason_cause(reason: str) -> str:
    """The cause name an older, unrecorded reason text implies ('exception' when none fits)."""
    low = reason.lower()
    return next((name for text, name in _REASON_CAUSES if text in low), "exception")


def cause_of(job: Any) -> Cause | None:
    """The cause of a failed job (a JobInfo, a job row or status.json as a dict); None unless it failed."""
    def get(key: str) -> Any:
        return job.get(key) if isinstance(job, dict) else getattr(job, key, None)

    if get("status") != "failed":
        return None
    name = get("cause") or reason_cause(str(get("reason") or ""))
    return CAUSES.get(name, CAUSES["exception"])
