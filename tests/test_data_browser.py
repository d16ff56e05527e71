"""From a raw file to a teacher-labelled dataset in the browser: import a file, see the preview and a stats plot,
"Try on 5 rows" with the tiny teacher, run a label job, and find the new dataset in the Data tab."""

from __future__ import annotations

import json
import shutil

import pytest

pytestmark = pytest.mark.browser

QUESTIONS = ["What is two plus two?", "Name a color of the sky.", "Say hello to the user.", "Count to three.",
             "What do students learn?", "Write one word about water.", "Is the sun hot?", "Give a number."]


def _pick(page, dropdown_id: str, option: str) -> None:
    page.locator(f"#{dropdown_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def test_raw_file_to_labelled_dataset(studio, browser_page, tiny_models, tmp_path, artifacts_dir):
    ws = tmp_path / "ws"
    shutil.copytree(tiny_models.teacher, ws / "models" / "tiny-teacher")
    src = tmp_path / "questions.jsonl"
    src.write_text("".join(json.dumps({"prompt": q, "topic": "demo"}) + "\n" for q in QUESTIONS), encoding="utf-8")
    sp = studio()
    page = browser_page
    page.goto(sp.url)
    page.get_by_role("tab", name="Data", exact=True).click()

    # Import: upload, detection ('prompt' taken as the instruction), preview, import.
    page.locator("#data-upload input[type=file]").set_input_files(str(src))
    page.wait_for_selector("#data-detected:has-text('EasyDistill instructions')")
    assert "'prompt' taken as the instruction" in page.locator("#data-detected").inner_text()
    page.locator("#data-import-preview").get_by_text("Say hello to the user.").wait_for()
    page.locator("#data-name").get_by_role("textbox").fill("mini")
    page.locator("#data-import").click()
    page.wait_for_selector("#data-import-result:has-text('imported 8 row(s)')")

    # The new dataset is selected: paged table, conversation view, statistics plot.
    page.locator("#data-table").get_by_text("Count to three.").click()
    page.locator("#data-conversation").get_by_text("Count to three.").wait_for()
    assert '"topic": "demo"' in page.locator("#data-row-json").inner_text()
    page.get_by_text("Statistics", exact=True).click()
    page.locator("#data-compute-stats").click()
    page.wait_for_selector("#data-plot-chars .js-plotly-plot")
    assert "8 rows" in page.locator("#data-stats-summary").inner_text()

    # Synthesis: try on 5 rows with the tiny teacher (a child process loads it), then run on all.
    page.get_by_role("tab", name="Synthesis", exact=True).click()
    _pick(page, "synth-input", "mini")
    _pick(page, "synth-model", "tiny-teacher")
    page.get_by_text("Sampling and options").click()
    page.locator("#synth-max-new").get_by_role("spinbutton").fill("12")
    page.locator("#synth-try").click()
    page.wait_for_selector("#synth-message:has-text('of 5 rows parsed')", timeout=120_000)
    shown = page.locator("#synth-trial").inner_text()
    assert all(q in shown for q in QUESTIONS[:5])
    page.screenshot(path=str(artifacts_dir / "synthesis-try.png"), full_page=True)

    page.locator("#synth-run").click()
    page.wait_for_selector("#synth-message:has-text('submitted')")
    page.wait_for_selector("#synth-job:has-text('succeeded')", timeout=180_000)
    assert "8/8 rows" in page.locator("#synth-job").inner_text()

    # The labelled dataset appears in the Data tab with its answers.
    page.get_by_role("tab", name="Data", exact=True).click()
    page.locator("#data-refresh").click()
    _pick(page, "data-dataset", "mini-label")
    page.wait_for_selector("#data-info:has-text('created by synth:label')")
    header = page.locator("#data-table thead").first.inner_text()
    assert "output" in header and "instruction" in header
    page.screenshot(path=str(artifacts_dir / "data-labelled.png"), full_page=True)
    rows = [json.loads(x) for x in (ws / "datasets" / "mini-label.jsonl").read_text().splitlines()]
    rejects = ws / "datasets" / "mini-label.rejects.jsonl"
    n_rej = len(rejects.read_text().splitlines()) if rejects.exists() else 0
    assert len(rows) + n_rej == 8 and all(r["instruction"] in QUESTIONS for r in rows)
