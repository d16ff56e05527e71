"""Reading jobs: the list, one job, its log, metrics and config, and who holds which device. Nothing here changes a
job's state, so these are safe to call from any process at any rate (the studio polls them)."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.jobs.errors import JobNotFound
from core.jobs.inventory import Inventory
from core.jobs.progress import compute
from core.jobs.rundir import (
    ACTIVE,
    CONFIG_FILE,
    FINAL,
    LOG_FILE,
    METRICS_FILE,
    QUEUED,
    STARTING,
    JsonlTail,
    read_status,
    tail_text,
)
from core.jobs.scheduler import CPU_KEY, Request
from core.jobs.store import Store
from core.secrets import scrub
from core.workspace import Workspace


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
    step_kinds: list[str] = field(default_factory=list)  # ... and their job kinds (once the pipeline started)
    unit: str = "steps"  # what done/total count (rows, steps, ...)
    rate: float | None = None  # units per second over the recent window (core.jobs.progress)
    pipeline_eta_s: float | None = None  # the whole pipeline's remaining time (eta_s is the current step's)
    queue_position: int | None = None
    run_dir: str = ""
    pid: int | None = None
    exit_code: int | None = None
    stop_mode: str | None = None  # 'stop' | 'cancel' while stopping
    cause: str = ""  # a failed job's cause (core.jobs.failure.CAUSES name); "" = not recorded

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


class JobQueries:
    """Reads the store and run folders. Holds one incremental metrics reader per job, so polling a long run's
    metrics costs only the lines added since the last look."""

    def __init__(self, workspace: Workspace, store: Store, inventory: Inventory, cpu_slots: int,
                 secrets: dict[str, dict[str, str]]) -> None:
        self.workspace = workspace
        self.store = store
        self.inventory = inventory
        self.cpu_slots = cpu_slots
        self._secrets = secrets  # shared with the manager: inline keys this process holds, scrubbed from logs
        self._metrics: dict[str, JsonlTail] = {}
        self._lock = threading.Lock()

    def row(self, job_id: str) -> dict:
        row = self.store.get(job_id)
        if row is None:
            raise JobNotFound(f"no job {job_id!r} in {self.workspace.root}", code="job_not_found",
                              params={"job": job_id})
        return row

    def resolve(self, ref: str) -> str:
        """A job id from an id or a unique id prefix (the CLI's convenience)."""
        ids = self.store.find(ref)
        if ref in ids:
            return ref
        if len(ids) == 1:
            return ids[0]
        if not ids:
            raise JobNotFound(f"no job {ref!r} in {self.workspace.root}", code="job_not_found", params={"job": ref})
        raise JobNotFound(f"{ref!r} matches {len(ids)} jobs ({', '.join(ids[:4])}, ...); give more of the id",
                          code="job_ambiguous", params={"job": ref, "n": len(ids), "ids": ", ".join(ids[:4])})

    def get(self, job_id: str) -> JobInfo:
        row = self.row(job_id)
        pos = None
        if row["status"] == QUEUED:
            queued = self.store.queue_order()
            pos = 1 + queued.index(job_id) if job_id in queued else None
        return self.info(row, pos)

    def list(self, status: str | list[str] | None = None, kind: str | None = None, text: str | None = None,
             limit: int | None = None) -> list[JobInfo]:
        """Jobs newest first. `status` may be a state, a list of states, or 'active' / 'finished'. Filtered and limited
        in SQL: the cost follows the rows returned, not the jobs the workspace holds."""
        want: set[str] | None = None
        if status == "active":
            want = {QUEUED, *ACTIVE}
        elif status == "finished":
            want = set(FINAL)
        elif isinstance(status, str) and status:
            want = {status}
        elif status:
            want = set(status)
        rows = self.store.listing(want, kind, text, limit)
        positions: dict[str, int] = {}
        if any(r["status"] == QUEUED for r in rows):
            positions = {job_id: i + 1 for i, job_id in enumerate(self.store.queue_order())}
        return [self.info(r, positions.get(r["id"])) for r in rows]

    def info(self, row: dict, queue_position: int | None) -> JobInfo:
        """A row as JobInfo; progress and ETA of active jobs come from their metrics and status.json."""
        info = JobInfo(
            id=row["id"], name=row["name"], kind=row["kind"], status=row["status"], reason=row["reason"] or "",
            detail=row["detail"] or "", attempt=row["attempt"], devices=row["devices"] or [],
            request=Request.from_json(row["request"]).describe(), created_at=row["created_at"],
            started_at=row["started_at"] if row["status"] != STARTING else None, ended_at=row["ended_at"],
            progress=row["progress"], step=row["step"], queue_position=queue_position, run_dir=row["run_dir"],
            pid=row["pid"], exit_code=row["exit_code"], stop_mode=row["stop_mode"], cause=row.get("cause") or "",
        )
        if row["kind"] == "pipeline" or row["status"] in ACTIVE:
            st = read_status(Path(row["run_dir"]))
            info.steps = list(st.get("steps") or [])
            info.step_kinds = list(st.get("step_kinds") or [])
            if row["status"] in ACTIVE:
                info.step = st.get("step") or info.step
        if row["status"] in ACTIVE:
            p = compute(self.metrics(row["id"]), stages=info.steps or None, now=time.time())
            info.progress, info.eta_s, info.done, info.total = p.fraction, p.eta_s, p.step, p.total
            info.unit, info.rate, info.pipeline_eta_s = p.unit, p.rate, p.pipeline_eta_s
            if p.stage and not info.step:
                info.step = p.stage
        elif row["status"] == QUEUED:
            info.progress = None
        return info

    def fraction(self, row: dict) -> float | None:
        """How far the job got (0..1), recorded when it ends; None when its metrics cannot tell."""
        try:
            steps = read_status(Path(row["run_dir"])).get("steps") or None
            return compute(self.metrics(row["id"]), stages=steps).fraction
        except Exception:  # a broken run folder must not keep the job from being finalized
            return None

    def logs(self, job_id: str, tail: int = 200) -> str:
        row = self.row(job_id)
        path = Path(row["run_dir"]) / LOG_FILE
        if not self.workspace.contains(path):  # a link planted in the run folder is never followed
            return f"(log not shown: {self.workspace.shown(path)} is a link that leads outside the workspace)"
        text = tail_text(path, tail)
        return scrub(text, list(self._secrets.get(job_id, {}).values()))

    def metrics(self, job_id: str) -> list[dict]:
        """Every metrics line of the job (all attempts), parsed incrementally between calls."""
        with self._lock:
            reader = self._metrics.get(job_id)
            if reader is None:
                row = self.row(job_id)
                reader = self._metrics[job_id] = JsonlTail(Path(row["run_dir"]) / METRICS_FILE)
            return list(reader.read())

    def forget(self, job_id: str) -> None:
        """Drop the metrics reader of a deleted job."""
        with self._lock:
            self._metrics.pop(job_id, None)

    def config_text(self, job_id: str) -> str:
        row = self.row(job_id)
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
        for d in self.inventory.devices(fresh=True):
            out.append({**d.to_dict(), "jobs": holders.get(d.key, [])})
        cpu_jobs = holders.get(CPU_KEY, [])
        out.append({"key": CPU_KEY, "index": None, "name": "CPU", "memory_total_mb": 0, "memory_used_mb": 0,
                    "jobs": cpu_jobs, "slots": self.cpu_slots})
        return out
