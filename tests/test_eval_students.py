"""Several students against one teacher in one evaluate job: the teacher answers (and scores) once, every student
gets its own metrics, side by side in the views; the single `model:` form keeps working. Remote models are local
HTTP servers; KL/perplexity on the shared tiny models."""

from __future__ import annotations

import json

import pytest

from core.config.base import BackendSpec, EndpointSpec
from core.config.train import EvaluateJob
from core.eval import job as eval_job
from core.eval import results
from core.eval.plots import summary_figure
from core.jobs.context import JobContext
from tests.fake_openai_server import FakeOpenAIServer

pytestmark = pytest.mark.timeout(300)

# question -> (gold, teacher, student A, student B)
ROWS = {
    "capital of France?": ("Paris", "Paris is the capital", "Paris is the capital", "Lyon"),
    "2+2?": ("4", "the answer is 4", "the answer is 4", "it is 5"),
    "colour of the sky?": ("blue", "the sky is blue", "blue", "the sky is green"),
}


def _ctx(workspace, name: str = "eval-students", attempt: int = 1) -> JobContext:
    run_dir = workspace.runs / name
    run_dir.mkdir(parents=True, exist_ok=True)
    return JobContext(job_id=name, run_dir=run_dir, workspace=workspace, attempt=attempt, devices=["cpu"])


def _remote(srv: FakeOpenAIServer) -> BackendSpec:
    return BackendSpec(type="openai", endpoint=EndpointSpec(base_url=srv.base_url, max_retries=1, timeout_s=30))


def _server(col: int) -> FakeOpenAIServer:
    return FakeOpenAIServer(lambda msgs: ROWS[msgs[-1]["content"]][col])


def test_two_students_one_teacher_answering_once(workspace):
    (workspace.datasets / "quiz.jsonl").write_text("".join(
        json.dumps({"id": f"q{i}", "instruction": q, "answer": g}) + "\n"
        for i, (q, (g, *_)) in enumerate(ROWS.items())))
    with _server(1) as teacher, _server(2) as a, _server(3) as b:
        cfg = EvaluateJob(students=[_remote(a), _remote(b)], reference=_remote(teacher), dataset="quiz",
                          metrics=["exact_match", "rouge_l"])
        ctx = _ctx(workspace)
        eval_job.run(cfg, ctx)
        assert len(teacher.answered()) == len(ROWS)  # once, not once per student
        assert len(a.answered()) == len(b.answered()) == len(ROWS)
        eval_job.run(cfg, _ctx(workspace, attempt=2))  # a resumed job asks nobody again
        assert len(teacher.answered()) == len(a.answered()) == len(b.answered()) == len(ROWS)
    ev = results.load(ctx.output_dir)
    assert ev.results["evaluated"] == ["model", "model_2"]
    s = ev.results["summary"]
    # exact match: A's "the answer is 4" and "blue" (not "Paris is the capital"); none of B's
    assert s["model"]["exact_match"] == pytest.approx(2 / 3) and s["model_2"]["exact_match"] == pytest.approx(0.0)
    # ROUGE-L against the teacher's answers: A says 2 of them word for word and "blue" of "the sky is blue"
    # (P = 1, R = 1/4 -> F = 0.4); B: "lyon" shares nothing, "it is 5" shares "is" (P = 1/3, R = 1/4 -> 2/7),
    # "the sky is green" shares 3 of 4 (F = 3/4)
    assert s["model"]["rouge_l"] == pytest.approx((1 + 1 + 0.4) / 3)
    assert s["model_2"]["rouge_l"] == pytest.approx((0 + 2 / 7 + 0.75) / 3)
    assert "rouge_l" not in s.get("reference", {})  # the teacher against its own answers says nothing
    by_id = {r["id"]: r for r in ev.rows}
    assert by_id["q2"]["model_answer"] == "blue" and by_id["q2"]["model_2_answer"] == "the sky is green"
    assert by_id["q2"]["model_2_rouge_l"] == pytest.approx(0.75)

    # side by side: one row per student in the table, their answers next to each other in the drill-down
    headers, table = results.summary_table(ev.results)
    assert [r[0] for r in table] == ["model", "model_2", "reference"]
    assert headers[2:4] == ["exact_match", "rouge_l"]
    cols, drows = results.drilldown(ev.rows)
    assert cols[:7] == ["id", "prompt", "gold", "model_answer", "model_correct", "model_2_answer", "model_2_correct"]
    assert drows[0][cols.index("model_2_correct")] is False
    fig = summary_figure(ev.results)
    assert {t.name.split(":")[0] for t in fig.data} == {"model", "model_2", "reference"}
    assert "| model_2 |" in results.markdown_report(ev)


def test_students_with_kl_and_perplexity_teacher_scores_once(workspace, tiny_models, monkeypatch):
    rows = [{"id": f"r{i}", "instruction": q} for i, q in enumerate(["what is the answer", "tell me a story"])]
    (workspace.datasets / "held.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    teacher = BackendSpec(type="transformers", model=str(tiny_models.teacher), batch_size=4)
    student = BackendSpec(type="transformers", model=str(tiny_models.student), batch_size=4)
    opened: list[str] = []
    real_open = eval_job.open_backend

    def counting_open(spec, ctx, role):
        opened.append(role)
        return real_open(spec, ctx, role)

    monkeypatch.setattr(eval_job, "open_backend", counting_open)
    # the single `model:` form and `students:` together: model first, then the students
    cfg = EvaluateJob(model=teacher, students=[student], reference=teacher, dataset="held",
                      metrics=["kl", "perplexity", "rouge_l"], top_k=50,
                      sampling={"temperature": 0, "max_new_tokens": 12})
    ctx = _ctx(workspace)
    eval_job.run(cfg, ctx)
    assert opened == ["reference", "model", "model_2"]  # the teacher answered and scored in one visit
    s = results.load(ctx.output_dir).results["summary"]
    assert s["model"]["kl"] == pytest.approx(0.0, abs=1e-6)  # the teacher against itself
    assert s["model_2"]["kl"] > 0.0
    assert s["model"]["perplexity"] == pytest.approx(s["reference"]["perplexity"])
    assert s["model_2"]["perplexity"] > s["reference"]["perplexity"]
    assert s["model"]["rouge_l"] == pytest.approx(1.0)  # greedy: the same answers word for word
    assert s["model_2"]["rouge_l"] < 1.0


def test_form_takes_several_students_and_loads_them_back(workspace):
    from core.eval.form import FORM

    base = {"dataset": "heldout", "reference": "teacher", "metrics": ["rouge_l"], "limit": 0, "top_k": 20,
            "max_new_tokens": 64, "backend": "transformers", "name": ""}
    job = FORM.build_job(workspace, {**base, "model": "", "students": ["student-sft", "student-kd"]})
    assert job.model is None and [s.model for s in job.students] == ["student-sft", "student-kd"]
    assert [s.model for s in job.evaluated] == ["student-sft", "student-kd"]
    assert job.name == "evaluate student-sft, student-kd"
    values = FORM.values_of(job, workspace)
    assert values["students"] == ["student-sft", "student-kd"] and not values["model"]
    single = FORM.build_job(workspace, {**base, "model": "student-sft", "students": []})
    assert single.model.model == "student-sft" and single.students == []
    with pytest.raises(ValueError, match="model"):
        FORM.build_job(workspace, {**base, "model": "", "students": []})
