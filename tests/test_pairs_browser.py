"""The Training tab's "Preference pairs" section in a real Chromium: the mode and ranking show the fields they use and
hide the others, a pairs job built through a registered endpoint (the fake OpenAI-compatible server answering as the
student) writes its pairs dataset, and "Use for DPO" puts that dataset into the Training form with the DPO method
selected."""

from __future__ import annotations

import json

import pytest

from tests.browser_support import fill, open_tab, seed_workspace, wait_final_status

BLUR = "#pairs-build-output textarea, #pairs-build-output input"  # a click there commits a typed value
pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


def test_build_pairs_and_use_them_for_dpo(studio, browser_page, tmp_path, artifacts_dir):
    from core.endpoints import EndpointEntry, save_endpoint
    from core.workspace import Workspace
    from tests.fake_openai_server import FakeOpenAIServer

    rows = [{"id": f"q{i}", "instruction": f"What is {i} + {i}?", "output": f"{i} + {i} = {2 * i}."} for i in range(4)]
    ws = seed_workspace(tmp_path / "ws", datasets={"qa": rows})
    with FakeOpenAIServer(answer=lambda msgs: "I do not know.") as srv:
        save_endpoint(Workspace.open(ws), EndpointEntry(name="stud", base_url=srv.base_url, model="student"))
        sp = studio()
        page = browser_page
        open_tab(page, sp.url, "Training")
        page.get_by_text("Preference pairs — build the pairs", exact=False).click()
        page.locator("#pairs-build-student").wait_for(state="visible")
        assert not page.locator("#pairs-build-teacher").is_visible()  # best of N only
        assert not page.locator("#pairs-build-judge").is_visible()  # rank_by judge only
        page.locator("#pairs-build-mode").get_by_text("best of N teacher samples", exact=True).click()
        page.locator("#pairs-build-teacher").wait_for(state="visible")
        page.locator("#pairs-build-student").wait_for(state="hidden")
        page.locator("#pairs-build-rank-by").get_by_text("LLM judge", exact=True).click()
        page.locator("#pairs-build-judge").wait_for(state="visible")
        page.locator("#pairs-build-rank-by").get_by_text("none", exact=True).click()
        page.locator("#pairs-build-judge").wait_for(state="hidden")
        page.locator("#pairs-build-mode").get_by_text("teacher vs student", exact=True).click()
        page.locator("#pairs-build-student").wait_for(state="visible")

        fill(page, "pairs-build-input", "qa", BLUR)
        fill(page, "pairs-build-student", "endpoint:stud", BLUR)
        page.locator("#pairs-build-start").click()
        page.wait_for_selector("#pairs-build-message:has-text('Started job')")
        status = wait_final_status(page, "#pairs-build-status")
        assert "succeeded" in status.lower(), status + "\n" + sp.log()[-2000:]
        assert len(srv.chat_records()) == 4  # one student answer per prompt
    pairs = [json.loads(x) for x in (ws / "datasets" / "qa-pairs.jsonl").read_text().splitlines()]
    assert len(pairs) == 4 and all(p["rejected"] == "I do not know." for p in pairs)
    assert {p["chosen"] for p in pairs} == {r["output"] for r in rows}

    page.locator("#pairs-build-use").click()
    page.wait_for_function("(document.querySelector('#training-dataset input') || {}).value === 'qa-pairs'")
    assert "qa-pairs" in page.locator("#pairs-build-message").inner_text()
    assert page.get_by_label("DPO / CogPO (preference pairs)").is_checked()
    page.get_by_text("β per pair type", exact=True).wait_for()  # the DPO / CogPO section is shown
    page.screenshot(path=str(artifacts_dir / "training-pairs.png"), full_page=True)
