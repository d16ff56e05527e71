"""JobManager: submit, list, stop, cancel, resume and delete jobs; the scheduler and reconciler run inside it.

There is no daemon. Any process holding a manager (the studio, a CLI command, a finishing worker) advances the
shared state whenever it looks: `refresh()` reconciles running jobs with their processes (finished? vanished?
stop timed out?) and starts queued jobs on free devices. Claiming a queued job happens in a `BEGIN IMMEDIATE`
transaction, so two processes never start the same job. State lives in SQLite (the list) and the run folder
(everything else); a manager object holds only caches, plus, in the process that submitted a job with an inline
API key, that key (it reaches the worker through its environment only, and is never written anywhere).

This class is a facade over one part per concern: `queries` (reading), `control` (what a person does), `dispatcher`
(starting queued jobs), `reconciler` (keeping the list true to the workers), `executors` (where a worker runs: a
local process, or a Ray Jobs submission on a cluster sharing the run folders), and `transitions`, the one writer of
a job's row and status.json.

When the job list cannot be written (a full disk, a lock held too long), looking still works: `get` and `list`
answer from what the list says, and `store_problem` says why it may be behind; acting (submit, resume, ...) and
`refresh()` raise the StoreUnavailable / DiskFull message. Nothing is retried in a loop or logged per look.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from core.devices import Device
from core.jobs.control import JobControl
from core.jobs.dispatch import Dispatcher
from core.jobs.errors import DiskFull, JobNotFound, JobStateError, OutputBusy, StoreUnavailable
from core.jobs.executor import Executors, LocalExecutor
from core.jobs.inventory import Inventory
from core.jobs.queries import JobInfo, JobQueries
from core.jobs.ray_executor import RayExecutor
from core.jobs.reconcile import Reconciler
from core.jobs.rundir import ACTIVE, FAILED
from core.jobs.scheduler import DeviceRequestError, default_cpu_slots
from core.jobs.store import Store
from core.jobs.transitions import Transitions
from core.workspace import Workspace

log = logging.getLogger(__name__)

REMOTE_WATCH_S = 2.0  # how often a manager with jobs on a cluster looks on its own


class JobManager:
    def __init__(
        self, workspace: Workspace | str | os.PathLike, devices: list[Device] | None = None, *,
        cpu_slots: int | None = None, stop_timeout_s: float = 120.0, kill_grace_s: float = 10.0,
        cancel_grace_s: float = 3.0, attach: bool = True, ray_address: str | None = None,
        ray_lost_after_s: float = 60.0,
    ):
        """`ray_address`: the Ray cluster (its dashboard URL) new jobs go to; None: env EDS_RAY_ADDRESS; '': this
        machine. `ray_lost_after_s`: how long a Ray cluster may not answer before its jobs are marked failed."""
        self.workspace = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)
        self.workspace.ensure()
        self.store = Store(self.workspace.db_path)
        self.cpu_slots = cpu_slots or default_cpu_slots()
        self.stop_timeout_s = stop_timeout_s
        self.kill_grace_s = kill_grace_s
        self.cancel_grace_s = cancel_grace_s
        self._secrets: dict[str, dict[str, str]] = {}  # job id -> inline API keys, in this process's memory only
        self.inventory = Inventory(devices)
        self.transitions = Transitions(self.store)
        self.queries = JobQueries(self.workspace, self.store, self.inventory, self.cpu_slots, self._secrets)
        local = LocalExecutor(self.workspace, self.inventory, self.transitions, on_exit=self.refresh)
        self.executors = Executors(
            local, lambda address: RayExecutor(address, self.workspace, self.transitions,
                                               lost_after_s=ray_lost_after_s), ray_address)
        self.dispatcher = Dispatcher(
            self.workspace, self.store, self.transitions, self.inventory, self.cpu_slots, self._secrets,
            self.executors,
            on_spawn_failed=lambda row, reason, cause: self.reconciler.finalize(row, FAILED, reason, cause=cause),
        )
        self.reconciler = Reconciler(
            self.store, self.transitions, self.executors, self.queries.fraction, stop_timeout_s=stop_timeout_s,
            kill_grace_s=kill_grace_s, cancel_grace_s=cancel_grace_s,
        )
        self.control = JobControl(self.workspace, self.store, self.transitions, self.queries, self.inventory,
                                  self._secrets, refresh=lambda: self._look(), executors=self.executors)
        self.store_problem: str | None = None  # why the list may be behind (a full disk), while it is
        self._watcher: threading.Thread | None = None
        self._watch_lock = threading.Lock()
        if attach:
            self._look()  # re-attach: running jobs found alive stay running, vanished ones are marked failed

    def refresh(self) -> None:
        """Reconcile active jobs with their processes, then start what fits. Cheap; safe from any process. Raises
        StoreUnavailable (DiskFull) when the outcome of a job cannot be recorded."""
        try:
            remote = self.reconciler.reconcile_active()
            remote = self.dispatcher.schedule() or remote
        except StoreUnavailable as e:
            self._note(str(e))
            raise
        self.store_problem = None
        if remote:
            self._watch_remote()

    def _watch_remote(self) -> None:
        """While jobs run on a cluster, look every few seconds even if nobody else does: no reaper thread learns of
        their end, and what waits for them (queued jobs, a stop's escalation, a lost cluster) must still move. The
        thread ends when no such job is active; it dies with this process."""
        with self._watch_lock:
            if self._watcher is not None and self._watcher.is_alive():
                return

            def loop() -> None:
                while True:
                    time.sleep(REMOTE_WATCH_S)
                    try:
                        if not any(r["executor"] for r in self.store.rows(ACTIVE)):
                            return
                        self._look()
                    except Exception:  # a daemon thread: keep watching, log what went wrong
                        log.exception("watching cluster jobs")

            self._watcher = threading.Thread(target=loop, daemon=True, name="jobs-remote-watch")
            self._watcher.start()

    def _look(self) -> None:
        """refresh() for readers: a list that cannot be written is read as it is (store_problem says why)."""
        try:
            self.refresh()
        except StoreUnavailable:
            pass

    def _note(self, problem: str) -> None:
        if problem != self.store_problem:  # once per problem, not once per poll
            log.warning("job list not updated: %s", problem)
        self.store_problem = problem

    def devices(self, fresh: bool = False) -> list[Device]:
        """GPUs of this machine ([] = CPU only). Injected inventories (tests) are passed on to workers."""
        return self.inventory.devices(fresh)

    # acting -------------------------------------------------------------------------------------------------------

    def submit(self, config: Any, devices: Any = None, name: str | None = None, executor: str | None = None) -> str:
        """Queue a job; it starts at once when its devices are free. Returns the job id.

        `devices` overrides the config's `gpus` ('auto', 'cpu', a count or indices). Raises DeviceRequestError when
        this machine (or the Ray cluster) can never satisfy the request. `executor`: 'local', 'ray' (the manager's
        Ray address), or None: Ray when the manager has an address, except kinds that serve this machine (`serve`).
        """
        return self.control.submit(config, devices, name, executor)

    def stop(self, job_id: str, wait: float | None = None, timeout: float | None = None) -> JobInfo:
        """Graceful stop: the worker finishes its current unit, saves, and exits as `stopped`. Escalates to SIGTERM
        after `stop_timeout_s`, SIGKILL `kill_grace_s` later (a watchdog thread, or whoever polls next, does it).
        A queued job is removed from the queue. `wait`: seconds to wait for the end (None: return at once);
        `timeout`: this stop's grace before SIGTERM (default: the manager's stop_timeout_s)."""
        self.control.request_end(job_id, "stop", self.stop_timeout_s if timeout is None else timeout)
        return self.wait(job_id, wait) if wait else self.get(job_id)

    def cancel(self, job_id: str, wait: float | None = 10.0) -> JobInfo:
        """Immediate end: SIGTERM to the job's process group now, SIGKILL `cancel_grace_s` later."""
        self.control.request_end(job_id, "cancel", 0.0)
        return self.wait(job_id, wait) if wait else self.get(job_id)

    def resume(self, job_id: str) -> str:
        """A new attempt in the same run folder: the entry sees ctx.resumed and continues from what is there."""
        return self.control.resume(job_id)

    def delete(self, job_id: str) -> None:
        """Remove a job and its run folder. Refuses jobs that run (stop them first)."""
        self.control.delete(job_id)

    def finish_from_worker(self, job_id: str, attempt: int, fields: dict[str, Any]) -> bool:
        """The worker recording its own outcome (its status.json already says it)."""
        return self.transitions.worker_finished(job_id, attempt, fields)

    # looking ------------------------------------------------------------------------------------------------------

    def resolve(self, ref: str) -> str:
        """A job id from an id or a unique id prefix (the CLI's convenience)."""
        return self.queries.resolve(ref)

    def get(self, job_id: str, refresh: bool = True) -> JobInfo:
        if refresh:
            self._look()
        return self.queries.get(job_id)

    def list(
        self, status: str | list[str] | None = None, kind: str | None = None, text: str | None = None,
        limit: int | None = None, refresh: bool = True,
    ) -> list[JobInfo]:
        """Jobs newest first. `status` may be a state, a list of states, or 'active' / 'finished'."""
        if refresh:
            self._look()
        return self.queries.list(status, kind, text, limit)

    def wait(self, job_id: str, timeout: float | None = None, poll: float = 0.2) -> JobInfo:
        """Poll until the job has ended (or `timeout` seconds passed); returns its latest state."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            info = self.get(job_id)
            if info.finished or (deadline is not None and time.monotonic() >= deadline):
                return info
            time.sleep(poll)

    def logs(self, job_id: str, tail: int = 200) -> str:
        return self.queries.logs(job_id, tail)

    def metrics(self, job_id: str) -> list[dict]:
        """Every metrics line of the job (all attempts), parsed incrementally between calls."""
        return self.queries.metrics(job_id)

    def config_text(self, job_id: str) -> str:
        return self.queries.config_text(job_id)

    def device_panel(self) -> list[dict]:
        """Per device: name, memory, and the jobs holding it (the CPU row counts its slots)."""
        return self.queries.device_panel()


__all__ = ["DeviceRequestError", "DiskFull", "JobInfo", "JobManager", "JobNotFound", "JobStateError", "OutputBusy",
           "StoreUnavailable"]
