"""The Jobs tab's "Compare runs" section in a real Chromium: pick two finished runs, press Compare, see both curves in
one figure and the one setting that differs."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def test_compare_two_runs_in_the_jobs_tab(studio, browser_page, tmp_path, artifacts_dir):
    from core.config.selftest import SelftestJob
    from core.jobs.manager import JobManager

    m = JobManager(tmp_path / "ws")
    ids = [m.submit(SelftestJob(steps=n, delay_s=0.01, name=name)) for n, name in ((3, "short"), (6, "long"))]
    assert all(m.wait(i, timeout=60).status == "succeeded" for i in ids)

    sp = studio()
    page = browser_page
    page.goto(sp.url)
    page.get_by_role("tab", name="Jobs", exact=True).click()
    page.locator("#jobs-compare").get_by_text("Compare runs").click()
    page.locator("#jobs-compare-btn").click()  # nothing picked: it says what to pick
    page.wait_for_function("document.querySelector('#jobs-compare-note').innerText.includes('Pick 2 to 4')")
    for name, job_id in zip(("short", "long"), ids, strict=True):
        page.locator("#jobs-compare-runs input").click()
        page.get_by_role("option", name=f"{name} · selftest · {job_id}").click()
    page.locator("#jobs-compare-btn").click()
    page.wait_for_function("document.querySelector('#jobs-compare-note').innerText.includes('1 setting')"
                           " || document.querySelector('#jobs-compare-note').innerText.includes('2 setting')")
    page.locator("#jobs-compare-plot .js-plotly-plot").wait_for()
    legend = page.locator("#jobs-compare-plot .legend").text_content()  # SVG: no innerText
    assert "short" in legend and "long" in legend  # both runs in one figure
    diff = page.locator("#jobs-compare-diff").inner_text()
    assert "steps" in diff and "delay_s" not in diff
    assert "loss" in page.locator("#jobs-compare-metrics").inner_text()
    page.screenshot(path=str(artifacts_dir / "jobs-compare.png"), full_page=True)
