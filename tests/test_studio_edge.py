"""The UI edge (studio.edge): every handler is guarded once — a UserError is shown as it is, a bug is logged with
its traceback and shown as "internal error, see <log>" — and guarding changes nothing else: generators still
stream, coroutines are still awaited, and Gradio still sees a handler's SelectData annotation."""

from __future__ import annotations

import asyncio
import inspect

import gradio as gr
import pytest

from core.errors import UserError
from studio.edge import _Edge, guard, guard_all, setup_logging


@pytest.fixture
def edge(tmp_path):
    path = setup_logging(tmp_path / "ws")
    return _Edge(path, f"Internal error — the details are in the log: {path}")


def test_a_bug_is_logged_and_shown_with_the_log_path(edge):
    def on_click(x: int) -> int:
        raise RuntimeError(f"boom {x}")

    with pytest.raises(gr.Error) as err:
        guard(on_click, edge)(7)
    assert str(edge.log_path) in err.value.message and edge.log_path.name == "studio.log"
    logged = edge.log_path.read_text(encoding="utf-8")
    assert "Traceback" in logged and "RuntimeError: boom 7" in logged and "on_click" in logged


def test_a_user_error_is_shown_as_it_is_and_not_logged(edge):
    def on_click() -> None:
        raise UserError("dataset 'x' has no column 'prompt'")

    before = edge.log_path.read_text(encoding="utf-8")
    with pytest.raises(gr.Error, match="no column 'prompt'"):
        guard(on_click, edge)()
    own = gr.Error("pick a job first")
    with pytest.raises(gr.Error) as err:
        guard(lambda: (_ for _ in ()).throw(own), edge)()
    assert err.value is own
    assert edge.log_path.read_text(encoding="utf-8") == before


def test_a_generator_still_streams_and_fails_at_the_edge(edge):
    seen = []

    def stream(n: int):
        for i in range(n):
            seen.append(i)
            yield i
        raise ValueError("bug after the stream")

    wrapped = guard(stream, edge)
    assert inspect.isgeneratorfunction(wrapped)
    it = wrapped(3)
    assert next(it) == 0 and seen == [0]  # one item at a time, not collected first
    assert next(it) == 1 and seen == [0, 1]
    assert next(it) == 2
    with pytest.raises(gr.Error, match="details are in the log"):
        next(it)
    assert "ValueError: bug after the stream" in edge.log_path.read_text(encoding="utf-8")


def test_async_handlers_keep_their_kind(edge):
    async def coro(x: int) -> int:
        return x + 1

    async def agen(n: int):
        for i in range(n):
            yield i
        raise UserError("stop here")

    w_coro, w_agen = guard(coro, edge), guard(agen, edge)
    assert inspect.iscoroutinefunction(w_coro) and inspect.isasyncgenfunction(w_agen)

    async def run():
        got = [i async for i in _until_error(w_agen(2))]
        return await w_coro(1), got

    result, got = _run_async(run())
    assert result == 2 and got == [0, 1, "stop here"]


async def _until_error(agen):
    try:
        async for i in agen:
            yield i
    except gr.Error as e:
        yield e.message


def test_guard_all_wraps_every_handler_and_gradio_still_sees_select_data(edge):
    with gr.Blocks() as demo:
        table = gr.Dataframe(value=[["a", 1]], interactive=False)
        out = gr.Textbox()

        def pick(evt: gr.SelectData) -> str:
            return f"row {evt.index[0]}"

        def stream(text: str):
            yield text
            yield text + "!"

        table.select(pick, None, out)
        out.submit(stream, out, out)
    assert guard_all(demo, edge.log_path, edge.internal_message) == 2
    assert guard_all(demo, edge.log_path, edge.internal_message) == 0  # once
    select_fn, stream_fn = demo.fns.values()
    assert inspect.isgeneratorfunction(stream_fn.fn) and stream_fn.types_generator
    data = gr.SelectData(table, {"index": [0, 1], "value": 1, "row_value": ["a", 1], "selected": True})
    result = _run_async(demo.call_function(select_fn, [], event_data=data))
    assert result["prediction"] == "row 0"


def _run_async(coro):
    """asyncio.run in a thread of its own: in the full suite Playwright's sync API keeps a loop running in this one."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()
