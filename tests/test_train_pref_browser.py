"""The Training tab in a real Chromium, preference training: a CogPO job (DPO with a β per pair type) started from the
form runs as a real job, its reward-margin curves show, Stop saves a checkpoint and Resume finishes it."""

from __future__ import annotations

import json
import time

import pytest

from tests.browser_support import fill, open_tab, seed_workspace
from tests.test_train_browser import BLUR
from tests.test_train_dpo import _pairs

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]


def _wait_status(page, job_id: str, word: str, timeout_s: float = 240) -> str:
    deadline = time.time() + timeout_s
    text = ""
    while time.time() < deadline:
        text = page.locator("#training-status").inner_text()
        if job_id in text and word in text.lower():
            return text
        time.sleep(0.5)
    return text


def test_cogpo_from_the_training_tab_stops_and_resumes(studio, browser_page, tiny_models, tmp_path, artifacts_dir):
    ws = seed_workspace(tmp_path / "ws", {"tiny-student": tiny_models.student}, {"prefs": _pairs(48, 0)})

    sp = studio()
    page = browser_page
    open_tab(page, sp.url, "Training")
    page.get_by_label("DPO / CogPO (preference pairs)").check()
    page.get_by_text("β per pair type", exact=True).wait_for()  # the DPO / CogPO section is shown
    fill(page, "training-student", "tiny-student", BLUR)
    fill(page, "training-dataset", "prefs", BLUR)
    page.locator("#training-output textarea, #training-output input").first.fill("prefs-cogpo")
    box = page.locator("#training-pair-type-beta textarea, #training-pair-type-beta input").first
    box.fill("easy=0.3, hard=0.05")
    page.get_by_text("Hyper-parameters", exact=True).click()
    fill(page, "training-max-steps", "200", BLUR)
    fill(page, "training-per-device-train-batch-size", "4", BLUR)
    fill(page, "training-gradient-accumulation-steps", "1", BLUR)
    fill(page, "training-gpus", "cpu", BLUR)

    page.locator("#training-start").click()
    page.wait_for_function("document.querySelector('#training-message code') !== null "
                           "|| document.querySelector('#training-message').innerText.includes('⚠')")
    message = page.locator("#training-message").inner_text()
    assert "Started job" in message, message
    job_id = page.locator("#training-message code").first.inner_text()
    metrics = ws / "runs" / job_id / "metrics.jsonl"
    deadline = time.time() + 180
    while time.time() < deadline and not (metrics.is_file() and '"rewards/margins"' in metrics.read_text()):
        time.sleep(0.3)
    page.locator("#training-stop").click()
    status = _wait_status(page, job_id, "stopped")
    assert "stopped" in status.lower(), status + "\n" + sp.log()[-2000:]
    assert list((ws / "runs" / job_id / "output" / "checkpoints").glob("checkpoint-*"))
    assert not (ws / "models" / "prefs-cogpo").exists()
    page.screenshot(path=str(artifacts_dir / "training-tab-cogpo-stopped.png"), full_page=True)

    page.locator("#training-resume").click()
    status = _wait_status(page, job_id, "succeeded", timeout_s=400)
    assert "succeeded" in status.lower(), status + "\n" + sp.log()[-2000:]
    page.wait_for_function("document.querySelector('#training-plot').innerText.includes('rewards/margins')")
    page.screenshot(path=str(artifacts_dir / "training-tab-cogpo.png"), full_page=True)
    prov = json.loads((ws / "models" / "prefs-cogpo" / "eds_model.json").read_text())
    assert prov["method"] == "cogpo" and prov["steps"] == 200
    lines = [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()]
    assert any("resuming from checkpoint-" in r.get("event", "") for r in lines)
