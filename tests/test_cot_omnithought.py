"""An OmniThought-shaped file (question + reasoning traces with RV/CD levels, correctness and teacher), as JSONL and
Parquet: detected, flattened to one row per trace with scores, teacher and question ids kept; such rows need no
judge calls and go straight into curation."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from core.config.data_jobs import CurateJob, JudgeJob
from core.cot import curate_job, judge_job
from core.cot.mix import frame_from_rows, select
from core.data.io import write_records
from core.data.store import detect_file, import_file, load_rows
from core.jobs.context import JobContext


def _trace(k: int, rv, cd, ok, teacher="QwQ-32B", thought=True) -> dict:
    t = {"solution": f"The answer is {k}.", "full_response": f"<think>reason {k}</think>\n\nThe answer is {k}.",
         "teacher": teacher, "thought_correctness_verify": ok,
         "Reasoning_Verbosity": {"level": rv, "judge": "QwQ-32B"},
         "Cognitive_Difficulty": {"level": cd, "judge": "QwQ-32B"}}
    if thought:
        t["thought"] = f"reason {k}"
    return t


RECORDS = [
    {"id": "omni-1", "question": "What is 1+1?", "source": "gsm", "reasoning": [
        _trace(1, 2, 1, True), _trace(2, 6, 2, False, teacher="DeepSeek-R1"), _trace(3, "4", 1.0, "true")]},
    {"question": "Prove that sqrt(2) is irrational.", "reasoning": [
        _trace(4, 7, 8, True, thought=False), _trace(5, 3, 7, True, teacher="DeepSeek-R1")]},
    {"question": "Name a prime.", "reasoning": [_trace(6, 1, 0, True)]},
]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_omnithought_file_flattens_to_scored_traces(workspace, tmp_path, suffix):
    src = tmp_path / f"omni{suffix}"
    records = json.loads(json.dumps(RECORDS))
    if suffix == ".parquet":  # a Parquet column has one type: levels as integers, verdicts as booleans
        records[0]["reasoning"][2].update(thought_correctness_verify=True, Reasoning_Verbosity={
            "level": 4, "judge": "QwQ-32B"}, Cognitive_Difficulty={"level": 1, "judge": "QwQ-32B"})
    write_records(src, records)
    det, _ = detect_file(src)
    assert det.format == "omnithought"
    res = import_file(workspace, src, "omni")
    assert res.rows == 6 and not res.errors
    rows, _ = load_rows(workspace, "omni")
    assert [(r["rv"], r["cd"], r["correctness"]) for r in rows] == [
        (2, 1, 1), (6, 2, 0), (4, 1, 1), (7, 8, 1), (3, 7, 1), (1, 0, 1)]  # "4", 1.0 and "true" normalised
    assert [r["teacher"] for r in rows].count("DeepSeek-R1") == 2
    assert {r["question_id"] for r in rows[:3]} == {"omni-1"} and [r["id"] for r in rows[:3]] == [
        "omni-1-0", "omni-1-1", "omni-1-2"]
    assert rows[3]["question_id"] == rows[4]["question_id"] != rows[5]["question_id"]
    assert len({r["id"] for r in rows}) == 6
    assert rows[0]["thought"] == "reason 1" and rows[0]["solution"] == "The answer is 1."
    assert rows[0]["output"] == "<think>reason 1</think>\n\nThe answer is 1." and rows[0]["source"] == "gsm"
    assert "thought" not in rows[3] and rows[3]["output"].startswith("<think>reason 4")
    assert rows[0]["rv_judge"] == rows[0]["cd_judge"] == "QwQ-32B"
    # Re-import: same ids (a resumed judge or curate run finds its rows again).
    import_file(workspace, src, "omni2")
    assert [r["id"] for r in load_rows(workspace, "omni2")[0]] == [r["id"] for r in rows]


def test_imported_traces_need_no_judge_and_curate_directly(workspace, tmp_path, monkeypatch):
    write_records(tmp_path / "omni.json", RECORDS)
    import_file(workspace, tmp_path / "omni.json", "omni")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    ctx = JobContext("o", run_dir, workspace)

    def no_judge(*a, **kw):
        raise AssertionError("scored rows must not need a judge")

    monkeypatch.setattr(judge_job, "make_judge", no_judge)
    judge_job.run(JudgeJob(input="omni", judge={"type": "transformers", "model": "unused"}), ctx)
    judged = [json.loads(x) for x in (workspace.datasets / "omni-judge.jsonl").read_text().splitlines()]
    assert len(judged) == 6

    frame = frame_from_rows(load_rows(workspace, "omni")[0])
    assert frame["question_id"].nunique() == 3
    sel = select(frame, CurateJob(input="omni", one_per_question=True))
    assert len(sel.index) == 3  # the incorrect trace is filtered, one trace per question remains
    curate_job.run(CurateJob(input="omni", rv_max=3, export="system2", output="small-student"), ctx)
    out = [json.loads(x) for x in (workspace.datasets / "small-student.jsonl").read_text().splitlines()]
    assert len(out) == 3 and out[0]["id"] == "omni-1-0"  # RV <= 3 and correct: traces 1, 5 and 6
    assert all(r["output"].startswith("<think>\nreason") for r in out)
    assert pd.Series([r["rv"] for r in out]).le(3).all()
