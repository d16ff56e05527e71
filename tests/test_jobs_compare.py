"""Compare runs: two finished self-test runs (real job processes) overlaid in one figure, exactly the config keys that
differ, final metrics, `easydistill jobs compare` printing them; a pipeline's steps diffed by name; evaluations of
several jobs side by side."""

from __future__ import annotations

import json

import pytest

from core.config.selftest import SelftestJob
from core.eval import results
from core.eval.compare import side_by_side
from core.jobs import compare
from core.jobs.manager import JobManager
from core.jobs.selftest import fake_loss
from core.workspace import Workspace

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two finished self-tests that differ in `steps` (and name) only: (workspace, manager, [short id, long id])."""
    ws = Workspace.open(tmp_path_factory.mktemp("compare") / "ws")
    m = JobManager(ws)
    ids = [m.submit(SelftestJob(steps=n, delay_s=0.01, name=name)) for n, name in ((4, "short"), (7, "long"))]
    for job_id in ids:
        assert m.wait(job_id, timeout=60).status == "succeeded"
    return ws, m, ids


def test_two_runs_overlaid_and_their_config_diff(two_runs):
    _, m, ids = two_runs
    runs = compare.load_runs(m, [ids[0], ids[1][:-1]])  # an id prefix works as in the other commands
    assert [r.label for r in runs] == ["short", "long"]
    assert compare.config_diff(runs) == [("name", ["short", "long"]), ("steps", [4, 7])]  # delay_s etc. equal
    headers, rows = compare.diff_table(runs)
    assert headers == ["key", "short", "long"] and rows == [["name", "short", "long"], ["steps", "4", "7"]]

    fig = compare.curves_figure(runs)
    loss = [t for t in fig.data if t.meta["metric"] == "loss"]
    assert [t.name for t in loss] == ["short", "long"]  # both series in the loss panel
    assert list(loss[0].x) == [1, 2, 3, 4] and list(loss[1].x) == list(range(1, 8))
    assert loss[1].y[-1] == pytest.approx(fake_loss(7, 7), abs=1e-5)
    assert loss[0].line.color != loss[1].line.color
    assert [t.showlegend for t in fig.data].count(True) == 2  # one legend entry per run

    headers, rows = compare.metrics_table(runs)
    table = {r[0]: r[1:] for r in rows}
    assert table["status"] == ["succeeded", "succeeded"]
    assert table["loss"] == pytest.approx([fake_loss(4, 4), fake_loss(7, 7)], abs=1e-5)

    with pytest.raises(compare.CompareError, match="2 to 4"):
        compare.load_runs(m, [ids[0], ids[0]])  # the same run twice is one run


def test_cli_compare_prints_the_diff_and_writes_the_plot(two_runs, tmp_path, capsys):
    from core.cli.main import main

    ws, _, ids = two_runs
    cli = ["--workspace", str(ws.root), "jobs", "compare"]
    out = tmp_path / "curves.html"
    assert main([*cli, *ids, "--plot", str(out)]) == 0
    printed = capsys.readouterr().out
    diff = printed.split("config (changed keys only):")[1].split("final metrics:")[0]
    lines = [ln.split() for ln in diff.strip().splitlines()]
    assert lines[0] == ["key", "short", "long"] and lines[2:] == [["name", "short", "long"], ["steps", "4", "7"]]
    assert "no evaluation results" in printed
    html = out.read_text(encoding="utf-8")
    assert '"name":"short"' in html and '"name":"long"' in html

    assert main([*cli, *ids, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [d["key"] for d in doc["config_diff"]] == ["name", "steps"]
    assert doc["metrics"]["long"]["loss"] == pytest.approx(fake_loss(7, 7), abs=1e-5)
    assert main([*cli, ids[0]]) == 2 and "2 to 4" in capsys.readouterr().err


def _run(config: dict, records: list[dict] | None = None, name: str = "") -> compare.Run:
    return compare.Run(id=name, name=name, kind=config.get("kind", ""), status="succeeded", run_dir=None,
                       config=config, records=records or [], label=name)


def test_pipeline_steps_are_diffed_by_name():
    def demo(lr: float, kd: bool) -> dict:
        steps = [{"name": "sft", "job": {"kind": "train_sft", "learning_rate": lr, "lora": {"r": 8}}}]
        if kd:
            steps.append({"name": "kd", "job": {"kind": "train_kd", "divergence": "forward_kl"}})
        return {"kind": "pipeline", "name": "demo", "steps": steps, "metrics": ["kl", "perplexity"]}

    a, b = _run(demo(3e-4, False), name="a"), _run(demo(1e-4, True), name="b")
    assert compare.flatten(a.config)["steps.sft.job.lora.r"] == 8
    assert compare.config_diff([a, b]) == [("steps.sft.job.learning_rate", [3e-4, 1e-4]),
                                           ("steps.kd.job.kind", [compare.MISSING, "train_kd"]),
                                           ("steps.kd.job.divergence", [compare.MISSING, "forward_kl"])]
    # a pipeline's curves: one trace per run and stage, the stage named
    recs = [{"step": 1, "loss": 2.0, "stage": "sft"}, {"step": 2, "loss": 1.5, "stage": "sft"},
            {"step": 1, "loss": 1.2, "stage": "kd"}]
    fig = compare.curves_figure([_run({}, recs, "a"), _run({}, recs[:2], "b")], names=["loss"])
    assert [t.name for t in fig.data] == ["a · sft", "a · kd", "b · sft"]
    assert compare.final_values(recs) == {"loss (sft)": 1.5, "loss (kd)": 1.2}


def test_evaluations_side_by_side(workspace):
    def write(run: str, step: str | None, kl: float, student: str) -> None:
        folder = workspace.runs / run / "output" / (step or "")
        results.save(folder, {"name": run, "evaluated": ["model"], "models": {"model": student, "reference": "t"},
                              "summary": {"model": {"kl": kl, "perplexity": 10 * kl}}}, [])

    (workspace.runs / "pipe" / "output").mkdir(parents=True)
    (workspace.runs / "pipe" / "pipeline.json").write_text(json.dumps({"steps": ["eval-sft", "sft", "eval-kd"]}))
    write("pipe", "eval-kd", 1.5, "kd-student")
    write("pipe", "eval-sft", 2.0, "sft-student")
    write("plain", None, 3.0, "other")
    (workspace.runs / "train").mkdir()  # a run with no evaluation
    assert [s for s, _ in results.find_all(workspace.runs / "pipe")] == ["eval-sft", "eval-kd"]  # pipeline order
    headers, rows = side_by_side([("P", workspace.runs / "pipe"), ("Q", workspace.runs / "plain"),
                                  ("T", workspace.runs / "train")], workspace)
    assert headers == ["evaluation", "role", "metric", "P", "Q", "T"]
    got = {tuple(r[:3]): r[3:] for r in rows}
    assert got[("eval-sft", "model", "kl")] == [2.0, None, None]
    assert got[("eval-kd", "model", "model")] == ["kd-student", None, None]
    assert got[("", "model", "kl")] == [None, 3.0, None]
    assert side_by_side([("T", workspace.runs / "train")], workspace) == (["evaluation", "role", "metric", "T"], [])
