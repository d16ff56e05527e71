"""Starting queued jobs: claim the ones whose devices are free (in one `BEGIN IMMEDIATE` transaction, so two
processes never start the same job) and hand each to its executor (core.jobs.executor: a local process in its own
process group, or a Ray Jobs submission).

A queued job that waits for others (they write its input, see core.jobs.outputs) is not a candidate until they all
ended: it starts once they all succeeded, and fails naming the first that did not (it never reads a partial file).
While it waits it holds no place that blocks the jobs behind it. A job for a Ray cluster holds nothing of this
machine: it is claimed at once and queues on the cluster (Ray's PENDING) until the cluster has room.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from core.jobs import procs
from core.jobs.executor import LaunchFailed
from core.jobs.inventory import Inventory
from core.jobs.rundir import ACTIVE, QUEUED, STARTING, SUCCEEDED
from core.jobs.scheduler import CPU_KEY, Request, Waiting, gpu_index, plan
from core.jobs.store import Store
from core.jobs.transitions import Transitions
from core.workspace import Workspace

log = logging.getLogger(__name__)

ORPHANED_SECRET = ("its API key was given inline in the config and the process that submitted it exited before the "
                   "job could start; reference the key with api_key_env (an environment variable) and submit again")


class Dispatcher:
    """`executors` (core.jobs.executor.Executors) start each job where its row says; `on_spawn_failed(row, reason,
    cause)` ends a job whose worker could not start."""

    def __init__(
        self, workspace: Workspace, store: Store, transitions: Transitions, inventory: Inventory, cpu_slots: int,
        secrets: dict[str, dict[str, str]], executors: Any, on_spawn_failed: Callable[[dict, str, str], None],
    ) -> None:
        self.workspace = workspace
        self.store = store
        self.transitions = transitions
        self.inventory = inventory
        self.cpu_slots = cpu_slots
        self.executors = executors
        self._secrets = secrets  # shared with the manager: inline keys only this process can hand to a worker
        self._on_spawn_failed = on_spawn_failed

    def schedule(self) -> bool:
        """Start every queued job that fits on the free devices, in queue order. True when one went to a cluster."""
        indices = self.inventory.gpu_indices()
        with self.store.tx() as c:
            active = self.store.rows(ACTIVE, conn=c)
            held = {i for r in active for d in (r["devices"] or []) if (i := gpu_index(d)) is not None}
            cpu_running = sum(1 for r in active if CPU_KEY in (r["devices"] or []))
            waiting: list[Waiting] = []
            remote: list[tuple[str, list[str]]] = []  # jobs for a cluster: claimed now, they queue there
            hold: set[str] = set()
            for r in self.store.rows((QUEUED,), conn=c, order="queued_at, seq"):
                if r["waits_for"] and not self._dependencies_done(r, c):
                    continue
                req = Request.from_json(r["request"])
                if r["needs_secrets"] and r["id"] not in self._secrets:
                    if procs.is_alive(r["owner_pid"], r["owner_ctime"]):
                        hold.add(r["id"])  # only its submitter can start it; it keeps its place in the queue
                    else:
                        self.transitions.fail_queued(r, ORPHANED_SECRET, c, cause="secret_lost")
                        continue
                if r["executor"]:
                    if r["id"] not in hold:
                        remote.append((r["id"], self.executors.of(r).devices_for(req)))
                    continue
                waiting.append(Waiting(r["id"], req))
            starts = plan(waiting, indices, held, cpu_running, self.cpu_slots, hold=hold) + remote
            for job_id, devs in starts:
                self.transitions.claim(job_id, devs, c)
        for job_id, devs in starts:
            self._launch(job_id, devs)
        return bool(remote)

    def _dependencies_done(self, row: dict, conn) -> bool:
        """True when every job `row` waits for succeeded; fails `row` when one ended otherwise (or was deleted)."""
        for other in row["waits_for"]:
            dep = self.store.get(other, conn=conn)
            status = dep["status"] if dep else None
            if status in (QUEUED, *ACTIVE):
                return False
            if status != SUCCEEDED:
                what = "was deleted" if status is None else f"ended {status}"
                self.transitions.fail_queued(
                    row, f"job {other} it waited for {what}, so its input is incomplete; finish that job (Resume it), "
                    "then submit this one again", conn, cause="dependency")
                return False
        return True

    def _launch(self, job_id: str, devices: list[str]) -> None:
        row = self.store.get(job_id)
        if row is None or row["status"] != STARTING:
            return
        self.transitions.announce_start(row, devices)
        try:
            self.executors.of(row).start(row, devices, self._secrets.get(job_id))
        except LaunchFailed as e:
            self._on_spawn_failed(row, e.reason, e.cause)
