"""The synthesis job's bookkeeping, in process: outputs appended with ids, resume skips what is written (also after a
torn last line), a stop keeps everything, rejects can be retried, file outputs (.json for EasyDistill 1.x configs),
classify + balancing. The teacher is a scripted double of the backend protocol, injected where the job builds its
backend; the same job against real teachers (tiny model, faulty HTTP server, killed worker) is in test_synth_job.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.config.data_jobs import SynthJob
from core.config.io import parse_config
from core.data.io import write_records
from core.jobs.context import STOP_FLAG, JobContext
from core.llm.base import Completion
from core.synth import job as synth_job


class FlakyTeacher:
    """Answers every row, except instructions containing a word listed in `fail` (request error) or `garble`."""

    name = "flaky"

    def __init__(self, fail=(), garble=(), on_call=None):
        self.fail, self.garble, self.on_call = set(fail), set(garble), on_call
        self.calls = 0

    def chat(self, conversations, params, top_logprobs=0):
        out = []
        for conv in conversations:
            self.calls += 1
            if self.on_call:
                self.on_call(self.calls)
            user = conv[-1]["content"]
            if any(w in user for w in self.fail):
                out.append(Completion("", finish_reason="error", error="HTTP 503 after retries"))
            elif any(w in user for w in self.garble):
                out.append(Completion("no tags here", 3, 3))
            elif "Classify" in user or "category" in user:
                out.append(Completion("<answer>Math</answer>" if "sum" in user else "<answer>Writing</answer>", 5, 2))
            else:
                out.append(Completion(f"<answer>ok: {user.splitlines()[-1]}</answer>", 5, 4))
        return out

    def close(self):
        pass


def _ctx(ws, tmp_path, attempt=1) -> JobContext:
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    return JobContext(job_id="job-test", run_dir=run, workspace=ws, attempt=attempt)


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def data(workspace):
    rows = [{"id": f"r{i}", "instruction": f"What is the sum of {i} and {i}?"} for i in range(20)]
    rows[3]["instruction"] = "This row will BREAK the endpoint"
    rows[7]["instruction"] = "This row gets a GARBLED reply"
    write_records(workspace.datasets / "qs.jsonl", rows)
    return rows


def _job(**kw) -> SynthJob:
    return SynthJob(input="qs", teacher={"type": "transformers", "model": "x", "batch_size": 4}, **kw)


def test_every_row_in_output_or_rejects_and_resume_after_torn_line(workspace, tmp_path, data, monkeypatch):
    teacher = FlakyTeacher(fail={"BREAK"}, garble={"GARBLED"})
    monkeypatch.setattr(synth_job, "make_teacher", lambda spec, ws, **kw: teacher)
    cfg = _job(operator="refine", sampling={"temperature": 0.7})
    synth_job.run(cfg, _ctx(workspace, tmp_path))
    out, rej = workspace.datasets / "qs-refine.jsonl", workspace.datasets / "qs-refine.rejects.jsonl"
    ok, bad = _rows(out), _rows(rej)
    assert {r["id"] for r in ok} | {r["id"] for r in bad} == {r["id"] for r in data}
    assert len(ok) + len(bad) == 20
    assert {r["id"]: r["stage"] for r in bad} == {"r3": "request"}  # refine takes a whole untagged reply
    assert all(r["original_instruction"] == data[int(r["id"][1:])]["instruction"] for r in ok)
    meta = json.loads((workspace.datasets / "qs-refine.meta.json").read_text())
    assert meta["rows"] == 19 and meta["rejected"] == 1 and not meta["growing"]

    # A crash mid-write leaves a torn last line and loses the last rows: a rerun redoes only those.
    lines = out.read_text().splitlines()
    out.write_text("\n".join(lines[:12]) + "\n" + lines[12][:15])
    teacher.calls = 0
    synth_job.run(cfg, _ctx(workspace, tmp_path, attempt=2))
    ok2 = _rows(out)
    assert teacher.calls == 7 and len(ok2) == 19 and len({r["id"] for r in ok2}) == 19

    # Retry the rejects once the endpoint works: the old rejects file is kept aside.
    teacher.fail = set()
    synth_job.run(cfg.model_copy(update={"retry_rejects": True}), _ctx(workspace, tmp_path, attempt=3))
    assert len(_rows(out)) == 20 and not _rows(rej)
    assert _rows(rej.with_name(rej.name + ".bak"))[0]["id"] == "r3"


def test_stop_keeps_rows_and_resume_finishes(workspace, tmp_path, data, monkeypatch):
    ctx = _ctx(workspace, tmp_path)

    def stop_after(n):
        if n == 8:
            (ctx.run_dir / STOP_FLAG).touch()

    monkeypatch.setattr(synth_job, "make_teacher", lambda spec, ws, **kw: FlakyTeacher(on_call=stop_after))
    synth_job.run(_job(operator="label"), ctx)
    out = workspace.datasets / "qs-label.jsonl"
    assert len(_rows(out)) == 8  # the batch in flight (4 rows) finished and was saved, nothing new started
    assert json.loads((workspace.datasets / "qs-label.meta.json").read_text())["stopped"] is True
    (ctx.run_dir / STOP_FLAG).unlink()
    monkeypatch.setattr(synth_job, "make_teacher", lambda spec, ws, **kw: FlakyTeacher())
    synth_job.run(_job(operator="label"), _ctx(workspace, tmp_path, attempt=2))
    ids = [r["id"] for r in _rows(out)]
    assert len(ids) == 20 and len(set(ids)) == 20
    metrics = [json.loads(x) for x in (ctx.run_dir / "metrics.jsonl").read_text().splitlines()]
    last = [m for m in metrics if "step" in m][-1]
    assert last["step"] == last["total"] == 20 and last["tokens"] > 0 and "rows_per_s" in last


def test_v1_style_file_output_and_prompt(workspace, tmp_path, data, monkeypatch):
    """An EasyDistill 1.x `*_api` config: JSON input path, `inference.prompt`, `.json` output path."""
    src = tmp_path / "in.json"
    src.write_text(json.dumps([{"instruction": r["instruction"]} for r in data[:6]]))
    teacher = FlakyTeacher()
    seen = []
    orig = teacher.chat
    teacher.chat = lambda convs, params, top_logprobs=0: (seen.extend(convs), orig(convs, params))[1]
    monkeypatch.setattr(synth_job, "make_teacher", lambda spec, ws, **kw: teacher)
    v1 = {"job_type": "instruction_expansion_api",
          "dataset": {"input_path": str(src), "output_path": str(tmp_path / "out" / "expanded.json"),
                      "num_in_context_samples": 2, "num_output_samples": 4, "seed": 5},
          "inference": {"base_url": "http://127.0.0.1:9/v1", "prompt": "Write one more {like} these:",
                        "max_new_tokens": 32}}
    from core.config.easydistill_v1 import import_v1

    data_v1, _ = import_v1(v1, tmp_path)
    cfg = parse_config(data_v1)
    synth_job.run(cfg, _ctx(workspace, tmp_path))
    out = json.loads((tmp_path / "out" / "expanded.json").read_text())
    assert len(out) == 4 and [r["id"] for r in out] == [f"expand-s5-{k}" for k in range(4)]
    assert all(len(r["expanded_from"]) == 2 for r in out)
    assert seen[0][-1]["content"].startswith("Write one more {like} these:\n1. ")
    assert (tmp_path / "out" / "expanded.jsonl").exists()


def test_classify_then_balance(workspace, tmp_path, data, monkeypatch):
    monkeypatch.setattr(synth_job, "make_teacher", lambda spec, ws, **kw: FlakyTeacher())
    cfg = _job(operator="classify", target_shares={"Math": 0.5, "Writing": 0.5}, balance_total=10, seed=1)
    synth_job.run(cfg, _ctx(workspace, tmp_path))
    cats = [r["category"] for r in _rows(workspace.datasets / "qs-classify.jsonl")]
    assert cats.count("Math") == 18 and cats.count("Writing") == 2
    bal = _rows(workspace.datasets / "qs-classify-balanced.jsonl")
    assert len(bal) == 7 and sum(r["category"] == "Writing" for r in bal) == 2  # Writing has only 2 rows
    meta = json.loads((workspace.datasets / "qs-classify-balanced.meta.json").read_text())
    assert meta["after"] == {"Math": 5, "Writing": 2}
