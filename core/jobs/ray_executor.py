"""Jobs on a Ray cluster through Ray Jobs (`ray.job_submission.JobSubmissionClient`).

A Ray job runs the same worker as a local one, `python -m core.jobs.worker RUN_DIR --remote`, on a cluster node that
sees the same run folder at the same path (a NAS / OSS mount shared by the studio and the cluster: DESIGN "The job").
Everything a person sees (status, log, metrics, progress) comes from that folder, as for local jobs; the studio asks
Ray only whether the worker still runs, and tells it to stop.

- Code: no `working_dir` is uploaded; easydistill-studio is installed on the cluster's Python (`python` on the
  nodes' PATH, or env EDS_RAY_PYTHON at the studio naming another interpreter).
- Devices: `gpus: N` becomes `entrypoint_num_gpus=N` (Ray gives the worker N GPUs on one node and sets
  CUDA_VISIBLE_DEVICES); every job also asks `entrypoint_num_cpus=1`, so a full cluster queues jobs (Ray's PENDING).
- Stop: the stop flag in the run folder, as locally (the worker saves a checkpoint and exits); if it does not stop in
  time, and for cancel, Ray's `stop_job` (SIGTERM to the worker and its children, SIGKILL after
  RAY_JOB_STOP_WAIT_TIME_S on the cluster, 3 s by default).
- What Ray can see (its dashboard, `ray job list`): the entrypoint (interpreter, run folder path), the resources,
  the metadata (job id, kind, attempt) and the non-secret environment below (`ray_env`). API keys never go there:
  they travel as `.ray-secrets.json` in the run folder (mode 0600, the variable names the job's config references
  with `api_key_env`, and inline keys), which the worker reads into its environment and deletes before it runs
  anything else (the studio deletes it if the job never starts).
- A cluster that stops answering is shown on the job ("Ray cluster at URL unreachable since ..."); after
  `lost_after_s` the job is marked failed with that reason (cause `cluster`): Resume continues from the run folder.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from core.errors import UserError
from core.jobs.executor import RAY, LaunchFailed, Poll, normalize_address
from core.jobs.rundir import ACTIVE, CONFIG_FILE, LOG_FILE, key_env_names
from core.jobs.transitions import Transitions
from core.workspace import Workspace

log = logging.getLogger(__name__)

SECRETS_FILE = ".ray-secrets.json"
PYTHON_ENV = "EDS_RAY_PYTHON"
GPUS_ENV = "EDS_RAY_GPUS"  # tells the worker how many GPUs Ray was asked for (0: it must not touch any)
# Variables of the studio's environment a Ray job gets too (visible in Ray's job info: nothing secret).
FORWARD_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "TRL_EXPERIMENTAL_SILENCE",
               "TOKENIZERS_PARALLELISM", "OMP_NUM_THREADS", "OMP_WAIT_POLICY", "EDS_CPU_SLOTS")
HTTP_TIMEOUT_S = (3.05, 10.0)  # connect, read: a cluster that does not answer must not hang the studio
POLL_TTL_S = 1.0  # one question to Ray per job per second, however often the studio looks
RETRY_UNREACHABLE_S = 3.0  # after a failed request, the cluster is not asked again for this long


class RayMissing(UserError):
    def __init__(self) -> None:
        super().__init__("Ray jobs need the ray package here: pip install 'easydistill-studio[ray]' "
                         "(ray[default] >= 2.30)", code="ray_missing")


class ClusterUnreachable(UserError):
    def __init__(self, address: str, error: object):
        self.address = address
        self.error = _short(error)
        super().__init__(f"Ray cluster at {address} unreachable: {self.error}", code="ray_unreachable",
                         params={"address": address, "error": self.error})


def _short(error: object) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= 200 else text[:197] + "..."


# pure parts (tested without Ray) ------------------------------------------------------------------------------------


def submission_id(job_id: str, attempt: int) -> str:
    """One Ray submission per attempt (Ray never reuses a submission id): `eds-<job id>-<attempt>`."""
    return f"eds-{job_id}-{int(attempt)}"


def device_keys(gpus: int) -> list[str]:
    """The row's devices for a Ray job: they hold nothing of this machine (not 'cpu', not 'cuda:N')."""
    return [f"ray:{gpus}gpu"] if gpus > 0 else ["ray:cpu"]


def gpus_of(devices: list[str]) -> int:
    for d in devices:
        if d.startswith("ray:") and d.endswith("gpu"):
            return int(d[4:-3] or 1)
    return 0


def entrypoint(run_dir: Path, workspace_root: Path, python: str = "python") -> str:
    """The shell command Ray runs: the worker in the workspace folder, its output appended to the run folder's log
    (`exec`: Ray's stop signal reaches the worker itself, not a shell)."""
    q = shlex.quote
    return (f"cd {q(str(workspace_root))} && exec {python} -m core.jobs.worker {q(str(run_dir))} --remote "
            f">> {q(str(run_dir / LOG_FILE))} 2>&1")


def ray_env(job_id: str, run_dir: Path, workspace_root: Path, gpus: int,
            base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The Ray job's environment (runtime_env env_vars, shown by Ray): job identity and a few settings, no secret."""
    from core.secrets import is_secret_key

    base = os.environ if base is None else base
    env = {k: base[k] for k in FORWARD_ENV if base.get(k) and not is_secret_key(k)}
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env.update({"EDS_JOB_ID": job_id, "EDS_RUN_DIR": str(run_dir), "EDS_WORKSPACE_ROOT": str(workspace_root),
                GPUS_ENV: str(int(gpus)), "PYTHONUNBUFFERED": "1", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"})
    return env


def job_secrets(run_dir: Path, held: Mapping[str, str] | None, base: Mapping[str, str] | None = None
                ) -> dict[str, str]:
    """The values the job's worker needs: inline keys this process holds, then the studio's environment."""
    base = os.environ if base is None else base
    try:
        data = yaml.safe_load((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        data = None
    out = {k: v for k, v in (held or {}).items() if v}
    for name in key_env_names(data):
        value = out.get(name) or base.get(name)
        if value:
            out[name] = value
    return out


def write_secrets(run_dir: Path, values: Mapping[str, str]) -> None:
    """`.ray-secrets.json`, readable by its owner only (created so, never widened)."""
    path = run_dir / SECRETS_FILE
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(dict(values), f)


def remote_setup(run_dir: Path, env: Any = None) -> list[str]:
    """In the worker on the cluster, before anything else: take the secrets file into the environment (and delete
    it), and say which devices Ray gave (`cuda:<i>` from CUDA_VISIBLE_DEVICES, or `cpu`)."""
    env = os.environ if env is None else env
    path = run_dir / SECRETS_FILE
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        values = {}
    path.unlink(missing_ok=True)
    if isinstance(values, dict):
        env.update({str(k): str(v) for k, v in values.items() if v})
    gpus = int(env.get(GPUS_ENV) or 0)
    if gpus <= 0:
        env["CUDA_VISIBLE_DEVICES"] = ""  # asked for none: the node's GPUs belong to other jobs
        return ["cpu"]
    ids = [s.strip() for s in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if s.strip()]
    if ids and all(s.isdigit() for s in ids):
        return [f"cuda:{s}" for s in ids]
    return [f"cuda:{i}" for i in range(len(ids) or gpus)]


# the executor -------------------------------------------------------------------------------------------------------


def _client_class() -> Any:
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError:
        raise RayMissing() from None

    class _Client(JobSubmissionClient):
        """Ray's client, with a timeout on every request (it has none: a silent head would hang the caller)."""

        def _do_request(self, method: str, endpoint: str, **kwargs: Any) -> Any:
            kwargs.setdefault("timeout", HTTP_TIMEOUT_S)
            return super()._do_request(method, endpoint, **kwargs)

    return _Client


def _missing(error: RuntimeError) -> bool:
    text = str(error).lower()
    return "404" in text or "does not exist" in text


class RayExecutor:
    """Workers as Ray Jobs on the cluster at `address` (its dashboard URL). One per address in a manager."""

    name = RAY
    remote = True

    def __init__(self, address: str, workspace: Workspace, transitions: Transitions, *,
                 lost_after_s: float = 60.0) -> None:
        self.address = normalize_address(address)
        self.workspace = workspace
        self.transitions = transitions
        self.lost_after_s = lost_after_s
        self._client_obj: Any = None
        self._lock = threading.Lock()
        self._polls: dict[str, tuple[float, Poll]] = {}
        self._down_since: float | None = None  # first failed request of the current outage
        self._down_error = ""
        self._down_checked = 0.0

    # talking to Ray -------------------------------------------------------------------------------------------------

    def _client(self) -> Any:
        with self._lock:
            if self._client_obj is None:
                if self._down_since is not None and time.monotonic() - self._down_checked < RETRY_UNREACHABLE_S:
                    raise ClusterUnreachable(self.address, self._down_error)
                cls = _client_class()
                try:
                    self._client_obj = cls(self.address)
                except (OSError, RuntimeError) as e:  # refused, timed out, not a Ray dashboard
                    self._failed(e)
                    raise ClusterUnreachable(self.address, e) from None
            return self._client_obj

    def _failed(self, error: object) -> None:
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
        self._down_checked = now
        self._down_error = _short(error)
        self._client_obj = None

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """A client call; a network failure becomes ClusterUnreachable (and is remembered for a few seconds)."""
        client = self._client()
        try:
            out = getattr(client, method)(*args, **kwargs)
        except OSError as e:  # requests' ConnectionError / Timeout are OSErrors
            with self._lock:
                self._failed(e)
            raise ClusterUnreachable(self.address, e) from None
        with self._lock:
            self._down_since, self._down_error = None, ""
        return out

    def gpu_inventory(self) -> list[int]:
        """GPU slots a job may ask for: range(the most GPUs one live node has) (an entrypoint runs on one node)."""
        try:
            from ray.util.state import list_nodes
        except ImportError:
            raise RayMissing() from None
        try:
            nodes = list_nodes(address=self.address, filters=[("state", "=", "ALIVE")], timeout=10,
                               raise_on_missing_output=False)
        except Exception as e:  # noqa: BLE001 - Ray's state API raises its own types for a cluster out of reach
            raise ClusterUnreachable(self.address, e) from None
        most = max((int(float((getattr(n, "resources_total", None) or {}).get("GPU", 0))) for n in nodes), default=0)
        return list(range(most))

    # the Executor protocol ------------------------------------------------------------------------------------------

    def started(self, row: dict) -> bool:
        return bool(row.get("remote_id"))

    def devices_for(self, request: Any) -> list[str]:
        return device_keys(request.count)

    def start(self, row: dict, devices: list[str], secrets: Mapping[str, str] | None) -> None:
        job_id, attempt, run_dir = row["id"], int(row["attempt"]), Path(row["run_dir"])
        sid = submission_id(job_id, attempt)
        if not self.transitions.submitting(job_id, attempt, sid):
            return  # cancelled while it was being claimed: nothing goes to the cluster
        gpus = gpus_of(devices)
        values = job_secrets(run_dir, secrets)
        try:
            if values:
                write_secrets(run_dir, values)
            self._call(
                "submit_job", entrypoint=entrypoint(run_dir, self.workspace.root, os.environ.get(PYTHON_ENV) or
                                                    "python"),
                submission_id=sid, runtime_env={"env_vars": ray_env(job_id, run_dir, self.workspace.root, gpus)},
                metadata={"easydistill_job": job_id, "easydistill_kind": str(row["kind"]),
                          "easydistill_attempt": str(attempt)},
                entrypoint_num_cpus=1, entrypoint_num_gpus=gpus or None)
        except ClusterUnreachable as e:
            (run_dir / SECRETS_FILE).unlink(missing_ok=True)
            raise LaunchFailed(str(e), cause="cluster") from None
        except (RayMissing, RuntimeError, ValueError, OSError) as e:
            (run_dir / SECRETS_FILE).unlink(missing_ok=True)
            raise LaunchFailed(f"the Ray cluster at {self.address} did not take the job: {_short(e)}",
                               cause="cluster" if isinstance(e, RuntimeError) else "setup") from None
        now_row = self.transitions.store.get(job_id)
        if now_row is None or now_row["status"] not in ACTIVE or int(now_row["attempt"]) != attempt:
            self._stop(sid)  # cancelled while it was being submitted

    def poll(self, row: dict) -> Poll:
        sid = row.get("remote_id") or ""
        with self._lock:
            hit = self._polls.get(sid)
        if hit and time.monotonic() - hit[0] < POLL_TTL_S:
            return hit[1]
        p = self._poll(sid)
        with self._lock:
            self._polls[sid] = (time.monotonic(), p)
        return p

    def _poll(self, sid: str) -> Poll:
        try:
            info = self._call("get_job_info", sid)
        except RayMissing as e:
            return Poll(None, note=str(e))
        except ClusterUnreachable as e:
            return self._unreachable(e.error)
        except RuntimeError as e:
            if _missing(e):
                return Poll(False, started=False, ended=f"the Ray cluster at {self.address} has no job {sid}")
            return self._unreachable(e)
        status = getattr(info.status, "value", str(info.status))
        if status == "PENDING":
            return Poll(True, started=False, note=f"waiting on the Ray cluster at {self.address}: {info.message}")
        if status == "RUNNING":
            return Poll(True)
        return Poll(False, exit_code=info.driver_exit_code,
                    ended=f"Ray job {sid} ended {status.lower()}: {_short(info.message or '')}")

    def _unreachable(self, error: object) -> Poll:
        with self._lock:
            if self._down_since is None:
                self._failed(error)
            since = self._down_since or time.monotonic()
        down_s = time.monotonic() - since
        started = time.strftime("%H:%M:%S", time.localtime(time.time() - down_s))
        if down_s >= self.lost_after_s:
            return Poll(None, lost=True, note=(
                f"Ray cluster at {self.address} unreachable for {down_s:.0f} s ({_short(error)}); the job's state "
                "there is unknown. What it saved in its run folder is kept: Resume it once the cluster is back"))
        return Poll(None, note=f"Ray cluster at {self.address} unreachable since {started} ({_short(error)})")

    def _stop(self, sid: str) -> None:
        try:
            self._call("stop_job", sid)
        except (ClusterUnreachable, RayMissing, RuntimeError) as e:  # the reconciler keeps watching; say why here
            log.warning("could not stop Ray job %s: %s", sid, e)
        with self._lock:
            self._polls.pop(sid, None)

    def terminate(self, row: dict) -> None:
        if row.get("remote_id"):
            self._stop(row["remote_id"])

    def kill(self, row: dict) -> None:
        self.terminate(row)  # Ray escalates to SIGKILL by itself (RAY_JOB_STOP_WAIT_TIME_S after stop_job)

    def release(self, row: dict) -> None:
        (Path(row["run_dir"]) / SECRETS_FILE).unlink(missing_ok=True)  # a job that never started leaves it behind
        with self._lock:
            self._polls.pop(row.get("remote_id") or "", None)
