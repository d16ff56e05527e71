"""The Chat arena in a real Chromium: load the tiny teacher and student as serve jobs, send one message, both columns
stream and finish with their stats; Unload ends the worker process."""

from __future__ import annotations

import json
import time

import psutil
import pytest

from tests.browser_support import cancel_active_jobs, open_tab, seed_workspace

pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]


def _status(page, i: int) -> str:
    return page.locator(f"#eds-chat-status{i}").inner_text()


def _serve_jobs(ws_dir):
    from core.jobs.manager import JobManager

    return JobManager(ws_dir).list(kind="serve")


def test_arena_load_chat_unload(studio, browser_page, tmp_path, tiny_models, artifacts_dir):
    ws_dir = seed_workspace(tmp_path / "ws", {"tiny-teacher": tiny_models.teacher, "tiny-student": tiny_models.student})
    sp = studio()
    page = browser_page
    open_tab(page, sp.url, "Chat")
    try:
        # the columns preselect the teacher and the student of the workspace
        for i in (0, 1):
            page.wait_for_function(f"document.querySelector('#eds-chat-status{i}').innerText.includes('press Load')")
        page.locator("#eds-chat-load0").click()
        page.locator("#eds-chat-load1").click()
        for i in (0, 1):
            page.wait_for_function(
                f"document.querySelector('#eds-chat-status{i}').innerText.includes('ready')", timeout=180_000)
        page.screenshot(path=str(artifacts_dir / "chat-loaded.png"), full_page=True)
        jobs = {j.name: j for j in _serve_jobs(ws_dir)}
        assert set(jobs) == {"chat: tiny-teacher", "chat: tiny-student"}
        assert all(j.status == "running" and j.pid for j in jobs.values())

        page.locator("#eds-chat-input textarea").fill("Tell me about the teacher and the student.")
        page.locator("#eds-chat-send").click()
        # both columns answer: the stats line under each chat turns to ✓ once its reply finished
        for i in (0, 1):
            page.wait_for_function(
                f"document.querySelector('#eds-chat-stats{i}').innerText.includes('✓')", timeout=120_000)
            bot = page.locator(f"#eds-chat-bot{i}")
            assert "Tell me about the teacher" in bot.inner_text()
            assert "TTFT" in page.locator(f"#eds-chat-stats{i}").inner_text()
        texts = [page.locator(f"#eds-chat-bot{i}").inner_text() for i in (0, 1)]
        assert all(len(t.replace("Tell me about the teacher and the student.", "").strip()) > 0 for t in texts)
        page.screenshot(path=str(artifacts_dir / "chat-answered.png"), full_page=True)

        # a second turn: each column continues its own conversation; then export the whole chat as JSON
        page.locator("#eds-chat-input textarea").fill("And then?")
        page.locator("#eds-chat-send").click()
        for i in (0, 1):
            page.wait_for_function(f"document.querySelector('#eds-chat-bot{i}').innerText.includes('And then?') && "
                                   f"document.querySelector('#eds-chat-stats{i}').innerText.includes('✓')",
                                   timeout=120_000)
        page.locator("#eds-chat-export").click()
        page.locator("#eds-chat-export-file a[href*='chat-']").first.wait_for()
        (exported,) = list((ws_dir / "cache" / "chat-exports").glob("chat-*.json"))
        doc = json.loads(exported.read_text())
        assert [t["user"] for t in doc["turns"]] == ["Tell me about the teacher and the student.", "And then?"]
        assert set(doc["turns"][1]["replies"]) == {"0", "1"}
        assert doc["columns"]["0"]["model"] == "tiny-teacher"

        teacher = jobs["chat: tiny-teacher"]
        page.locator("#eds-chat-unload0").click()
        page.wait_for_function("document.querySelector('#eds-chat-status0').innerText.includes('press Load')",
                               timeout=90_000)
        deadline = time.time() + 60
        while time.time() < deadline and psutil.pid_exists(teacher.pid):
            try:
                if psutil.Process(teacher.pid).status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            time.sleep(0.5)
        assert not psutil.pid_exists(teacher.pid) or psutil.Process(teacher.pid).status() == psutil.STATUS_ZOMBIE
        after = {j.name: j for j in _serve_jobs(ws_dir)}
        assert after["chat: tiny-teacher"].finished
        assert after["chat: tiny-student"].status == "running"  # the other column's server is untouched
        assert "ready" in _status(page, 1)
    finally:
        cancel_active_jobs(ws_dir, wait=15)


def test_evaluate_from_the_browser(studio, browser_page, tmp_path, artifacts_dir):
    """Score a model on a held-out set from the Evaluate section: submit, watch results arrive, drill down, export."""
    from core.models.registry import EndpointEntry, save_endpoint
    from core.workspace import Workspace
    from tests.fake_openai_server import FakeOpenAIServer

    ws = Workspace.open(tmp_path / "ws")
    quiz = [("2+2?", "4", "4"), ("3+3?", "6", "seven"), ("5-1?", "4", "The answer is 4.")]
    (ws.datasets / "quiz.jsonl").write_text(
        "".join(json.dumps({"id": f"q{i}", "instruction": q, "answer": a}) + "\n" for i, (q, a, _) in enumerate(quiz)))
    answers = {q: s for q, _, s in quiz}
    with FakeOpenAIServer(lambda msgs: answers[msgs[-1]["content"]]) as srv:
        save_endpoint(ws, EndpointEntry(name="student-api", base_url=srv.base_url, model="fake-model"))
        sp = studio()
        page = browser_page
        open_tab(page, sp.url, "Chat")
        page.get_by_role("tab", name="Evaluate", exact=True).click()
        page.locator("#eds-eval-model input").click()
        page.get_by_role("option", name="🌐 student-api").click()
        page.locator("#eds-eval-dataset input").click()
        page.get_by_role("option", name="quiz").click()
        page.locator("#eds-eval-submit").click()
        page.wait_for_function("document.querySelector('#eds-eval-submitted').innerText.includes('submitted')")
        page.wait_for_function("document.querySelector('#eds-eval-status').innerText.toLowerCase()"
                               ".includes('succeeded')",
                               timeout=120_000)
        page.wait_for_function("document.querySelector('#eds-eval-summary').innerText.includes('0.6667')")
        assert "exact_match" in page.locator("#eds-eval-summary").inner_text()
        page.locator("#eds-eval-rows").get_by_text("q1", exact=True).click()
        page.wait_for_function("document.querySelector('#eds-eval-detail').innerText.includes('seven')")
        page.locator("#eds-eval-export").click()
        page.locator("#eds-eval-export-file a[href*='evaluation.md']").first.wait_for()
        assert "seven" in page.locator("#eds-eval-detail").inner_text()  # the timer did not wipe the open row
        page.screenshot(path=str(artifacts_dir / "chat-evaluate.png"), full_page=True)
    assert len(srv.answered()) == 3
