"""Jobs on a Ray cluster (core.jobs.ray_executor): the same worker and run folder, submitted through Ray Jobs.

The pure parts (entrypoint, environment, secrets file, devices, executor choice) run everywhere. The rest starts a
real Ray head on loopback (module fixture: every port on 127.0.0.1, `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`, usage
stats off) and drives it through JobManager as the studio does: a selftest and a tiny SFT job show progress, stop
with a checkpoint and resume; a manager created mid-job (a restarted studio) re-attaches; cancel is Ray's stop; and
with the head killed mid-job the job says the cluster is unreachable, then fails with that reason.

The head is stopped by killing the processes it started (its process group and their descendants, by pid), not with
`ray stop --force`, which would also end any other Ray cluster on this shared machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from core.config.selftest import SelftestJob
from core.jobs.executor import ExecutorChoiceError, Executors, LocalExecutor
from core.jobs.ray_executor import (
    SECRETS_FILE,
    entrypoint,
    job_secrets,
    ray_env,
    remote_setup,
    submission_id,
    write_secrets,
)
from core.net import free_port

HAS_RAY = shutil.which("ray", path=str(Path(sys.executable).parent)) is not None
needs_ray = pytest.mark.skipif(not HAS_RAY, reason="ray is not installed (pip install 'easydistill-studio[ray]')")
SECRET = "sk-test-never-shown-to-ray-0123456789"


def wait_until(pred, timeout: float = 60.0, what: str = "condition", every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


# pure parts --------------------------------------------------------------------------------------------------------


def test_entrypoint_runs_the_worker_in_the_workspace_with_its_log_and_no_secret(tmp_path):
    run = tmp_path / "my ws" / "runs" / "20260101-x"
    cmd = entrypoint(run, tmp_path / "my ws", python="/opt/py/bin/python")
    assert cmd == (f"cd '{tmp_path}/my ws' && exec /opt/py/bin/python -m core.jobs.worker '{run}' --remote "
                   f">> '{run}/log.txt' 2>&1")
    base = {"HF_HUB_OFFLINE": "1", "OPENAI_API_KEY": SECRET, "HF_TOKEN": "hf_" + "x" * 20, "PATH": "/usr/bin",
            "EDS_SECRET_TEACHER": SECRET}
    env = ray_env("job-1", run, tmp_path, 2, base=base)
    assert SECRET not in json.dumps(env) and "HF_TOKEN" not in env and "PATH" not in env
    assert env["HF_HUB_OFFLINE"] == "1" and env["EDS_RAY_GPUS"] == "2" and env["EDS_JOB_ID"] == "job-1"
    assert env["EDS_RUN_DIR"] == str(run) and env["OMP_WAIT_POLICY"] == "PASSIVE"
    assert submission_id("job-1", 3) == "eds-job-1-3"


def test_secrets_travel_in_a_private_file_the_worker_takes_once(tmp_path):
    """Only what the job's config names (api_key_env) and inline keys: the studio's other keys stay home."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "job.yaml").write_text("kind: synth\nteacher:\n  api_key_env: TEACHER_KEY\njudge:\n  api_key_env: "
                                  "EDS_SECRET_JUDGE\n", encoding="utf-8")
    values = job_secrets(run, {"EDS_SECRET_JUDGE": "inline-123"}, base={"TEACHER_KEY": SECRET, "OTHER_KEY": "no"})
    assert values == {"EDS_SECRET_JUDGE": "inline-123", "TEACHER_KEY": SECRET}
    write_secrets(run, values)
    assert stat.S_IMODE((run / SECRETS_FILE).stat().st_mode) == 0o600

    env = {"EDS_RAY_GPUS": "0", "CUDA_VISIBLE_DEVICES": "0,1"}
    assert remote_setup(run, env) == ["cpu"]
    assert env["TEACHER_KEY"] == SECRET and env["EDS_SECRET_JUDGE"] == "inline-123"
    assert env["CUDA_VISIBLE_DEVICES"] == ""  # asked for no GPU: sees none
    assert not (run / SECRETS_FILE).exists()  # read once, gone
    env2 = {"EDS_RAY_GPUS": "2", "CUDA_VISIBLE_DEVICES": "3,5"}
    assert remote_setup(run, env2) == ["cuda:3", "cuda:5"] and "TEACHER_KEY" not in env2


def test_the_manager_sends_jobs_where_it_is_told(workspace, monkeypatch):
    def choose(address, executor=None, kind="selftest"):
        ex = Executors(LocalExecutor(workspace, None, None, lambda: None), lambda a: None, address)
        return ex.choose(executor, kind)

    monkeypatch.setenv("EDS_RAY_ADDRESS", "head:8265/")
    assert choose(None) == ("ray", "http://head:8265")  # the env names the cluster, as a URL
    assert choose(None, kind="serve") == ("", "")  # a chat server must be reachable from the studio
    assert choose(None, "ray", "serve") == ("ray", "http://head:8265")
    assert choose("") == ("", "") and choose("", "local") == ("", "")
    with pytest.raises(ExecutorChoiceError, match="no Ray cluster address"):
        choose("", "ray")
    with pytest.raises(ExecutorChoiceError, match="not known"):
        choose("", "slurm")


@needs_ray
def test_a_cluster_that_does_not_answer_is_named_at_once(workspace):
    """Nothing listens at the address: a CPU job fails saying so (cause 'cluster'); a GPU job is refused at submit,
    since the GPUs a node has cannot be known."""
    from core.jobs.manager import JobManager
    from core.jobs.ray_executor import ClusterUnreachable

    url = f"http://127.0.0.1:{free_port()}"
    m = JobManager(workspace, ray_address=url)
    job_id = m.submit(SelftestJob(steps=2, delay_s=0), devices="cpu")
    info = m.wait(job_id, 30)
    assert info.status == "failed" and m.store.get(job_id)["cause"] == "cluster", info
    assert info.reason.startswith(f"Ray cluster at {url} unreachable"), info.reason
    with pytest.raises(ClusterUnreachable, match="unreachable"):
        m.submit(SelftestJob(steps=2), devices=1)
    local = m.submit(SelftestJob(steps=1, delay_s=0), devices="cpu", executor="local")  # still runs here
    assert m.wait(local, 60).status == "succeeded"


# a real Ray head on loopback ------------------------------------------------------------------------------------------


def distinct_ports(n: int) -> list[int]:
    """`n` different free ports (all bound at once while chosen: the OS hands a just-closed port out again)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for sk in socks:
            sk.bind(("127.0.0.1", 0))
        return [sk.getsockname()[1] for sk in socks]
    finally:
        for sk in socks:
            sk.close()


class RayHead:
    """`ray start --head` on 127.0.0.1 with every port chosen here; `stop()` kills exactly what it started."""

    def __init__(self) -> None:
        self.temp = tempfile.mkdtemp(prefix="edsray-", dir="/tmp")  # short: Ray's socket paths have a length limit
        self.ports = distinct_ports(9)
        self.gcs_port, self.dashboard_port = self.ports[:2]
        self.url = f"http://127.0.0.1:{self.dashboard_port}"
        self.pgid: int | None = None

    def start(self) -> None:
        venv_bin = str(Path(sys.executable).parent)
        env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0",
               "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),  # `python` on the "cluster" = this venv
               "RAY_JOB_STOP_WAIT_TIME_S": "10"}
        env.pop("EDS_RAY_ADDRESS", None)
        ports = ["--ray-client-server-port", "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
                 "--runtime-env-agent-port", "--metrics-export-port", "--node-manager-port", "--object-manager-port"]
        cmd = [str(Path(venv_bin) / "ray"), "start", "--head", "--node-ip-address", "127.0.0.1",
               "--dashboard-host", "127.0.0.1", "--port", str(self.gcs_port), "--dashboard-port",
               str(self.dashboard_port), "--num-cpus", "2", "--temp-dir", self.temp, "--include-dashboard", "true",
               "--object-store-memory", str(100 << 20), "--disable-usage-stats"]
        for flag, port in zip(ports, self.ports[2:], strict=True):
            cmd += [flag, str(port)]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True, cwd=self.temp)
        self.pgid = proc.pid  # its daemons keep this process group
        out, _ = proc.communicate(timeout=180)
        if proc.returncode != 0:
            self.stop()
            raise RuntimeError(f"ray start failed:\n{out[-3000:]}")

    def processes(self) -> list[psutil.Process]:
        if self.pgid is None:
            return []
        found: dict[int, psutil.Process] = {}
        for p in psutil.process_iter():
            try:
                if os.getpgid(p.pid) == self.pgid:
                    found[p.pid] = p
                    for c in p.children(recursive=True):  # workers, job supervisors, the jobs' own processes
                        found[c.pid] = c
            except (ProcessLookupError, psutil.Error, OSError):
                continue
        return list(found.values())

    def stop(self) -> None:
        """What `ray stop --force` does for this head only: SIGKILL to each of its processes, by pid."""
        procs = self.processes()
        for p in procs:
            try:
                p.send_signal(signal.SIGKILL)
            except psutil.Error:
                pass
        psutil.wait_procs(procs, timeout=15)


@pytest.fixture(scope="module")
def ray_head():
    if not HAS_RAY:
        pytest.skip("ray is not installed (pip install 'easydistill-studio[ray]')")
    head = RayHead()
    try:
        head.start()
        yield head
    finally:
        head.stop()
        shutil.rmtree(head.temp, ignore_errors=True)


def ray_info(url: str, sid: str):
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(url).get_job_info(sid)


def running_with_progress(m, job_id: str, above: float = 0.0):
    info = m.get(job_id)
    return info if info.status == "running" and (info.progress or 0) > above else None



@pytest.mark.ray
@pytest.mark.slow
def test_selftest_on_ray_progress_stop_resume_reattach_cancel(ray_head, workspace, monkeypatch, capsys):
    from core.cli.main import main as cli
    from core.jobs.manager import JobManager
    from core.jobs.scheduler import DeviceRequestError

    monkeypatch.setenv("OPENAI_API_KEY", SECRET)  # in the studio's environment: must not reach Ray's job info
    m = JobManager(workspace, ray_address=ray_head.url)
    job_id = m.submit(SelftestJob(steps=25, delay_s=0.3), devices="cpu")
    row = m.store.get(job_id)
    assert (row["executor"], row["remote_addr"], row["remote_id"]) == ("ray", ray_head.url, f"eds-{job_id}-1")
    info = wait_until(lambda: running_with_progress(m, job_id), 120, "the Ray job to report progress")
    assert info.devices == ["ray:cpu"] and info.done and info.total == 25
    seen = ray_info(ray_head.url, f"eds-{job_id}-1")
    assert str(seen.status.value) == "RUNNING" and "core.jobs.worker" in seen.entrypoint
    assert "--remote" in seen.entrypoint
    assert SECRET not in json.dumps(seen.__dict__, default=str)
    with pytest.raises(DeviceRequestError, match=f"the largest node of the Ray cluster at {ray_head.url} has none"):
        m.submit(SelftestJob(steps=1), devices=1)  # GPUs are the cluster's: this head has none

    m.stop(job_id)  # graceful: the flag in the shared run folder, the worker saves and exits
    info = m.wait(job_id, 60)
    assert info.status == "stopped" and info.reason.startswith("stopped on request"), info
    saved = json.loads((Path(info.run_dir) / "output" / "state.json").read_text())["step"]
    assert 0 < saved < 25

    m.resume(job_id)
    wait_until(lambda: m.get(job_id).status == "running", 120, "the resumed Ray job to run")
    del m
    again = JobManager(workspace, ray_address="")  # a restarted studio, Ray off for new jobs: the row knows where
    assert again.get(job_id).status == "running"
    info = again.wait(job_id, 120)
    assert info.status == "succeeded" and info.attempt == 2, info
    run = Path(info.run_dir)
    assert f"resuming after step {saved}" in run.joinpath("log.txt").read_text()
    env = json.loads((run / "output" / "environment-2.json").read_text())
    assert env["devices"] == ["cpu"] and env["CUDA_VISIBLE_DEVICES"] == ""
    assert str(ray_info(ray_head.url, f"eds-{job_id}-2").status.value) == "SUCCEEDED"
    capsys.readouterr()
    assert cli(["--workspace", str(workspace.root), "jobs", "list"]) == 0  # `jobs list` shows it like a local one
    line = next(ln for ln in capsys.readouterr().out.splitlines() if job_id in ln)
    assert "succeeded" in line and "ray:cpu" in line, line

    m = JobManager(workspace, ray_address=ray_head.url)
    doomed = m.submit(SelftestJob(steps=500, delay_s=0.2), devices="cpu")
    wait_until(lambda: running_with_progress(m, doomed), 120, "the second Ray job to run")
    info = m.cancel(doomed, wait=60)
    assert info.status == "cancelled", info
    assert str(ray_info(ray_head.url, f"eds-{doomed}-1").status.value) == "STOPPED"  # cancel = Ray's stop_job


@pytest.mark.ray
@pytest.mark.slow
def test_sft_on_ray_stops_with_a_checkpoint_and_resumes(ray_head, workspace, tiny_models):
    from core.config.train import SftJob
    from core.jobs.manager import JobManager

    rows = [{"id": f"r{i}", "instruction": f"Add {i} and {i + 1}.", "output": f"{i} plus {i + 1} is {2 * i + 1}."}
            for i in range(32)]
    (workspace.datasets / "sums.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    cfg = SftJob(student=str(tiny_models.student), dataset="sums", output="student-ray", max_steps=40,
                 learning_rate=1e-3, save_steps=1000, per_device_train_batch_size=4, gradient_accumulation_steps=1,
                 logging_steps=1, warmup_ratio=0.0)
    m = JobManager(workspace, ray_address=ray_head.url)
    job_id = m.submit(cfg, devices="cpu")
    wait_until(lambda: running_with_progress(m, job_id, 0.05), 240, "SFT on Ray to train a few steps", every=0.5)
    info = m.stop(job_id, wait=120)
    assert info.status == "stopped", info
    out = Path(info.run_dir) / "output"
    ckpts = sorted(int(p.name.split("-")[1]) for p in (out / "checkpoints").glob("checkpoint-*"))
    assert ckpts and ckpts[-1] < 40  # saved by the stop (save_steps would not have saved yet)
    assert not (workspace.models / "student-ray").exists()

    m.resume(job_id)
    info = m.wait(job_id, 300)
    assert info.status == "succeeded", (info, m.logs(job_id, 40))
    steps = [r["step"] for r in m.metrics(job_id) if "loss" in r]
    assert steps[-1] == 40 and ckpts[-1] + 1 in steps  # continued after the checkpoint
    assert (workspace.models / "student-ray" / "model.safetensors").is_file()


@pytest.mark.ray
@pytest.mark.slow
def test_a_lost_cluster_is_said_not_hung(ray_head, workspace):
    """Runs last in this module: it kills the head."""
    from core.jobs.manager import JobManager

    m = JobManager(workspace, ray_address=ray_head.url, ray_lost_after_s=8)
    job_id = m.submit(SelftestJob(steps=500, delay_s=0.2), devices="cpu")
    wait_until(lambda: running_with_progress(m, job_id), 120, "the Ray job to run")
    ray_head.stop()
    info = wait_until(lambda: (i := m.get(job_id)).reason and i, 30, "the job to say the cluster is out of reach")
    assert info.status == "running" and f"Ray cluster at {ray_head.url} unreachable since" in info.reason
    info = m.wait(job_id, 30)
    assert info.status == "failed" and m.store.get(job_id)["cause"] == "cluster", info
    assert info.reason.startswith(f"Ray cluster at {ray_head.url} unreachable for"), info.reason
    assert "Resume" in info.reason
