"""What a person does to jobs: submit, stop (graceful), cancel (immediate), resume and delete. Each action checks the
job's state and refuses with a JobStateError that says why; the state change itself is a transition."""

from __future__ import annotations

import logging
import os
import re
import secrets as pysecrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from core.jobs import outputs, procs
from core.jobs.claims import check_held_gpus
from core.jobs.errors import JobStateError, OutputBusy, StoreUnavailable
from core.jobs.failure import disk_full_error
from core.jobs.inventory import Inventory
from core.jobs.queries import JobQueries
from core.jobs.rundir import (
    ACTIVE,
    CONFIG_FILE,
    FINAL,
    LOG_FILE,
    QUEUED,
    STARTING,
    STOPPING,
    SUCCEEDED,
    clear_flags,
    key_env_names,
    set_flag,
)
from core.jobs.scheduler import DeviceRequestError, Request, auto_gpus, resolve_request
from core.jobs.store import Store
from core.jobs.transitions import RESUMABLE, Transitions
from core.workspace import Workspace

log = logging.getLogger(__name__)


def new_job_id(kind: str) -> str:
    safe = re.sub(r"[^a-z0-9_]+", "-", kind.lower()).strip("-") or "job"
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{safe}-{pysecrets.token_hex(2)}"


class JobControl:
    """`refresh()` is the manager's reconcile-and-schedule pass, run after each change so a freed or queued job moves
    at once."""

    def __init__(
        self, workspace: Workspace, store: Store, transitions: Transitions, queries: JobQueries, inventory: Inventory,
        secrets: dict[str, dict[str, str]], refresh: Callable[[], None], executors: Any,
    ) -> None:
        self.workspace = workspace
        self.executors = executors  # core.jobs.executor.Executors: where new jobs go, and how to end a running one
        self.store = store
        self.transitions = transitions
        self.queries = queries
        self.inventory = inventory
        self._secrets = secrets  # shared with the manager: inline keys held in this process's memory only
        self._refresh = refresh
        self._watchdog: threading.Thread | None = None
        self._lock = threading.Lock()
        self._quiet_until = 0.0

    # submit -------------------------------------------------------------------------------------------------------

    def submit(self, config: Any, devices: Any = None, name: str | None = None, executor: str | None = None) -> str:
        from core.config.base import JobBase
        from core.config.io import externalize_secrets, to_dict

        if not isinstance(config, JobBase):
            raise TypeError(f"submit() takes a job config (JobBase), got {type(config).__name__}")
        from core.refs import check_links

        check_links(config, self.workspace)  # no name or path leads out of the workspace through a link
        where, address = self.executors.choose(executor, config.kind)
        request = self._request(devices if devices is not None else config.gpus, config, where, address)
        if not where:  # a model server's GPUs are its own until stopped (core.jobs.claims)
            check_held_gpus(config, request, self.store.rows((QUEUED, *ACTIVE)), self.inventory.gpu_indices())
        clean, env = externalize_secrets(config)
        job_id = new_job_id(config.kind)
        run_dir = self.workspace.runs / job_id
        now = time.time()
        label = name or config.name or f"{config.kind} {time.strftime('%m-%d %H:%M:%S', time.localtime(now))}"
        header = f"# job {job_id} ({config.kind}), devices requested: {request.describe()}" + (
            f" on the Ray cluster at {address}\n" if where else "\n")
        body = yaml.safe_dump(to_dict(clean), sort_keys=False, allow_unicode=True)
        steps = [s.name for s in getattr(clean, "steps", [])] if config.kind == "pipeline" else []
        row = {
            "id": job_id, "name": label, "kind": config.kind, "status": QUEUED, "request": request.to_json(),
            "devices": [], "attempt": 1, "created_at": now, "queued_at": now, "run_dir": str(run_dir),
            "needs_secrets": 1 if env else 0, "executor": where, "remote_addr": address,
        }
        if env:
            me = os.getpid()
            row.update(owner_pid=me, owner_ctime=procs.create_time(me))
            self._secrets[job_id] = env
        mine = self._paths_of(config)
        try:
            with self._writing(run_dir):
                (run_dir / "output").mkdir(parents=True)
                (run_dir / CONFIG_FILE).write_text(header + body, encoding="utf-8")
                with self.store.tx() as c:  # checked and inserted under one write lock: two submits cannot both pass
                    row.update(self._check_paths(job_id, mine, c))
                    self.transitions.create(row, steps, conn=c)
        except BaseException:
            shutil.rmtree(run_dir, ignore_errors=True)
            self._secrets.pop(job_id, None)
            raise
        self._refresh()
        return job_id

    def _request(self, gpus: Any, config: Any, where: str, address: str) -> Request:
        """The device request, checked against where the job will run: this machine's GPUs, or the GPUs one node of
        the Ray cluster has (a Ray job's worker runs on one node; it places the job itself, so no indices)."""
        if not where:
            return resolve_request(gpus, config, self.inventory.gpu_indices())
        if isinstance(gpus, (list, tuple)) and gpus:
            raise DeviceRequestError(f"gpus: {list(gpus)} names GPUs of this machine; a Ray cluster places the job "
                                     "itself: ask for a count (gpus: 2), 'auto' or 'cpu'")
        none = gpus in ("cpu", 0) or (gpus in (None, "auto") and auto_gpus(config) <= 0)
        inventory = [] if none else self.executors.ray(address).gpu_inventory()
        try:
            return resolve_request(gpus, config, inventory)
        except DeviceRequestError as e:
            raise DeviceRequestError(str(e).replace("this machine", f"the largest node of the Ray cluster at "
                                                                    f"{address}")) from None

    @contextmanager
    def _writing(self, run_dir: Path) -> Iterator[None]:
        """A full disk while writing a run folder, as DiskFull naming the folder (a message, not a traceback)."""
        try:
            yield
        except OSError as e:
            full = disk_full_error(e, [run_dir], self.workspace.root)
            if full is None:
                raise
            raise full from None

    def _paths_of(self, config: Any) -> dict[str, list[str]]:
        return {"writes": outputs.writes(config, self.workspace), "reads": outputs.reads(config, self.workspace)}

    def _check_paths(self, job_id: str, mine: dict[str, list[str]], conn: Any) -> dict[str, Any]:
        """Refuse (OutputBusy, naming the other job) when a queued or running job writes or reads what this one would
        write; the jobs writing what this one reads are the ones it waits for. Returns the row's path columns."""
        waits: list[str] = []
        reason = ""
        for r in self.store.rows((QUEUED, *ACTIVE), conn=conn, order="seq"):
            if r["id"] == job_id:
                continue
            for theirs, reading in ((r["writes"] or [], False), (r["reads"] or [], True)):
                hit = outputs.conflicts(mine["writes"], theirs)
                if hit:
                    raise OutputBusy(self.workspace.relative(hit), r["id"], r["status"], reading=reading)
            hit = outputs.conflicts(mine["reads"], r["writes"] or [])
            if hit:
                waits.append(r["id"])
                reason = reason or (f"waits for job {r['id']} ({r['status']}) to finish writing "
                                    f"{self.workspace.relative(hit)}")
        return {**mine, "waits_for": waits, "reason": reason}

    # stop / cancel ------------------------------------------------------------------------------------------------

    def request_end(self, job_id: str, mode: str, timeout: float) -> None:
        """mode 'stop': flag file + STOPPING (the reconciler escalates after `timeout`); 'cancel': SIGTERM now."""
        # A job may change state under us (a worker registering, finishing): act on the state the update saw.
        for _ in range(5):
            row = self.queries.row(job_id)
            st = row["status"]
            if st in FINAL:
                raise JobStateError(f"job {job_id} already ended ({st})", code="job_ended",
                                    params={"job": job_id, "status": st})
            if st == QUEUED or (st == STARTING and not self.executors.of(row).started(row)):
                reason = "stopped before it started" if mode == "stop" else "cancelled before it started"
                if self.transitions.end_unstarted(row, reason):
                    self._refresh()
                    return
                continue
            run_dir = Path(row["run_dir"])
            if mode == "stop":
                if st == STOPPING:
                    return  # already stopping (or cancelling)
                set_flag(run_dir, "stop")
                if self.transitions.stopping(job_id, timeout):
                    self._watch()
                    return
            else:
                set_flag(run_dir, "cancel")
                if self.transitions.cancelling(job_id):
                    self.executors.of(row).terminate(row)
                    self._watch()
                    return
        raise JobStateError(f"job {job_id} keeps changing state; try again", code="job_changing",
                            params={"job": job_id})

    def _watch(self) -> None:
        """While jobs are stopping, poll once a second so the SIGTERM/SIGKILL escalation happens even if nobody
        looks (the browser was closed). Ends when nothing is stopping; dies with this process."""
        with self._lock:
            if self._watchdog is not None and self._watchdog.is_alive():
                return

            def loop() -> None:
                while True:
                    time.sleep(1.0)
                    try:
                        if not self.store.rows((STOPPING,)):
                            return
                        self._refresh()
                    except StoreUnavailable as e:  # a full disk: say so once a minute, not a traceback a second
                        if time.monotonic() - self._quiet_until > 0:
                            log.warning("stop watchdog: %s", e)
                            self._quiet_until = time.monotonic() + 60
                    except Exception:  # a daemon thread: keep watching, log what went wrong
                        log.exception("stop watchdog")

            self._watchdog = threading.Thread(target=loop, daemon=True, name="jobs-stop-watchdog")
            self._watchdog.start()

    # resume / delete ----------------------------------------------------------------------------------------------

    def resume(self, job_id: str) -> str:
        """A new attempt in the same run folder: the entry sees ctx.resumed and continues from what is there."""
        from core.config.io import parse_config

        row = self.queries.row(job_id)
        if row["status"] not in RESUMABLE:
            what = "it succeeded" if row["status"] == SUCCEEDED else f"it is {row['status']}"
            raise JobStateError(f"job {job_id} cannot be resumed: {what}; only stopped, failed or cancelled jobs can",
                                code="job_not_resumable", params={"job": job_id, "status": row["status"]})
        run_dir = Path(row["run_dir"])
        data = yaml.safe_load((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))
        config = parse_config(data, str(run_dir / CONFIG_FILE))
        held = dict(self._secrets.get(job_id, {}))
        for name in key_env_names(data, "EDS_SECRET_"):
            if name not in held and os.environ.get(name):
                held[name] = os.environ[name]  # exported by the user for this resume
        missing = sorted(n for n in key_env_names(data, "EDS_SECRET_") if n not in held)
        if missing:
            raise JobStateError(
                f"job {job_id} used an API key given inline in its config; it is kept only in the memory of the "
                f"process that submitted it, which no longer holds it ({', '.join(missing)}). Put the key in an "
                "environment variable, reference it with api_key_env, and submit the job again",
                code="job_inline_key", params={"job": job_id, "keys": ", ".join(missing)})
        request = Request.from_json(row["request"])
        self._request(list(request.indices) if request.indices is not None else (request.count or "cpu"), config,
                      row["executor"], row["remote_addr"])
        attempt = int(row["attempt"]) + 1
        mine = self._paths_of(config)
        with self.store.tx() as c:  # another job may have taken its output meanwhile: refused before anything moves
            paths = self._check_paths(job_id, mine, c)
        with self._writing(run_dir):
            clear_flags(run_dir)
            with open(run_dir / LOG_FILE, "a", encoding="utf-8") as f:
                f.write(f"\n===== attempt {attempt} (resumed {time.strftime('%Y-%m-%d %H:%M:%S')}) =====\n")
        if held:
            self._secrets[job_id] = held
        with self.store.tx() as c:
            paths = self._check_paths(job_id, mine, c)
            if not self.transitions.requeue(job_id, run_dir, attempt, owned=bool(held), paths=paths, conn=c):
                raise JobStateError(f"job {job_id} changed state meanwhile; look again", code="job_changing",
                                    params={"job": job_id})
        self._refresh()
        return job_id

    def delete(self, job_id: str) -> None:
        """Remove a job and its run folder. Refuses jobs that run (stop them first)."""
        row = self.queries.row(job_id)
        if row["status"] in ACTIVE:
            raise JobStateError(f"job {job_id} is {row['status']}; stop or cancel it before deleting",
                                code="job_delete_active", params={"job": job_id, "status": row["status"]})
        if not self.transitions.remove(job_id, row["status"]):
            raise JobStateError(f"job {job_id} started meanwhile; stop it before deleting", code="job_changing",
                                params={"job": job_id})
        run_dir = Path(row["run_dir"]).resolve()
        if run_dir.parent == self.workspace.runs.resolve() and run_dir.is_dir():
            shutil.rmtree(run_dir, ignore_errors=True)
        self.queries.forget(job_id)
        self._secrets.pop(job_id, None)
