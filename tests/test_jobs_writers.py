"""Two writers on one dataset: a job that would write what a queued or running job writes is refused, naming that
job (manager and CLI); a job that reads what another is still writing waits for it, starts when it succeeded, and
fails naming it when it did not — the guided flow's ② Train never trains on ① Synthesize's partial file."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from core.config.base import BackendSpec
from core.config.data_jobs import SynthJob
from core.data.io import write_records
from core.errors import UserError
from core.jobs.manager import JobManager
from tests.fake_openai_server import FakeOpenAIServer

IDS = [f"q{i:02d}" for i in range(11)]
CLI = [sys.executable, "-m", "core.cli.main"]


@pytest.fixture
def gated(workspace):
    """A teacher that answers only once the gate opens (so a job stays running as long as a test needs)."""
    gate = threading.Event()
    write_records(workspace.datasets / "qs.jsonl", [{"id": i, "instruction": f"Question {i}?"} for i in IDS])
    with FakeOpenAIServer(answer=lambda msgs: "ok" if gate.wait(60) else "late") as srv:
        yield srv, gate
        gate.set()


@pytest.fixture
def jm(workspace):
    manager = JobManager(workspace, cpu_slots=4)
    yield manager
    for info in manager.list(status="active"):  # a failed test leaves no worker behind
        manager.cancel(info.id, wait=10)


def _label(srv, **kw) -> SynthJob:
    teacher = BackendSpec(type="openai", endpoint={"base_url": srv.base_url, "concurrency": 2})
    return SynthJob(input=kw.pop("input", "qs"), operator="label", teacher=teacher, **kw)


def _ids(path) -> list[str]:
    return [json.loads(x)["id"] for x in path.read_text(encoding="utf-8").splitlines()]


def _wait_running(jm: JobManager, job_id: str) -> None:
    deadline = time.monotonic() + 30
    while jm.get(job_id).status != "running":
        assert time.monotonic() < deadline, jm.get(job_id)
        time.sleep(0.05)


def test_second_writer_is_refused_naming_the_first(workspace, gated, jm):
    srv, gate = gated
    first = jm.submit(_label(srv, output="lab"))
    _wait_running(jm, first)
    with pytest.raises(UserError) as refused:
        jm.submit(_label(srv, output="lab"))  # ① pressed twice
    assert first in str(refused.value) and "datasets/lab.jsonl" in str(refused.value)
    assert refused.value.code == "job_output_busy" and refused.value.params["job"] == first
    other = jm.submit(_label(srv, output="lab-b"))  # another output: no conflict
    cfg = workspace.root / "lab.yaml"
    cfg.write_text(f"kind: synth\ninput: qs\noutput: lab\nteacher:\n  type: openai\n  endpoint:\n"
                   f"    base_url: {srv.base_url}\n", encoding="utf-8")
    cli = subprocess.run([*CLI, "--workspace", str(workspace.root), "--config", str(cfg)], capture_output=True,
                         text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert cli.returncode == 2 and first in cli.stderr and "Traceback" not in cli.stderr, cli.stderr
    assert len(jm.list()) == 2 and len(list(workspace.runs.iterdir())) == 2  # the refused left nothing behind

    gate.set()
    assert jm.wait(first, timeout=60).status == "succeeded"
    assert jm.wait(other, timeout=60).status == "succeeded"
    assert sorted(_ids(workspace.datasets / "lab.jsonl")) == IDS  # 11 rows for 11 ids, each once
    again = jm.submit(_label(srv, output="lab"))  # once the writer ended, the output is free again
    assert jm.wait(again, timeout=60).status == "succeeded"
    assert sorted(_ids(workspace.datasets / "lab.jsonl")) == IDS


def test_reader_waits_for_the_writer_then_reads_the_whole_file(workspace, gated, jm):
    srv, gate = gated
    writer = jm.submit(_label(srv, output="lab"))
    _wait_running(jm, writer)
    reader = jm.submit(_label(srv, input="lab", output="lab2"))
    info = jm.get(reader)
    assert info.status == "queued" and writer in info.reason  # free CPU slots, and still it waits
    with pytest.raises(UserError) as refused:
        jm.submit(_label(srv, input="qs", output="lab2"))  # a second writer of the waiting job's output
    assert reader in str(refused.value) and refused.value.code == "job_output_busy"
    time.sleep(1.0)
    assert jm.get(reader).status == "queued"
    gate.set()
    assert jm.wait(writer, timeout=60).status == "succeeded"
    assert jm.wait(reader, timeout=60).status == "succeeded", jm.logs(reader)
    assert sorted(_ids(workspace.datasets / "lab2.jsonl")) == IDS  # it read all 11 rows, not a partial file
    assert jm.get(reader).reason == ""  # "waits for ..." went once it started


def test_guided_flow_train_waits_for_synthesize_and_fails_if_it_does_not_succeed(workspace, gated, jm):
    from core.flow import FlowPlan, prepare_data, synthesize_job, train_job
    from core.jobs.failure import cause_of

    srv, gate = gated
    plan = FlowPlan(BackendSpec(type="openai", endpoint={"base_url": srv.base_url, "model": "fake-model"}),
                    "tiny-student", "qs")
    prepare_data(plan, workspace)
    synth = jm.submit(synthesize_job(plan))
    _wait_running(jm, synth)
    with pytest.raises(UserError) as refused:
        jm.submit(synthesize_job(plan))  # ① Synthesize pressed twice
    assert synth in str(refused.value) and refused.value.code == "job_output_busy"
    train = jm.submit(train_job(plan, logit_kd=False))  # ② Train pressed while ① runs
    assert jm.get(train).status == "queued" and synth in jm.get(train).reason
    jm.cancel(synth, wait=30)
    info = jm.wait(train, timeout=30)
    assert info.status == "failed" and synth in info.reason and cause_of(info).name == "dependency"
    assert info.started_at is None  # it never ran: no training on a partial file
