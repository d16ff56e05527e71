"""Synthesis and judging over several replicas of the teacher (core.synth.sharded): two real local HTTP servers
(tests/fake_openai_server.py), one of them killed in the middle of the job. What is checked each time: every row is
written exactly once (output or rejects), rows come from both replicas, and the per-replica counts the job reports
agree with what each server answered."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.config.data_jobs import JudgeJob, SynthJob
from core.cot import judge_job
from core.data.io import write_records
from core.jobs.context import STOP_FLAG, JobContext
from core.llm.base import Completion, SamplingParams
from core.synth import job as synth_job
from core.synth.operators import OpParams, Unit
from core.synth.runner import TeacherUnavailable
from core.synth.sharded import Replica, ReplicaPool, home_of, replica_fault
from tests.fake_openai_server import FakeOpenAIServer


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def _tagged(tag: str):
    return lambda msgs: f"{tag} says: {msgs[-1]['content'][-12:]}"


def _endpoint(srv, concurrency: int = 4) -> dict:
    return {"type": "openai", "model": "fake-model",
            "endpoint": {"base_url": srv.base_url, "concurrency": concurrency, "max_retries": 1, "timeout_s": 2.0}}


SERVER = """
import sys, time
from tests.fake_openai_server import FakeOpenAIServer
tag = sys.argv[1]
srv = FakeOpenAIServer(answer=lambda m: tag + " says: " + m[-1]["content"][-12:], latency=0.03).start()
print(srv.port, flush=True)
time.sleep(300)
"""


class ServerProcess:
    """A test server in a process of its own, so that killing it (SIGKILL) drops its open connections too."""

    def __init__(self, tag: str):
        root = Path(__file__).resolve().parents[1]
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER, tag], stdout=subprocess.PIPE, text=True,
                                     cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
        self.base_url = f"http://127.0.0.1:{int(self.proc.stdout.readline())}/v1"

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


def _kill_when(server: ServerProcess, path: Path, tag: str, rows: int) -> threading.Thread:
    """SIGKILL `server` once `rows` of its answers are in the job's output."""
    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if path.exists() and path.read_text().count(f'"{tag} says') >= rows:
                break
            time.sleep(0.005)
        server.kill()

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


def _events(run_dir: Path) -> list[dict]:
    return [m for m in _lines(run_dir / "metrics.jsonl") if "event" in m]


def test_two_replicas_one_killed_mid_job_every_row_once(workspace, tmp_path):
    rows = [{"id": f"q{i:03d}", "instruction": f"Question number {i:03d}?"} for i in range(60)]
    write_records(workspace.datasets / "qs.jsonl", rows)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    a, b = ServerProcess("A"), ServerProcess("B")
    try:
        cfg = SynthJob(input="qs", operator="label", teacher=_endpoint(a), backends=[_endpoint(b)])
        killer = _kill_when(b, workspace.datasets / "qs-label.jsonl", "B", 8)
        synth_job.run(cfg, JobContext("shard", run_dir, workspace))
        killer.join()
    finally:
        a.kill()
        b.kill()

    out = _lines(workspace.datasets / "qs-label.jsonl")
    assert not _lines(workspace.datasets / "qs-label.rejects.jsonl"), "a dead replica's rows are not rejects"
    ids = [r["id"] for r in out]
    assert len(ids) == len(set(ids)), "a row was written twice"
    assert sorted(ids) == [r["id"] for r in rows], "a row was lost"
    by = {tag: sum(r["output"].startswith(f"{tag} says") for r in out) for tag in "AB"}
    assert by["A"] and by["B"] and by["A"] + by["B"] == 60
    assert 8 <= by["B"] < 30, by  # B answered until it was killed; A took over its share

    events = _events(run_dir)
    down = [e for e in events if e.get("down")]
    assert len(down) == 1 and down[0]["replica"].startswith("r2 ")
    final = next(e for e in reversed(events) if isinstance(e.get("replicas"), dict))["replicas"]
    (ra, sa), (rb, sb) = sorted(final.items())
    assert ra.startswith("r1 127.0.0.1:") and rb.startswith("r2 127.0.0.1:")
    assert (sa["rows"], sb["rows"]) == (by["A"], by["B"])
    assert "down" in sb and "down" not in sa and sa["rows_per_s"] > 0
    assert sb["handed_off"] >= 1  # what B had queued or failed went to A
    progress = [m for m in _lines(run_dir / "metrics.jsonl") if "replicas" in m and "step" in m]
    assert progress and progress[-1]["replicas"].startswith("r1 ")


def test_resumed_sharded_job_sends_only_what_is_missing(workspace, tmp_path):
    """A stop mid-job, then a resume with the replicas at new addresses: every row once, none asked twice."""
    rows = [{"id": f"s{i:02d}", "instruction": f"Say {i:02d}"} for i in range(40)]
    write_records(workspace.datasets / "few.jsonl", rows)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    asked: list[str] = []

    def answer(tag):
        def reply(msgs):
            asked.append(msgs[-1]["content"][-2:])
            if len(asked) == 15:
                (run_dir / STOP_FLAG).touch()
            return f"{tag}: {msgs[-1]['content'][-2:]}"
        return reply

    with FakeOpenAIServer(answer=answer("A")) as a, FakeOpenAIServer(answer=answer("B")) as b:
        cfg = SynthJob(input="few", operator="label", teacher=_endpoint(a, 2), backends=[_endpoint(b, 2)])
        synth_job.run(cfg, JobContext("shard", run_dir, workspace))
    first = [r["id"] for r in _lines(workspace.datasets / "few-label.jsonl")]
    assert 15 <= len(first) < 40
    (run_dir / STOP_FLAG).unlink()
    with FakeOpenAIServer(answer=answer("A")) as a, FakeOpenAIServer(answer=answer("B")) as b:
        cfg = SynthJob(input="few", operator="label", teacher=_endpoint(a, 2), backends=[_endpoint(b, 2)])
        synth_job.run(cfg, JobContext("shard", run_dir, workspace, attempt=2))
        assert len(a.answered()) + len(b.answered()) == 40 - len(first)
    ids = [r["id"] for r in _lines(workspace.datasets / "few-label.jsonl")]
    assert sorted(ids) == [r["id"] for r in rows] and len(asked) == 40


def test_judge_job_over_two_replicas(workspace, tmp_path):
    rows = [{"id": f"t{i:02d}", "instruction": f"Question {i}?", "output": f"answer {i}"} for i in range(12)]
    write_records(workspace.datasets / "cot.jsonl", rows)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    reply = lambda msgs: "Fine. <score>5</score>"  # noqa: E731
    with FakeOpenAIServer(answer=reply) as a, FakeOpenAIServer(answer=reply) as b:
        cfg = JudgeJob(input="cot", metrics=["rv", "cd"], judge=_endpoint(a, 2), backends=[_endpoint(b, 2)])
        judge_job.run(cfg, JobContext("j", run_dir, workspace))
        calls = (len(a.answered()), len(b.answered()))
    out = _lines(workspace.datasets / "cot-judge.jsonl")
    assert sorted(r["id"] for r in out) == [r["id"] for r in rows] and all(r["rv"] == 5 for r in out)
    assert sum(calls) == 24 and min(calls) > 0
    final = next(e for e in reversed(_events(run_dir)) if isinstance(e.get("replicas"), dict))["replicas"]
    assert sorted(s["rows"] for s in final.values()) == sorted(calls)  # a judge "row" here is one (row, metric) call


# ------------------------------------------------------------------------------------------ the pool, without HTTP


class Scripted:
    """A replica double: answers, or fails every request with `error` once `dead` is set."""

    def __init__(self, name: str, error: str | None = None, bad_ids: tuple[str, ...] = ()):
        self.name, self.error, self.bad_ids, self.calls = name, error, bad_ids, []

    def chat(self, conversations, params, top_logprobs=0):
        out = []
        for conv in conversations:
            uid = conv[-1]["content"]
            self.calls.append(uid)
            if uid in self.bad_ids:
                out.append(Completion("", finish_reason="error", error="HTTP 400: prompt too long"))
            elif self.error:
                out.append(Completion("", finish_reason="error", error=self.error))
            else:
                out.append(Completion(f"{self.name}:{uid}", 3, 2))
        return out


def _units(n: int) -> list[Unit]:
    return [Unit(f"u{i}", {}, [{"role": "user", "content": f"u{i}"}]) for i in range(n)]


def _run(pool: ReplicaPool, units: list[Unit]) -> list:
    return list(pool.run_units("label", units, SamplingParams(temperature=0.7), OpParams(template="")))


def test_rows_are_partitioned_by_a_stable_hash():
    assert [home_of(f"u{i}", 3) for i in range(6)] == [home_of(f"u{i}", 3) for i in range(6)]
    assert home_of("row-42", 4) == 2  # fixed: the same in every process and Python version (blake2b, not hash())
    shares = [sum(home_of(f"id{i}", 4) == k for i in range(4000)) for k in range(4)]
    assert min(shares) > 900


def test_a_bad_request_is_the_rows_fault_a_dropped_connection_the_replicas():
    assert not replica_fault("HTTP 400: prompt too long")
    assert replica_fault("HTTP 429: slow down (gave up after 2 attempts)")
    assert replica_fault("HTTP 503: overloaded (gave up after 6 attempts)")
    assert replica_fault("connection error: [Errno 111] Connection refused (gave up after 2 attempts)")
    a, b = Scripted("a", bad_ids=("u3",)), Scripted("b", bad_ids=("u3",))
    pool = ReplicaPool([Replica("r1", a, 2), Replica("r2", b, 2)])
    outs = _run(pool, _units(10))
    assert sorted(o.unit.id for o in outs) == sorted(f"u{i}" for i in range(10))
    bad = [o for o in outs if o.reject]
    assert [o.unit.id for o in bad] == ["u3"] and (a.calls + b.calls).count("u3") == 1  # rejected, not retried
    assert pool.live() == [0, 1]


def test_every_replica_down_leaves_rows_pending_not_rejected():
    dead = "connection error: refused (gave up after 2 attempts)"
    a, b = Scripted("a"), Scripted("b", error=dead)
    pool = ReplicaPool([Replica("r1", a, 1), Replica("r2", b, 1)])
    outs = _run(pool, _units(12))
    assert not any(o.reject for o in outs) and len(outs) == 12  # b's rows went to a
    assert pool.replicas[1].down == f"request failed: {dead}" and pool.replicas[0].ok == 12
    a.error = dead
    pool = ReplicaPool([Replica("r1", a, 1), Replica("r2", b, 1)])
    got: list = []
    with pytest.raises(TeacherUnavailable, match="every replica of the teacher is down") as e:
        for o in pool.run_units("label", _units(8), SamplingParams(temperature=0.7), OpParams(template="")):
            got.append(o)  # a row both failed while both were still up is a reject, as with one teacher
    pending = int(re.search(r"(\d+) rows not yet processed are still pending", str(e.value)).group(1))
    assert pending > len(got) and pending + len(got) == 8 and all(o.reject["stage"] == "request" for o in got)


def test_an_idle_replica_takes_rows_from_a_backlog():
    class Slow(Scripted):
        def chat(self, conversations, params, top_logprobs=0):
            time.sleep(0.05)
            return super().chat(conversations, params)

    fast, slow = Scripted("fast"), Slow("slow")
    pool = ReplicaPool([Replica("r1", fast, 1), Replica("r2", slow, 1)])
    outs = _run(pool, _units(20))
    assert len({o.unit.id for o in outs}) == 20 == len(outs)
    assert pool.replicas[0].stolen > 0 and pool.replicas[0].done > pool.replicas[1].done


def test_replicas_must_be_endpoints():
    with pytest.raises(ValidationError, match="every replica is an endpoint"):
        SynthJob(input="qs", teacher={"type": "transformers", "model": "x"},
                 backends=[{"type": "openai", "endpoint": {"base_url": "http://h:1/v1"}}])
    with pytest.raises(ValidationError, match=r"backends\[0\]"):
        JudgeJob(input="qs", judge={"type": "openai", "endpoint": {"base_url": "http://h:1/v1"}},
                 backends=[{"type": "vllm", "model": "m"}])


def test_synthesis_form_lists_replicas_and_loads_them_back(workspace):
    from core.endpoints import EndpointEntry, save_endpoint
    from core.synth.form import FORM

    save_endpoint(workspace, EndpointEntry(name="b2", base_url="http://10.0.0.2:8000/v1", model="qwen"))
    write_records(workspace.datasets / "qs.jsonl", [{"id": "1", "instruction": "hi"}])
    values = {**FORM.defaults(), "input": "qs", "backend": "openai", "base_url": "http://10.0.0.1:8000/v1",
              "served_model": "qwen", "concurrency": 16, "replicas": "http://10.0.0.3:8000/v1\n\nendpoint:b2\n"}
    job = FORM.build_job(workspace, values)
    assert [b.endpoint.base_url for b in job.backends] == ["http://10.0.0.3:8000/v1", "http://10.0.0.2:8000/v1"]
    assert [b.endpoint.concurrency for b in job.backends] == [16, 16] and job.backends[0].endpoint.model == "qwen"
    assert FORM.values_of(job, workspace)["replicas"] == "http://10.0.0.3:8000/v1\nendpoint:b2"
    with pytest.raises(Exception, match="no endpoint named 'nope'"):
        FORM.build_job(workspace, {**values, "replicas": "nope"})
    local = FORM.build_job(workspace, {**values, "backend": "transformers", "model": "m"})
    assert local.backends == []  # a hidden box never leaks into the config
