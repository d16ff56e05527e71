"""The Critique–Rethink–Verify job against the scripted OpenAI-compatible test server: labels, rewrites and
verification recorded per row, typed pairs (pair_type) right, medium / unverified / failed rows kept as rejects with the
reason; a stopped run resumed without asking any (row, stage) twice."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from core.config.pairs_jobs import CrvJob
from core.data.io import write_records
from core.jobs.context import JobContext
from core.pairs import crv
from core.synth.parsing import ParseFailure
from tests.fake_openai_server import FakeOpenAIServer
from tests.job_support import each_row_once, job_context, kill_when_written, lines, resume_to_success
from tests.scripted_backend import ScriptedBackend

LABELS = ("easy", "medium", "hard")


def _stage(messages: list[dict]) -> tuple[int, str]:
    """(question number, stage) of a request, from the default templates' wording."""
    user = messages[-1]["content"]
    n = int(re.search(r"Question (\d+)\?", user).group(1))
    if "suits that student" in user:
        return n, "critique"
    if "Extend it" in user:
        return n, "short2long"
    if "Simplify it" in user:
        return n, "long2short"
    if "Rewritten solution" in user:
        return n, "verify"
    raise AssertionError(f"unexpected request: {user[:200]}")


def label_of(n: int) -> str:
    return LABELS[n % 3]


def scripted(messages: list[dict]) -> str:
    """Critic: easy / medium / hard by n mod 3 (question 10 gets no label); rethinker: an extended or shortened chain
    (question 6 loses its answer); verifier judge: 1 when the rewrite keeps the original's boxed answer."""
    n, stage = _stage(messages)
    if stage == "critique":
        if n == 10:
            return "I cannot decide."
        return f"The steps are uneven for this student. <label>{label_of(n)}</label>"
    if stage == "short2long":
        boxed = 999 if n == 6 else n
        return f"First, read the question. Then compute carefully, step by step. So \\boxed{{{boxed}}}"
    if stage == "long2short":
        return f"Directly: \\boxed{{{n}}}"
    user = messages[-1]["content"]
    original, rewrite = user.split("Rewritten solution:")
    answers = [re.findall(r"boxed\{(\d+)\}", t)[-1] for t in (original, rewrite)]
    return f"Compared. <score>{int(answers[0] == answers[1])}</score>"


def _rows(n: int) -> list[dict]:
    rows = [{"id": f"c{i:02d}", "instruction": f"Question {i}?",
             "output": f"<think>hmm, let me think about {i}, wait, again</think> The answer is \\boxed{{{i}}}",
             "answer": str(i), "source": "unit"} for i in range(n)]
    return rows


def _endpoint(srv, **kw) -> dict:
    return {"type": "openai", "endpoint": {"base_url": srv.base_url, "concurrency": 4, "max_retries": 0,
                                           "timeout_s": 0.5, **kw}}


def _run(cfg, ws, tmp_path, attempt: int = 1) -> None:
    crv.run(cfg, job_context(ws, tmp_path, "c", attempt))


def test_parse_label():
    assert crv.parse_label("Too long for it. <label>Hard</label>") == "hard"
    assert crv.parse_label("<think>easy? medium?</think>It is medium, not easy... I say easy") == "easy"
    with pytest.raises(ParseFailure):
        crv.parse_label("no idea")


def test_crv_records_labels_rewrites_verdicts_and_keeps_rejects(workspace, tmp_path):
    rows = _rows(12)
    rows[9]["answer"] = ""  # no reference: the rewrite is checked against the original's final answer
    rows[11] = {"id": "c11", "instruction": "Question 11?"}  # no chain of thought: an input reject
    write_records(workspace.datasets / "cot.jsonl", rows)
    ids = [r["id"] for r in rows]
    with FakeOpenAIServer(answer=scripted, model="critic-m", fault_rate=0.25, seed=2, hang_s=1.0,
                          retry_after=0.01) as srv:
        cfg = CrvJob(input="cot", critic=_endpoint(srv), student_size="1.5B")
        _run(cfg, workspace, tmp_path)
        ok, bad = each_row_once(workspace, "cot-crv", ids)
        assert any(r["stage"] == "request" for r in bad), "with 25% faults and no retry some requests fail"
        asked_first = Counter(_stage(r.messages) for r in srv.answered())
        srv.fault_rate = 0.0
        _run(cfg.model_copy(update={"retry_rejects": True}), workspace, tmp_path, attempt=2)
        ok, bad = each_row_once(workspace, "cot-crv", ids)
        asked_all = Counter(_stage(r.messages) for r in srv.answered())
    # what was answered in the first run is on record and not asked again
    again = [k for k in asked_first if asked_all[k] > 1 and k != (10, "critique")]  # 10's reply had no label
    assert not again, "a recorded critique or rewrite was asked for again"
    by_id = {r["id"]: r for r in ok}
    rejects = {r["id"]: r for r in bad}
    assert sorted(by_id) == ["c00", "c02", "c03", "c05", "c08", "c09"]
    for rid, r in by_id.items():
        n = int(rid[1:])
        original = rows[n]["output"]
        assert r["difficulty"] == label_of(n) and r["critic"] == "critic-m" and "label>" in r["critique"]
        assert r["rejected"] == original and r["instruction"] == f"Question {n}?" and r["source"] == "unit"
        assert r["verified"] is True and r["verified_by"] == "math-verify"
        if label_of(n) == "easy":
            assert r["pair_type"] == "short2long" and r["chosen"].startswith("First, read")
            assert r["expansion_ratio"] == round(len(r["chosen"]) / len(original), 4)
        else:
            assert r["pair_type"] == "long2short" and r["chosen"] == f"Directly: \\boxed{{{n}}}"
            assert r["compression_ratio"] == round(len(r["chosen"]) / len(original), 4)
    assert by_id["c09"]["verified_against"] == "original" and by_id["c00"]["verified_against"] == "reference"
    assert {k: (r.get("drop") or r["stage"]) for k, r in rejects.items()} == {
        "c01": "medium", "c04": "medium", "c07": "medium", "c06": "unverified", "c10": "parse", "c11": "input"}
    c06 = rejects["c06"]["input"]
    assert c06["difficulty"] == "easy" and "999" in c06["rewrite"] and c06["verified"] is False
    assert rejects["c01"]["input"]["difficulty"] == "medium" and "rewrite" not in rejects["c01"]["input"]
    # the ledger holds one critique per labelled row, one rewrite per easy/hard row
    ledger = lines(workspace.datasets / "cot-crv.crv.ndjson")
    assert Counter(e["what"] for e in ledger) == {"critique": 10, "rethink": 7}
    meta = json.loads((workspace.datasets / "cot-crv.meta.json").read_text())
    assert meta["stats"]["pair_types"] == {"long2short": 3, "short2long": 3}
    assert meta["stats"]["labels"] == {"easy": 4, "hard": 3, "medium": 3}


def test_crv_judge_verifier_and_corrupted_pairs(workspace, tmp_path):
    rows = _rows(9)
    write_records(workspace.datasets / "cot.jsonl", rows)
    with FakeOpenAIServer(answer=scripted, model="critic-m") as critic, \
            FakeOpenAIServer(answer=scripted, model="judge-m") as judge:
        cfg = CrvJob(input="cot", critic=_endpoint(critic), verifier="judge", verify_judge=_endpoint(judge),
                     corrupted_pairs=True)
        _run(cfg, workspace, tmp_path)
        assert {_stage(r.messages)[1] for r in judge.answered()} == {"verify"}
        assert len(judge.answered()) == 6 and all(r.body["temperature"] == 0 for r in judge.answered())
    ok, bad = each_row_once(workspace, "cot-crv", [r["id"] for r in rows])
    by_id = {r["id"]: r for r in ok}
    assert sorted(by_id) == ["c00", "c02", "c03", "c05", "c06", "c08"]
    assert all(r["verified_by"] == "judge-m" for r in ok)
    # question 6's extension lost the answer: with corrupted_pairs the correct original is chosen over it
    c06 = by_id["c06"]
    assert c06["pair_type"] == "corrupted" and c06["chosen"] == rows[6]["output"] and "999" in c06["rejected"]
    assert c06["verified"] is False
    assert {r["id"] for r in bad} == {"c01", "c04", "c07"}


class ScriptedLocal(ScriptedBackend):
    """A local (batched) model double answering like the server, counting (question, stage) calls."""

    def __init__(self, on_call=None):
        super().__init__(scripted, _stage, "local-m", on_call)


def test_crv_stop_and_resume_asks_nothing_twice(workspace, tmp_path, monkeypatch):
    from core.jobs.context import STOP_FLAG
    from core.pairs import common

    rows = _rows(9)
    write_records(workspace.datasets / "cot.jsonl", rows)
    run_dir = tmp_path / "run"
    run_dir.mkdir()

    def stop_at(n):
        if n == 11:  # in the rethink stage's first batch
            (run_dir / STOP_FLAG).touch()

    first = ScriptedLocal(on_call=stop_at)
    monkeypatch.setattr(common, "make_model", lambda spec, ws, **kw: first)
    cfg = CrvJob(input="cot", critic={"type": "transformers", "model": "x", "batch_size": 4})
    crv.run(cfg, JobContext("s", run_dir, workspace))
    assert len(first.calls) == 9 + 4  # all critiques, then one rethink batch
    assert json.loads((workspace.datasets / "cot-crv.meta.json").read_text())["stopped"]
    (run_dir / STOP_FLAG).unlink()
    second = ScriptedLocal()
    monkeypatch.setattr(common, "make_model", lambda spec, ws, **kw: second)
    crv.run(cfg, JobContext("s", run_dir, workspace, attempt=2))
    assert not set(first.calls) & set(second.calls) and len(first.calls) + len(second.calls) == 9 + 6
    ok, bad = each_row_once(workspace, "cot-crv", [r["id"] for r in rows])
    assert len(ok) == 5 and {r["id"] for r in bad} == {"c01", "c04", "c06", "c07"}
    assert all(r["critic"] == "local-m" and r["rethinker"] == "local-m" for r in ok)


def test_crv_runs_headless_from_a_yaml_config(tmp_path):
    """`easydistill --config crv.yaml` in its own process: the kind is registered and its entry runs."""
    import subprocess
    import sys

    import yaml

    from core.workspace import Workspace

    ws = Workspace.open(tmp_path / "ws")
    write_records(ws.datasets / "cot.jsonl", _rows(6))
    with FakeOpenAIServer(answer=scripted, model="critic-m") as srv:
        cfg = tmp_path / "crv.yaml"
        cfg.write_text(yaml.safe_dump({"kind": "crv", "name": "crv-cli", "input": "cot", "output": "cogpo",
                                       "student_size": "7B", "critic": _endpoint(srv)}))
        proc = subprocess.run([sys.executable, "-m", "core.cli.main", "--workspace", str(ws.root), "--config",
                               str(cfg)], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        critiques = [r for r in srv.answered() if _stage(r.messages)[1] == "critique"]
        assert len(critiques) == 6 and all("about 7B parameters" in r.last_user for r in critiques)
    ok, bad = each_row_once(ws, "cogpo", [f"c{i:02d}" for i in range(6)])
    assert sorted((r["id"], r["pair_type"]) for r in ok) == [
        ("c00", "short2long"), ("c02", "long2short"), ("c03", "short2long"), ("c05", "long2short")]
    assert {r["id"]: r["drop"] for r in bad} == {"c01": "medium", "c04": "medium"}


def test_train_dpo_reads_crv_pairs_with_a_beta_per_pair_type(workspace, tmp_path):
    """The contract with the trainer: CRV rows load as DPO pairs, pair_type picks each pair's β (CogPO)."""
    from core.config.train import DpoJob
    from core.train.preference import load_pairs

    write_records(workspace.datasets / "cot.jsonl", _rows(9))
    with FakeOpenAIServer(answer=scripted) as srv:
        _run(CrvJob(input="cot", critic=_endpoint(srv), corrupted_pairs=True), workspace, tmp_path)
    dpo = DpoJob(student="s", dataset="cot-crv", beta=0.1,
                 pair_type_beta={"short2long": 0.3, "long2short": 0.5})
    pairs = load_pairs(JobContext("d", tmp_path / "run", workspace), dpo, with_beta=True)
    by_id = {p["id"]: p for p in pairs.train}
    assert sorted(by_id) == ["c00", "c02", "c03", "c05", "c06", "c08"]
    assert {i: by_id[i]["beta"] for i in by_id} == {"c00": 0.3, "c03": 0.3, "c02": 0.5, "c05": 0.5, "c08": 0.5,
                                                    "c06": 0.1}  # corrupted: no type β given -> the global β
    assert by_id["c02"]["prompt"] == [{"role": "user", "content": "Question 2?"}]
    assert by_id["c02"]["chosen"][0]["content"] == "Directly: \\boxed{2}"
    assert by_id["c02"]["rejected"][0]["content"] == _rows(9)[2]["output"]


def test_killed_crv_job_resumes_without_loss_or_repeated_calls(workspace):
    from core.jobs.manager import JobManager

    rows = _rows(60)
    write_records(workspace.datasets / "many.jsonl", rows)
    jm = JobManager(workspace)
    side = workspace.datasets / "many-crv.crv.ndjson"
    with FakeOpenAIServer(answer=scripted, latency=0.03) as srv:
        job_id = jm.submit(CrvJob(input="many", critic=_endpoint(srv, max_retries=2)))
        kill_when_written(jm, job_id, side, rows=25)
        recorded = {(e["row_id"], e["what"]) for e in lines(side)}
        resumed_at = resume_to_success(jm, job_id)
        again = {_stage(r.messages) for r in srv.answered() if r.started >= resumed_at}
    stage_of = {"critique": "critique", "short2long": "rethink", "long2short": "rethink"}
    assert not {(f"c{n:02d}", stage_of[s]) for n, s in again} & recorded, "a recorded call was made again"
    entries = lines(side)
    # a critique per row but c10 (its reply has no label), a rewrite per easy/hard row
    assert len(entries) == len({e["id"] for e in entries}) == 59 + 40
    ok, bad = each_row_once(workspace, "many-crv", [r["id"] for r in rows])
    assert len(ok) == 39  # c06's rewrite lost its answer
    assert Counter(r.get("drop") or r["stage"] for r in bad) == {"medium": 19, "unverified": 1, "parse": 1}
