"""The Data tab's whole-dataset buttons run as data jobs (issue 17): each job kind writes its outputs and a result the
tab shows; the tab's handlers submit real jobs (a worker process), show what they made, and Stop them."""

from __future__ import annotations

import json

import pytest

from core.data.job import op_job, run, writes
from core.data.rows import iter_jsonl_rows
from core.data.store import save_rows
from core.jobs.context import STOP_FLAG, JobContext


def _dataset(ws, name: str = "x", n: int = 300) -> None:
    save_rows(ws, name, [{"id": f"r{i}", "instruction": f"q{i % 100}", "output": f"a{i % 7}",
                          "category": ["Math", "Writing"][i % 2]} for i in range(n)], created_by="test")


def _run(ws, kind: str, stop: bool = False, **values) -> tuple[JobContext, dict | None]:
    ctx = JobContext(job_id=kind, run_dir=ws.runs / kind, workspace=ws)
    ctx.run_dir.mkdir(parents=True)
    if stop:
        (ctx.run_dir / STOP_FLAG).touch()
    run(op_job(ws, kind, "x", **values), ctx)
    out = ctx.output_dir / "result.json"
    return ctx, json.loads(out.read_text()) if out.exists() else None


def test_each_data_job_writes_its_outputs_result_and_progress_in_rows(workspace):
    _dataset(workspace)
    _, res = _run(workspace, "data_split", eval_share=0.3, seed=1)
    assert res["train_rows"] + res["eval_rows"] == 300 and (workspace.datasets / "x-eval.jsonl").exists()
    _, res = _run(workspace, "data_dedupe", by="instruction")
    assert (res["kept"], res["removed"]) == (100, 200)
    assert [r["id"] for r in iter_jsonl_rows(workspace.datasets / "x-dedup.jsonl")] == [f"r{i}" for i in range(100)]
    ctx, res = _run(workspace, "data_stats")
    assert res["stats"]["rows"] == 300 and res["stats"]["duplicate_instructions"] == 200
    last = json.loads(ctx.metrics_path.read_text().splitlines()[-2])
    assert (last["step"], last["total"], last["unit"]) == (300, 300, "rows")
    _, res = _run(workspace, "data_export", format="alpaca", llamafactory=True)
    assert res["written"] == 300 and res["info_name"] == "x-alpaca"
    assert len(json.loads((workspace.datasets / "exports" / "x-alpaca.json").read_text())) == 300
    _, res = _run(workspace, "data_balance", shares={"Math": 1.0}, total=50)
    assert res["after"] == {"Math": 50} and res["name"] == "x-balanced"


def test_a_data_job_asked_to_stop_writes_nothing_and_says_so(workspace):
    _dataset(workspace)
    before = sorted(p.name for p in workspace.datasets.iterdir())
    for kind in ("data_split", "data_dedupe", "data_stats"):
        ctx, res = _run(workspace, kind, stop=True)
        assert res is None
        assert "stopped on request after 0 rows read: nothing written" in ctx.metrics_path.read_text()
    assert sorted(p.name for p in workspace.datasets.iterdir()) == before


def test_data_jobs_name_what_they_write_so_two_writers_never_meet(workspace):
    from core.jobs.outputs import writes as job_writes

    split = op_job(workspace, "data_split", "x", train_output="tr")
    assert [p.name for p in writes(split, workspace)] == ["tr.jsonl", "x-eval.jsonl"]
    assert any(w.endswith("x-dedup.jsonl") for w in job_writes(op_job(workspace, "data_dedupe", "x"), workspace))
    assert job_writes(op_job(workspace, "data_stats", "x"), workspace) == []


def test_the_data_tab_runs_split_and_export_as_jobs_and_stops_them(workspace):
    """The handlers the buttons call: a real job per click, its outcome worded for the tab, Stop honoured."""
    from studio.tabs.data import op_outcome, op_state, submit_op
    from studio.ui import UIContext

    _dataset(workspace, n=20_000)
    ui = UIContext(workspace)
    try:
        job_id, msg = submit_op(ui, "data_split", "x", eval_share=0.25, seed=4)
        assert job_id and job_id in msg
        assert ui.jobs().wait(job_id, 90).status == "succeeded"
        line, runs, res, kind = op_state(ui, job_id)
        assert not runs and "Succeeded" in line and kind == "data_split"
        _, _, said = op_outcome(ui, kind, res)
        assert said.startswith("✅ `x-train`:") and res["train_rows"] + res["eval_rows"] == 20_000
        assert sum(1 for _ in iter_jsonl_rows(workspace.datasets / "x-eval.jsonl")) == res["eval_rows"]

        job_id, _ = submit_op(ui, "data_dedupe", "x")
        assert ui.job_action("stop", job_id, "data.job_stopping", "data.no_job") == \
            f"Stopping job `{job_id}`: it writes nothing."
        info = ui.jobs().wait(job_id, 90)
        assert info.status in ("stopped", "cancelled")  # stopped running, or taken off the queue before it started
        assert op_state(ui, job_id)[2] is None and not (workspace.datasets / "x-dedup.jsonl").exists()

        assert submit_op(ui, "data_split", None) == (None, "Pick a dataset first.")
        none, why = submit_op(ui, "data_split", "x", eval_share=1.5)
        assert none is None and "eval_share" in why
    finally:
        for info in ui.jobs().list(status="active"):
            ui.jobs().cancel(info.id, wait=10)


@pytest.mark.parametrize("lang,word", [("en", "rows kept"), ("zh", "保留")])
def test_a_finished_dedupe_is_worded_in_the_page_language(workspace, lang, word):
    from studio.tabs.data import op_outcome
    from studio.ui import UIContext

    _, _, said = op_outcome(UIContext(workspace, lang=lang), "data_dedupe", {"name": "x-dedup", "kept": 3,
                                                                             "removed": 1})
    assert word in said and "x-dedup" in said
