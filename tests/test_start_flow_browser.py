"""The guided flow in a real Chromium (issue 18, point 6): a fresh page proposes a distinct teacher and student; "Rows
to use" shows the time it implies and ① labels only those rows; ② after a Stop offers Resume (and a fresh start that
says what it would replace) instead of training from scratch; ③ says how far ② is.

Cheap stand-ins keep it quick: a fake OpenAI-compatible teacher, model folders with only a config and a weights header
(enough for the pickers and the estimate), and a self-test pipeline under ②'s name in place of a real training job.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from tests.browser_support import pick_by_label, text_has
from tests.test_flow import _model

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]


def _value_is(page, selector: str, value: str) -> None:
    page.wait_for_function(f"(() => {{ const e = document.querySelector('{selector}');"
                           f" return e && e.value === '{value}'; }})()")


def _wait_steps(m, job: str, n: int) -> None:
    deadline = time.monotonic() + 60
    while not any(r["step"] >= n for r in m.metrics(job) if isinstance(r.get("step"), int)):
        assert time.monotonic() < deadline, f"the stand-in never reached step {n}"
        time.sleep(0.1)


def test_rows_estimate_resume_offer_and_compare_progress(studio, browser_page, tmp_path, artifacts_dir):
    from core import flow
    from core.config import PipelineJob, PipelineStep
    from core.config.selftest import SelftestJob
    from core.endpoints import EndpointEntry, save_endpoint
    from core.jobs.manager import JobManager
    from core.workspace import Workspace
    from tests.fake_openai_server import FakeOpenAIServer

    ws = Workspace.open(tmp_path / "ws")
    (ws.root / "datasets" / "qs.jsonl").write_text(
        "".join(json.dumps({"id": f"q{i}", "instruction": f"What is {i} + {i}?"}) + "\n" for i in range(100)))
    _model(ws, "big-teacher", 9000)
    _model(ws, "small-student", 1000)
    m = JobManager(ws)
    with FakeOpenAIServer(answer=lambda msgs: "An answer.", latency=0.01) as srv:
        save_endpoint(ws, EndpointEntry(name="fast", base_url=srv.base_url, model="teacher"))
        sp = studio()
        page = browser_page
        page.goto(sp.url)
        try:
            # A fresh page: the larger model teaches, the smaller learns; all 100 rows and what they would take.
            _value_is(page, "#eds-start-student input", "small-student")
            assert page.get_by_label("Teacher", exact=True).input_value() == "big-teacher"
            text_has(page, "#eds-start-estimate", "90 training + 10 held-out rows", "min")

            # Fewer rows: the estimate follows, ① labels only those.
            pick_by_label(page, "Teacher", "endpoint:fast")
            text_has(page, "#eds-start-estimate", "as fast as the endpoint answers")
            rows = page.get_by_label("number input for Rows to use")
            rows.fill("20")
            rows.press("Enter")
            text_has(page, "#eds-start-estimate", "18 training + 2 held-out rows")
            page.screenshot(path=str(artifacts_dir / "start-rows-estimate.png"), full_page=True)
            page.get_by_role("button", name="① Synthesize").click()
            text_has(page, "#eds-start-synth-status", "succeeded")
            plan = flow.make_plan("endpoint:fast", "small-student", "qs", ws, 20)
            for name, n in ((plan.labelled, 18), (plan.heldout_labelled, 2)):
                assert "20rows" in name and len((ws.datasets / f"{name}.jsonl").read_text().splitlines()) == n

            # ② ran before and was stopped midway, after a checkpoint (a stand-in under ②'s name: an endpoint
            # teacher gives no logits, so ② is SFT alone).
            job = m.submit(PipelineJob(name=flow.train_job_name(plan), steps=[
                PipelineStep(name="sft", job=SelftestJob(steps=400, delay_s=0.05))]))
            _wait_steps(m, job, 3)
            assert m.stop(job, wait=30).status == "stopped"
            (Path(m.get(job).run_dir) / "output" / "sft" / "checkpoints" / "checkpoint-3").mkdir(parents=True)
            page.get_by_role("button", name="② Train").click()
            text_has(page, "#eds-start-message", "stopped before it finished", "checkpoint at step 3")
            resume = page.get_by_role("button", name="↻ Resume ②")
            assert resume.is_visible() and page.get_by_role("button", name="Start ② over").is_visible()
            assert len(m.list(kind="pipeline")) == 2  # ① and the stopped ②: nothing new was started

            # A fresh start says what it would overwrite instead of failing later in the job.
            _model(ws, plan.student_sft, 10)
            page.get_by_role("button", name="Start ② over").click()
            text_has(page, "#eds-start-message", "would replace", plan.student_sft)
            page.screenshot(path=str(artifacts_dir / "start-resume-offer.png"), full_page=True)
            shutil.rmtree(ws.models / plan.student_sft)

            resume.click()
            text_has(page, "#eds-start-message", "resumed")
            text_has(page, "#eds-start-train-status", "attempt 2", "running")
            assert m.get(job).attempt == 2 and not resume.is_visible()

            # ③ while ② runs: how far it is, and the chat with the untrained student meanwhile.
            page.get_by_role("button", name="③ Compare").click()
            said = text_has(page, "#eds-start-message", "has not finished", "running", "sft", "/400 steps")
            assert plan.student_sft in said
            _value_is(page, "#eds-chat-model1 input", "small-student")
        finally:
            for info in m.list(status="active"):
                try:
                    m.cancel(info.id, wait=10)
                except ValueError:
                    pass
