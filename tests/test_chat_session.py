"""Chat arena logic without a browser: per-column conversations, rendering of reasoning, parallel streaming, stats."""

from __future__ import annotations

import json
import threading
import time

import pytest

from core.chat.arena import ColumnRun, stream_columns
from core.chat.render import render_reply
from core.chat.session import ChatSession, ReplyStats


def test_each_column_keeps_its_own_history():
    s = ChatSession(system_prompt="Be brief.")
    s.add_user("hi")
    s.start_reply(0, "teacher").text = "hello from teacher"
    s.start_reply(1, "student").text = "hello from student"
    s.add_user("and then?")
    assert s.conversation(0) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello from teacher"},
        {"role": "user", "content": "and then?"},
    ]
    assert s.conversation(1)[2]["content"] == "hello from student"
    # a column that failed on turn 1 skips that exchange, so roles still alternate
    s.turns[0].replies[1].stats.error = "server down"
    assert [m["role"] for m in s.conversation(1)] == ["system", "user"]
    with pytest.raises(ValueError):
        s.add_user("   ")


def test_regenerate_clear_and_export():
    s = ChatSession()
    s.add_user("2+2?")
    r = s.start_reply(0, "teacher")
    r.text = "<think>2 and 2</think>4"
    r.stats = ReplyStats(ttft_s=0.1, tokens=5, elapsed_s=0.5, finished=True)
    doc = json.loads(json.dumps(s.export({0: {"model": "teacher"}})))
    reply = doc["turns"][0]["replies"]["0"]
    assert reply["reasoning"] == "2 and 2" and reply["answer"] == "4"
    assert reply["stats"]["tokens"] == 5 and reply["stats"]["tokens_per_s"] == pytest.approx(4 / 0.4)
    assert doc["columns"]["0"]["model"] == "teacher"
    assert s.regenerate() == "2+2?" and s.turns[0].replies == {}
    s.clear()
    assert s.turns == [] and not s.can_regenerate()


def test_render_reasoning_collapsible_and_streaming_states():
    done = render_reply("<think>step one</think>The answer.", ReplyStats(finished=True))
    assert done == [
        {"role": "assistant", "content": "step one", "metadata": {"title": "Reasoning", "status": "done"}},
        {"role": "assistant", "content": "The answer."},
    ]
    streaming = render_reply("<think>still going", ReplyStats())
    assert streaming[0]["metadata"]["status"] == "pending"
    cot = render_reply("<|begin_of_thought|>a<|end_of_thought|><|begin_of_solution|>b<|end_of_solution|>",
                       ReplyStats(finished=True), thought_title="推理过程")
    assert cot[0]["metadata"]["title"] == "推理过程" and cot[1]["content"] == "b"
    failed = render_reply("partial", ReplyStats(error="connection reset", finished=True))
    assert failed[-1]["content"].endswith("connection reset")


def _slow_stream(words: list[str], delay: float, started: threading.Event | None = None,
                 wait_for: threading.Event | None = None, saw: list[bool] | None = None):
    def start():
        if started is not None:
            started.set()
        if wait_for is not None:  # proves concurrency: this stream cannot go on until the other one has started
            saw.append(wait_for.wait(5))
        for w in words:
            time.sleep(delay)
            yield w
    return start


def test_columns_stream_in_parallel_with_stats():
    s = ChatSession()
    s.add_user("go")
    a_started, b_started, saw = threading.Event(), threading.Event(), []
    runs = [
        ColumnRun(0, _slow_stream(["a ", "b ", "c"], 0.05, a_started, b_started, saw), s.start_reply(0, "t")),
        ColumnRun(1, _slow_stream(["x ", "y"], 0.08, b_started), s.start_reply(1, "s")),
    ]
    snapshots = []
    for rs in stream_columns(runs, interval=0.01):
        snapshots.append([r.reply.text for r in rs])
    assert [r.reply.text for r in runs] == ["a b c", "x y"]
    assert saw == [True]  # column 1's request was sent while column 0's was open
    # some redraw showed both columns partially filled at once
    assert any(a and b and (a != "a b c" or b != "x y") for a, b in snapshots)
    for r in runs:
        st = r.reply.stats
        assert st.finished and st.error is None and st.ttft_s is not None and st.ttft_s > 0
        assert st.tokens == len(r.reply.text.split())
        assert st.tokens_per_s is not None and st.tokens_per_s > 0


def test_one_failing_column_does_not_stop_the_other():
    def broken():
        yield "par"
        raise ConnectionError("server went away")

    s = ChatSession()
    s.add_user("go")
    runs = [ColumnRun(0, broken, s.start_reply(0, "t")),
            ColumnRun(1, _slow_stream(["ok"], 0.01), s.start_reply(1, "s"))]
    list(stream_columns(runs, interval=0.01))
    assert runs[0].reply.stats.error == "server went away" and runs[0].reply.text == "par"
    assert runs[1].reply.text == "ok" and runs[1].reply.stats.error is None


def test_usage_object_overrides_chunk_count():
    class Usage:
        completion_tokens = 7

    def start():
        yield "two words"
        yield Usage()

    s = ChatSession()
    s.add_user("go")
    run = ColumnRun(0, start, s.start_reply(0, "t"))
    list(stream_columns([run], interval=0.01))
    assert run.reply.stats.tokens == 7 and run.reply.stats.tokens_exact
    assert run.reply.stats.describe().endswith(" 7 tokens")


def test_chunk_counts_are_marked_approximate():
    s = ChatSession()
    s.add_user("go")
    run = ColumnRun(0, _slow_stream(["two ", "words"], 0.01), s.start_reply(0, "t"))
    list(stream_columns([run], interval=0.01))
    st = run.reply.stats
    assert st.tokens == 2 and not st.tokens_exact and "~2 tokens" in st.describe()


def test_closing_the_iterator_cancels_streams():
    produced = []
    gate = threading.Event()

    def endless():
        i = 0
        while True:
            time.sleep(0.01)
            produced.append(i)
            i += 1
            gate.set()
            yield f"{i} "

    s = ChatSession()
    s.add_user("go")
    run = ColumnRun(0, endless, s.start_reply(0, "t"))
    it = stream_columns([run], interval=0.01)
    next(it)
    gate.wait(2)
    it.close()  # what Gradio does when the user presses Stop
    deadline = time.time() + 2
    while not run.reply.stats.finished and time.time() < deadline:
        time.sleep(0.01)
    assert run.reply.stats.finished and run.reply.stats.error == "stopped"
    n = len(produced)
    time.sleep(0.1)
    assert len(produced) <= n + 1
