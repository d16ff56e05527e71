"""The CoT Curation tab in a real Chromium: a judge job scores traces through a registered endpoint (the scripted
OpenAI-compatible test server) and its output opens in the curate form; a scored dataset loads with its counts and
plots, moving the RV/CD sliders (and a student-size preset) changes the counts and the after-selection heatmap, a
heatmap cell shows its chain of thought, and a curate job writes exactly the selected traces as System-2 SFT rows
that open in Training."""

from __future__ import annotations

import json

import pytest

from tests.browser_support import fill, open_tab, seed_workspace, wait_final_status

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


def _rows() -> list[dict]:
    """60 traces: RV = i % 10, CD = i // 10 (0..5), incorrect when i % 9 == 0, teachers A and B."""
    return [{"id": f"t{i}", "question_id": f"q{i}", "instruction": f"What is {i} + 1?", "rv": i % 10,
             "cd": i // 10, "correctness": int(i % 9 != 0), "teacher": "A" if i % 2 else "B",
             "thought": f"Add one to {i}.", "solution": f"{i + 1}",
             "output": f"<think>Add one to {i}.</think>\n\n{i + 1}"} for i in range(60)]


def _counts(page) -> str:
    return page.locator("#curation-counts").inner_text()


def _wait_counts(page, text: str) -> None:
    page.wait_for_function("([t]) => document.querySelector('#curation-counts').innerText.includes(t)", arg=[text])


def _after_heatmap(page) -> list[list[int]]:
    """The z matrix of the 'selected' heatmap as plotly drew it (rows RV, columns CD)."""
    return page.evaluate("() => document.querySelector('#curation-heatmap .js-plotly-plot').data[1].z")


def _set_slider(page, elem_id: str, value: int) -> None:
    box = page.locator(f"#{elem_id} input[type=number]").first
    box.fill(str(value))
    box.press("Enter")
    box.blur()


def test_judge_and_curate_from_the_tab(studio, browser_page, tmp_path, artifacts_dir):
    from core.endpoints import EndpointEntry, save_endpoint
    from core.workspace import Workspace
    from tests.fake_openai_server import FakeOpenAIServer
    from tests.test_cot_judge_job import scripted_judge

    traces = [{"id": f"c{i}", "instruction": f"Question {i}?", "output": f"<think>step {i}</think> answer {i}"}
              for i in range(6)]
    ws = seed_workspace(tmp_path / "ws", datasets={"scored": _rows(), "cot": traces})
    with FakeOpenAIServer(answer=scripted_judge) as srv:
        save_endpoint(Workspace.open(ws), EndpointEntry(name="fake", base_url=srv.base_url, model="fake-model"))
        sp = studio()
        page = browser_page
        open_tab(page, sp.url, "CoT Curation")
        page.get_by_text("① Judge chains of thought", exact=False).click()
        fill(page, "curation-judge-input", "cot", "#curation-intro")
        fill(page, "curation-judge-judge", "endpoint:fake", "#curation-intro")
        page.locator("#curation-judge-start").click()
        status = wait_final_status(page, "#curation-judge-status")
        assert "succeeded" in status.lower(), status + "\n" + sp.log()[-2000:]
        assert len(srv.chat_records()) == 6 * 3  # one call per trace and metric
    page.locator("#curation-to-curate").click()  # the judged traces open in the curate form: odd ones are correct
    _wait_counts(page, "3 of 6 traces selected")

    fill(page, "curation-curate-input", "scored", "#curation-intro")
    _wait_counts(page, "of 60 traces selected")
    assert "53" in _counts(page)  # correct traces only, at rest
    page.locator("#curation-heatmap .js-plotly-plot").wait_for()
    assert sum(map(sum, _after_heatmap(page))) == 53

    _set_slider(page, "curation-curate-rv-min", 3)  # RV 3..9: 42 rows, 36 of them correct
    _wait_counts(page, "36 of 60")
    _set_slider(page, "curation-curate-cd-max", 2)  # and CD 0..2: 21 rows, 18 correct
    _wait_counts(page, "18 of 60")
    z = _after_heatmap(page)
    assert sum(map(sum, z)) == 18 and z[2][0] == 0 and z[3][0] == 1 and z[9][3] == 0

    # The 1.5B preset (ThoughtX: correct, RV 3-5, CD 4): t43 and t44 (t45 is incorrect).
    page.locator("#curation-size input").click()
    page.get_by_role("option", name="1.5B", exact=False).click()
    _wait_counts(page, "2 of 60")
    z = _after_heatmap(page)
    assert z[3][4] == z[4][4] == 1 and sum(map(sum, z)) == 2

    # A heatmap cell's chain of thought, reasoning folded.
    for picker in ("#curation-cell-rv", "#curation-cell-cd"):  # each picker's own list: both offer "4"
        page.locator(f"{picker} input").click()
        page.locator(picker).get_by_role("option", name="4", exact=True).click()
    page.wait_for_function("document.querySelector('#curation-cell-chat').innerText.includes('What is 44 + 1?')")
    assert "45" in page.locator("#curation-cell-chat").inner_text()

    # Write the selection as System-2 SFT rows.
    page.get_by_label("System-2 SFT (with reasoning)").check()
    fill(page, "curation-curate-output", "picked", "#curation-intro")
    page.locator("#curation-curate-start").click()
    status = wait_final_status(page, "#curation-curate-status")
    page.screenshot(path=str(artifacts_dir / "curation-tab.png"), full_page=True)
    assert "succeeded" in status.lower(), status + "\n" + sp.log()[-2000:]
    out = [json.loads(x) for x in (ws / "datasets" / "picked.jsonl").read_text().splitlines()]
    assert [r["id"] for r in out] == ["t43", "t44"]
    assert out[0]["output"] == "<think>\nAdd one to 43.\n</think>\n\n44" and out[0]["instruction"] == "What is 43 + 1?"

    page.locator("#curation-open-training").click()
    page.wait_for_function("(document.querySelector('#training-dataset input') || {}).value === 'picked'")
    assert page.get_by_role("tab", name="Training", exact=True).get_attribute("aria-selected") == "true"
