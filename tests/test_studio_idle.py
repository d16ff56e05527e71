"""An idle studio stops polling: Gradio's queue loops sleep long while nothing is queued, running or recently pushed,
and a request after a quiet spell is still answered (studio/idle.py; the CPU figure is in bench/idle_cpu.py)."""

from __future__ import annotations

import time

import gradio as gr
import pytest

from core.net import free_port
from studio import idle


def _until(cond, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def quiet_app(monkeypatch):
    monkeypatch.setattr(idle, "IDLE_AFTER_S", 0.3)
    seen: list[tuple] = []  # what the queue's loops would sleep while the event runs

    def shout(s: str) -> str:
        q = demo._queue
        seen.append((q.busy(), q.sleep_when_free, q.progress_update_sleep_when_free))
        return s.upper()

    with gr.Blocks(analytics_enabled=False) as demo:
        box, out = gr.Textbox(), gr.Textbox()
        box.submit(shout, box, out, api_name="shout")
    idle.quiet_when_idle(demo.queue())
    assert idle.quiet_when_idle(demo) is demo  # a second call changes nothing
    _, url, _ = demo.launch(server_port=free_port(), prevent_thread_lock=True, quiet=True, ssr_mode=False,
                            _frontend=False)
    yield demo, url, seen
    demo.close()


def test_queue_sleeps_when_nobody_asks_and_still_answers(quiet_app):
    from gradio_client import Client

    demo, url, seen = quiet_app
    q = demo._queue
    # Nobody connected: both loops pick the idle intervals, not Gradio's 1 ms / 10 ms.
    assert _until(lambda: q.idle_polls >= 2), "the queue loops never went idle"
    assert not q.busy()
    assert q.sleep_when_free == idle.IDLE_SLEEP_S
    assert q.progress_update_sleep_when_free == idle.IDLE_PROGRESS_SLEEP_S

    client = Client(url, verbose=False)
    assert client.predict("quiet", api_name="/shout") == "QUIET"
    # While an event runs: Gradio's own intervals again; then the quiet spell comes back.
    assert seen == [(True, 0.001, 0.01)]
    assert _until(lambda: not q.busy()), "the queue stayed busy with nothing to do"
    polls = q.idle_polls
    assert _until(lambda: q.idle_polls > polls)
    client.close()
