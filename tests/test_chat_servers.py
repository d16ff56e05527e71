"""Chat model servers for real: Load = a serve job (worker process), concurrent chats queue at it, Unload ends it."""

from __future__ import annotations

import shutil
import threading
import time

import psutil
import pytest

from core.chat.arena import ColumnRequest, respond
from core.chat.servers import FAILED_S, NOT_LOADED, ModelServers
from core.chat.session import ChatSession
from core.llm.base import SamplingParams

pytestmark = pytest.mark.timeout(300)


def _wait(fn, timeout: float = 180.0, poll: float = 0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(poll)
    raise AssertionError(f"condition not met within {timeout}s")


@pytest.fixture
def served(workspace, tiny_models):
    from core.jobs.manager import JobManager

    shutil.copytree(tiny_models.teacher, workspace.models / "tiny-teacher")
    jobs = JobManager(workspace)
    servers = ModelServers(jobs, workspace)
    yield jobs, servers
    for info in jobs.list(status="active"):
        jobs.cancel(info.id, wait=15)


def test_load_chat_concurrently_and_unload(served, tiny_models):
    from transformers import AutoTokenizer

    jobs, servers = served
    tokenizer = AutoTokenizer.from_pretrained(tiny_models.teacher)
    assert servers.status("tiny-teacher").status == NOT_LOADED
    job_id = servers.load("tiny-teacher")
    assert servers.load("tiny-teacher") == job_id  # a second Load attaches to the same server
    state = _wait(lambda: (s := servers.status("tiny-teacher")).ready and s)
    assert state.base_url.startswith("http://127.0.0.1:") and state.pid

    # two users at once, each sending one conversation to the same server: both complete
    sessions = [ChatSession(), ChatSession()]
    errors: list[BaseException] = []

    def chat(sess: ChatSession, text: str) -> None:
        try:
            sess.add_user(text)
            params = SamplingParams(temperature=0.0, max_new_tokens=24)
            for _ in respond(sess, servers, [ColumnRequest(0, "tiny-teacher", params)]):
                pass
        except BaseException as e:  # noqa: BLE001 - re-raised below in the test thread
            errors.append(e)

    threads = [threading.Thread(target=chat, args=(s, f"hello number {i}")) for i, s in enumerate(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    for s in sessions:
        reply = s.turns[-1].replies[0]
        assert reply.stats.error is None, reply.stats.error
        assert reply.stats.finished and reply.text and reply.stats.tokens > 0 and reply.stats.ttft_s is not None
        # tokens are the server's count (its tokenizer's), not the number of streamed chunks (word-sized pieces)
        assert reply.stats.tokens_exact
        assert reply.stats.tokens == len(tokenizer.encode(reply.text, add_special_tokens=False)), reply.text

    pid = state.pid
    assert psutil.pid_exists(pid)
    servers.unload("tiny-teacher", wait=60)
    _wait(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, 60)
    assert servers.status("tiny-teacher").status == NOT_LOADED
    assert jobs.get(job_id).finished


def test_column_not_loaded_says_so(served):
    _, servers = served
    s = ChatSession()
    s.add_user("hi")
    list(respond(s, servers, [ColumnRequest(0, "tiny-teacher", SamplingParams())]))
    assert "not loaded" in s.turns[-1].replies[0].stats.error


def test_unknown_model_is_refused_before_any_job(served):
    jobs, servers = served
    with pytest.raises(Exception, match="unknown model|not a folder"):
        servers.load("no-such-model")
    assert jobs.list(kind="serve") == []


def test_failed_load_shows_the_reason(served, workspace):
    jobs, servers = served
    broken = workspace.models / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "qwen2"}')
    (broken / "chat_template.jinja").write_text("{{ messages }}")
    servers.load("broken")  # the folder exists: only the worker finds out the weights are missing
    state = _wait(lambda: (s := servers.status("broken")).status == FAILED_S and s, 120)
    assert "cannot load model" in state.message and "model.safetensors" in state.message
    assert "\n" not in state.message  # the reason, not a traceback (that is in the job's log)
