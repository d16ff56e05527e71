"""The Synthesis form in the browser, with an HTTP teacher (a fake OpenAI-compatible server, no model loaded): the
operator decides which sections show and which template is loaded, the teacher kind which fields, the YAML preview
names a missing field and follows the form, and a classify job tried and run on a registered endpoint."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def _pick(page, dropdown_id: str, option: str) -> None:
    page.locator(f"#{dropdown_id} input").click()
    page.get_by_role("option", name=option).first.click()


def test_classify_on_a_registered_endpoint(studio, browser_page, tmp_path, artifacts_dir):
    from core.data.store import save_rows
    from core.endpoints import EndpointEntry, save_endpoint
    from core.workspace import Workspace
    from tests.fake_openai_server import FakeOpenAIServer

    ws = Workspace.open(tmp_path / "ws")
    save_rows(ws, "mini", [{"id": f"q{i}", "instruction": f"What is {i} + {i}?"} for i in range(3)],
              created_by="test")
    with FakeOpenAIServer(answer=lambda msgs: "Math") as srv:
        save_endpoint(ws, EndpointEntry(name="fake", base_url=srv.base_url, model="teacher"))
        page = browser_page
        page.goto(studio().url)
        page.get_by_role("tab", name="Synthesis", exact=True).click()
        page.get_by_text("Config — YAML, command, presets, load").click()
        _pick(page, "synth-input", "mini")
        page.wait_for_selector("#synthesis-yaml:has-text('Model: choose or enter a value')")

        # The operator brings its help, its template and its own section.
        assert not page.get_by_text("Instruction balancing", exact=True).is_visible()
        _pick(page, "synth-operator", "classify — task categories (for instruction balancing)")
        page.wait_for_selector("#synth-op-help:has-text('task category')")
        page.get_by_text("Instruction balancing", exact=True).wait_for(state="visible")
        page.get_by_text("Prompt template", exact=True).click()
        page.wait_for_selector("#synth-template-text:has-text('{categories}')")

        # The teacher kind decides its fields; a registered endpoint needs no typed URL.
        page.locator("#synth-backend").get_by_text("behind an OpenAI-compatible API").click()
        page.locator("#synth-base-url").wait_for(state="visible")
        assert not page.locator("#synth-model").is_visible()
        _pick(page, "synthesis-endpoint", "🌐 fake")
        page.locator("#synth-base-url").wait_for(state="hidden")
        page.wait_for_selector(f"#synthesis-yaml:has-text('base_url: {srv.base_url}')")
        assert "target_shares" in page.locator("#synthesis-yaml").inner_text()

        page.locator("#synth-try").click()
        page.wait_for_selector("#synth-message:has-text('3 of 3 rows parsed')", timeout=60_000)
        assert "Math" in page.locator("#synth-trial").inner_text()
        page.locator("#synth-run").click()
        page.wait_for_selector("#synth-message:has-text('submitted')")
        page.wait_for_selector("#synth-job:has-text('succeeded')", timeout=120_000)
        assert "3/3 rows" in page.locator("#synth-job").inner_text()
        page.screenshot(path=str(artifacts_dir / "synthesis-classify.png"), full_page=True)
    assert (ws.datasets / "mini-classify.jsonl").is_file() and (ws.datasets / "mini-classify-balanced.jsonl").is_file()
