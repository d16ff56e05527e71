"""Keeping the job list true to the workers: a finished worker gets its outcome recorded, a vanished one (killed
from outside, machine restarted, studio restarted) is marked failed with a reason, and a stop that runs past its
timeout escalates to SIGTERM, then SIGKILL. Any process holding a manager does this whenever it looks.

Whether a worker still runs is its executor's answer (core.jobs.executor: a local process, a Ray job). A Ray job
waiting on its cluster shows why in its reason; a cluster that does not answer too, and after the executor's
patience the job fails with that reason (cause `cluster`) instead of hanging as "running"."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.jobs import procs
from core.jobs.errors import StoreUnavailable
from core.jobs.executor import Poll
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
    """`progress_of(row)` is how far an ending job got (recorded with its outcome); `executors`
    (core.jobs.executor.Executors) say whether each job's worker runs."""

    def __init__(
        self, store: Store, transitions: Transitions, executors: Any,
        progress_of: Callable[[dict], float | None], *, stop_timeout_s: float, kill_grace_s: float,
        cancel_grace_s: float,
    ) -> None:
        self.store = store
        self.transitions = transitions
        self.executors = executors
        self.progress_of = progress_of
        self.stop_timeout_s = stop_timeout_s
        self.kill_grace_s = kill_grace_s
        self.cancel_grace_s = cancel_grace_s

    def reconcile_active(self) -> bool:
        """Look after every active job; True when one of them runs on a cluster (nothing reaps those)."""
        rows = self.store.rows(ACTIVE)
        for row in rows:
            try:
                self.reconcile(row)
            except StoreUnavailable:
                raise  # the list cannot be written (disk full): the caller says so once, no retry per job
            except Exception:  # one broken run folder must not stop the others from being looked after
                log.exception("reconciling job %s failed", row["id"])
        return any(r["executor"] for r in rows)

    def reconcile(self, row: dict) -> None:
        now = time.time()
        ex = self.executors.of(row)
        if row["status"] == STARTING and not ex.started(row):
            self._check_claim(row, now)
            return
        poll = ex.poll(row)
        if ex.remote and poll.note != (row["reason"] or "") and not poll.lost:
            self.transitions.remark(row["id"], row["attempt"], poll.note)  # waiting there, or out of reach
        if poll.alive is None:
            if poll.lost:
                self.finalize(row, FAILED, poll.note, cause="cluster")
            return
        if poll.alive:
            if poll.started and row["status"] == STARTING and ex.remote:
                self.transitions.running(row["id"], row["attempt"], None, None)  # the cluster started it
            if row["status"] == STOPPING:
                self._escalate(row, now, ex, poll)
            return
        if not poll.started and poll.ended and row["status"] == STARTING and now - (row["started_at"] or now) < \
                STALE_CLAIM_S and self._claimer_alive(row):
            return  # handed over a moment ago: the cluster has not registered it yet
        self._finalize_dead(row, poll)

    @staticmethod
    def _claimer_alive(row: dict) -> bool:
        return bool(row["claimed_by"]) and procs.create_time(row["claimed_by"]) is not None

    def _check_claim(self, row: dict, now: float) -> None:
        if not self._claimer_alive(row) or now - (row["started_at"] or now) > STALE_CLAIM_S:
            self.finalize(row, FAILED, "the worker was never started (the process starting it exited first)",
                          cause="vanished")

    def _escalate(self, row: dict, now: float, ex: Any, poll: Poll) -> None:
        cancel = row["stop_mode"] == "cancel"
        if row["term_at"] is None:
            limit = self.stop_timeout_s if row["stop_timeout"] is None else row["stop_timeout"]
            if now - (row["stop_at"] or now) >= limit or not poll.started:  # a job not running yet has nothing to save
                log.info("job %s did not stop within %.0fs: terminating it", row["id"], limit)
                self.transitions.terminating(row["id"])
                ex.terminate(row)
            return
        grace = self.cancel_grace_s if cancel else self.kill_grace_s
        if now - row["term_at"] >= grace:
            ex.kill(row)

    def _finalize_dead(self, row: dict, poll: Poll) -> None:
        """The worker is gone. Take its own account of the outcome if it wrote one, else explain."""
        rc = poll.exit_code
        run_dir = Path(row["run_dir"])
        st = read_status(run_dir)
        wrote_final = st.get("status") in FINAL and int(st.get("attempt") or 0) == int(row["attempt"])
        ran = st.get("status") != STARTING  # the worker wrote that it runs (this attempt)
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
                status, reason = CANCELLED, "cancelled" if ran else "cancelled before it started"
            elif row["stop_mode"] == "stop":
                status, reason = STOPPED, ("did not stop in time; the worker was terminated" if ran
                                           else "stopped before it started")
            elif not ran and poll.ended:  # the cluster could not run the worker (not installed, folder not there)
                status, cause = FAILED, "setup"
                reason = (f"the worker never ran: {poll.ended}. The cluster's nodes need easydistill-studio installed "
                          f"and this run folder at the same path ({run_dir})")
            elif rc == 0:
                status, reason = SUCCEEDED, ""
            elif rc is not None or mentions_disk_full(log_tail):
                f = classify_exit(rc if rc is not None else 1, log_tail)
                status, reason, detail, cause = FAILED, f.reason, f.detail, f.category
            elif poll.ended:
                status, reason, cause = FAILED, f"{poll.ended}; it recorded no outcome", "cluster"
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
        self.executors.of(row).release(row)
