"""The Jobs tab in a real Chromium: a self-test job started from the tab shows moving progress, its log and curves;
Stop stops it (status `stopped`, what it saved kept); the table and device panel show it."""

from __future__ import annotations

import json

import pytest

from tests.browser_support import cancel_active_jobs

pytestmark = pytest.mark.browser

PCT = "document.querySelector('#jobs-progress .eds-job-progress')"


def _pct(page) -> float:
    return float(page.locator("#jobs-progress .eds-job-progress").get_attribute("data-pct"))


def test_jobs_tab_shows_a_running_selftest_and_stop_works(studio, browser_page, tmp_path, artifacts_dir):
    sp = studio()
    page = browser_page
    page.goto(sp.url)
    page.get_by_role("tab", name="Jobs", exact=True).click()
    try:
        page.locator("#jobs-selftest-steps input").fill("300")
        page.locator("#jobs-selftest").click()
        page.wait_for_function(f"{PCT} && {PCT}.dataset.status === 'running' && Number({PCT}.dataset.pct) > 0")
        first = _pct(page)
        page.wait_for_function(f"Number({PCT}.dataset.pct) > {first}")  # it moves without any click
        assert "step" in page.locator("#jobs-progress").inner_text()
        page.locator("#jobs-plot .js-plotly-plot").wait_for()  # the loss curve
        page.wait_for_function("document.querySelector('#jobs-log textarea').value.includes('loss')")
        table = page.locator("#jobs-table")
        assert "selftest" in table.inner_text() and "running" in table.inner_text().lower()  # page's words
        assert "selftest" in page.locator("#jobs-devices").inner_text()  # the CPU row says who holds it
        page.screenshot(path=str(artifacts_dir / "jobs-tab-running.png"), full_page=True)

        page.locator("#jobs-stop").click()
        page.wait_for_function(f"{PCT}.dataset.status === 'stopped'", timeout=60_000)
        assert "stopped" in page.locator("#jobs-detail").inner_text().lower()
        page.wait_for_function("document.querySelector('#jobs-table').innerText.toLowerCase().includes('stopped')")
        page.screenshot(path=str(artifacts_dir / "jobs-tab-stopped.png"), full_page=True)
    finally:
        cancel_active_jobs(tmp_path / "ws")

    (run,) = list((tmp_path / "ws" / "runs").iterdir())
    saved = json.loads((run / "output" / "state.json").read_text())["step"]
    assert 0 < saved < 300
    assert json.loads((run / "status.json").read_text())["status"] == "stopped"

    # A second (short) self-test takes the detail view; clicking the first job's row selects it again.
    page.locator("#jobs-selftest-steps input").fill("2")
    page.locator("#jobs-selftest").click()
    page.wait_for_function(f"{PCT} && {PCT}.dataset.status === 'succeeded'", timeout=60_000)
    assert run.name not in page.locator("#jobs-detail").inner_text()
    page.locator("#jobs-table").get_by_text(run.name, exact=True).last.click()
    page.wait_for_function(f"document.querySelector('#jobs-detail').innerText.includes('{run.name}')")
    # Delete asks for a second click, then removes the job and its run folder.
    page.locator("#jobs-delete").click()
    page.wait_for_function("document.querySelector('#jobs-message').innerText.includes('again')")
    assert run.exists()
    page.locator("#jobs-delete").click()
    page.wait_for_function(f"!document.querySelector('#jobs-table').innerText.includes('{run.name}')")
    assert not run.exists()
    assert "succeeded" in page.locator("#jobs-table").inner_text().lower()  # the other job stays
