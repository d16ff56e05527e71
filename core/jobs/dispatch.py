"""Starting queued jobs: claim the ones whose devices are free (in one `BEGIN IMMEDIATE` transaction, so two
processes never start the same job), spawn each worker in its own process group, and reap the workers this process
started so their exact exit status is known.

A queued job that waits for others (they write its input, see core.jobs.outputs) is not a candidate until they all
ended: it starts once they all succeeded, and fails naming the first that did not (it never reads a partial file).
While it waits it holds no place that blocks the jobs behind it."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from core.jobs import procs
from core.jobs.errors import StoreUnavailable
from core.jobs.inventory import Inventory
from core.jobs.launch import job_env, worker_command
from core.jobs.rundir import ACTIVE, LOG_FILE, QUEUED, STARTING, SUCCEEDED
from core.jobs.scheduler import CPU_KEY, Request, Waiting, gpu_index, plan
from core.jobs.store import Store
from core.jobs.transitions import Transitions
from core.workspace import Workspace

log = logging.getLogger(__name__)

ORPHANED_SECRET = ("its API key was given inline in the config and the process that submitted it exited before the "
                   "job could start; reference the key with api_key_env (an environment variable) and submit again")


class Dispatcher:
    """`on_spawn_failed(row, reason)` ends a job whose worker could not start; `on_exit()` runs after a worker this
    process started has ended (the manager reconciles and starts the next jobs)."""

    def __init__(
        self, workspace: Workspace, store: Store, transitions: Transitions, inventory: Inventory, cpu_slots: int,
        secrets: dict[str, dict[str, str]], on_spawn_failed: Callable[[dict, str], None],
        on_exit: Callable[[], None],
    ) -> None:
        self.workspace = workspace
        self.store = store
        self.transitions = transitions
        self.inventory = inventory
        self.cpu_slots = cpu_slots
        self._secrets = secrets  # shared with the manager: inline keys only this process can hand to a worker
        self._on_spawn_failed = on_spawn_failed
        self._on_exit = on_exit
        self._procs: dict[tuple[str, int], subprocess.Popen] = {}
        self._exit_codes: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def exit_code(self, job_id: str, attempt: int) -> int | None:
        """The exit status of a worker this process started and reaped (None: not ours, or still running)."""
        with self._lock:
            return self._exit_codes.get((job_id, attempt))

    def forget(self, job_id: str, attempt: int) -> None:
        with self._lock:
            self._procs.pop((job_id, attempt), None)

    def schedule(self) -> None:
        """Start every queued job that fits on the free devices, in queue order."""
        indices = self.inventory.gpu_indices()
        with self.store.tx() as c:
            active = self.store.rows(ACTIVE, conn=c)
            held = {i for r in active for d in (r["devices"] or []) if (i := gpu_index(d)) is not None}
            cpu_running = sum(1 for r in active if CPU_KEY in (r["devices"] or []))
            waiting: list[Waiting] = []
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
                waiting.append(Waiting(r["id"], req))
            starts = plan(waiting, indices, held, cpu_running, self.cpu_slots, hold=hold)
            for job_id, devs in starts:
                self.transitions.claim(job_id, devs, c)
        for job_id, devs in starts:
            self._launch(job_id, devs)

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
        run_dir = Path(row["run_dir"])
        self.transitions.announce_start(row, devices)
        env = job_env(os.environ, job_id=job_id, run_dir=run_dir, workspace_root=self.workspace.root,
                      devices=devices, secrets=self._secrets.get(job_id), fake_gpus=self.inventory.fake_spec())
        try:
            proc = procs.spawn(worker_command(run_dir), run_dir / LOG_FILE, env, self.workspace.root)
        except OSError as e:
            self._on_spawn_failed(row, f"could not start the worker: {e}")
            return
        ctime = procs.create_time(proc.pid)
        key = (job_id, row["attempt"])
        with self._lock:
            self._procs[key] = proc
        if not self.transitions.running(job_id, row["attempt"], proc.pid, ctime):
            now_row = self.store.get(job_id)
            if now_row is None or now_row["pid"] != proc.pid:  # cancelled while starting: the worker must not run
                procs.signal_group(proc.pid, ctime, signal.SIGKILL)
        threading.Thread(target=self._reap, args=(key, proc), daemon=True, name=f"reap-{job_id}").start()

    def _reap(self, key: tuple[str, int], proc: subprocess.Popen) -> None:
        """Wait for a worker this process started: no zombie, and the exact exit status for the record."""
        rc = proc.wait()
        with self._lock:
            self._exit_codes[key] = rc
        try:
            self._on_exit()
        except StoreUnavailable as e:  # a full disk or a locked list: one line; whoever looks next records it
            log.warning("job %s ended; could not record it yet: %s", key[0], e)
        except Exception:  # a daemon thread: log, never die silently with the traceback lost
            log.exception("refresh after job %s ended failed", key[0])
