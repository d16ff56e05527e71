"""The pairs job against the scripted OpenAI-compatible test server: every row's chosen/rejected right, ties and
identical pairs dropped with the reason, a SIGKILLed job resumed without losing a row or asking for a recorded sample
again; and one small run with the tiny local student through transformers."""

from __future__ import annotations

import json
import re
import threading
from collections import Counter

import pytest
from pydantic import ValidationError

from core.config.pairs_jobs import PairsJob
from core.data.io import write_records
from core.jobs.context import JobContext
from core.pairs import job as pairs_job
from core.pairs.ranking import NoPair, best_vs_worst, scorer_score, teacher_over_student
from tests.fake_openai_server import FakeOpenAIServer
from tests.job_support import each_row_once, job_context, kill_when_written, lines, resume_to_success


def _qnum(messages: list[dict]) -> int:
    return int(re.search(r"Question (\d+)\?", messages[-1]["content"]).group(1))


def _endpoint(srv, **kw) -> dict:
    return {"type": "openai", "endpoint": {"base_url": srv.base_url, "concurrency": 4, "max_retries": 1,
                                           "timeout_s": 0.5, **kw}}


def _run(cfg, ws, tmp_path, attempt: int = 1):
    pairs_job.run(cfg, job_context(ws, tmp_path, "p", attempt))


class Scripted:
    """Answers per question in call order (sample k of question n is its k-th call), thread-safe."""

    def __init__(self, answers: dict[int, list[str]]):
        self.answers = answers
        self.calls: Counter = Counter()
        self.lock = threading.Lock()

    def __call__(self, messages: list[dict]) -> str:
        n = _qnum(messages)
        with self.lock:
            k = self.calls[n]
            self.calls[n] += 1
        seq = self.answers[n]
        return seq[min(k, len(seq) - 1)]


# ------------------------------------------------------------------------------------------------ ranking rules


def test_ranking_rules():
    texts = {"teacher": "A long and careful answer", "student": "short"}
    assert teacher_over_student(texts, None, 0).chosen == "teacher"
    with pytest.raises(NoPair, match="identical") as e:
        teacher_over_student({"teacher": "same  answer", "student": "same answer\n"}, None, 0)
    assert e.value.code == "identical"
    with pytest.raises(NoPair, match="tie") as e:
        teacher_over_student(texts, {"teacher": 1.0, "student": 1.0}, 0)
    with pytest.raises(NoPair, match="scored higher"):
        teacher_over_student(texts, {"teacher": 0.0, "student": 1.0}, 0)
    with pytest.raises(NoPair, match="min_margin"):
        teacher_over_student(texts, {"teacher": 0.5, "student": 0.4}, 0.2)
    p = best_vs_worst({"s0": "a", "s1": "b", "s2": "c"}, {"s0": 1.0, "s1": 0.0, "s2": 1.0}, 0)
    assert (p.chosen, p.rejected, p.margin) == ("s0", "s1", 1.0)
    with pytest.raises(NoPair, match="all 3 samples scored 1"):
        best_vs_worst({"s0": "a", "s1": "b", "s2": "c"}, {"s0": 1.0, "s1": 1.0, "s2": 1.0}, 0)
    assert scorer_score(1, "x" * 1000, 0.001) == 0.5 and scorer_score(0, "x", 0.001) == 0.0


def test_config_names_what_a_mode_needs():
    with pytest.raises(ValidationError, match="needs a student"):
        PairsJob(input="d")
    with pytest.raises(ValidationError, match="needs rank_by"):
        PairsJob(input="d", mode="best_of_n", teacher={"model": "t"})
    with pytest.raises(ValidationError, match="needs a judge"):
        PairsJob(input="d", student={"model": "s"}, rank_by="judge")
    with pytest.raises(ValidationError, match="answer_field or a judge"):
        PairsJob(input="d", student={"model": "s"}, rank_by="scorer", answer_field=None)


# ------------------------------------------------------------------------------------------------ student mode


def test_teacher_vs_student_pairs_under_faults_then_retry(workspace, tmp_path):
    rows = [{"id": f"r{i:02d}", "instruction": f"Question {i}?", "output": f"Teacher answer {i}.", "category": "math"}
            for i in range(24)]
    rows[3]["output"] = "student says 3"  # the student answers exactly this: an identical pair
    rows[4] = {"id": "r04", "messages": [{"role": "system", "content": "Be brief."},
                                         {"role": "user", "content": "Question 4?"},
                                         {"role": "assistant", "content": "Teacher answer 4."}]}
    rows[5]["output"] = ""  # no teacher answer: an input reject
    write_records(workspace.datasets / "qa.jsonl", rows)
    ids = [r["id"] for r in rows]
    with FakeOpenAIServer(answer=lambda m: f"student says {_qnum(m)}", model="stud", fault_rate=0.3, seed=3,
                          hang_s=1.0, retry_after=0.01) as srv:
        cfg = PairsJob(input="qa", student=_endpoint(srv, max_retries=0), sampling={"temperature": 0.0})
        _run(cfg, workspace, tmp_path)
        ok, bad = each_row_once(workspace, "qa-pairs", ids)
        assert any(r["stage"] == "request" for r in bad), "with 30% faults and one retry some requests fail"
        srv.fault_rate = 0.0
        _run(cfg.model_copy(update={"retry_rejects": True}), workspace, tmp_path, attempt=2)
        ok, bad = each_row_once(workspace, "qa-pairs", ids)
    assert {r["id"]: r.get("drop") or r["stage"] for r in bad} == {"r03": "identical", "r05": "input"}
    assert len(ok) == 22
    for r in ok:
        n = int(r["id"][1:])
        assert r["chosen"] == f"Teacher answer {n}." and r["rejected"] == f"student says {n}"
        assert r["instruction"] == f"Question {n}?" and r["rejected_by"] == "stud" and r["pair_source"] == "student"
        assert "output" not in r and "messages" not in r
    by_id = {r["id"]: r for r in ok}
    assert by_id["r04"]["system"] == "Be brief." and "category" not in by_id["r04"]
    assert by_id["r00"]["category"] == "math" and by_id["r00"]["chosen_by"] == "dataset"
    # the student saw the conversation without the teacher's answer (system turn kept)
    sent = [rec.messages for rec in srv.answered() if _qnum(rec.messages) == 4][0]
    assert [m["role"] for m in sent] == ["system", "user"]
    meta = json.loads((workspace.datasets / "qa-pairs.meta.json").read_text())
    assert meta["rows"] == 22 and meta["stats"]["rejects"] == {"identical": 1, "input": 1}
    assert not meta["growing"]
    # the Data tab reads the rows as DPO pairs
    from core.data.view import row_view

    view = row_view(ok[0])
    assert view.chat[-1]["content"] == ok[0]["chosen"] and view.rejected == ok[0]["rejected"]


def test_student_pairs_ranked_by_verifier_drop_ties(workspace, tmp_path):
    rows = [{"id": f"q{i}", "instruction": f"Question {i}?", "output": f"so \\boxed{{{i}}}", "answer": str(i)}
            for i in range(4)]
    write_records(workspace.datasets / "m.jsonl", rows)
    student = {0: ["\\boxed{7}"], 1: ["\\boxed{1}"], 2: ["no idea"], 3: ["the answer is 3"]}
    with FakeOpenAIServer(answer=Scripted(student)) as srv:
        cfg = PairsJob(input="m", student=_endpoint(srv), rank_by="verifier")
        _run(cfg, workspace, tmp_path)
    ok, bad = each_row_once(workspace, "m-pairs", ["q0", "q1", "q2", "q3"])
    assert sorted(r["id"] for r in ok) == ["q0", "q2"]
    assert all(r["chosen_score"] == 1.0 and r["rejected_score"] == 0.0 for r in ok)
    assert {r["id"]: r["drop"] for r in bad} == {"q1": "tie", "q3": "tie"}
    assert bad[0]["input"]["answers"]["student"]  # what the student wrote is kept with the reason


# ------------------------------------------------------------------------------------------------ best of N


def test_best_of_n_by_verifier_and_by_scorer(workspace, tmp_path):
    rows = [{"id": f"q{i}", "instruction": f"Question {i}?", "answer": "2"} for i in range(4)]
    write_records(workspace.datasets / "bon.jsonl", rows)
    samples = {
        0: ["\\boxed{2}", "\\boxed{3}", "\\boxed{2} (longer, checked twice)"],  # best s0, worst s1
        1: ["\\boxed{2}", "\\boxed{2}", "\\boxed{2}"],  # all correct: a tie (verifier), identical texts
        2: ["\\boxed{5}", "\\boxed{4}", "\\boxed{9}"],  # all wrong: a tie
        3: ["\\boxed{8}", "\\boxed{2} " + "x" * 300, "\\boxed{2}"],  # verifier: s1 vs s0; scorer: s2 vs s0
    }
    with FakeOpenAIServer(answer=Scripted(samples), model="teach") as srv:
        cfg = PairsJob(input="bon", mode="best_of_n", teacher=_endpoint(srv), num_samples=3, rank_by="verifier")
        _run(cfg, workspace, tmp_path)
        assert len(srv.answered()) == 12
        seeds = Counter(rec.body.get("seed") for rec in srv.answered())
        assert len(seeds) == 3 and set(seeds.values()) == {4}  # one seed per sample index
    ok, bad = each_row_once(workspace, "bon-pairs", [r["id"] for r in rows])
    got = {r["id"]: (r["chosen_sample"], r["rejected_sample"]) for r in ok}
    assert got == {"q0": (0, 1), "q3": (1, 0)}
    assert {r["id"]: r["drop"] for r in bad} == {"q1": "tie", "q2": "tie"}
    assert ok[0]["chosen"] == samples[int(ok[0]["id"][1:])][ok[0]["chosen_sample"]]
    assert ok[0]["scores"] and ok[0]["chosen_by"] == "teach"

    # The same samples ranked by EasyDistill 2.0's scorer: correct and short beats correct and long.
    with FakeOpenAIServer(answer=Scripted(samples)) as srv2:
        cfg2 = PairsJob.model_validate({**cfg.model_dump(), "rank_by": "scorer", "output": "bon-scored",
                                        "teacher": _endpoint(srv2)})
        _run(cfg2, workspace, tmp_path)
    ok2, bad2 = each_row_once(workspace, "bon-scored", [r["id"] for r in rows])
    got2 = {r["id"]: (r["chosen_sample"], r["rejected_sample"]) for r in ok2}
    assert got2 == {"q0": (0, 1), "q3": (2, 0)}
    assert {r["id"]: r["drop"] for r in bad2} == {"q1": "tie", "q2": "tie"}
    q0 = next(r for r in ok2 if r["id"] == "q0")
    assert q0["chosen_score"] == pytest.approx(1 / (1 + 0.001 * len("\\boxed{2}")))


def _judge_server_answer(messages: list[dict]) -> str:
    """A judge grading the answer by the 'quality N' it claims; the sampled teacher answers 'quality <k>' per call."""
    user = messages[-1]["content"]
    m = re.search(r"quality (\d)", user)
    if "helpful" in user.lower() and m:
        return f"Looks like {m.group(1)}. <score>{m.group(1)}</score>"
    return "no idea"


def test_best_of_n_by_judge(workspace, tmp_path):
    rows = [{"id": f"q{i}", "instruction": f"Question {i}?"} for i in range(3)]
    write_records(workspace.datasets / "j.jsonl", rows)
    samples = {0: ["quality 3", "quality 8"], 1: ["quality 5", "quality 5."], 2: ["quality 4", "unscored"]}
    with FakeOpenAIServer(answer=Scripted(samples)) as teacher, \
            FakeOpenAIServer(answer=_judge_server_answer, model="judge-m") as judge:
        cfg = PairsJob(input="j", mode="best_of_n", teacher=_endpoint(teacher), num_samples=2, rank_by="judge",
                       judge=_endpoint(judge))
        _run(cfg, workspace, tmp_path)
        assert len(judge.answered()) == 6 and all(r.body["temperature"] == 0 for r in judge.answered())
        # a rerun finds every row settled and asks nobody
        _run(cfg, workspace, tmp_path, attempt=2)
        assert len(judge.answered()) == 6 and len(teacher.answered()) == 6
    ok, bad = each_row_once(workspace, "j-pairs", ["q0", "q1", "q2"])
    assert [(r["id"], r["chosen"], r["rejected"], r["margin"]) for r in ok] == [("q0", "quality 8", "quality 3", 5.0)]
    reasons = {r["id"]: r["reason"] for r in bad}
    assert reasons["q1"].startswith("tie") and "no score" in reasons["q2"]
    ledger = lines(workspace.datasets / "j-pairs.pairs.ndjson")
    assert Counter(e["what"] for e in ledger) == {"sample": 6, "judge": 6}
    assert {e["judge"] for e in ledger if e["what"] == "judge"} == {"judge-m"}


# ------------------------------------------------------------------------------------------------ kill and resume


def test_killed_pairs_job_resumes_without_loss_or_repeated_samples(workspace):
    from core.jobs.manager import JobManager

    rows = [{"id": f"r{i:03d}", "instruction": f"Question {i}?", "output": f"Teacher {i}."} for i in range(80)]
    ids = [r["id"] for r in rows]
    write_records(workspace.datasets / "many.jsonl", rows)
    jm = JobManager(workspace)
    side = workspace.datasets / "many-pairs.pairs.ndjson"
    with FakeOpenAIServer(answer=lambda m: f"student {_qnum(m)}", latency=0.03) as srv:
        cfg = PairsJob(input="many", student={"type": "openai", "endpoint": {"base_url": srv.base_url,
                                                                             "concurrency": 4}})
        job_id = jm.submit(cfg)
        kill_when_written(jm, job_id, side, rows=20)
        recorded = {e["row_id"] for e in lines(side)}
        assert 20 <= len(recorded) < 80
        resumed_at = resume_to_success(jm, job_id)
        asked_again = {_qnum(rec.messages) for rec in srv.answered() if rec.started >= resumed_at}
    assert not {f"r{n:03d}" for n in asked_again} & recorded, "a recorded sample was asked for again"
    entries = lines(side)
    assert len(entries) == len({e["id"] for e in entries}) == 80, "a sample was recorded twice or lost"
    ok, bad = each_row_once(workspace, "many-pairs", ids)
    assert not bad and all(r["chosen"] == f"Teacher {int(r['id'][1:])}." and r["rejected"] == f"student "
                           f"{int(r['id'][1:])}" for r in ok)


class SeededLocalTeacher:
    """A local (batched) teacher double whose answer depends on the sample's seed: sample k of question n answers
    \\boxed{n + k}, so sample 0 is the right one; records every (question, seed) asked and can raise the stop flag."""

    name = "local-teacher"

    def __init__(self, on_call=None):
        self.calls: list[tuple[int, int]] = []
        self.on_call = on_call

    def chat(self, conversations, params, top_logprobs=0):
        from core.llm.base import Completion

        k = (params.seed - 777) // 1009
        out = []
        for conv in conversations:
            n = _qnum(conv)
            self.calls.append((n, k))
            if self.on_call:
                self.on_call(len(self.calls))
            out.append(Completion(f"so \\boxed{{{n + k}}}", 5, 3))
        return out

    def close(self):
        pass


def test_best_of_n_stop_and_resume_asks_no_sample_twice(workspace, tmp_path, monkeypatch):
    from core.jobs.context import STOP_FLAG
    from core.pairs import common

    rows = [{"id": f"q{i:02d}", "instruction": f"Question {i}?", "answer": str(i)} for i in range(10)]
    write_records(workspace.datasets / "loc.jsonl", rows)
    run_dir = tmp_path / "run"
    run_dir.mkdir()

    def stop_at(n):
        if n == 14:  # during the second pass (sample 1), second batch
            (run_dir / STOP_FLAG).touch()

    first = SeededLocalTeacher(on_call=stop_at)
    monkeypatch.setattr(common, "make_model", lambda spec, ws, **kw: first)
    cfg = PairsJob(input="loc", mode="best_of_n", num_samples=3, rank_by="verifier",
                   teacher={"type": "transformers", "model": "x", "batch_size": 4})
    pairs_job.run(cfg, JobContext("l", run_dir, workspace))
    assert len(first.calls) == 14  # pass 0 (10), then pass 1's batch in flight when the stop came; no pass 2
    assert not (workspace.datasets / "loc-pairs.jsonl").read_text()  # no row had all three samples yet
    assert json.loads((workspace.datasets / "loc-pairs.meta.json").read_text())["stopped"]

    (run_dir / STOP_FLAG).unlink()
    second = SeededLocalTeacher()
    monkeypatch.setattr(common, "make_model", lambda spec, ws, **kw: second)
    pairs_job.run(cfg, JobContext("l", run_dir, workspace, attempt=2))
    assert not set(first.calls) & set(second.calls) and len(first.calls) + len(second.calls) == 30
    ok, bad = each_row_once(workspace, "loc-pairs", [r["id"] for r in rows])
    assert not bad and len(ok) == 10
    for r in ok:
        n = int(r["id"][1:])
        assert (r["chosen"], r["chosen_sample"], r["rejected_sample"]) == (f"so \\boxed{{{n}}}", 0, 2)
        assert r["chosen_by"] == "local-teacher"


# ------------------------------------------------------------------------------------------------ tiny local student


def test_pairs_with_the_tiny_local_student(workspace, tmp_path, tiny_models):
    rows = [{"id": f"t{i}", "instruction": f"Say something about {w}.", "output": f"{w.title()} is a word."}
            for i, w in enumerate(["cats", "rain", "music"])]
    write_records(workspace.datasets / "tiny.jsonl", rows)
    cfg = PairsJob(input="tiny", output="tiny-dpo", student={"type": "transformers", "model": str(tiny_models.student),
                                                              "batch_size": 3},
                   sampling={"temperature": 0.0, "max_new_tokens": 8})
    _run(cfg, workspace, tmp_path)
    ok, bad = each_row_once(workspace, "tiny-dpo", ["t0", "t1", "t2"])
    assert len(ok) == 3 and not bad
    for r, src in zip(sorted(ok, key=lambda r: r["id"]), rows, strict=True):
        assert r["chosen"] == src["output"] and r["rejected"] and r["rejected"] != r["chosen"]
        assert r["rejected_by"]
    # what train_dpo will read: the prompt as a user turn, the teacher's answer chosen over the student's
    from core.config.train import DpoJob
    from core.train.preference import load_pairs

    pairs = load_pairs(JobContext("d", tmp_path / "run", workspace), DpoJob(student=str(tiny_models.student),
                                                                            dataset="tiny-dpo"))
    assert sorted((p["prompt"][-1]["content"], p["chosen"][0]["content"]) for p in pairs.train) == sorted(
        (r["instruction"], r["output"]) for r in rows)


# ------------------------------------------------------------------------------------------------ EasyDistill 1.x


class LocalStudent:
    name = "local-student"

    def chat(self, conversations, params, top_logprobs=0):
        from core.llm.base import Completion

        return [Completion(f"student says {_qnum(c)}", 5, 3) for c in conversations]

    def close(self):
        pass


def test_rank_dpo_v1_config_runs_teacher_answers_then_pairs(workspace, tmp_path, monkeypatch):
    from core.config import PipelineJob, load_config_file
    from core.pairs import common
    from core.synth import job as synth_job

    (tmp_path / "instructions.json").write_text(json.dumps([{"instruction": f"Question {i}?"} for i in range(5)]))
    labeled = tmp_path / "labeled.json"
    with FakeOpenAIServer(answer=lambda m: f"Teacher answer {_qnum(m)}.", model="teach") as srv:
        v1 = {"job_type": "rank_dpo_api", "models": {"teacher": "teach", "student": "student-model"},
              "dataset": {"instruction_path": "instructions.json", "labeled_path": "labeled.json"},
              "inference": {"base_url": srv.base_url, "max_new_tokens": 64, "system_prompt": "Be kind."},
              "training": {"beta": 0.2, "output_dir": "./dpo-out"}}
        (tmp_path / "rank.json").write_text(json.dumps(v1))
        job, notes = load_config_file(str(tmp_path / "rank.json"))
        assert isinstance(job, PipelineJob) and [s.name for s in job.steps] == ["teacher_answers", "pairs", "train"]
        label, pairs, train = (s.job for s in job.steps)
        assert pairs.input == label.output and pairs.output == str(labeled) == train.dataset
        assert pairs.student.model == "student-model" and pairs.system_prompt == "Be kind." and train.beta == 0.2
        run_dir = tmp_path / "run"
        run_dir.mkdir()
        synth_job.run(label, JobContext("v", run_dir, workspace))
        monkeypatch.setattr(common, "make_model", lambda spec, ws, **kw: LocalStudent())
        pairs_job.run(pairs, JobContext("v", run_dir, workspace, step_name="pairs"))
    rows = json.loads(labeled.read_text())  # a JSON array, as 1.x wrote labeled_path
    assert [(r["instruction"], r["chosen"], r["rejected"]) for r in rows] == [
        (f"Question {i}?", f"Teacher answer {i}.", f"student says {i}") for i in range(5)]
    assert all(r["rejected_by"] == "local-student" for r in rows)

    # upstream's rank_dpo_local.json says rank_dpo_api but names no endpoint: a local teacher is meant
    del v1["inference"]["base_url"]
    (tmp_path / "local.json").write_text(json.dumps(v1))
    job, notes = load_config_file(str(tmp_path / "local.json"))
    assert job.steps[0].job.teacher.type in ("transformers", "vllm") and job.steps[0].job.teacher.model == "teach"
    assert any("without inference.base_url" in n for n in notes)
