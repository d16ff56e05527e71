"""The judge job against the fault-injecting OpenAI-compatible test server: every row scored exactly once (output or
rejects), raw replies kept, already-scored rows and math-verify rows not sent, and a worker killed with SIGKILL then
resumed without losing or repeating a judge call it had recorded."""

from __future__ import annotations

import json
import re
from collections import Counter

from core.config.data_jobs import JudgeJob
from core.cot import judge_job
from core.data.io import write_records
from core.jobs.context import JobContext
from tests.fake_openai_server import FakeOpenAIServer
from tests.job_support import each_row_once, job_context, kill_when_written, lines, resume_to_success
from tests.scripted_backend import ScriptedBackend

RUBRIC = {"Reasoning Verbosity": "rv", "Cognitive Difficulty": "cd", "logical correctness": "correctness"}


def _expected(n: int) -> dict[str, int]:
    return {"rv": n % 10, "cd": (3 * n) % 10, "correctness": n % 2}


def _key(messages: list[dict]) -> tuple[int, str]:
    """(question number, metric) of a judge request: what the scripted judge answers and tests count."""
    user = messages[-1]["content"]
    metric = next(m for k, m in RUBRIC.items() if k in user)
    return int(re.search(r"Question (\d+)\?", user).group(1)), metric


def scripted_judge(messages: list[dict]) -> str:
    n, metric = _key(messages)
    if "GARBLE" in messages[-1]["content"] and metric == "cd":
        return "I would rather not say."
    return f"Analysis of question {n}: fine. <score>{_expected(n)[metric]}</score>"


def _rows(n: int) -> list[dict]:
    return [{"id": f"t{i:03d}", "instruction": f"Question {i}?", "output": f"<think>step {i}</think> answer {i}"}
            for i in range(n)]


def test_judge_job_scores_every_row_once_under_faults(workspace, tmp_path):
    rows = _rows(30)
    rows[5]["output"] = "<think>GARBLE</think> 5"  # the judge gives no CD score for it
    rows[6].update(rv=4, cd=4, correctness=1)  # an imported, already-scored trace: no calls
    rows[7].update(output="so the answer is \\boxed{1/2}", answer="0.5")  # math-verify decides correctness
    rows[8].update(output="so the answer is \\boxed{3}", answer="4")
    write_records(workspace.datasets / "cot.jsonl", rows)
    ids = [r["id"] for r in rows]
    with FakeOpenAIServer(answer=scripted_judge, fault_rate=0.25, seed=5, hang_s=1.0, retry_after=0.01) as srv:
        cfg = JudgeJob(input="cot", answer_field="answer", judge={
            "type": "openai", "endpoint": {"base_url": srv.base_url, "concurrency": 6, "max_retries": 1,
                                           "timeout_s": 0.5}})
        judge_job.run(cfg, job_context(workspace, tmp_path, "j"))
        ok, bad = each_row_once(workspace, "cot-judge", ids)
        assert ok and bad, "with 25% faults and one retry, some rows fail"
        assert {r["stage"] for r in bad} <= {"request", "parse"}
        assert not any(_key(rec.messages)[0] == 6 for rec in srv.chat_records())
        assert not {_key(rec.messages) for rec in srv.chat_records()} & {(7, "correctness"), (8, "correctness")}

        srv.fault_rate = 0.0
        judge_job.run(cfg.model_copy(update={"retry_rejects": True}), job_context(workspace, tmp_path, "j", attempt=2))
        ok, bad = each_row_once(workspace, "cot-judge", ids)
    assert [r["id"] for r in bad] == ["t005"] and bad[0]["stage"] == "parse"
    assert bad[0]["input"]["judge_flags"] == ["cd"] and bad[0]["input"]["rv"] == 5
    by_id = {r["id"]: r for r in ok}
    for r in ok:
        n = int(r["id"][1:])
        if n == 6:
            assert (r["rv"], r["cd"], r["correctness"]) == (4, 4, 1) and "rv_judge" not in r
            continue
        exp = _expected(n)
        assert (r["rv"], r["cd"]) == (exp["rv"], exp["cd"]) and r["rv_judge"] == "fake-model"
        if n not in (7, 8):
            assert r["correctness"] == exp["correctness"]
    assert by_id["t007"]["correctness"] == 1 and by_id["t007"]["correctness_judge"] == "math-verify"
    assert by_id["t008"]["correctness"] == 0
    # Raw replies: one scored entry per (row, metric) asked; the unparseable one is asked again by the retry.
    side = lines(workspace.datasets / "cot-judge.judge.ndjson")
    counts = Counter((e["row_id"], e["metric"]) for e in side)
    assert counts[("t005", "cd")] >= 1 and all(c == 1 for k, c in counts.items() if k != ("t005", "cd"))
    assert all(e["reply"].startswith("Analysis") for e in side if e["score"] is not None)
    assert len(counts) == 30 * 3 - 3 - 2  # t006 needs nothing, t007/t008 no correctness call
    meta = json.loads((workspace.datasets / "cot-judge.meta.json").read_text())
    assert meta["rows"] == 29 and meta["rejected"] == 1 and not meta["growing"]


def test_killed_judge_resumes_without_loss_or_duplicate_calls(workspace):
    from core.jobs.manager import JobManager

    rows = _rows(80)
    ids = [r["id"] for r in rows]
    write_records(workspace.datasets / "many.jsonl", rows)
    jm = JobManager(workspace)
    side = workspace.datasets / "many-judge.judge.ndjson"
    out = workspace.datasets / "many-judge.jsonl"
    with FakeOpenAIServer(answer=scripted_judge, latency=0.03, fault_rate=0.2, seed=11, hang_s=1.0,
                          retry_after=0.01) as srv:
        cfg = JudgeJob(input="many", judge={"type": "openai", "endpoint": {
            "base_url": srv.base_url, "concurrency": 4, "max_retries": 3, "timeout_s": 0.5}})
        job_id = jm.submit(cfg)
        kill_when_written(jm, job_id, out, rows=15)
        recorded = {(e["row_id"], e["metric"]) for e in lines(side)}
        assert 45 <= len(recorded) < 240

        resumed_at = resume_to_success(jm, job_id)
        ok, bad = each_row_once(workspace, "many-judge", ids)
        asked_again = {_key(rec.messages) for rec in srv.chat_records() if rec.started >= resumed_at}
    assert not {(f"t{n:03d}", m) for n, m in asked_again} & recorded, "a recorded judge call was made again"
    side_rows = lines(side)
    assert len(side_rows) == len({(e["row_id"], e["metric"]) for e in side_rows}), "a reply was recorded twice"
    for r in ok:
        assert {k: r[k] for k in ("rv", "cd", "correctness")} == _expected(int(r["id"][1:]))
    assert all(r["stage"] == "request" for r in bad)


class ScriptedLocalJudge(ScriptedBackend):
    """A local (batched) judge double: answers like the scripted server, greedy only."""

    def __init__(self, on_call=None):
        super().__init__(scripted_judge, _key, "local-judge", on_call, greedy=True)


def test_local_batched_judge_stop_and_resume(workspace, tmp_path, monkeypatch):
    from core.jobs.context import STOP_FLAG

    rows = _rows(12)
    write_records(workspace.datasets / "loc.jsonl", rows)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    ctx = JobContext("l", run_dir, workspace)

    def stop_at(n):
        if n == 10:
            (run_dir / STOP_FLAG).touch()

    first = ScriptedLocalJudge(on_call=stop_at)
    monkeypatch.setattr(judge_job, "make_judge", lambda spec, ws, **kw: first)
    cfg = JudgeJob(input="loc", output="loc-scored", judge={"type": "transformers", "model": "x", "batch_size": 4})
    judge_job.run(cfg, ctx)
    assert len(first.calls) == 12  # the batch in flight finished (3 batches of 4), nothing new started
    out = workspace.datasets / "loc-scored.jsonl"
    assert len(lines(out)) == 4 and json.loads((workspace.datasets / "loc-scored.meta.json").read_text())["stopped"]

    (run_dir / STOP_FLAG).unlink()
    second = ScriptedLocalJudge()
    monkeypatch.setattr(judge_job, "make_judge", lambda spec, ws, **kw: second)
    judge_job.run(cfg, JobContext("l", run_dir, workspace, attempt=2))
    assert not set(first.calls) & set(second.calls) and len(first.calls) + len(second.calls) == 36
    ok, bad = each_row_once(workspace, "loc-scored", [r["id"] for r in rows])
    assert len(ok) == 12 and not bad and all(r["rv_judge"] == "local-judge" for r in ok)
    metrics = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    last = [m for m in metrics if "step" in m][-1]
    assert last["step"] == last["total"] == 12 and last["calls"] == 24


def test_custom_rubric_template_and_a_broken_one(workspace, tmp_path, monkeypatch):
    import pytest

    from core.synth.templates import TemplateError, save_template

    save_template(workspace, "my-rv", "judge_rv", "Rate the Reasoning Verbosity, strictly.\n{instruction}\n---\n"
                  "{response}\nEnd with <score>N</score>; literal braces: {{ok}}")
    write_records(workspace.datasets / "few.jsonl", _rows(3))
    judge = ScriptedLocalJudge()
    monkeypatch.setattr(judge_job, "make_judge", lambda spec, ws, **kw: judge)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    seen = []
    orig = judge.chat
    judge.chat = lambda convs, params, top_logprobs=0: (seen.extend(convs), orig(convs, params))[1]
    cfg = JudgeJob(input="few", metrics=["rv"], templates={"rv": "my-rv"}, judge={"type": "transformers", "model": "x"})
    judge_job.run(cfg, JobContext("t", run_dir, workspace))
    assert seen[0][-1]["content"].startswith("Rate the Reasoning Verbosity, strictly.\nQuestion 0?\n---\n<think>")
    assert seen[0][-1]["content"].endswith("literal braces: {ok}") and seen[0][0]["role"] == "system"
    assert [r["rv"] for r in lines(workspace.datasets / "few-judge.jsonl")] == [0, 1, 2]

    (tmp_path / "bad.txt").write_text("Rate {instruction} only")  # no {response}: refused before any call
    judge.calls.clear()
    with pytest.raises(TemplateError, match="response"):
        judge_job.run(cfg.model_copy(update={"templates": {"rv": str(tmp_path / "bad.txt")}, "output": "x"}),
                      JobContext("t", run_dir, workspace))
    assert not judge.calls


def test_duplicate_ids_and_unusable_rows_go_to_rejects_once(workspace, tmp_path, monkeypatch):
    rows = _rows(4) + [dict(_rows(2)[1], output="a second trace under the same id"), {"id": "empty", "instruction": ""}]
    write_records(workspace.datasets / "dup.jsonl", rows)
    monkeypatch.setattr(judge_job, "make_judge", lambda spec, ws, **kw: ScriptedLocalJudge())
    cfg = JudgeJob(input="dup", judge={"type": "transformers", "model": "x"})
    for attempt in (1, 2):  # the rerun finds everything done and writes nothing twice
        judge_job.run(cfg, job_context(workspace, tmp_path, "d", attempt))
    ok = lines(workspace.datasets / "dup-judge.jsonl")
    bad = lines(workspace.datasets / "dup-judge.rejects.jsonl")
    assert [r["id"] for r in ok] == ["t000", "t001", "t002", "t003"]
    assert sorted(r["id"] for r in bad) == ["empty", "t001#duplicate-at-4"]
