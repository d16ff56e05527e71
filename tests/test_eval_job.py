"""The `evaluate` job on a small set written here: answer checks on known answers, judge win-rate with a scripted judge
(position swap), KL/perplexity on tiny models, stop and resume, bad input. Remote models are local HTTP servers."""

from __future__ import annotations

import csv
import json
import re

import pytest

from core.config.base import BackendSpec, EndpointSpec
from core.config.train import EvaluateJob
from core.data.errors import DataError
from core.eval import results
from core.eval.compare import compare
from core.eval.job import run
from core.jobs.context import STOP_FLAG, JobContext
from tests.fake_openai_server import FakeOpenAIServer

pytestmark = pytest.mark.timeout(300)

# question -> (gold, student answer, teacher answer); the expected checks are written next to each row
MATH = [
    ("What is 2+3?", "5", "The answer is 5.", "5"),  # em ✔ mv ✔
    ("What is half of 1?", "0.5", "so \\boxed{\\frac{1}{2}}", "0.5"),  # em ✘ mv ✔ (same number, other form)
    ("What is the capital of France?", "Paris", "Paris.", "Paris"),  # em ✔ mv ✘ (not maths)
    ("What is 7*6?", "42", "<think>6*7=42</think>41", "42"),  # em ✘ mv ✘ (the thought is not the answer)
    ("Expand (x+1)^2.", "x^2+2x+1", "$(x+1)^2$", "x^2+2x+1"),  # em ✘ mv ✔ (symbolically equal)
    ("Janet earns 9*2 dollars.", "She makes 9*2 = 18 dollars\n#### 18", "#### 18", "#### 18"),  # em ✔ mv ✔
]
STUDENT_EM, STUDENT_MV = 3 / 6, 4 / 6
TEACHER_EM, TEACHER_MV = 6 / 6, 6 / 6  # the teacher's bare "Paris" equals the gold even as a symbol


def _ctx(workspace, name: str = "eval-1", attempt: int = 1) -> JobContext:
    run_dir = workspace.runs / name
    run_dir.mkdir(parents=True, exist_ok=True)
    return JobContext(job_id=name, run_dir=run_dir, workspace=workspace, attempt=attempt, devices=["cpu"])


def _dataset(workspace, name: str, rows: list[dict]) -> str:
    path = workspace.datasets / f"{name}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return name


def _answers(table: dict[str, str]):
    def answer(messages: list[dict]) -> str:
        return table[[m for m in messages if m["role"] == "user"][-1]["content"]]
    return answer


def _remote(srv: FakeOpenAIServer) -> BackendSpec:
    return BackendSpec(type="openai", endpoint=EndpointSpec(base_url=srv.base_url, max_retries=1, timeout_s=30))


def test_exact_match_and_math_verify_on_known_answers(workspace):
    ds = _dataset(workspace, "math", [{"id": f"q{i}", "instruction": q, "answer": g} for i, (q, g, _, _) in
                                      enumerate(MATH)])
    with FakeOpenAIServer(_answers({q: s for q, _, s, _ in MATH})) as student, \
            FakeOpenAIServer(_answers({q: t for q, _, _, t in MATH})) as teacher:
        cfg = EvaluateJob(model=_remote(student), reference=_remote(teacher), dataset=ds,
                          metrics=["exact_match", "math_verify"])
        ctx = _ctx(workspace)
        run(cfg, ctx)
        assert len(student.answered()) == len(MATH) and len(teacher.answered()) == len(MATH)
        # greedy by default: the requests asked for temperature 0
        assert all(r.body.get("temperature") == 0 for r in student.chat_records())
    ev = results.load(ctx.output_dir)
    s = ev.results["summary"]
    assert s["model"]["exact_match"] == pytest.approx(STUDENT_EM)
    assert s["model"]["math_verify"] == pytest.approx(STUDENT_MV)
    assert s["reference"]["exact_match"] == pytest.approx(TEACHER_EM)
    assert s["reference"]["math_verify"] == pytest.approx(TEACHER_MV)
    assert ev.results["complete"] and ev.results["rows_done"] == 6
    by_id = {r["id"]: r for r in ev.rows}
    assert [by_id[f"q{i}"]["model_exact_match"] for i in range(6)] == [True, False, True, False, False, True]
    assert [by_id[f"q{i}"]["model_math_verify"] for i in range(6)] == [True, True, False, False, True, True]
    assert by_id["q3"]["model_answer"] == "<think>6*7=42</think>41"

    # the views: table per model and metric, drill-down of wrong answers, exports
    headers, table = results.summary_table(ev.results)
    assert headers[:4] == ["role", "model", "exact_match", "math_verify"] and [r[0] for r in table] == ["model",
                                                                                                          "reference"]
    _, wrong = results.drilldown(ev.rows, "model_wrong")
    assert {r[0] for r in wrong} == {"q2", "q3"}  # math-verify decides when it ran
    md = results.export(ev, "md").read_text()
    assert "| model |" in md and "0.6667" in md
    with open(results.export(ev, "csv"), newline="") as f:
        csv_rows = list(csv.DictReader(f))
    assert len(csv_rows) == 6 and csv_rows[5]["gold"] == "She makes 9*2 = 18 dollars\n#### 18"
    both = json.loads(results.export(ev, "json").read_text())
    assert len(both["rows"]) == 6 and both["results"]["summary"] == ev.results["summary"]


JUDGE_Q = ["one", "two", "three", "four"]
STUDENT_J = {"one": "good answer", "two": "good answer", "three": "good answer", "four": "bad answer"}
TEACHER_J = {q: "okay answer" for q in JUDGE_Q}


def _sides(messages: list[dict]) -> tuple[str, str, str]:
    text = messages[-1]["content"]
    q = re.search(r"\[Question\]\n(.*?)\n\n\[Answer A\]", text, re.S).group(1)
    a = re.search(r"\[Answer A\]\n(.*?)\n\n\[Answer B\]", text, re.S).group(1)
    b = re.search(r"\[Answer B\]\n(.*?)\n\n", text, re.S).group(1)
    return q, a, b


def fair_judge(messages: list[dict]) -> str:
    """Good beats okay beats bad, wherever it is shown."""
    _, a, b = _sides(messages)
    rank = {"good answer": 2, "okay answer": 1, "bad answer": 0}
    verdict = "A" if rank[a] > rank[b] else "B" if rank[b] > rank[a] else "C"
    return f"Comparing both. Output format is [[A]], [[B]] or [[C]].\nVerdict: [[{verdict}]]"


def first_position_judge(messages: list[dict]) -> str:
    return "The first one reads better. [[A]]"


@pytest.mark.parametrize("judge_fn, expected", [
    (fair_judge, {"winrate": 0.75, "wins": 3, "losses": 1, "ties": 0, "consistency": 1.0}),
    (first_position_judge, {"winrate": 0.5, "wins": 0, "losses": 0, "ties": 4, "consistency": 0.0,
                            "first_position_rate": 1.0}),
])
def test_judge_winrate_with_position_swap(workspace, judge_fn, expected):
    ds = _dataset(workspace, "chat", [{"id": q, "instruction": q} for q in JUDGE_Q])
    with FakeOpenAIServer(_answers(STUDENT_J)) as student, FakeOpenAIServer(_answers(TEACHER_J)) as teacher, \
            FakeOpenAIServer(judge_fn) as judge:
        cfg = EvaluateJob(model=_remote(student), reference=_remote(teacher), judge=_remote(judge), dataset=ds,
                          metrics=["judge_winrate"])
        ctx = _ctx(workspace)
        run(cfg, ctx)
        # every row was judged twice, once with the student's answer as A and once as B
        seen = [_sides(r.messages) for r in judge.answered()]
        assert len(seen) == 2 * len(JUDGE_Q)
        for q in JUDGE_Q:
            orders = {(a, b) for qq, a, b in seen if qq == q}
            assert orders == {(STUDENT_J[q], TEACHER_J[q]), (TEACHER_J[q], STUDENT_J[q])}
    ev = results.load(ctx.output_dir)
    j = ev.results["judge"]
    for k, v in expected.items():
        assert j[k] == pytest.approx(v), k
    assert ev.results["summary"]["model"]["judge_winrate"] == pytest.approx(expected["winrate"])
    row = next(r for r in ev.rows if r["id"] == "four")
    assert row["judge_raw_first"] and row["judge_raw_second"]
    if judge_fn is fair_judge:
        assert row["judge_outcome"] == "loss" and (row["judge_model_first"], row["judge_model_second"]) == ("B", "A")
        _, losses = results.drilldown(ev.rows, "judge_loss")
        assert [r[0] for r in losses] == ["four"]


def test_unparseable_judge_is_counted_not_guessed(workspace):
    ds = _dataset(workspace, "chat", [{"id": q, "instruction": q} for q in JUDGE_Q[:2]])
    with FakeOpenAIServer(_answers(STUDENT_J)) as student, FakeOpenAIServer(_answers(TEACHER_J)) as teacher, \
            FakeOpenAIServer(lambda m: "Both answers have merits.") as judge:
        cfg = EvaluateJob(model=_remote(student), reference=_remote(teacher), judge=_remote(judge), dataset=ds,
                          metrics=["judge_winrate"])
        ctx = _ctx(workspace)
        run(cfg, ctx)
    ev = results.load(ctx.output_dir)
    assert ev.results["judge"]["unjudged"] == 2 and ev.results["judge"]["winrate"] is None
    assert "judge_winrate" not in ev.results["summary"].get("model", {})


def test_kl_zero_against_itself_and_positive_for_the_student(workspace, tiny_models):
    rows = [{"id": f"r{i}", "instruction": q} for i, q in
            enumerate(["what is the answer", "tell me a story", "how do we learn", "name three numbers"])]
    ds = _dataset(workspace, "held", rows)
    teacher = BackendSpec(type="transformers", model=str(tiny_models.teacher), batch_size=4)
    student = BackendSpec(type="transformers", model=str(tiny_models.student), batch_size=4)
    base = {"dataset": ds, "metrics": ["kl", "perplexity"], "top_k": 50}

    ctx = _ctx(workspace, "self")
    run(EvaluateJob(model=teacher, reference=teacher, **{**base, "sampling": {"temperature": 0, "max_new_tokens": 12}}),
        ctx)
    same = results.load(ctx.output_dir)
    # zero up to float noise (the two forward passes run in separate model instances)
    assert same.results["summary"]["model"]["kl"] == pytest.approx(0.0, abs=1e-6)
    assert all(r["kl"] == pytest.approx(0.0, abs=1e-6) for r in same.rows)
    ppl_self = same.results["summary"]["model"]["perplexity"]
    assert ppl_self == pytest.approx(same.results["summary"]["reference"]["perplexity"])

    ctx = _ctx(workspace, "student")
    run(EvaluateJob(model=student, reference=teacher, **{**base, "sampling": {"temperature": 0, "max_new_tokens": 12}}),
        ctx)
    st = results.load(ctx.output_dir)
    s = st.results["summary"]
    assert s["model"]["kl"] > 0.0 and all(r["kl"] > 0 for r in st.rows)
    # measured on the teacher's own greedy answers: the teacher finds them likelier than the student does
    assert s["reference"]["perplexity"] == pytest.approx(ppl_self)
    assert s["model"]["perplexity"] > s["reference"]["perplexity"]
    assert st.results["response_source"] == "reference"

    c = compare(same, st)
    kl_row = next(x for x in c.summary if x["role"] == "model" and x["metric"] == "kl")
    assert kl_row["better"] == "a" and kl_row["delta"] > 0


def test_perplexity_on_dataset_responses_without_reference(workspace, tiny_models):
    ds = _dataset(workspace, "labelled", [{"id": "a", "instruction": "say hi", "output": "hello there friend"},
                                          {"id": "b", "instruction": "count", "output": "one two three"}])
    ctx = _ctx(workspace)
    run(EvaluateJob(model=BackendSpec(model=str(tiny_models.student)), dataset=ds, metrics=["perplexity"]), ctx)
    ev = results.load(ctx.output_dir)
    assert ev.results["response_source"] == "dataset"
    assert ev.results["summary"]["model"]["perplexity"] > 1.0
    assert all(r["model_perplexity"] > 1.0 for r in ev.rows)


def test_stop_keeps_rows_and_resume_finishes_without_redoing(workspace):
    rows = [{"id": f"q{i}", "instruction": f"question {i}", "answer": str(i)} for i in range(20)]
    ds = _dataset(workspace, "many", rows)
    ctx = _ctx(workspace)
    calls = []

    def answer(messages: list[dict]) -> str:
        calls.append(1)
        if len(calls) == 3:
            (ctx.run_dir / STOP_FLAG).touch()  # the user pressed Stop while the first batch was answered
        n = messages[-1]["content"].split()[-1]
        return n if int(n) % 2 == 0 else "wrong"

    with FakeOpenAIServer(answer) as srv:
        cfg = EvaluateJob(model=_remote(srv), dataset=ds, metrics=["exact_match"])
        run(cfg, ctx)
        first = results.load(ctx.output_dir)
        assert not first.results["complete"]
        done = first.results["rows_done"]
        assert 0 < done < 20
        assert first.results["summary"]["model"]["exact_match_n"] == done

        (ctx.run_dir / STOP_FLAG).unlink()
        run(cfg, _ctx(workspace, attempt=2))
        assert len(srv.answered()) == 20  # no row answered twice
    final = results.load(ctx.output_dir)
    assert final.results["complete"] and final.results["rows_done"] == 20
    assert final.results["summary"]["model"]["exact_match"] == pytest.approx(0.5)


def test_bad_input_is_named(workspace):
    with pytest.raises(DataError, match="dataset 'missing' not found"):
        run(EvaluateJob(model=BackendSpec(model="x"), dataset="missing"), _ctx(workspace))
    ds = _dataset(workspace, "nogold", [{"instruction": "hi"}])
    with pytest.raises(ValueError, match="answer_field"):
        run(EvaluateJob(model=BackendSpec(model="x"), dataset=ds, metrics=["exact_match"]), _ctx(workspace))
    from core.config import ConfigError
    from core.config.io import parse_config

    with pytest.raises(ConfigError, match="kl needs 'reference'"):
        parse_config({"kind": "evaluate", "model": {"model": "x"}, "dataset": ds, "metrics": ["kl"]})
    with pytest.raises(ConfigError, match="judge_winrate needs"):
        parse_config({"kind": "evaluate", "model": {"model": "x"}, "dataset": ds, "metrics": ["judge_winrate"]})
