"""The Models tab in a real Chromium: the registry table, deriving a student as a real job, the KD compatibility
check, and registering + testing a remote endpoint (a local OpenAI-compatible server)."""

from __future__ import annotations

import json
import time

import pytest

from tests.browser_support import open_tab, seed_workspace
from tests.fake_openai_server import FakeOpenAIServer

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]


def _pick(page, elem_id: str, value: str) -> None:
    """Choose a dropdown value by typing it (Gradio dropdowns filter as you type)."""
    box = page.locator(f"#{elem_id} input").first
    box.click()
    box.fill(value)
    page.locator(f"#{elem_id}").get_by_role("option", name=value, exact=True).click()


def _table_has(page, text: str) -> None:
    page.wait_for_function("([t]) => document.querySelector('#models-table').innerText.includes(t)", arg=[text])


def _type(page, elem_id: str, value: str) -> None:
    box = page.locator(f"#{elem_id} textarea, #{elem_id} input").first
    box.fill(value)
    box.press("Tab")


def test_models_tab_table_derive_compat_and_endpoint(studio, browser_page, tiny_models, tmp_path, artifacts_dir):
    ws = seed_workspace(tmp_path / "ws", {"tiny-teacher": tiny_models.teacher, "tiny-student": tiny_models.student})
    sp = studio()
    page = browser_page
    open_tab(page, sp.url, "Models")
    table = page.locator("#models-table")
    _table_has(page, "tiny-teacher")
    assert "Qwen2ForCausalLM" in table.inner_text()

    # derive a student: choosing the teacher proposes half its layers and a name; the preview counts parameters
    _pick(page, "models-teacher", "tiny-teacher")
    page.wait_for_function("document.querySelector('#models-derive-preview').innerText.includes('Keeps 2 of 4')")
    assert page.locator("#models-out-name textarea, #models-out-name input").first.input_value() == "tiny-teacher-2l"
    assert "[0, 3]" in page.locator("#models-derive-preview").inner_text()
    page.locator("#models-derive-button").click()
    page.wait_for_function("document.querySelector('#models-job-msg').innerText.includes('derive-')")
    deadline = time.time() + 240
    msg = ""
    while time.time() < deadline:
        msg = page.locator("#models-job-msg").inner_text()
        if any(w in msg.lower() for w in ("succeeded", "failed", "cancelled")):
            break
        time.sleep(1)
    page.screenshot(path=str(artifacts_dir / "models-tab-derive.png"), full_page=True)
    assert "succeeded" in msg.lower(), msg + sp.log()[-2000:]  # the state in the page's words ("Succeeded")
    assert "kept 2/4 layers [0, 3]" in msg and "KL to teacher" in msg, msg
    assert json.loads((ws / "models" / "tiny-teacher-2l" / "config.json").read_text())["num_hidden_layers"] == 2
    _table_has(page, "tiny-teacher-2l")  # the table refreshed itself

    # an existing name is refused with a message
    page.locator("#models-derive-button").click()
    page.wait_for_function("document.querySelector('#models-job-msg').innerText.includes('already exists')")

    # logit-KD compatibility
    page.get_by_text("Teacher–student compatibility (logit KD)").click()
    _pick(page, "models-compat-teacher", "tiny-teacher")
    _pick(page, "models-compat-student", "tiny-student")
    page.locator("#models-compat-button").click()
    page.wait_for_function("document.querySelector('#models-compat-msg').innerText.includes('same tokenizer')")

    # a remote endpoint: saved (only the key's variable name), tested against a live server, shown in the table
    with FakeOpenAIServer(model="remote-teacher") as srv:
        page.get_by_text("Remote endpoints", exact=True).click()
        _type(page, "models-ep-name", "remote")
        _type(page, "models-ep-url", srv.base_url)
        page.locator("#models-ep-test").click()
        page.wait_for_function("document.querySelector('#models-ep-msg').innerText.includes('remote-teacher')")
        assert "Reachable" in page.locator("#models-ep-msg").inner_text()
        _type(page, "models-ep-key-env", "sk-not-a-variable-name")
        page.locator("#models-ep-save").click()
        page.wait_for_function("document.querySelector('#models-ep-msg').innerText.includes('NAME of the variable')")
        _type(page, "models-ep-key-env", "REMOTE_API_KEY")
        page.locator("#models-ep-save").click()
        page.wait_for_function("document.querySelector('#models-ep-msg').innerText.includes('saved')")
        _table_has(page, "REMOTE_API_KEY")
    saved = json.loads((ws / "endpoints.json").read_text())["endpoints"]
    assert saved == [{"name": "remote", "base_url": srv.base_url, "model": None, "api_key_env": "REMOTE_API_KEY",
                      "notes": ""}]
    page.screenshot(path=str(artifacts_dir / "models-tab.png"), full_page=True)
