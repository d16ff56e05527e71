"""A job's input with a record that cannot be read (broken JSON in the middle, a line that is not an object) is
refused before anything runs, by file and line; it never "succeeds" with the row left out (issue 16: "Malformed rows
are reported with file and line; nothing is lost"). Synthesis, judging and pairs read their input the same way
(core.data.store.load_job_rows); the worker's failure says `data_error` with the place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.config.data_jobs import JudgeJob, SynthJob
from core.config.pairs_jobs import PairsJob
from core.cot import judge_job
from core.data.errors import DataError
from core.jobs.context import JobContext
from core.jobs.failure import cause_of
from core.jobs.manager import JobManager
from core.pairs import job as pairs_job
from core.synth import job as synth_job
from tests.fake_openai_server import FakeOpenAIServer
from tests.job_support import job_context, write_with_bad_lines
from tests.test_synth_job_resume import FlakyTeacher

GOOD = [{"id": f"r{i}", "instruction": f"Question {i}?", "output": f"<think>step {i}</think> answer {i}"}
        for i in range(5)]


def _write(path: Path, bad_line: int = 3, bad: str = '{"id": "r2", "instruction": "broken') -> Path:
    return write_with_bad_lines(path, GOOD, {bad_line: bad})


def _ctx(ws, tmp_path) -> JobContext:
    return job_context(ws, tmp_path, "job-bad")


def _synth(inp: str, **kw) -> SynthJob:
    return SynthJob(input=inp, operator="label", output="out", teacher={"type": "transformers", "model": "x"}, **kw)


@pytest.mark.parametrize("where", ["dataset", "file"])
@pytest.mark.parametrize("bad", ['{"id": "r2", "instruction": "broken', '["a list", "not a row"]'])
def test_synthesis_refuses_a_broken_line_by_file_and_line(workspace, tmp_path, monkeypatch, where, bad):
    """A workspace dataset (used to drop the line silently: 4 rows, 0 rejects, 'succeeded') and a file path (used to
    run and leave an `input-line-3` reject without the record) are both refused, and no row is sent."""
    teacher = FlakyTeacher()
    monkeypatch.setattr(synth_job, "make_teacher", lambda spec, ws, **kw: teacher)
    path = _write(workspace.datasets / "qs.jsonl" if where == "dataset" else tmp_path / "in" / "qs.jsonl", bad=bad)
    with pytest.raises(DataError) as err:
        synth_job.run(_synth("qs" if where == "dataset" else str(path)), _ctx(workspace, tmp_path))
    first = str(err.value).splitlines()[0]
    assert first.startswith("qs.jsonl:3: ") and "nothing was run" in first
    assert [(e.file, e.line) for e in err.value.errors] == [("qs.jsonl", 3)]
    assert teacher.calls == 0
    assert not (workspace.datasets / "out.jsonl").exists() and not (workspace.datasets / "out.rejects.jsonl").exists()


def test_every_bad_record_is_listed_and_limit_reads_only_what_it_uses(workspace, tmp_path, monkeypatch):
    teacher = FlakyTeacher()
    monkeypatch.setattr(synth_job, "make_teacher", lambda spec, ws, **kw: teacher)
    path = _write(workspace.datasets / "qs.jsonl", bad_line=3)
    lines = path.read_text().splitlines()
    lines[4] = "{not json"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"^qs\.jsonl:3: .* \(and 1 more bad record") as err:
        synth_job.run(_synth("qs"), _ctx(workspace, tmp_path))
    assert [e.line for e in err.value.errors] == [3, 5]
    # `limit: 2` uses rows 1-2 only: the lines after them are not read, and the job runs.
    synth_job.run(_synth("qs", limit=2), _ctx(workspace, tmp_path))
    out = [json.loads(x) for x in (workspace.datasets / "out.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in out) == ["r0", "r1"] and teacher.calls == 2


def test_judge_and_pairs_refuse_the_same_way(workspace, tmp_path):
    _write(workspace.datasets / "cot.jsonl", bad_line=2)
    with FakeOpenAIServer() as srv:
        ep = {"type": "openai", "endpoint": {"base_url": srv.base_url, "max_retries": 0}}
        with pytest.raises(DataError, match=r"^cot\.jsonl:2: not valid JSON"):
            judge_job.run(JudgeJob(input="cot", judge=ep), _ctx(workspace, tmp_path))
        with pytest.raises(DataError, match=r"^cot\.jsonl:2: not valid JSON"):
            pairs_job.run(PairsJob(input="cot", student=ep), _ctx(workspace, tmp_path))
        assert not srv.chat_records()
    assert sorted(p.name for p in workspace.datasets.iterdir()) == ["cot.jsonl"]


def test_the_worker_fails_as_a_data_error_naming_the_line(workspace):
    """Through a real worker: the job's status is failed with the data_error cause and the place in its reason."""
    _write(workspace.datasets / "qs.jsonl", bad_line=4)
    jm = JobManager(workspace)
    with FakeOpenAIServer() as srv:
        job = jm.submit(SynthJob(input="qs", operator="label", teacher={
            "type": "openai", "endpoint": {"base_url": srv.base_url, "max_retries": 0}}))
        info = jm.wait(job, timeout=60)
        assert not srv.chat_records()
    assert info.status == "failed" and cause_of(info).name == "data_error", info
    assert "qs.jsonl:4: not valid JSON" in info.reason
