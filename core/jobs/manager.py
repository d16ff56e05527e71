"""JobManager: submit, list, stop, cancel, resume and delete jobs; the scheduler and reconciler run inside it.

There is no daemon. Any process holding a manager (the studio, a CLI command, a finishing worker) advances the
shared state whenever it looks: `refresh()` reconciles running jobs with their processes (finished? vanished?
stop timed out?) and starts queued jobs on free devices. Claiming a queued job happens in a `BEGIN IMMEDIATE`
transaction, so two processes never start the same job. State lives in SQLite (the list) and the run folder
(everything else); a manager object holds only caches, plus, in the process that submitted a job with an inline
API key, that key (it reaches the worker through its environment only, and is never written anywhere).
"""

from __future__ import annotations

import logging
import os
import re
import secrets as pysecrets
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from core.devices import Device, discover_gpus
from core.errors import UserError
from core.jobs import procs
from core.jobs.failure import classify_exit
from core.jobs.launch import job_env, worker_command
from core.jobs.progress import compute
from core.jobs.rundir import (
    ACTIVE,
    CANCELLED,
    CONFIG_FILE,
    FAILED,
    FINAL,
    LOG_FILE,
    METRICS_FILE,
    QUEUED,
    RUNNING,
    STARTING,
    STOPPED,
    STOPPING,
    SUCCEEDED,
    JsonlTail,
    clear_flags,
    read_status,
    set_flag,
    tail_text,
    update_status,
)
from core.jobs.scheduler import (
    CPU_KEY,
    DeviceRequestError,
    Request,
    Waiting,
    default_cpu_slots,
    gpu_index,
    plan,
    resolve_request,
)
from core.jobs.store import Store
from core.secrets import scrub
from core.workspace import Workspace

log = logging.getLogger(__name__)

STALE_CLAIM_S = 60.0  # a job claimed ('starting') whose launcher vanished is failed after this long
INVENTORY_TTL_S = 5.0  # GPU memory figures for the device panel


class JobNotFound(UserError, LookupError):
    pass


class JobStateError(UserError, ValueError):
    """The action does not apply to the job in its current state (message says why and what to do)."""


@dataclass
class JobInfo:
    """What a table row, `jobs show` and the Jobs tab need about one job."""

    id: str
    name: str
    kind: str
    status: str
    reason: str = ""
    detail: str = ""
    attempt: int = 1
    devices: list[str] = field(default_factory=list)
    request: str = ""
    created_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    progress: float | None = None  # 0..1
    eta_s: float | None = None
    done: int | None = None  # the last reported step of the current stage ...
    total: int | None = None  # ... out of this many
    step: str | None = None  # the pipeline step running (or last run)
    steps: list[str] = field(default_factory=list)  # a pipeline's step names
    queue_position: int | None = None
    run_dir: str = ""
    pid: int | None = None
    exit_code: int | None = None
    stop_mode: str | None = None  # 'stop' | 'cancel' while stopping

    @property
    def finished(self) -> bool:
        return self.status in FINAL

    @property
    def duration_s(self) -> float | None:
        if not self.started_at:
            return None
        return (self.ended_at or time.time()) - self.started_at

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["progress_pct"] = None if self.progress is None else round(100 * self.progress, 1)
        d["duration_s"] = self.duration_s
        return d


def new_job_id(kind: str) -> str:
    safe = re.sub(r"[^a-z0-9_]+", "-", kind.lower()).strip("-") or "job"
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{safe}-{pysecrets.token_hex(2)}"


class JobManager:
    def __init__(
        self, workspace: Workspace | str | os.PathLike, devices: list[Device] | None = None, *,
        cpu_slots: int | None = None, stop_timeout_s: float = 120.0, kill_grace_s: float = 10.0,
        cancel_grace_s: float = 3.0, attach: bool = True,
    ):
        self.workspace = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)
        self.workspace.ensure()
        self.store = Store(self.workspace.db_path)
        self.cpu_slots = cpu_slots or default_cpu_slots()
        self.stop_timeout_s = stop_timeout_s
        self.kill_grace_s = kill_grace_s
        self.cancel_grace_s = cancel_grace_s
        self._injected = devices
        self._inventory: tuple[float, list[Device]] | None = None
        self._procs: dict[tuple[str, int], subprocess.Popen] = {}
        self._exit_codes: dict[tuple[str, int], int] = {}
        self._secrets: dict[str, dict[str, str]] = {}
        self._metrics: dict[str, JsonlTail] = {}
        self._lock = threading.RLock()
        self._watchdog: threading.Thread | None = None
        if attach:
            self.refresh()  # re-attach: running jobs found alive stay running, vanished ones are marked failed

    # devices ------------------------------------------------------------------------------------------------------

    def devices(self, fresh: bool = False) -> list[Device]:
        """GPUs of this machine ([] = CPU only). Injected inventories (tests) are passed on to workers."""
        if self._injected is not None:
            return list(self._injected)
        now = time.monotonic()
        if self._inventory is None or (fresh and now - self._inventory[0] > INVENTORY_TTL_S):
            self._inventory = (now, discover_gpus())
        return list(self._inventory[1])

    def _gpu_indices(self) -> list[int]:
        return [d.index for d in self.devices() if d.index is not None]

    def _fake_spec(self) -> str | None:
        if self._injected is None:
            return None
        if not self._injected:
            return "0"
        return ",".join(f"{d.name}:{d.memory_total_mb}" for d in self._injected)

    # submit -------------------------------------------------------------------------------------------------------

    def submit(self, config: Any, devices: Any = None, name: str | None = None) -> str:
        """Queue a job; it starts at once when its devices are free. Returns the job id.

        `devices` overrides the config's `gpus` ('auto', 'cpu', a count or indices). Raises DeviceRequestError when
        this machine can never satisfy the request.
        """
        from core.config.base import JobBase
        from core.config.io import externalize_secrets, to_dict

        if not isinstance(config, JobBase):
            raise TypeError(f"submit() takes a job config (JobBase), got {type(config).__name__}")
        request = resolve_request(devices if devices is not None else config.gpus, config, self._gpu_indices())
        clean, env = externalize_secrets(config)
        job_id = new_job_id(config.kind)
        run_dir = self.workspace.runs / job_id
        (run_dir / "output").mkdir(parents=True)
        now = time.time()
        label = name or config.name or f"{config.kind} {time.strftime('%m-%d %H:%M:%S', time.localtime(now))}"
        header = f"# job {job_id} ({config.kind}), devices requested: {request.describe()}\n"
        body = yaml.safe_dump(to_dict(clean), sort_keys=False, allow_unicode=True)
        (run_dir / CONFIG_FILE).write_text(header + body, encoding="utf-8")
        steps = [s.name for s in getattr(clean, "steps", [])] if config.kind == "pipeline" else []
        update_status(run_dir, id=job_id, name=label, kind=config.kind, status=QUEUED, attempt=1, created_at=now,
                      request=request.to_json(), devices=[], steps=steps)
        row = {
            "id": job_id, "name": label, "kind": config.kind, "status": QUEUED, "request": request.to_json(),
            "devices": [], "attempt": 1, "created_at": now, "queued_at": now, "run_dir": str(run_dir),
            "needs_secrets": 1 if env else 0,
        }
        if env:
            me = os.getpid()
            row.update(owner_pid=me, owner_ctime=procs.create_time(me))
            self._secrets[job_id] = env
        self.store.insert(row)
        self.refresh()
        return job_id

    # looking ------------------------------------------------------------------------------------------------------

    def resolve(self, ref: str) -> str:
        """A job id from an id or a unique id prefix (the CLI's convenience)."""
        ids = self.store.find(ref)
        if ref in ids:
            return ref
        if len(ids) == 1:
            return ids[0]
        if not ids:
            raise JobNotFound(f"no job {ref!r} in {self.workspace.root}")
        raise JobNotFound(f"{ref!r} matches {len(ids)} jobs ({', '.join(ids[:4])}, ...); give more of the id")

    def get(self, job_id: str, refresh: bool = True) -> JobInfo:
        if refresh:
            self.refresh()
        row = self.store.get(job_id)
        if row is None:
            raise JobNotFound(f"no job {job_id!r} in {self.workspace.root}")
        pos = None
        if row["status"] == QUEUED:
            queued = self.store.rows((QUEUED,), order="queued_at, seq")
            pos = 1 + [r["id"] for r in queued].index(job_id) if any(r["id"] == job_id for r in queued) else None
        return self._info(row, pos)

    def list(
        self, status: str | list[str] | None = None, kind: str | None = None, text: str | None = None,
        limit: int | None = None, refresh: bool = True,
    ) -> list[JobInfo]:
        """Jobs newest first. `status` may be a state, a list of states, or 'active' / 'finished'."""
        if refresh:
            self.refresh()
        rows = self.store.rows()
        queued = sorted((r for r in rows if r["status"] == QUEUED), key=lambda r: (r["queued_at"] or 0, r["seq"]))
        positions = {r["id"]: i + 1 for i, r in enumerate(queued)}
        want: set[str] | None = None
        if status == "active":
            want = {QUEUED, *ACTIVE}
        elif status == "finished":
            want = set(FINAL)
        elif isinstance(status, str) and status:
            want = {status}
        elif status:
            want = set(status)
        out = []
        needle = (text or "").lower()
        for r in rows:
            if want and r["status"] not in want:
                continue
            if kind and r["kind"] != kind:
                continue
            if needle and needle not in f"{r['id']} {r['name']} {r['kind']}".lower():
                continue
            out.append(self._info(r, positions.get(r["id"])))
            if limit and len(out) >= limit:
                break
        return out

    def _info(self, row: dict, queue_position: int | None) -> JobInfo:
        info = JobInfo(
            id=row["id"], name=row["name"], kind=row["kind"], status=row["status"], reason=row["reason"] or "",
            detail=row["detail"] or "", attempt=row["attempt"], devices=row["devices"] or [],
            request=Request.from_json(row["request"]).describe(), created_at=row["created_at"],
            started_at=row["started_at"] if row["status"] != STARTING else None, ended_at=row["ended_at"],
            progress=row["progress"], step=row["step"], queue_position=queue_position, run_dir=row["run_dir"],
            pid=row["pid"], exit_code=row["exit_code"], stop_mode=row["stop_mode"],
        )
        if row["kind"] == "pipeline" or row["status"] in ACTIVE:
            st = read_status(Path(row["run_dir"]))
            info.steps = list(st.get("steps") or [])
            if row["status"] in ACTIVE:
                info.step = st.get("step") or info.step
        if row["status"] in ACTIVE:
            p = compute(self.metrics(row["id"]), stages=info.steps or None, now=time.time())
            info.progress, info.eta_s, info.done, info.total = p.fraction, p.eta_s, p.step, p.total
            if p.stage and not info.step:
                info.step = p.stage
        elif row["status"] == QUEUED:
            info.progress = None
        return info

    def logs(self, job_id: str, tail: int = 200) -> str:
        row = self._row(job_id)
        text = tail_text(Path(row["run_dir"]) / LOG_FILE, tail)
        return scrub(text, list(self._secrets.get(job_id, {}).values()))

    def metrics(self, job_id: str) -> list[dict]:
        """Every metrics line of the job (all attempts), parsed incrementally between calls."""
        with self._lock:
            reader = self._metrics.get(job_id)
            if reader is None:
                row = self._row(job_id)
                reader = self._metrics[job_id] = JsonlTail(Path(row["run_dir"]) / METRICS_FILE)
            return list(reader.read())

    def config_text(self, job_id: str) -> str:
        row = self._row(job_id)
        try:
            return (Path(row["run_dir"]) / CONFIG_FILE).read_text(encoding="utf-8")
        except OSError:
            return ""

    def device_panel(self) -> list[dict]:
        """Per device: name, memory, and the jobs holding it (the CPU row counts its slots)."""
        holders: dict[str, list[str]] = {}
        for r in self.store.rows(ACTIVE):
            for d in r["devices"] or []:
                holders.setdefault(d, []).append(r["id"])
        out = []
        for d in self.devices(fresh=True):
            out.append({**d.to_dict(), "jobs": holders.get(d.key, [])})
        cpu_jobs = holders.get(CPU_KEY, [])
        out.append({"key": CPU_KEY, "index": None, "name": "CPU", "memory_total_mb": 0, "memory_used_mb": 0,
                    "jobs": cpu_jobs, "slots": self.cpu_slots})
        return out

    def _row(self, job_id: str) -> dict:
        row = self.store.get(job_id)
        if row is None:
            raise JobNotFound(f"no job {job_id!r} in {self.workspace.root}")
        return row

    # control ------------------------------------------------------------------------------------------------------

    def stop(self, job_id: str, wait: float | None = None, timeout: float | None = None) -> JobInfo:
        """Graceful stop: the worker finishes its current unit, saves, and exits as `stopped`. Escalates to SIGTERM
        after `stop_timeout_s`, SIGKILL `kill_grace_s` later (a watchdog thread, or whoever polls next, does it).
        A queued job is removed from the queue. `wait`: seconds to wait for the end (None: return at once);
        `timeout`: this stop's grace before SIGTERM (default: the manager's stop_timeout_s)."""
        self._control(job_id, "stop", self.stop_timeout_s if timeout is None else timeout)
        if wait:
            return self.wait(job_id, wait)
        return self.get(job_id)

    def cancel(self, job_id: str, wait: float | None = 10.0) -> JobInfo:
        """Immediate end: SIGTERM to the job's process group now, SIGKILL `cancel_grace_s` later."""
        self._control(job_id, "cancel", 0.0)
        if wait:
            return self.wait(job_id, wait)
        return self.get(job_id)

    def _control(self, job_id: str, mode: str, timeout: float) -> None:
        # A job may change state under us (a worker registering, finishing): act on the state the update saw.
        for _ in range(5):
            row = self._row(job_id)
            st = row["status"]
            if st in FINAL:
                raise JobStateError(f"job {job_id} already ended ({st})")
            if st in (QUEUED, STARTING) and not row["pid"]:
                reason = "stopped before it started" if mode == "stop" else "cancelled before it started"
                if self._end_unstarted(row, reason):
                    return
                continue
            run_dir = Path(row["run_dir"])
            now = time.time()
            if mode == "stop":
                if st == STOPPING:
                    return  # already stopping (or cancelling)
                set_flag(run_dir, "stop")
                if self.store.update(job_id, {"status": STOPPING, "stop_mode": "stop", "stop_at": now,
                                              "stop_timeout": timeout}, expect_status=(STARTING, RUNNING)):
                    self._watch()
                    return
            else:
                set_flag(run_dir, "cancel")
                if self.store.update(job_id, {"status": STOPPING, "stop_mode": "cancel", "stop_at": now,
                                              "term_at": now}, expect_status=(STARTING, RUNNING, STOPPING)):
                    procs.signal_group(row["pid"], row["pid_ctime"], signal.SIGTERM)
                    self._watch()
                    return
        raise JobStateError(f"job {job_id} keeps changing state; try again")

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
                        self.refresh()
                    except Exception:
                        log.exception("stop watchdog")

            self._watchdog = threading.Thread(target=loop, daemon=True, name="jobs-stop-watchdog")
            self._watchdog.start()

    def _end_unstarted(self, row: dict, reason: str) -> bool:
        now = time.time()
        if not self.store.update(row["id"], {"status": CANCELLED, "reason": reason, "ended_at": now},
                                 expect_status=(QUEUED, STARTING), expect_attempt=row["attempt"]):
            return False
        update_status(Path(row["run_dir"]), status=CANCELLED, reason=reason, ended_at=now)
        self.refresh()
        return True

    def wait(self, job_id: str, timeout: float | None = None, poll: float = 0.2) -> JobInfo:
        """Poll until the job has ended (or `timeout` seconds passed); returns its latest state."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            info = self.get(job_id)
            if info.finished or (deadline is not None and time.monotonic() >= deadline):
                return info
            time.sleep(poll)

    def resume(self, job_id: str) -> str:
        """A new attempt in the same run folder: the entry sees ctx.resumed and continues from what is there."""
        from core.config.io import parse_config

        row = self._row(job_id)
        if row["status"] not in (FAILED, STOPPED, CANCELLED):
            what = "it succeeded" if row["status"] == SUCCEEDED else f"it is {row['status']}"
            raise JobStateError(f"job {job_id} cannot be resumed: {what}; only stopped, failed or cancelled jobs can")
        run_dir = Path(row["run_dir"])
        data = yaml.safe_load((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))
        config = parse_config(data, str(run_dir / CONFIG_FILE))
        held = dict(self._secrets.get(job_id, {}))
        for name in _secret_env_names(data):
            if name not in held and os.environ.get(name):
                held[name] = os.environ[name]  # exported by the user for this resume
        missing = sorted(n for n in _secret_env_names(data) if n not in held)
        if missing:
            raise JobStateError(
                f"job {job_id} used an API key given inline in its config; it is kept only in the memory of the "
                f"process that submitted it, which no longer holds it ({', '.join(missing)}). Put the key in an "
                "environment variable, reference it with api_key_env, and submit the job again"
            )
        request = Request.from_json(row["request"])
        resolve_request(list(request.indices) if request.indices is not None else (request.count or "cpu"),
                        config, self._gpu_indices())
        attempt = int(row["attempt"]) + 1
        clear_flags(run_dir)
        with open(run_dir / LOG_FILE, "a", encoding="utf-8") as f:
            f.write(f"\n===== attempt {attempt} (resumed {time.strftime('%Y-%m-%d %H:%M:%S')}) =====\n")
        now = time.time()
        fields = {
            "status": QUEUED, "attempt": attempt, "queued_at": now, "reason": "", "detail": "", "devices": [],
            "pid": None, "pid_ctime": None, "claimed_by": None, "stop_mode": None, "stop_at": None, "term_at": None,
            "stop_timeout": None,
            "exit_code": None, "started_at": None, "ended_at": None, "progress": None,
            "needs_secrets": 1 if held else 0,
        }
        if held:
            me = os.getpid()
            fields.update(owner_pid=me, owner_ctime=procs.create_time(me))
            self._secrets[job_id] = held
        if not self.store.update(job_id, fields, expect_status=(FAILED, STOPPED, CANCELLED)):
            raise JobStateError(f"job {job_id} changed state meanwhile; look again")
        update_status(run_dir, status=QUEUED, attempt=attempt, reason="", detail="", ended_at=None, devices=[],
                      pid=None, exit_code=None)
        self.refresh()
        return job_id

    def delete(self, job_id: str) -> None:
        """Remove a job and its run folder. Refuses jobs that run (stop them first)."""
        row = self._row(job_id)
        if row["status"] in ACTIVE:
            raise JobStateError(f"job {job_id} is {row['status']}; stop or cancel it before deleting")
        with self.store.tx() as c:
            if not self.store.update(job_id, {"status": row["status"]}, expect_status=(QUEUED, *FINAL), conn=c):
                raise JobStateError(f"job {job_id} started meanwhile; stop it before deleting")
            self.store.delete(job_id, conn=c)
        run_dir = Path(row["run_dir"]).resolve()
        if run_dir.parent == self.workspace.runs.resolve() and run_dir.is_dir():
            shutil.rmtree(run_dir, ignore_errors=True)
        self._metrics.pop(job_id, None)
        self._secrets.pop(job_id, None)

    # the engine ---------------------------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Reconcile active jobs with their processes, then start what fits. Cheap; safe from any process."""
        for row in self.store.rows(ACTIVE):
            try:
                self._reconcile(row)
            except Exception:  # one broken run folder must not stop the others from being looked after
                log.exception("reconciling job %s failed", row["id"])
        self._schedule()

    def _reconcile(self, row: dict) -> None:
        now = time.time()
        if row["status"] == STARTING and not row["pid"]:
            claimer_alive = row["claimed_by"] and procs.create_time(row["claimed_by"]) is not None
            if not claimer_alive or now - (row["started_at"] or now) > STALE_CLAIM_S:
                self._finalize(row, FAILED, "the worker was never started (the process starting it exited first)")
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
                self.store.update(row["id"], {"term_at": now}, expect_status=(STOPPING,))
                procs.signal_group(row["pid"], row["pid_ctime"], signal.SIGTERM)
            return
        grace = self.cancel_grace_s if cancel else self.kill_grace_s
        if now - row["term_at"] >= grace:
            procs.signal_group(row["pid"], row["pid_ctime"], signal.SIGKILL)

    def _finalize_dead(self, row: dict) -> None:
        """The worker process is gone. Take its own account of the outcome if it wrote one, else explain."""
        key = (row["id"], row["attempt"])
        rc = self._exit_codes.get(key)
        run_dir = Path(row["run_dir"])
        st = read_status(run_dir)
        wrote_final = st.get("status") in FINAL and int(st.get("attempt") or 0) == int(row["attempt"])
        if wrote_final:
            status, reason, detail = st["status"], st.get("reason", ""), st.get("detail", "")
            if status == SUCCEEDED and rc not in (None, 0):
                status, reason = FAILED, f"the worker reported success but exited with code {rc}"
        else:
            log_tail = scrub(tail_text(run_dir / LOG_FILE, 15))
            detail = log_tail
            if row["stop_mode"] == "cancel":
                status, reason = CANCELLED, "cancelled"
            elif row["stop_mode"] == "stop":
                status, reason = STOPPED, "did not stop in time; the worker was terminated"
            elif rc == 0:
                status, reason = SUCCEEDED, ""
            elif rc is not None:
                f = classify_exit(rc, log_tail)
                status, reason, detail = FAILED, f.reason, f.detail
            else:
                status, reason = FAILED, (
                    "worker disappeared: its process ended without recording an outcome "
                    "(killed from outside, or the machine restarted)"
                )
        self._finalize(row, status, reason, detail, exit_code=rc, write_status=not wrote_final)

    def _finalize(
        self, row: dict, status: str, reason: str, detail: str = "", exit_code: int | None = None,
        write_status: bool = True,
    ) -> None:
        now = time.time()
        st = read_status(Path(row["run_dir"]))
        ended = st.get("ended_at") if not write_status and st.get("ended_at") else now
        progress = 1.0 if status == SUCCEEDED else self._fraction(row)
        won = self.store.update(
            row["id"],
            {"status": status, "reason": reason, "detail": detail, "ended_at": ended, "exit_code": exit_code,
             "progress": progress, "step": st.get("step") or row["step"]},
            expect_status=ACTIVE, expect_attempt=row["attempt"],
        )
        if won and write_status:
            update_status(Path(row["run_dir"]), status=status, reason=reason, detail=detail, ended_at=ended,
                          exit_code=exit_code)
        procs.kill_group_remnants(row["pid"], row["pid_ctime"])
        self._procs.pop((row["id"], row["attempt"]), None)

    def _fraction(self, row: dict) -> float | None:
        try:
            steps = read_status(Path(row["run_dir"])).get("steps") or None
            return compute(self.metrics(row["id"]), stages=steps).fraction
        except Exception:
            return None

    def finish_from_worker(self, job_id: str, attempt: int, fields: dict[str, Any]) -> bool:
        """The worker recording its own outcome (its status.json already says it)."""
        return self.store.update(job_id, fields, expect_status=ACTIVE, expect_attempt=attempt)

    def _schedule(self) -> None:
        indices = self._gpu_indices()
        with self.store.tx() as c:
            active = self.store.rows(ACTIVE, conn=c)
            held = {i for r in active for d in (r["devices"] or []) if (i := gpu_index(d)) is not None}
            cpu_running = sum(1 for r in active if CPU_KEY in (r["devices"] or []))
            waiting: list[Waiting] = []
            hold: set[str] = set()
            for r in self.store.rows((QUEUED,), conn=c, order="queued_at, seq"):
                req = Request.from_json(r["request"])
                if r["needs_secrets"] and r["id"] not in self._secrets:
                    if procs.is_alive(r["owner_pid"], r["owner_ctime"]):
                        hold.add(r["id"])  # only its submitter can start it; it keeps its place in the queue
                    else:
                        self._fail_orphaned_secret(r, c)
                        continue
                waiting.append(Waiting(r["id"], req))
            starts = plan(waiting, indices, held, cpu_running, self.cpu_slots, hold=hold)
            now = time.time()
            for job_id, devs in starts:
                self.store.update(
                    job_id, {"status": STARTING, "devices": devs, "claimed_by": os.getpid(), "started_at": now},
                    expect_status=(QUEUED,), conn=c,
                )
        for job_id, devs in starts:
            self._launch(job_id, devs)

    def _fail_orphaned_secret(self, row: dict, conn: Any) -> None:
        reason = ("its API key was given inline in the config and the process that submitted it exited before the "
                  "job could start; reference the key with api_key_env (an environment variable) and submit again")
        now = time.time()
        self.store.update(row["id"], {"status": FAILED, "reason": reason, "ended_at": now},
                          expect_status=(QUEUED,), conn=conn)
        update_status(Path(row["run_dir"]), status=FAILED, reason=reason, ended_at=now)

    def _launch(self, job_id: str, devices: list[str]) -> None:
        row = self.store.get(job_id)
        if row is None or row["status"] != STARTING:
            return
        run_dir = Path(row["run_dir"])
        update_status(run_dir, status=STARTING, devices=devices, attempt=row["attempt"], reason="", detail="")
        env = job_env(os.environ, job_id=job_id, run_dir=run_dir, workspace_root=self.workspace.root,
                      devices=devices, secrets=self._secrets.get(job_id), fake_gpus=self._fake_spec())
        try:
            proc = procs.spawn(worker_command(run_dir), run_dir / LOG_FILE, env, self.workspace.root)
        except OSError as e:
            self._finalize(row, FAILED, f"could not start the worker: {e}")
            return
        ctime = procs.create_time(proc.pid)
        key = (job_id, row["attempt"])
        with self._lock:
            self._procs[key] = proc
        fields = {"status": RUNNING, "pid": proc.pid, "pid_ctime": ctime, "started_at": time.time()}
        if not self.store.update(job_id, fields, expect_status=(STARTING,), expect_attempt=row["attempt"]):
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
            self.refresh()
        except Exception:
            log.exception("refresh after job %s ended failed", key[0])


def _secret_env_names(data: Any) -> set[str]:
    """Env-var names that externalize_secrets invented for inline keys (EDS_SECRET_*)."""
    out: set[str] = set()
    if isinstance(data, dict):
        for k, v in data.items():
            if k == "api_key_env" and isinstance(v, str) and v.startswith("EDS_SECRET_"):
                out.add(v)
            else:
                out |= _secret_env_names(v)
    elif isinstance(data, list):
        for v in data:
            out |= _secret_env_names(v)
    return out


__all__ = ["DeviceRequestError", "JobInfo", "JobManager", "JobNotFound", "JobStateError"]
