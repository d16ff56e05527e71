"""The headless CLI on real processes: `easydistill run`, `--config FILE`, `jobs list|show|logs|stop|cancel|resume|
delete`, exit codes, and Ctrl-C without a terminal (stops the job)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "core.cli.main"]


def eds(ws: Path, *args: str, timeout: float = 90, check_rc: int | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([*CLI, "--workspace", str(ws), *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if check_rc is not None:
        assert proc.returncode == check_rc, proc.stdout + proc.stderr
    return proc


def show(ws: Path, job_id: str) -> dict:
    return json.loads(eds(ws, "jobs", "show", job_id, "--json", check_rc=0).stdout)


def wait_status(ws: Path, job_id: str, statuses: set[str], timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = show(ws, job_id)
        if info["status"] in statuses:
            return info
        time.sleep(0.2)
    raise AssertionError(f"{job_id} never reached {statuses}")


@pytest.fixture
def ws(tmp_path) -> Path:
    return tmp_path / "ws"


def test_run_selftest_follows_to_success(ws):
    p = eds(ws, "run", "--kind", "selftest", "--steps", "4", "--delay", "0.02", check_rc=0)
    assert "selftest done" in p.stdout  # the job's log, streamed
    assert "100%" in p.stderr and "succeeded" in p.stderr  # the progress line


def test_config_file_exit_codes(ws, tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("kind: selftest\nsteps: 3\ndelay_s: 0.01\nname: from-file\n")
    eds(ws, "--config", str(good), check_rc=0)
    failing = tmp_path / "failing.yaml"
    failing.write_text("kind: selftest\nsteps: 3\ndelay_s: 0.01\nfail_at: 2\n")
    p = eds(ws, "--config", str(failing), check_rc=1)
    assert "failed: RuntimeError: selftest failing at step 2" in p.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: selftest\nstepz: 3\n")
    p = eds(ws, "--config", str(bad), check_rc=2)
    assert "stepz" in p.stderr and "bad.yaml" in p.stderr
    listed = json.loads(eds(ws, "jobs", "list", "--json", check_rc=0).stdout)
    assert [j["status"] for j in listed] == ["failed", "succeeded"]  # newest first; the bad file made no job
    assert listed[1]["name"] == "from-file" and listed[1]["progress"] == 100.0
    assert set(listed[0]) >= {"id", "kind", "status", "reason", "progress", "run_dir"}


def test_easydistill_v1_json_is_accepted(ws, tmp_path):
    (tmp_path / "seeds.json").write_text(json.dumps([{"instruction": "Say hi."}]))
    secret = "sk-v1-inline-key-0123456789"
    cfg = tmp_path / "v1.json"
    cfg.write_text(json.dumps({
        "job_type": "instruction_expansion_api",
        "dataset": {"input_path": "seeds.json", "output_path": "expanded.json"},
        "inference": {"base_url": "http://127.0.0.1:9/v1", "api_key": secret},
        "models": {"teacher": "teacher-model"},
    }))
    p = eds(ws, "--config", str(cfg), "--detach", check_rc=0)
    job_id = p.stdout.strip().splitlines()[-1]
    assert "note:" in p.stderr and "api_key" in p.stderr  # the importer's notes are shown
    assert secret not in p.stdout + p.stderr
    info = show(ws, job_id)
    assert info["kind"] == "synth"
    assert info["config"]["teacher"]["endpoint"]["api_key_env"].startswith("EDS_SECRET_")
    eds(ws, "jobs", "cancel", job_id)  # it may have ended already (nothing listens on that port)
    assert show(ws, job_id)["status"] in ("succeeded", "failed", "cancelled")


def test_jobs_commands_control_a_detached_job(ws):
    p = eds(ws, "run", "--kind", "selftest", "--steps", "3000", "--delay", "0.02", "--detach", check_rc=0)
    job_id = p.stdout.strip()
    assert job_id and show(ws, job_id)["status"] in ("starting", "running")
    prefix = job_id[:-2]
    deadline = time.monotonic() + 30
    while "step 3/" not in eds(ws, "jobs", "logs", prefix).stdout:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    table = eds(ws, "jobs", "list", check_rc=0).stdout
    assert job_id in table and "running" in table

    assert "stopped" in eds(ws, "jobs", "stop", prefix, check_rc=0).stdout
    info = show(ws, job_id)
    assert info["status"] == "stopped" and 0 < info["progress"] < 100
    eds(ws, "jobs", "resume", job_id, check_rc=0)
    info = wait_status(ws, job_id, {"running"})
    assert info["attempt"] == 2
    assert "cancelled" in eds(ws, "jobs", "cancel", job_id, check_rc=0).stdout
    p = eds(ws, "jobs", "cancel", job_id, check_rc=2)
    assert "already ended" in p.stderr
    eds(ws, "jobs", "delete", job_id, check_rc=0)
    assert "no job" in eds(ws, "jobs", "show", job_id, check_rc=2).stderr


def test_ctrl_c_without_a_terminal_stops_the_job(ws):
    proc = subprocess.Popen([*CLI, "--workspace", str(ws), "run", "--kind", "selftest", "--steps", "3000",
                             "--delay", "0.02"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            listed = json.loads(eds(ws, "jobs", "list", "--json", check_rc=0).stdout)
            if listed and (listed[0]["progress"] or 0) > 0:
                break
            assert time.monotonic() < deadline, "the job never made progress"
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    assert "stopping" in err
    assert show(ws, listed[0]["id"])["status"] == "stopped"


def test_device_requests_that_cannot_be_met_are_input_errors(ws):
    p = eds(ws, "run", "--kind", "selftest", "--gpus", "2", check_rc=2)
    assert "GPU" in p.stderr and "gpus: cpu" in p.stderr


def test_ctrl_c_after_the_job_ended_says_so(workspace, monkeypatch, capsys):
    """Ctrl-C lands as the job finishes: the stop request is refused (JobStateError) and following says why in one
    line, then reports the job's own outcome and exit code (0: it succeeded), with no traceback."""
    from core.cli import jobs as cli_jobs
    from core.config.selftest import SelftestJob
    from core.jobs.manager import JobManager

    m = JobManager(workspace)
    job_id = m.submit(SelftestJob(steps=1, delay_s=0.0))
    assert m.wait(job_id, timeout=60).status == "succeeded"
    real_look = cli_jobs._look
    polls = []

    def look(m, job_id):  # the first poll is interrupted by Ctrl-C; later ones look for real
        polls.append(job_id)
        if len(polls) == 1:
            raise KeyboardInterrupt
        return real_look(m, job_id)

    monkeypatch.setattr(cli_jobs, "_look", look)
    monkeypatch.setattr(cli_jobs.sys, "stdin", io.StringIO())  # no terminal to ask on: Ctrl-C means stop
    assert cli_jobs.follow(m, job_id) == 0
    err = capsys.readouterr().err
    assert f"job {job_id} already ended (succeeded)" in err.splitlines()
    assert f"job {job_id} succeeded" in err and "Traceback" not in err
