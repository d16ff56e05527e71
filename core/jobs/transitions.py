"""Every change of a job's state, in one place: the SQLite row (the list all processes share) and the run folder's
status.json (what the run folder says on its own) are written here together, so the two cannot drift.

Each transition is a conditional update naming the states (and attempt) it expects; it returns False when another
process changed the job first, and only the winner writes status.json. A few transitions touch only the row because
the worker writes status.json itself for them (running, stopping, its own outcome); one touches only status.json
(announcing a start whose row was claimed inside the scheduler's transaction).
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from core.jobs import procs
from core.jobs.failure import disk_full_error
from core.jobs.rundir import (
    ACTIVE,
    CANCELLED,
    FAILED,
    FINAL,
    QUEUED,
    RUNNING,
    STARTING,
    STOPPED,
    STOPPING,
    read_status,
    update_status,
)
from core.jobs.store import Store

RESUMABLE = (FAILED, STOPPED, CANCELLED)


def write_status(run_dir: Path, fields: dict[str, Any]) -> None:
    """status.json merged with `fields`; a full disk raised as DiskFull naming the run folder (a message, not a
    traceback, wherever it surfaces)."""
    try:
        update_status(run_dir, **fields)
    except OSError as e:
        full = disk_full_error(e, [run_dir], run_dir.parent.parent)
        if full is None:
            raise
        raise full from None


class Transitions:
    def __init__(self, store: Store) -> None:
        self.store = store

    def _apply(
        self, job_id: str, fields: dict[str, Any], expect: tuple[str, ...], *, attempt: int | None = None,
        run_dir: Path | None = None, status: dict[str, Any] | None = None, conn: sqlite3.Connection | None = None,
    ) -> bool:
        """The one writer: the row if it is still in `expect` (and `attempt`), then status.json if that won."""
        won = self.store.update(job_id, fields, expect_status=expect, expect_attempt=attempt, conn=conn)
        if won and status is not None and run_dir is not None:
            write_status(run_dir, status)
        return won

    # entering the queue ---------------------------------------------------------------------------------------------

    def create(self, row: dict[str, Any], steps: list[str], conn: sqlite3.Connection | None = None) -> None:
        """A new job: status.json first (the run folder is complete before the list shows the job), then the row
        (inside `conn`'s transaction when given: the submitter checked what other jobs write in the same one)."""
        write_status(Path(row["run_dir"]), dict(
            id=row["id"], name=row["name"], kind=row["kind"], status=QUEUED, attempt=row["attempt"],
            created_at=row["created_at"], request=row["request"], devices=[], steps=steps,
            reason=row.get("reason", "")))
        self.store.insert(row, conn=conn)

    def requeue(self, job_id: str, run_dir: Path, attempt: int, owned: bool, *, paths: dict[str, Any] | None = None,
                conn: sqlite3.Connection | None = None) -> bool:
        """Resume: an ended job queued again as a new attempt in the same run folder. `owned`: this process holds
        the inline secrets the job needs, so only it may start the job. `paths`: what it writes and reads now, the
        jobs it waits for and why (columns writes, reads, waits_for, reason)."""
        paths = paths or {}
        reason = paths.get("reason", "")
        fields: dict[str, Any] = {
            "status": QUEUED, "attempt": attempt, "queued_at": time.time(), "reason": reason, "detail": "",
            "devices": [], "cause": "", "waits_for": [], **paths,
            "pid": None, "pid_ctime": None, "claimed_by": None, "stop_mode": None, "stop_at": None, "term_at": None,
            "stop_timeout": None, "remote_id": "",
            "exit_code": None, "started_at": None, "ended_at": None, "progress": None,
            "needs_secrets": 1 if owned else 0,
        }
        if owned:
            me = os.getpid()
            fields.update(owner_pid=me, owner_ctime=procs.create_time(me))
        return self._apply(job_id, fields, RESUMABLE, run_dir=run_dir, conn=conn,
                           status={"status": QUEUED, "attempt": attempt, "reason": reason, "detail": "",
                                   "cause": "", "ended_at": None, "devices": [], "pid": None, "exit_code": None})

    # starting -------------------------------------------------------------------------------------------------------

    def claim(self, job_id: str, devices: list[str], conn: sqlite3.Connection) -> bool:
        """Queued -> starting on `devices`, inside the scheduler's transaction (so no two processes claim one job)."""
        return self._apply(job_id, {"status": STARTING, "devices": devices, "claimed_by": os.getpid(),
                                    "started_at": time.time(), "reason": ""}, (QUEUED,), conn=conn)

    def announce_start(self, row: dict[str, Any], devices: list[str]) -> None:
        """status.json of a claimed job, written by the process about to launch its worker."""
        write_status(Path(row["run_dir"]), dict(status=STARTING, devices=devices, attempt=row["attempt"], reason="",
                                                detail=""))

    def running(self, job_id: str, attempt: int, pid: int, ctime: float | None) -> bool:
        """Starting -> running with the worker's pid (the worker registers itself too; whoever is first)."""
        return self._apply(job_id, {"status": RUNNING, "pid": pid, "pid_ctime": ctime, "started_at": time.time()},
                           (STARTING,), attempt=attempt)

    def submitting(self, job_id: str, attempt: int, remote_id: str) -> bool:
        """A claimed job about to be handed to a cluster (Ray) under `remote_id`: recorded first, so whoever looks
        after a crash mid-submission still finds it there."""
        return self._apply(job_id, {"remote_id": remote_id}, (STARTING,), attempt=attempt)

    def remark(self, job_id: str, attempt: int, reason: str) -> bool:
        """The row's reason of an active job (waiting on a cluster, cluster unreachable). The row only: status.json
        of a live job is the worker's."""
        return self._apply(job_id, {"reason": reason}, ACTIVE, attempt=attempt)

    # stopping -------------------------------------------------------------------------------------------------------

    def stopping(self, job_id: str, timeout: float) -> bool:
        """Graceful stop asked (the worker sees the flag file and writes its own status)."""
        return self._apply(job_id, {"status": STOPPING, "stop_mode": "stop", "stop_at": time.time(),
                                    "stop_timeout": timeout}, (STARTING, RUNNING))

    def cancelling(self, job_id: str) -> bool:
        """Cancel asked: SIGTERM goes out at once, so `term_at` is now."""
        now = time.time()
        return self._apply(job_id, {"status": STOPPING, "stop_mode": "cancel", "stop_at": now, "term_at": now},
                           (STARTING, RUNNING, STOPPING))

    def terminating(self, job_id: str) -> bool:
        """A graceful stop ran out of time: SIGTERM is being sent now."""
        return self._apply(job_id, {"term_at": time.time()}, (STOPPING,))

    # ending ---------------------------------------------------------------------------------------------------------

    def end_unstarted(self, row: dict[str, Any], reason: str) -> bool:
        """A queued (or claimed, not yet launched) job stopped or cancelled before it ran."""
        now = time.time()
        return self._apply(row["id"], {"status": CANCELLED, "reason": reason, "ended_at": now},
                           (QUEUED, STARTING), attempt=row["attempt"], run_dir=Path(row["run_dir"]),
                           status={"status": CANCELLED, "reason": reason, "ended_at": now})

    def fail_queued(self, row: dict[str, Any], reason: str, conn: sqlite3.Connection, cause: str = "") -> bool:
        """A queued job that can never start (inside the scheduler's transaction)."""
        now = time.time()
        return self._apply(row["id"], {"status": FAILED, "reason": reason, "ended_at": now, "cause": cause},
                           (QUEUED,), run_dir=Path(row["run_dir"]),
                           status={"status": FAILED, "reason": reason, "ended_at": now, "cause": cause}, conn=conn)

    def finalize(
        self, row: dict[str, Any], status: str, reason: str, detail: str, exit_code: int | None,
        progress: float | None, write_status: bool = True, cause: str = "",
    ) -> bool:
        """An active job's outcome. `write_status=False` when the worker already recorded it in status.json (its
        end time is kept)."""
        run_dir = Path(row["run_dir"])
        now = time.time()
        st = read_status(run_dir)
        ended = st.get("ended_at") if not write_status and st.get("ended_at") else now
        return self._apply(
            row["id"],
            {"status": status, "reason": reason, "detail": detail, "ended_at": ended, "exit_code": exit_code,
             "progress": progress, "step": st.get("step") or row["step"], "cause": cause},
            ACTIVE, attempt=row["attempt"], run_dir=run_dir,
            status={"status": status, "reason": reason, "detail": detail, "ended_at": ended, "exit_code": exit_code,
                    "cause": cause} if write_status else None,
        )

    def worker_finished(self, job_id: str, attempt: int, fields: dict[str, Any]) -> bool:
        """The worker recording its own outcome (its status.json already says it)."""
        return self._apply(job_id, fields, ACTIVE, attempt=attempt)

    def remove(self, job_id: str, status: str) -> bool:
        """Delete the row, only if the job is still `status` and not running (checked in the same transaction)."""
        with self.store.tx() as c:
            if not self._apply(job_id, {"status": status}, (QUEUED, *FINAL), conn=c):
                return False
            self.store.delete(job_id, conn=c)
        return True
