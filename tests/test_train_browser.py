"""The Training tab in a real Chromium: SFT and white-box KD (capture → train) started from the form run as real jobs,
the status and curves update live, and the trained models land in workspace/models."""

from __future__ import annotations

import random
import time

import pytest

from tests.browser_support import fill, open_tab, seed_workspace

BLUR = "#training-output textarea, #training-output input"  # a click there commits a typed value
pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]


def _start_and_wait(page, timeout_s: float = 240) -> str:
    """Press Start, read the new job's id from the message, wait until the live status shows it ended."""
    code = page.locator("#training-message code")
    before = code.first.inner_text() if code.count() else ""
    page.locator("#training-start").click()
    page.wait_for_function(
        "([old]) => { const m = document.querySelector('#training-message'); const c = m.querySelector('code'); "
        "return m.innerText.includes('⚠') || (c !== null && c.innerText !== old); }", arg=[before])
    assert "Started job" in page.locator("#training-message").inner_text()
    job_id = code.first.inner_text()
    deadline = time.time() + timeout_s
    text = ""
    while time.time() < deadline:
        text = page.locator("#training-status").inner_text()
        if job_id in text and any(w in text.lower() for w in ("succeeded", "failed", "cancelled")):
            return text
        time.sleep(1)
    return text


def test_sft_and_kd_from_the_training_tab(studio, browser_page, tiny_models, tmp_path, artifacts_dir):
    rng = random.Random(0)
    rows = [{"id": f"r{i}", "instruction": f"Add {a} and {b}.", "output": f"Sure: {a} plus {b} is {a + b}."}
            for i, (a, b) in enumerate((rng.randint(1, 30), rng.randint(1, 30)) for _ in range(24))]
    ws = seed_workspace(tmp_path / "ws", {"tiny-student": tiny_models.student, "tiny-teacher": tiny_models.teacher},
                        {"sums": rows})

    sp = studio()
    page = browser_page
    open_tab(page, sp.url, "Training")
    fill(page, "training-student", "tiny-student", BLUR)
    fill(page, "training-dataset", "sums", BLUR)
    page.locator("#training-output textarea, #training-output input").first.fill("sums-sft")
    page.get_by_text("Hyper-parameters", exact=True).click()
    fill(page, "training-max-steps", "6", BLUR)
    fill(page, "training-gpus", "cpu", BLUR)
    page.get_by_text("Config — YAML, command, presets, load", exact=True).click()
    page.wait_for_function("document.querySelector('#training-cli textarea, #training-cli input')?.value"
                           "?.includes('--config')")  # the folded panel's box may not be rendered yet
    status = _start_and_wait(page)
    page.screenshot(path=str(artifacts_dir / "training-tab-sft.png"), full_page=True)
    assert "succeeded" in status.lower(), status + "\n" + sp.log()[-2000:]
    assert page.locator("#training-plot .js-plotly-plot").count() == 1
    assert (ws / "models" / "sums-sft" / "model.safetensors").is_file()

    # White-box KD: the teacher's logits are captured first, in the same (pipeline) job.
    page.get_by_label("KD from teacher logits (offline)").check()
    fill(page, "training-teacher", "tiny-teacher", BLUR)
    page.locator("#training-output textarea, #training-output input").first.fill("sums-kd")
    status = _start_and_wait(page)
    page.screenshot(path=str(artifacts_dir / "training-tab-kd.png"), full_page=True)
    assert "succeeded" in status.lower(), status + "\n" + sp.log()[-2000:]
    assert (ws / "models" / "sums-kd" / "model.safetensors").is_file()
    assert (ws / "cache" / "sums-tiny-teacher-k10" / "meta.json").is_file()
