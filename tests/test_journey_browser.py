"""The product as a new user meets it, in a real Chromium on tiny models: fresh workspace → import instructions →
label them with the teacher → SFT the student → KD the student → chat with both → all jobs succeeded → evaluation.
Screenshots of each stage land in artifacts/journey-*.png."""

from __future__ import annotations

import json
import shutil

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

INSTRUCTIONS = [f"Question number {i}: what is {i} plus {i + 1}?" for i in range(16)] + [
    "Describe the sea.", "Name a fruit.", "Say hello.", "Count to five."]


def _wait_status(page, stage: str, word: str, timeout: int = 300_000) -> str:
    sel = f"#eds-start-{stage}-status"
    page.wait_for_function(
        f"(() => {{ const t = document.querySelector('{sel}').innerText.toLowerCase();"  # states in the page's words
        f" if (t.includes('failed') || t.includes('cancelled')) return true; return t.includes('{word}'); }})()",
        timeout=timeout)
    text = page.locator(sel).inner_text()
    assert word in text.lower(), f"stage {stage}: {text}"
    return text


def _pick(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.locator(f"#{elem_id}").get_by_role("option", name=option, exact=True).click()


def test_first_distillation_journey(studio, browser_page, tiny_models, tmp_path, artifacts_dir):
    from core.jobs.manager import JobManager

    ws = tmp_path / "ws"
    (ws / "models").mkdir(parents=True)
    shutil.copytree(tiny_models.teacher, ws / "models" / "tiny-teacher")
    shutil.copytree(tiny_models.student, ws / "models" / "tiny-student")
    src = tmp_path / "my-instructions.json"
    src.write_text(json.dumps([{"instruction": q} for q in INSTRUCTIONS]), encoding="utf-8")
    sp = studio()
    page = browser_page
    page.goto(sp.url)
    try:
        # 1. Import the user's instructions in the Data tab.
        page.get_by_role("tab", name="Data", exact=True).click()
        page.locator("#data-upload input[type=file]").set_input_files(str(src))
        page.locator("#data-import-preview").get_by_text(INSTRUCTIONS[0]).wait_for()
        page.locator("#data-name").get_by_role("textbox").fill("journey")
        page.locator("#data-import").click()
        page.wait_for_selector(f"#data-import-result:has-text('imported {len(INSTRUCTIONS)} row(s)')")
        page.screenshot(path=str(artifacts_dir / "journey-1-import.png"), full_page=True)

        # 2. Start here: teacher, student, data; ① Synthesize labels the train and held-out splits.
        page.get_by_role("tab", name="Start here", exact=True).click()
        page.locator("#eds-start-refresh").click()
        _pick(page, "eds-start-teacher", "tiny-teacher")
        _pick(page, "eds-start-student", "tiny-student")
        _pick(page, "eds-start-dataset", "journey")
        page.locator("#eds-start-synth").click()
        page.wait_for_selector("#eds-start-message:has-text('journey-train-tiny-teacher')")
        _wait_status(page, "synth", "succeeded")
        labelled = (ws / "datasets" / "journey-train-tiny-teacher.jsonl").read_text().splitlines()
        heldout = (ws / "datasets" / "journey-heldout-tiny-teacher.jsonl").read_text().splitlines()
        assert len(labelled) + len(heldout) == len(INSTRUCTIONS)
        assert all(json.loads(r)["output"] for r in labelled)
        page.screenshot(path=str(artifacts_dir / "journey-2-synthesize.png"), full_page=True)

        # 3. ② Train: white-box KD straight from the student (the tiny pair shares a tokenizer): no SFT stage.
        page.locator("#eds-start-train").click()
        page.wait_for_selector("#eds-start-message:has-text('tiny-student-kd')")
        _wait_status(page, "train", "succeeded", timeout=600_000)
        assert (ws / "models" / "tiny-student-kd" / "config.json").exists(), "model tiny-student-kd was not saved"
        assert not (ws / "models" / "tiny-student-sft").exists()
        page.screenshot(path=str(artifacts_dir / "journey-3-train.png"), full_page=True)

        # 4. ③ Compare: evaluation job + the Chat tab with teacher | distilled student; both answer.
        page.locator("#eds-start-compare").click()
        page.get_by_role("tab", name="Chat", exact=True).wait_for()
        page.wait_for_function(
            "(() => { const e = document.querySelector('#eds-chat-model1 input');"
            " return e && e.value.includes('tiny-student-kd'); })()")
        assert page.locator("#eds-chat-model0 input").input_value() == "tiny-teacher"
        page.locator("#eds-chat-load0").click()
        page.locator("#eds-chat-load1").click()
        for i in (0, 1):
            page.wait_for_function(
                f"document.querySelector('#eds-chat-status{i}').innerText.includes('ready')", timeout=180_000)
        page.locator("#eds-chat-input textarea").fill("What is 2 plus 3?")
        page.locator("#eds-chat-send").click()
        for i in (0, 1):
            page.wait_for_function(
                f"document.querySelector('#eds-chat-stats{i}').innerText.includes('✓')", timeout=120_000)
        page.screenshot(path=str(artifacts_dir / "journey-4-chat.png"), full_page=True)

        # 5. Jobs: every job of the journey succeeded (the two chat servers are still serving).
        page.get_by_role("tab", name="Start here", exact=True).click()
        _wait_status(page, "compare", "succeeded")
        page.get_by_role("tab", name="Jobs", exact=True).click()
        page.screenshot(path=str(artifacts_dir / "journey-5-jobs.png"), full_page=True)
        jobs = JobManager(ws).list()
        work = [j for j in jobs if j.kind != "serve"]
        assert len(work) == 3 and all(j.status == "succeeded" for j in work), [(j.name, j.status) for j in work]
        assert sum(j.kind == "serve" and j.status == "running" for j in jobs) == 2

        # 6. The evaluation compares the student before and after distillation on the held-out answers.
        (compare,) = [j for j in work if j.steps and j.steps[0] == "eval-before"]
        results = sorted((ws / "runs" / compare.id / "output").rglob("results.json"))
        assert len(results) == 2, results
        kl = [json.loads(r.read_text()) for r in results]
        assert all("kl" in json.dumps(k) for k in kl)
    finally:
        m = JobManager(ws)
        for info in m.list(status="active"):
            try:
                m.cancel(info.id, wait=15)
            except ValueError:
                pass
