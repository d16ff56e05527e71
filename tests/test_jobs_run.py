"""core.jobs with real worker processes: success, failure reasons, queueing on devices, stop/cancel/kill, no
orphans, re-attach from a new process, resume, pipelines, concurrent schedulers, secrets kept out of files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from core.config.io import parse_config
from core.config.selftest import SelftestJob
from core.devices import Device
from core.jobs import procs, summary
from core.jobs.manager import JobManager, JobStateError

FAKE2 = [Device(0, "FakeGPU", 24000), Device(1, "FakeGPU", 24000)]


def wait_until(pred, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def last_step(m: JobManager, job_id: str) -> int:
    steps = [r["step"] for r in m.metrics(job_id) if "step" in r]
    return steps[-1] if steps else 0


def seen_env(m: JobManager, job_id: str, attempt: int = 1) -> dict:
    path = Path(m.get(job_id, refresh=False).run_dir) / "output" / f"environment-{attempt}.json"
    wait_until(path.exists, what=f"{path.name} of {job_id}")
    return json.loads(path.read_text())


@pytest.fixture
def managers(workspace):
    """Build managers on the test workspace; every job still running at the end is cancelled."""
    made: list[JobManager] = []

    def make(**kw) -> JobManager:
        m = JobManager(workspace, **kw)
        made.append(m)
        return m

    yield make
    for m in made:
        for info in m.list(status="active"):
            try:
                m.cancel(info.id, wait=10)
            except JobStateError:
                pass


def test_selftest_runs_to_success_with_metrics_log_and_full_progress(managers):
    m = managers(cpu_slots=2)
    job_id = m.submit(SelftestJob(steps=5, delay_s=0.05), name="check")
    info = m.wait(job_id, 60)
    assert info.status == "succeeded", info.reason
    assert info.progress == 1.0 and info.exit_code == 0 and info.name == "check"
    run = Path(info.run_dir)
    metrics = m.metrics(job_id)
    assert [r["step"] for r in metrics] == [1, 2, 3, 4, 5]
    assert all(r["total"] == 5 and "loss" in r for r in metrics)
    assert metrics[-1]["loss"] < metrics[0]["loss"]
    assert "selftest done" in m.logs(job_id)
    assert json.loads((run / "status.json").read_text())["status"] == "succeeded"
    assert yaml.safe_load((run / "job.yaml").read_text())["steps"] == 5
    assert json.loads((run / "output" / "state.json").read_text())["step"] == 5
    assert seen_env(m, job_id)["CUDA_VISIBLE_DEVICES"] == ""  # a CPU job sees no GPU


def test_python_error_is_failed_with_reason_and_traceback(managers):
    m = managers()
    job_id = m.submit(SelftestJob(steps=5, delay_s=0.01, fail_at=3))
    info = m.wait(job_id, 60)
    assert info.status == "failed" and info.exit_code == 1
    assert info.reason.startswith("RuntimeError: selftest failing at step 3")
    assert "selftest.py" in info.detail  # the last traceback lines
    assert last_step(m, job_id) == 2  # what was done before the error is kept
    assert 0.35 < info.progress < 0.45


def test_bad_config_in_the_run_folder_is_reported_as_such(managers):
    m = managers(devices=FAKE2[:1])
    blocker = m.submit(SelftestJob(steps=400, delay_s=0.05, gpus=1))
    job_id = m.submit(SelftestJob(steps=3, gpus=1))
    assert m.get(job_id).status == "queued"
    cfg = Path(m.get(job_id).run_dir) / "job.yaml"
    cfg.write_text(cfg.read_text().replace("steps: 3", "steps: -1"))
    m.cancel(blocker)
    info = m.wait(job_id, 60)
    assert info.status == "failed" and info.exit_code == 2
    assert info.reason.startswith("bad config:") and "'steps'" in info.reason


def test_two_jobs_wanting_one_device_run_one_after_the_other_in_order(managers):
    m = managers(devices=FAKE2[:1])
    ids = [m.submit(SelftestJob(steps=3, delay_s=0.05, gpus=1)) for _ in range(3)]
    first = m.get(ids[0])
    assert first.status in ("starting", "running")
    assert [m.get(i).queue_position for i in ids[1:]] == [1, 2]
    infos = [m.wait(i, 90) for i in ids]
    assert [i.status for i in infos] == ["succeeded"] * 3
    for a, b in zip(infos, infos[1:], strict=False):
        assert b.started_at >= a.ended_at  # never both on the one GPU
    assert all(seen_env(m, i)["CUDA_VISIBLE_DEVICES"] == "0" for i in ids)


def test_fake_two_gpus_pack_one_gpu_jobs_and_queue_a_two_gpu_job_fifo(managers):
    m = managers(devices=FAKE2)
    a = m.submit(SelftestJob(steps=2000, delay_s=0.05, gpus=1))
    b = m.submit(SelftestJob(steps=2000, delay_s=0.05, gpus=1))
    big = m.submit(SelftestJob(steps=2000, delay_s=0.05, gpus=2))
    small = m.submit(SelftestJob(steps=3, delay_s=0.05, gpus=1))
    cpu = m.submit(SelftestJob(steps=2, delay_s=0.01, gpus="cpu"))
    assert sorted(m.get(a).devices + m.get(b).devices) == ["cuda:0", "cuda:1"]
    assert (m.get(big).queue_position, m.get(small).queue_position) == (1, 2)
    assert m.wait(cpu, 60).status == "succeeded"  # CPU jobs do not wait behind GPU jobs
    assert {seen_env(m, a)["CUDA_VISIBLE_DEVICES"], seen_env(m, b)["CUDA_VISIBLE_DEVICES"]} == {"0", "1"}

    m.cancel(a)
    # One GPU is free, but the 2-GPU job was first in line: the 1-GPU job must not overtake it.
    assert m.get(big).status == "queued" and m.get(small).status == "queued"
    m.cancel(b)
    wait_until(lambda: m.get(big).status == "running", what="the 2-GPU job to start")
    assert m.get(big).devices == ["cuda:0", "cuda:1"]
    assert seen_env(m, big)["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert m.get(small).status == "queued"
    m.cancel(big)
    assert m.wait(small, 60).status == "succeeded"


def _assert_group_gone(pgid: int, helper_pid: int | None) -> None:
    wait_until(lambda: not procs.group_members(pgid), timeout=15, what=f"process group {pgid} to be empty")
    if helper_pid:
        assert not procs.is_alive(helper_pid, None)


def test_stop_mid_run_saves_and_leaves_no_orphans(managers):
    m = managers()
    job_id = m.submit(SelftestJob(steps=2000, delay_s=0.02, spawn_child=True))
    wait_until(lambda: last_step(m, job_id) >= 3, what="a few steps")
    env = seen_env(m, job_id)
    assert env["helper_pid"] and procs.group_members(env["pgid"])
    info = m.stop(job_id, wait=60)
    assert info.status == "stopped" and "stopped on request" in info.reason
    saved = json.loads((Path(info.run_dir) / "output" / "state.json").read_text())["step"]
    assert saved == last_step(m, job_id) and 3 <= saved < 2000
    assert info.exit_code == 3
    _assert_group_gone(env["pgid"], env["helper_pid"])


def test_stop_is_forced_when_the_worker_ignores_it(managers):
    m = managers(kill_grace_s=2.0)
    job_id = m.submit(SelftestJob(steps=2000, delay_s=0.02, ignore_stop=True, spawn_child=True))
    wait_until(lambda: last_step(m, job_id) >= 2, what="a few steps")
    env = seen_env(m, job_id)
    m.stop(job_id, timeout=1.0)  # and nobody polls: the manager's watchdog thread forces the stop
    info = wait_until(lambda: (i := m.get(job_id, refresh=False)).finished and i, timeout=30, what="the forced stop")
    assert info.status == "stopped" and "did not stop in time" in info.reason
    _assert_group_gone(env["pgid"], env["helper_pid"])


def test_cancel_ends_at_once_and_leaves_no_orphans(managers):
    m = managers()
    job_id = m.submit(SelftestJob(steps=2000, delay_s=0.02, spawn_child=True))
    wait_until(lambda: last_step(m, job_id) >= 2, what="a few steps")
    env = seen_env(m, job_id)
    info = m.cancel(job_id, wait=20)
    assert info.status == "cancelled"
    _assert_group_gone(env["pgid"], env["helper_pid"])


def test_cancel_of_a_queued_job_removes_it_from_the_queue(managers):
    m = managers(devices=FAKE2[:1])
    running = m.submit(SelftestJob(steps=2000, delay_s=0.05, gpus=1))
    queued = m.submit(SelftestJob(steps=2, gpus=1))
    assert m.cancel(queued).status == "cancelled"
    m.cancel(running)
    assert m.get(queued).status == "cancelled" and m.get(queued).started_at is None


def test_kill_9_of_a_worker_is_a_failure_with_a_reason(managers):
    m = managers()
    job_id = m.submit(SelftestJob(steps=2000, delay_s=0.02, spawn_child=True))
    wait_until(lambda: last_step(m, job_id) >= 2, what="a few steps")
    env = seen_env(m, job_id)
    os.kill(env["pid"], signal.SIGKILL)
    info = m.wait(job_id, 30)
    assert info.status == "failed"
    assert "SIGKILL" in info.reason
    _assert_group_gone(env["pgid"], env["helper_pid"])  # the helper it left behind is cleaned up too


SUBMIT_AND_LEAVE = textwrap.dedent("""
    import sys
    from core.config.selftest import SelftestJob
    from core.jobs.manager import JobManager
    m = JobManager(sys.argv[1])
    print(m.submit(SelftestJob(steps=int(sys.argv[2]), delay_s=0.05)), flush=True)
""")


def _submit_from_another_process(workspace, steps: int) -> str:
    out = subprocess.run([sys.executable, "-c", SUBMIT_AND_LEAVE, str(workspace.root), str(steps)],
                         capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.strip().splitlines()[-1]


def test_a_new_manager_reattaches_to_a_running_job(managers, workspace):
    job_id = _submit_from_another_process(workspace, 40)  # that process has exited; the job runs on
    m = managers()
    info = m.get(job_id)
    assert info.status == "running" and procs.is_alive(info.pid, None)
    assert m.wait(job_id, 60).status == "succeeded"


def test_a_worker_killed_while_nobody_watched_is_marked_disappeared(managers, workspace):
    job_id = _submit_from_another_process(workspace, 2000)
    run = workspace.runs / job_id
    wait_until(lambda: (run / "output" / "environment-1.json").exists(), what="the worker to start")
    pid = json.loads((run / "output" / "environment-1.json").read_text())["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not procs.is_alive(pid, None), what="the worker to die")
    m = managers()  # "the studio restarts"
    info = m.get(job_id)
    assert info.status == "failed" and info.reason.startswith("worker disappeared")


def test_resume_continues_from_what_was_saved(managers):
    m = managers()
    job_id = m.submit(SelftestJob(steps=30, delay_s=0.03))
    wait_until(lambda: last_step(m, job_id) >= 5, what="a few steps")
    stopped_at = m.stop(job_id, wait=30)
    assert stopped_at.status == "stopped"
    saved = last_step(m, job_id)
    m.resume(job_id)
    with pytest.raises(JobStateError):
        m.resume(job_id)  # already queued or running again
    info = m.wait(job_id, 60)
    assert info.status == "succeeded" and info.attempt == 2
    steps = [r["step"] for r in m.metrics(job_id)]
    assert steps == list(range(1, 31))  # no step done twice, none skipped
    assert f"resuming after step {saved}" in m.logs(job_id)
    assert seen_env(m, job_id, attempt=2)["attempt"] == 2
    with pytest.raises(JobStateError, match="succeeded"):
        m.resume(job_id)


def test_delete_refuses_running_jobs_and_removes_finished_ones(managers):
    m = managers()
    job_id = m.submit(SelftestJob(steps=2000, delay_s=0.02))
    with pytest.raises(JobStateError, match="stop or cancel"):
        m.delete(job_id)
    m.cancel(job_id)
    run = Path(m.get(job_id).run_dir)
    m.delete(job_id)
    assert not run.exists() and all(i.id != job_id for i in m.list())


def pipeline(*steps):
    return parse_config({"kind": "pipeline", "steps": [{"name": n, "job": {"kind": "selftest", **kw}}
                                                        for n, kw in steps]})


def test_pipeline_stops_at_the_first_failing_step(managers):
    m = managers()
    job_id = m.submit(pipeline(("first", {"steps": 2, "delay_s": 0.01, "fail_at": 2}), ("second", {"steps": 2})))
    info = m.wait(job_id, 60)
    assert info.status == "failed" and info.reason.startswith("step 'first': RuntimeError")
    assert info.step == "first"
    out = Path(info.run_dir) / "output"
    assert (out / "first").is_dir() and not (out / "second").exists()


def test_pipeline_shows_its_step_and_resume_skips_finished_steps(managers):
    m = managers()
    job_id = m.submit(pipeline(("infer", {"steps": 3, "delay_s": 0.01}), ("train", {"steps": 400, "delay_s": 0.02})))
    wait_until(lambda: any(r.get("stage") == "train" and r["step"] >= 3 for r in m.metrics(job_id) if "step" in r),
               what="the second step")
    info = m.get(job_id)
    assert info.steps == ["infer", "train"] and 0.5 < info.progress < 1.0
    assert info.step_kinds == ["selftest", "selftest"]  # a tab lists the pipelines with a step of its kinds
    assert "stage 2 of 2 · train · " in summary.progress_text(info) and "/400 steps" in summary.progress_text(info)
    infer_state = Path(info.run_dir) / "output" / "infer" / "state.json"
    before = infer_state.stat().st_mtime_ns
    assert m.stop(job_id, wait=30).status == "stopped"
    m.resume(job_id)
    info = m.wait(job_id, 90)
    assert info.status == "succeeded" and info.step == "train"
    assert infer_state.stat().st_mtime_ns == before  # the finished step did not run again
    assert any(r.get("skipped") == "infer" for r in m.metrics(job_id))
    assert json.loads((Path(info.run_dir) / "pipeline.json").read_text())["done"] == ["infer", "train"]


POLLER = textwrap.dedent("""
    import sys, time
    from core.jobs.manager import JobManager
    m = JobManager(sys.argv[1])
    deadline = time.time() + float(sys.argv[2])
    while time.time() < deadline and m.list(status="active"):
        m.refresh()
""")


def test_concurrent_schedulers_never_start_a_job_twice(managers, workspace, monkeypatch):
    monkeypatch.setenv("EDS_FAKE_GPUS", "1")
    m = managers()
    blocker = m.submit(SelftestJob(steps=2000, delay_s=0.05, gpus=1))
    ids = [m.submit(SelftestJob(steps=2, delay_s=0.02, gpus=1)) for _ in range(4)]
    pollers = [subprocess.Popen([sys.executable, "-c", POLLER, str(workspace.root), "90"]) for _ in range(3)]
    try:
        m.cancel(blocker)  # now four processes race to start the queue
        infos = [m.wait(i, 90) for i in ids]
    finally:
        for p in pollers:
            p.wait(timeout=120)
    assert [i.status for i in infos] == ["succeeded"] * 4
    for i in infos:
        assert m.logs(i.id).count("[worker] job") == 2  # one start line, one end line: started once
    spans = sorted((i.started_at, i.ended_at) for i in infos)
    assert all(b[0] >= a[1] for a, b in zip(spans, spans[1:], strict=False))  # one GPU: never two at once


def test_inline_api_keys_reach_the_worker_by_environment_only(managers, workspace):
    secret = "sk-test-INLINE-0123456789abcdef"
    synth = {"kind": "synth", "input": "nothing.jsonl",
             "teacher": {"type": "openai", "model": "m",
                         "endpoint": {"base_url": "http://127.0.0.1:9/v1", "api_key": secret}}}
    config = parse_config({"kind": "pipeline", "steps": [
        {"name": "wait", "job": {"kind": "selftest", "steps": 2000, "delay_s": 0.02}},
        {"name": "synth", "job": synth},
    ]})
    m = managers()
    job_id = m.submit(config)
    wait_until(lambda: last_step(m, job_id) >= 1, what="the first step")
    pid = m.get(job_id).pid
    environ = dict(kv.split("=", 1) for kv in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in kv)
    cfg = yaml.safe_load((workspace.runs / job_id / "job.yaml").read_text())
    env_name = cfg["steps"][1]["job"]["teacher"]["endpoint"]["api_key_env"]
    assert env_name.startswith("EDS_SECRET_") and environ[env_name] == secret
    info = m.cancel(job_id)
    assert info.status == "cancelled"
    for path in [*Path(info.run_dir).rglob("*"), *workspace.root.glob("studio.sqlite*")]:
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    # A later process does not hold the key: resuming says so instead of failing obscurely.
    with pytest.raises(JobStateError, match="api_key_env"):
        JobManager(workspace).resume(job_id)


def test_device_panel_shows_who_holds_each_gpu(managers):
    m = managers(devices=FAKE2)
    job_id = m.submit(SelftestJob(steps=2000, delay_s=0.05, gpus=[1]))
    panel = {d["key"]: d for d in m.device_panel()}
    assert panel["cuda:1"]["jobs"] == [job_id] and panel["cuda:0"]["jobs"] == []
    assert set(panel) == {"cuda:0", "cuda:1", "cpu"}
    m.cancel(job_id)


SUBMIT_SECRET_AND_LEAVE = textwrap.dedent("""
    import sys
    from core.config.io import parse_config
    from core.jobs.manager import JobManager
    config = parse_config({"kind": "pipeline", "gpus": 1, "steps": [{"name": "synth", "job": {
        "kind": "synth", "input": "x.jsonl", "teacher": {"type": "openai", "model": "m", "endpoint": {
            "base_url": "http://127.0.0.1:9/v1", "api_key": "sk-queued-inline-0123456789"}}}}]})
    print(JobManager(sys.argv[1]).submit(config), flush=True)
""")


def test_a_queued_job_whose_inline_key_left_with_its_submitter_fails_clearly(managers, workspace, monkeypatch):
    monkeypatch.setenv("EDS_FAKE_GPUS", "1")
    m = managers()
    blocker = m.submit(SelftestJob(steps=2000, delay_s=0.05, gpus=1))
    out = subprocess.run([sys.executable, "-c", SUBMIT_SECRET_AND_LEAVE, str(workspace.root)],
                         capture_output=True, text=True, timeout=60, check=True)
    job_id = out.stdout.strip().splitlines()[-1]
    # It waited for the GPU; its submitter (the only holder of the key) is gone, so it can never start: it fails
    # at the next look, with what to do, instead of starting without its key.
    info = m.get(job_id)
    assert info.status == "failed" and "api_key_env" in info.reason and info.started_at is None
    m.cancel(blocker)
