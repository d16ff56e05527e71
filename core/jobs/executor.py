"""Where a job's worker runs: the executor seam. The job protocol (run folder, flag files, status.json, the job list)
is the same everywhere; an executor only starts the worker, says whether it still runs, and ends it.

- `LocalExecutor`: a process of this machine in its own process group (core.jobs.procs), reaped by a thread of the
  process that started it so its exact exit status is known.
- `RayExecutor` (core.jobs.ray_executor): a Ray Jobs submission on a cluster that sees the same run folder.

Each job row records its executor (`executor`: '' = local, 'ray'), the cluster's address (`remote_addr`) and the
submission id (`remote_id`), so any process holding a manager (a restarted studio, a CLI) finds the worker again.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from core.errors import UserError
from core.jobs import procs
from core.jobs.errors import StoreUnavailable
from core.jobs.inventory import Inventory
from core.jobs.launch import job_env, worker_command
from core.jobs.rundir import LOG_FILE
from core.jobs.transitions import Transitions
from core.workspace import Workspace

log = logging.getLogger(__name__)

LOCAL, RAY = "local", "ray"
RAY_ADDRESS_ENV = "EDS_RAY_ADDRESS"
# Kinds that serve the studio itself (a chat model server) stay on this machine unless a job is sent to Ray by name:
# their address must be reachable from here.
LOCAL_BY_DEFAULT = frozenset({"serve"})


class LaunchFailed(Exception):
    """The worker could not be started; `cause` is a core.jobs.failure cause name ('' = none recorded)."""

    def __init__(self, reason: str, cause: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.cause = cause


class ExecutorChoiceError(UserError, ValueError):
    """An executor name that is not one of ours."""


@dataclass(frozen=True)
class Poll:
    """What an executor knows about a started job right now.

    `alive`: the worker runs (or waits on the cluster to start); False: it ended; None: cannot tell now (the cluster
    does not answer). `started`: the worker process exists (False while a cluster finds room for it). `note`: what a
    person should read meanwhile (waiting for resources, cluster unreachable). `exit_code`/`ended`: how it ended, by
    the executor's account, for jobs that ended without writing their own outcome."""

    alive: bool | None
    started: bool = True
    exit_code: int | None = None
    note: str = ""
    ended: str = ""
    lost: bool = False  # cannot tell for longer than the executor waits: the job is to be marked failed (`note`)


class Executor(Protocol):
    name: str
    remote: bool

    def started(self, row: dict) -> bool:
        """The worker was handed over (a pid, a submission id): from here on `poll` says how it is."""

    def start(self, row: dict, devices: list[str], secrets: Mapping[str, str] | None) -> None:
        """Start the claimed job's worker and record it (row -> running or submitted). Raises LaunchFailed."""

    def poll(self, row: dict) -> Poll: ...

    def terminate(self, row: dict) -> None:
        """Ask the worker to end now (SIGTERM to its group; Ray's stop_job). Unwinding still saves what it can."""

    def kill(self, row: dict) -> None:
        """End it without waiting (SIGKILL), after `terminate` had its grace."""

    def release(self, row: dict) -> None:
        """The job's outcome is recorded: clear what is left of it (helpers, caches, files)."""


class LocalExecutor:
    """Workers as processes of this machine. `on_exit()` runs after a worker this process started has ended."""

    name = LOCAL
    remote = False

    def __init__(self, workspace: Workspace, inventory: Inventory, transitions: Transitions,
                 on_exit: Callable[[], None]) -> None:
        self.workspace = workspace
        self.inventory = inventory
        self.transitions = transitions
        self._on_exit = on_exit
        self._procs: dict[tuple[str, int], subprocess.Popen] = {}
        self._exit_codes: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def started(self, row: dict) -> bool:
        return bool(row["pid"])

    def start(self, row: dict, devices: list[str], secrets: Mapping[str, str] | None) -> None:
        job_id, run_dir = row["id"], Path(row["run_dir"])
        env = job_env(os.environ, job_id=job_id, run_dir=run_dir, workspace_root=self.workspace.root,
                      devices=devices, secrets=secrets, fake_gpus=self.inventory.fake_spec())
        try:
            proc = procs.spawn(worker_command(run_dir), run_dir / LOG_FILE, env, self.workspace.root)
        except OSError as e:
            raise LaunchFailed(f"could not start the worker: {e}") from None
        ctime = procs.create_time(proc.pid)
        key = (job_id, row["attempt"])
        with self._lock:
            self._procs[key] = proc
        if not self.transitions.running(job_id, row["attempt"], proc.pid, ctime):
            now_row = self.transitions.store.get(job_id)
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

    def exit_code(self, job_id: str, attempt: int) -> int | None:
        """The exit status of a worker this process started and reaped (None: not ours, or still running)."""
        with self._lock:
            return self._exit_codes.get((job_id, attempt))

    def poll(self, row: dict) -> Poll:
        if procs.is_alive(row["pid"], row["pid_ctime"]):
            return Poll(True)
        return Poll(False, exit_code=self.exit_code(row["id"], row["attempt"]))

    def terminate(self, row: dict) -> None:
        procs.signal_group(row["pid"], row["pid_ctime"], signal.SIGTERM)

    def kill(self, row: dict) -> None:
        procs.signal_group(row["pid"], row["pid_ctime"], signal.SIGKILL)

    def release(self, row: dict) -> None:
        procs.kill_group_remnants(row["pid"], row["pid_ctime"])
        with self._lock:
            self._procs.pop((row["id"], row["attempt"]), None)


def normalize_address(text: str) -> str:
    """The Ray Jobs (dashboard) URL: `head:8265` -> `http://head:8265`, no trailing slash."""
    t = text.strip().rstrip("/")
    return t if "://" in t else f"http://{t}"


class Executors:
    """The executors of one manager: the local one, and one per Ray cluster address a job names (`make_ray(address)`
    builds it on first use). `ray_address` is where this manager sends new jobs (None: env EDS_RAY_ADDRESS; '' or
    unset: this machine)."""

    def __init__(self, local: LocalExecutor, make_ray: Callable[[str], Executor],
                 ray_address: str | None = None) -> None:
        self.local = local
        self._make_ray = make_ray
        raw = os.environ.get(RAY_ADDRESS_ENV, "") if ray_address is None else ray_address
        self.ray_address = normalize_address(raw) if raw and raw.strip() else ""
        self._ray: dict[str, Executor] = {}
        self._lock = threading.Lock()

    def choose(self, executor: str | None, kind: str) -> tuple[str, str]:
        """(executor, address) for a new job: `executor` 'local' / 'ray' / None (this manager's default; kinds in
        LOCAL_BY_DEFAULT stay local). 'ray' with no address configured is refused."""
        if executor not in (None, LOCAL, RAY):
            raise ExecutorChoiceError(f"executor {executor!r} is not known; use 'local' or 'ray'")
        if executor == LOCAL or (executor is None and (not self.ray_address or kind in LOCAL_BY_DEFAULT)):
            return "", ""
        if not self.ray_address:
            raise ExecutorChoiceError(
                f"no Ray cluster address is set: pass --ray-address URL or set {RAY_ADDRESS_ENV} "
                "(the Ray dashboard's URL, e.g. http://head:8265)")
        return RAY, self.ray_address

    def of(self, row: dict) -> Executor:
        if row.get("executor") == RAY:
            return self.ray(row.get("remote_addr") or self.ray_address)
        return self.local

    def ray(self, address: str) -> Any:
        address = normalize_address(address)
        with self._lock:
            ex = self._ray.get(address)
            if ex is None:
                ex = self._ray[address] = self._make_ray(address)
            return ex
