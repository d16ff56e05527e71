"""Failure causes: a full disk (naming the folder), a data file that cannot be used, a missing file, out of memory,
a backend, a setup problem, a bug — each with a stable name, a cause and a fix; older reasons read back too."""

from __future__ import annotations

import errno
import json
import sqlite3

import pytest

from core.data.errors import DataError
from core.errors import BackendError, UserError
from core.jobs.failure import CAUSES, cause_of, classify_exception, classify_exit, full_folder, is_disk_full


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as e:  # noqa: BLE001 - a real traceback for the classifier to read
        return e


def test_a_full_disk_is_named_by_the_folder_the_job_writes(tmp_path, monkeypatch):
    out = tmp_path / "ws" / "datasets" / "x.jsonl"
    out.parent.mkdir(parents=True)
    write_error = OSError(errno.ENOSPC, "No space left on device")  # a write() on an open file: no file name
    f = classify_exception(_raised(write_error), places=[out, tmp_path / "ws" / "runs" / "j"],
                           workspace_root=tmp_path / "ws")
    assert f.category == "disk_full" and f.reason == "disk full: no space left in workspace/datasets"
    assert "Traceback" in f.detail  # folded away by the Jobs tab, kept for whoever wants it

    # The full filesystem is named even when an earlier candidate lies on another, roomy one.
    real = __import__("os").statvfs

    def statvfs(path):
        st = real(path)
        if str(path).endswith("runs"):
            return type("S", (), {"f_bavail": 0, "f_frsize": st.f_frsize})()
        return st

    monkeypatch.setattr("os.statvfs", statvfs)
    (tmp_path / "ws" / "runs").mkdir()
    assert full_folder([out, tmp_path / "ws" / "runs" / "job" / "log.txt"]) == tmp_path / "ws" / "runs"


@pytest.mark.parametrize("exc", [
    OSError(errno.EDQUOT, "Disk quota exceeded"),
    sqlite3.OperationalError("database or disk is full"),
    RuntimeError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: \"No space left on "
                 "device\" }) (os error 28)"),
])
def test_disk_full_in_the_words_of_libraries(exc):
    assert is_disk_full(exc)
    wrapped = _raised(RuntimeError("saving the checkpoint failed"))
    wrapped.__cause__ = exc
    assert classify_exception(wrapped).category == "disk_full"


def test_each_cause_and_older_reasons():
    cases = [
        (DataError("qs.jsonl:3: not valid JSON"), "data_error", "data error: qs.jsonl:3"),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), "data_error", "data error"),
        (json.JSONDecodeError("Expecting value", "x", 0), "data_error", "data error"),
        (FileNotFoundError(2, "No such file", "/d/x.jsonl"), "missing_file", "missing file: /d/x.jsonl"),
        (MemoryError(), "oom", "CPU out of memory"),
        (BackendError("no server at http://127.0.0.1:9"), "backend", "BackendError: no server"),
        (UserError("choose a student"), "setup", "UserError: choose a student"),
        (KeyError("x"), "exception", "KeyError"),
    ]
    for exc, name, reason in cases:
        f = classify_exception(_raised(exc))
        assert (f.category, f.reason[: len(reason)]) == (name, reason)
        assert f.cause is CAUSES[name] and f.cause.fix
    assert classify_exit(1, "OSError: [Errno 28] No space left on device").category == "disk_full"
    assert classify_exit(-9).category == "killed"
    for reason, name in [("disk full: no space left in workspace/datasets", "disk_full"),
                         ("worker disappeared: its process ended", "vanished"),
                         ("step 'sft': CPU out of memory: ...", "oom"), ("ValueError: boom", "exception")]:
        assert cause_of({"status": "failed", "reason": reason}).name == name
    assert cause_of({"status": "failed", "reason": "whatever", "cause": "dependency"}).name == "dependency"
    assert cause_of({"status": "succeeded"}) is None
    assert all(c.name == n and c.cause and c.fix for n, c in CAUSES.items())
