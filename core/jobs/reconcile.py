"""Keeping the job list true to the processes: a finished worker gets its outcome recorded, a vanished one (killed
from outside, machine restarted, studio restarted) is marked failed with a reason, and a stop that runs past its
timeout escalates to SIGTERM, then SIGKILL. Any process holding a manager does this whenever it looks."""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path

from core.jobs import procs
from core.jobs.dispatch import Dispatcher
from core.jobs.errors import StoreUnavailable
from core.jobs.failure import classify_exit, mentions_disk_full
from core.jobs.rundir import (
    ACTIVE,
    CANCELLED,
    FAILED,
    FINAL,
    LOG_FILE,
    STARTING,
    STOPPED,
    STOPPING,
    SUCCEEDED,
    read_status,
    tail_text,
)
from core.jobs.store import Store
from core.jobs.transitions import Transitions
from core.secrets import scrub

log = logging.getLogger(__name__)

STALE_CLAIM_S = 60.0  # a job claimed ('starting') whose launcher vanished is failed after this long


class Reconciler:
    """`progress_of(row)` is how far an ending job got (recorded with its outcome)."""

    def __init__(
        self, store: Store, transitions: Transitions, dispatcher: Dispatcher,
        progress_of: Callable[[dict], float | None], *, stop_timeout_s: float, kill_grace_s: float,
        cancel_grace_s: float,
    ) -> None:
        self.store = store
        self.transitions = transitions
        self.dispatcher = dispatcher
        self.progress_of = progress_of
        self.stop_timeout_s = stop_timeout_s
        self.kill_grace_s = kill_grace_s
        self.cancel_grace_s = cancel_grace_s

    def reconcile_active(self) -> None:
        for row in self.store.rows(ACTIVE):
            try:
                self.reconcile(row)
            except StoreUnavailable:
                raise  # the list cannot be written (disk full): the caller says so once, no retry per job
            except Exception:  # one broken run folder must not stop the others from being looked after
                log.exception("reconciling job %s failed", row["id"])

    def reconcile(self, row: dict) -> None:
        now = time.time()
        if row["status"] == STARTING and not row["pid"]:
            claimer_alive = row["claimed_by"] and procs.create_time(row["claimed_by"]) is not None
            if not claimer_alive or now - (row["started_at"] or now) > STALE_CLAIM_S:
                self.finalize(row, FAILED, "the worker was never started (the process starting it exited first)",
                              cause="vanished")
            return
        if procs.is_alive(row["pid"], row["pid_ctime"]):
            if row["status"] == STOPPING:
                self._escalate(row, now)
            return
        self._finalize_dead(row)

    def _escalate(self, row: dict, now: float) -> None:
        cancel = row["stop_mode"] == "cancel"
        if row["term_at"] is None:
            limit = self.stop_timeout_s if row["stop_timeout"] is None else row["stop_timeout"]
            if now - (row["stop_at"] or now) >= limit:
                log.info("job %s did not stop within %.0fs: SIGTERM", row["id"], limit)
                self.transitions.terminating(row["id"])
                procs.signal_group(row["pid"], row["pid_ctime"], signal.SIGTERM)
            return
        grace = self.cancel_grace_s if cancel else self.kill_grace_s
        if now - row["term_at"] >= grace:
            procs.signal_group(row["pid"], row["pid_ctime"], signal.SIGKILL)

    def _finalize_dead(self, row: dict) -> None:
        """The worker process is gone. Take its own account of the outcome if it wrote one, else explain."""
        rc = self.dispatcher.exit_code(row["id"], row["attempt"])
        run_dir = Path(row["run_dir"])
        st = read_status(run_dir)
        wrote_final = st.get("status") in FINAL and int(st.get("attempt") or 0) == int(row["attempt"])
        cause = ""
        if wrote_final:
            status, reason, detail = st["status"], st.get("reason", ""), st.get("detail", "")
            cause = st.get("cause", "") if status == FAILED else ""
            if status == SUCCEEDED and rc not in (None, 0):
                status, reason, cause = FAILED, f"the worker reported success but exited with code {rc}", "exit_code"
        else:
            log_tail = scrub(tail_text(run_dir / LOG_FILE, 15))
            detail = log_tail
            if row["stop_mode"] == "cancel":
                status, reason = CANCELLED, "cancelled"
            elif row["stop_mode"] == "stop":
                status, reason = STOPPED, "did not stop in time; the worker was terminated"
            elif rc == 0:
                status, reason = SUCCEEDED, ""
            elif rc is not None or mentions_disk_full(log_tail):
                f = classify_exit(rc if rc is not None else 1, log_tail)
                status, reason, detail, cause = FAILED, f.reason, f.detail, f.category
            else:
                status, reason, cause = FAILED, (
                    "worker disappeared: its process ended without recording an outcome "
                    "(killed from outside, or the machine restarted)"
                ), "vanished"
        self.finalize(row, status, reason, detail, exit_code=rc, write_status=not wrote_final, cause=cause)

    def finalize(
        self, row: dict, status: str, reason: str, detail: str = "", exit_code: int | None = None,
        write_status: bool = True, cause: str = "",
    ) -> None:
        """Record the outcome, then clear what is left of the worker's process group."""
        progress = 1.0 if status == SUCCEEDED else self.progress_of(row)
        self.transitions.finalize(row, status, reason, detail, exit_code, progress, write_status=write_status,
                                  cause=cause)
        procs.kill_group_remnants(row["pid"], row["pid_ctime"])
        self.dispatcher.forget(row["id"], row["attempt"])
