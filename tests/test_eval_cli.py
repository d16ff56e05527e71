"""`easydistill eval ...` end to end: a real evaluate job process against a local OpenAI-compatible server, then
show / export / compare from the command line."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from core.models.registry import EndpointEntry, save_endpoint
from tests.fake_openai_server import FakeOpenAIServer

pytestmark = pytest.mark.timeout(300)

ROWS = [("2+2?", "4"), ("3+3?", "6"), ("capital of Italy?", "Rome"), ("10/4?", "2.5")]


def _cli(ws, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core.cli.main", "--workspace", str(ws.root), *args],
                          capture_output=True, text=True, timeout=240)


def _evaluate(ws, answers: dict[str, str], endpoint: str) -> str:
    with FakeOpenAIServer(lambda msgs: answers[msgs[-1]["content"]]) as srv:
        save_endpoint(ws, EndpointEntry(name=endpoint, base_url=srv.base_url, model="fake-model"))
        r = _cli(ws, "eval", "run", "--model", f"endpoint:{endpoint}", "--dataset", "quiz",
                 "--metrics", "exact_match,math_verify", "--name", endpoint)
        assert r.returncode == 0, r.stderr
    return re.search(r"job (\S+) \(evaluate\) submitted", r.stderr).group(1)


def test_eval_run_show_export_compare(workspace):
    (workspace.datasets / "quiz.jsonl").write_text(
        "".join(json.dumps({"id": f"q{i}", "instruction": q, "answer": a}) + "\n" for i, (q, a) in enumerate(ROWS)))
    before = _evaluate(workspace, {"2+2?": "4", "3+3?": "five", "capital of Italy?": "Milan", "10/4?": "5/2"},
                       "before")
    after = _evaluate(workspace, {"2+2?": "4", "3+3?": "6", "capital of Italy?": "Rome", "10/4?": "2"}, "after")

    r = _cli(workspace, "eval", "show", before, "--json", "--rows", "10")
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    assert shown["results"]["summary"]["model"]["exact_match"] == pytest.approx(1 / 4)
    assert shown["results"]["summary"]["model"]["math_verify"] == pytest.approx(2 / 4)  # 5/2 == 2.5
    assert [row["id"] for row in shown["rows"]] == ["q0", "q1", "q2", "q3"]

    r = _cli(workspace, "eval", "show", after)
    assert r.returncode == 0 and "| model |" in r.stdout

    out = workspace.root / "report.md"
    r = _cli(workspace, "eval", "export", after, "--format", "md", "--out", str(out))
    assert r.returncode == 0 and out.read_text().startswith("# Evaluation: after")

    r = _cli(workspace, "eval", "compare", before, after, "--json")
    assert r.returncode == 0, r.stderr
    cmp = json.loads(r.stdout)
    em = next(s for s in cmp["summary"] if s["role"] == "model" and s["metric"] == "exact_match")
    assert (em["a"], em["b"], em["better"]) == (0.25, 0.75, "b")
    changes = {c["id"]: c["change"] for c in cmp["changed"]}
    assert changes == {"q1": "fixed", "q2": "fixed", "q3": "broken"}

    r = _cli(workspace, "eval", "show", "no-such-run")
    assert r.returncode == 2 and "no evaluation" in r.stderr
    r = _cli(workspace, "eval", "run", "--model", "x", "--dataset", "quiz", "--metrics", "bleu")
    assert r.returncode == 2 and "unknown metric" in r.stderr
