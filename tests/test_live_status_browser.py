"""Live status in a real Chromium: every status panel follows its job's latest attempt without extra clicks, and a
failed job reads as a cause and a fix, not as Python.

- Start here ① Synthesize (a teacher behind a slow fake OpenAI-compatible endpoint) → the Jobs tab follows the job on
  its own and shows one scale per figure ("stage 1 of 2 · label · n/m rows"); Stop, then Resume there → the detail
  shows the new attempt running; back in Start here the stage line shows it too, then its end, with no other click.
- A self-test that fails: the Jobs tab's detail says cause and fix first, with the traceback folded away.
"""

from __future__ import annotations

import json

import pytest

from tests.browser_support import cancel_active_jobs, pick_by_label, seed_workspace, text_has

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

PCT = "document.querySelector('#jobs-progress .eds-job-progress')"
START_LINE = "#eds-start-synth-status"


def test_stop_and_resume_are_followed_in_jobs_and_start_here(studio, browser_page, tmp_path, artifacts_dir):
    from core.endpoints import EndpointEntry, save_endpoint
    from core.workspace import Workspace
    from tests.fake_openai_server import FakeOpenAIServer

    rows = [{"id": f"q{i}", "instruction": f"What is {i} + {i}?"} for i in range(320)]
    ws = seed_workspace(tmp_path / "ws", datasets={"qs": rows})
    with FakeOpenAIServer(answer=lambda msgs: "An answer.", latency=0.6) as srv:  # ~13 rows/s at 8 in flight
        save_endpoint(Workspace.open(ws), EndpointEntry(name="slow", base_url=srv.base_url, model="teacher"))
        sp = studio()
        page = browser_page
        page.goto(sp.url)
        try:
            pick_by_label(page, "Teacher", "endpoint:slow")
            pick_by_label(page, "Student", "tiny-student")
            pick_by_label(page, "Instructions (a dataset)", "qs")
            page.get_by_role("button", name="① Synthesize").click()
            text_has(page, START_LINE, "running")

            # The Jobs tab follows the running job by itself, each figure on its own scale.
            page.get_by_role("tab", name="Jobs", exact=True).click()
            page.wait_for_function(f"{PCT} && {PCT}.dataset.status === 'running' && Number({PCT}.dataset.pct) > 0")
            caption = text_has(page, "#jobs-progress", "stage 1 of 2", "label", "rows")
            assert "%" not in caption, caption  # the bar shows the pipeline's share; the words the stage's rows
            page.get_by_role("button", name="Stop (save and exit)").click()
            page.wait_for_function(f"{PCT}.dataset.status === 'stopped'", timeout=60_000)
            page.get_by_role("button", name="Resume").click()
            page.wait_for_function(f"{PCT}.dataset.status === 'running'", timeout=60_000)
            text_has(page, "#jobs-detail", "attempt 2")
            page.screenshot(path=str(artifacts_dir / "live-jobs-resumed.png"), full_page=True)

            # Start here shows the new attempt (its timer slept while the job was stopped), then its end.
            page.get_by_role("tab", name="Start here", exact=True).click()
            text_has(page, START_LINE, "attempt 2", timeout=20_000)
            assert "stopped" not in page.locator(START_LINE).inner_text().lower()
            final = text_has(page, START_LINE, "succeeded", timeout=90_000)
            assert "attempt 2" in final
        finally:
            cancel_active_jobs(ws)
    labelled = (ws / "datasets" / "qs-train-teacher.jsonl").read_text().splitlines()
    assert len({json.loads(x)["id"] for x in labelled}) == len(labelled)  # the resume wrote no row twice


def test_a_failed_job_reads_cause_and_fix_first(studio, browser_page, tmp_path, artifacts_dir):
    from core.config.selftest import SelftestJob
    from core.jobs.manager import JobManager

    sp = studio()
    job = JobManager(tmp_path / "ws").submit(SelftestJob(steps=5, delay_s=0.05, fail_at=2, name="doomed"))
    page = browser_page
    page.goto(sp.url)
    page.get_by_role("tab", name="Jobs", exact=True).click()
    page.locator("#jobs-table").get_by_text(job, exact=True).last.click()
    detail = text_has(page, "#jobs-detail", "failed", "cause")
    assert detail.index("Cause") < detail.index("What to do") < detail.index("selftest failing at step 2")
    folded = page.locator("#jobs-detail details")
    assert not folded.locator("pre").is_visible()  # the traceback is folded away ...
    folded.get_by_text("Details (traceback, last log lines)").click()
    folded.locator("pre").wait_for(state="visible")  # ... and one click shows it
    assert "Traceback" in folded.locator("pre").inner_text() or "RuntimeError" in folded.locator("pre").inner_text()
    page.screenshot(path=str(artifacts_dir / "live-jobs-failed.png"), full_page=True)
