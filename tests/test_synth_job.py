"""Synthesis with real teachers: every operator on the tiny transformers teacher, a label job against the local
fault-injecting OpenAI-compatible server (30% failures), and a real worker killed with SIGKILL mid-run then resumed.
The guarantee checked each time: every input row ends in the output or the rejects file, exactly once."""

from __future__ import annotations

import pytest

from core.config.data_jobs import SynthJob
from core.data.io import write_records
from core.jobs.manager import JobManager
from core.llm.base import SamplingParams
from core.synth import job as synth_job
from core.synth.apply import apply
from core.synth.operators import OPERATORS, OpParams
from core.synth.templates import default_template
from tests.fake_openai_server import FakeOpenAIServer
from tests.job_support import each_row_once, job_context, kill_when_written, lines, resume_to_success


@pytest.fixture(scope="module")
def tiny_teacher(tiny_models):
    from core.config.base import BackendSpec
    from core.llm.factory import make_backend

    backend = make_backend(BackendSpec(type="transformers", model=str(tiny_models.teacher), batch_size=4))
    yield backend
    backend.close()


ROWS = [
    {"id": "q1", "instruction": "What is two plus two?", "output": "Two plus two is four because we add them."},
    {"id": "q2", "instruction": "Name a color of the sky.", "output": "Blue, on a clear day."},
    {"id": "q3", "instruction": "Count to three.", "output": "One, two, three."},
    {"id": "q4", "instruction": "   ", "output": "an input row without a question"},
    {"id": "q5", "text": "Water boils at one hundred degrees at sea level.", "instruction": "Say hello."},
]


@pytest.mark.parametrize("operator", OPERATORS)
def test_each_operator_on_the_tiny_teacher(tiny_teacher, operator):
    params = OpParams(template=default_template(operator), num_in_context_samples=2, num_output_samples=3, seed=1)
    res = apply(operator, ROWS, tiny_teacher, params=params,
                sampling=SamplingParams(temperature=0.0, max_new_tokens=12), window=4)
    if operator == "expand":
        assert {u.id for u, _, _ in res.pairs} == {"expand-s1-0", "expand-s1-1", "expand-s1-2"}
        done = [r["id"] for r in res.rows] + [r["id"] for r in res.rejects]
        assert sorted(done) == ["expand-s1-0", "expand-s1-1", "expand-s1-2"]
        return
    done = [r["id"] for r in res.rows] + [r["id"] for r in res.rejects]
    assert sorted(done) == sorted(r["id"] for r in ROWS)  # ids kept: every input row is accounted for, once
    for r in res.rows:
        src = next(x for x in ROWS if x["id"] == r["id"])
        if operator not in ("refine", "extract"):
            assert r["instruction"] == src["instruction"]  # the original question stays
        assert r.get("teacher") in (None, "tiny-teacher")
    for rej in res.rejects:
        assert rej["stage"] in ("input", "parse") and rej["reason"]
    if operator != "extract":
        assert any(r["id"] == "q4" and r["stage"] == "input" for r in res.rejects)
    if operator in ("extract", "cot_generate"):
        # A random tiny model never writes the tags these operators parse: all to rejects, with the raw reply kept.
        assert not res.rows and all("reply" in r or r["stage"] == "input" for r in res.rejects)
    if operator == "label":
        assert res.rows and res.completion_tokens > 0


def test_label_job_against_faulty_server(workspace, tmp_path):
    """30% of requests fail (429/500/timeout/malformed); few retries so some rows exhaust them."""
    ids = [f"row{i:03d}" for i in range(60)]
    write_records(workspace.datasets / "qs.jsonl", [{"id": i, "instruction": f"Question {i}?"} for i in ids])
    with FakeOpenAIServer(fault_rate=0.3, seed=3, hang_s=2.0, retry_after=0.01) as srv:
        cfg = SynthJob(input="qs", operator="label", teacher={
            "type": "openai", "endpoint": {"base_url": srv.base_url, "concurrency": 8, "max_retries": 1,
                                           "timeout_s": 1.0}})
        synth_job.run(cfg, job_context(workspace, tmp_path))
        ok, bad = each_row_once(workspace, "qs-label", ids)
        assert bad and ok, "with 30% faults and one retry both outcomes occur"
        assert all(r["output"] == f"echo: {r['instruction']}" for r in ok)
        assert all(r["stage"] == "request" for r in bad)
        # Every row in the output was really answered by the server (nothing invented, nothing lost).
        answered = {rec.last_user for rec in srv.answered()}
        assert {r["instruction"] for r in ok} <= answered

        # Retry the rejects with a healthy server: all rows end in the output.
        srv.fault_rate = 0.0
        synth_job.run(cfg.model_copy(update={"retry_rejects": True}), job_context(workspace, tmp_path, attempt=2))
        ok2, bad2 = each_row_once(workspace, "qs-label", ids)
        assert len(ok2) == 60 and not bad2


def test_duplicate_input_id_is_rejected_under_its_own_id(workspace, tmp_path):
    """The kept row's id must never land in the rejects file: a resumed job would take that row as done."""
    write_records(workspace.datasets / "dups.jsonl", [{"id": "d1", "instruction": "First?"},
                                                      {"id": "d1", "instruction": "Second?"},
                                                      {"id": "d2", "instruction": "Third?"}])
    with FakeOpenAIServer() as srv:
        cfg = SynthJob(input="dups", operator="label", teacher={"type": "openai",
                                                                "endpoint": {"base_url": srv.base_url}})
        synth_job.run(cfg, job_context(workspace, tmp_path))
    ok = lines(workspace.datasets / "dups-label.jsonl")
    bad = lines(workspace.datasets / "dups-label.rejects.jsonl")
    assert sorted(r["id"] for r in ok) == ["d1", "d2"] and ok[0]["output"].startswith("echo: ")
    assert [r["id"] for r in bad] == ["d1#duplicate-at-1"] and "duplicate" in bad[0]["reason"]


def test_killed_worker_resumes_without_loss_or_duplicates(workspace):
    ids = [f"k{i:03d}" for i in range(120)]
    write_records(workspace.datasets / "many.jsonl", [{"id": i, "instruction": f"Ask {i}"} for i in ids])
    jm = JobManager(workspace)
    with FakeOpenAIServer(latency=0.05, fault_rate=0.3, seed=7, hang_s=1.0, retry_after=0.01) as srv:
        cfg = SynthJob(input="many", operator="label", teacher={
            "type": "openai", "endpoint": {"base_url": srv.base_url, "concurrency": 4, "max_retries": 2,
                                           "timeout_s": 0.5}})
        job_id = jm.submit(cfg)
        out = workspace.datasets / "many-label.jsonl"
        info = kill_when_written(jm, job_id, out, rows=25)
        assert "SIGKILL" in info.reason or "disappeared" in info.reason
        written = {r["id"] for r in lines(out)} | {r["id"] for r in lines(out.with_name("many-label.rejects.jsonl"))}
        assert 25 <= len(written) < 120

        resumed_at = resume_to_success(jm, job_id)
        each_row_once(workspace, "many-label", ids)
        # The resumed attempt asked only for rows not written before the kill.
        asked_again = {rec.last_user for rec in srv.chat_records() if rec.started >= resumed_at}
        done_before = {f"Ask {i}" for i in written}
        assert not (asked_again & done_before)


def test_try_on_rows_http_in_process_and_local_in_a_child(workspace, tiny_models):
    """"Try on N rows": an endpoint is called from this process; a local teacher runs in a child process."""
    from core.synth.trial import TrialError, try_operator

    write_records(workspace.datasets / "few.jsonl", [{"id": f"f{i}", "instruction": f"Hi {i}"} for i in range(8)])
    with FakeOpenAIServer(answer=lambda msgs: "<answer>Better: " + msgs[-1]["content"][-4:] + "</answer>") as srv:
        cfg = SynthJob(input="few", operator="refine", teacher={"type": "openai",
                                                               "endpoint": {"base_url": srv.base_url}})
        res = try_operator(workspace, cfg, n=3)
        assert [r.id for r in res.rows] == ["f0", "f1", "f2"] and all(r.status == "ok" for r in res.rows)
        assert res.rows[0].input == "Hi 0" and res.rows[0].output.startswith("Better:")
        assert len(srv.chat_records()) == 3
        # An edited, unsaved template is used as given.
        res = try_operator(workspace, cfg, n=1, template_text="Make it polite: {instruction}")
        assert srv.chat_records()[-1].last_user == "Make it polite: Hi 0"
    local = SynthJob(input="few", operator="label", teacher={"type": "transformers", "model": str(tiny_models.teacher)},
                     sampling={"max_new_tokens": 6, "temperature": 0})
    res = try_operator(workspace, local, n=2)
    assert [r.id for r in res.rows] == ["f0", "f1"] and res.completion_tokens > 0
    broken = local.model_copy(update={"teacher": local.teacher.model_copy(update={"model": "/nonexistent/model"})})
    with pytest.raises(TrialError, match="nonexistent"):
        try_operator(workspace, broken, n=1)
