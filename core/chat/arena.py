"""Sending one conversation to several model servers at once and streaming every answer in parallel.

Each column's request runs in its own thread (the HTTP client blocks per stream); the caller — a Gradio generator —
iterates `stream_columns` and redraws whenever some column changed, at most every `interval` seconds, so a fast
model does not flood the browser and a slow one does not hold the others back. Closing the iterator (the user pressed
Stop or left) cancels the streams: each worker stops at its next delta and closes its HTTP response.

Stats per column are measured here, client side, where the user waits: time to first token from the moment the
request is sent, tokens/s over the generation after the first token. Tokens are the server's own count, which the
stream reports at its end (`stream_options.include_usage`: vLLM, and our transformers serve job, which counts with the
model's tokenizer); a chunk is not a token (the transformers server streams word-sized pieces: counted as tokens they
read 78 "tokens" for a 250-token answer). While a reply streams, and from a server that reports no usage, the count is
the number of chunks, marked approximate (`ReplyStats.tokens_exact`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from core.chat.servers import ModelServers, client_for
from core.chat.session import ChatSession, Reply

StreamFn = Callable[[], Iterator[object]]


@dataclass
class StreamUsage:
    """The server's token count for one streamed request (the last thing a stream function yields)."""

    prompt_tokens: int
    completion_tokens: int


@dataclass
class ColumnRun:
    column: int
    start: StreamFn  # opens the request and yields text deltas (and optionally a usage object at the end)
    reply: Reply


def _worker(run: ColumnRun, changed: threading.Event, cancel: threading.Event) -> None:
    stats = run.reply.stats
    t0 = time.monotonic()
    it = None
    usage_tokens = None
    try:
        it = run.start()
        for item in it:
            if cancel.is_set():
                stats.error = stats.error or "stopped"
                break
            if isinstance(item, str):
                if not item:
                    continue
                now = time.monotonic()
                if stats.ttft_s is None:
                    stats.ttft_s = now - t0
                run.reply.text += item
                stats.tokens += 1
                stats.elapsed_s = now - t0
                changed.set()
            else:
                n = getattr(item, "completion_tokens", None)
                if isinstance(n, int) and n > 0:
                    usage_tokens = n
    except Exception as e:  # noqa: BLE001 - any failure of one column is shown in that column, never raised
        stats.error = _message(e)
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            try:
                close()
            except Exception:  # noqa: BLE001 - closing an already broken stream
                pass
        if usage_tokens is not None:
            stats.tokens, stats.tokens_exact = usage_tokens, True
        if stats.elapsed_s is None:
            stats.elapsed_s = time.monotonic() - t0
        stats.finished = True
        changed.set()


def _message(e: Exception) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:500]


def stream_columns(runs: list[ColumnRun], interval: float = 0.1) -> Iterator[list[ColumnRun]]:
    """Start every column's stream at once; yield the runs whenever something changed, and once when all finished."""
    changed, cancel = threading.Event(), threading.Event()
    threads = [threading.Thread(target=_worker, args=(r, changed, cancel), daemon=True, name=f"chat-col{r.column}")
               for r in runs]
    for t in threads:
        t.start()
    try:
        last = 0.0
        while any(t.is_alive() for t in threads):
            changed.wait(timeout=interval)
            wait = interval - (time.monotonic() - last)
            if wait > 0 and any(t.is_alive() for t in threads):
                time.sleep(wait)
            if changed.is_set():
                changed.clear()
                last = time.monotonic()
                yield runs
        for t in threads:
            t.join()
        yield runs
    finally:
        cancel.set()


@dataclass
class ColumnRequest:
    """What one column sends: its picker value, a label for the export, and its sampling settings."""

    column: int
    model: str
    params: Any
    label: str = ""


def respond(session: ChatSession, servers: ModelServers, requests: list[ColumnRequest],
            interval: float = 0.1) -> Iterator[None]:
    """Answer the session's last user turn in every requested column at once, streaming.

    A column whose model is not ready gets an error reply saying so; the others still answer.
    """
    runs = []
    for req in requests:
        reply = session.start_reply(req.column, req.label or req.model)
        state = servers.status(req.model)
        if not state.ready:
            reply.stats.error = _not_ready(state)
            reply.stats.finished = True
            continue
        conv = session.conversation(req.column)
        try:
            client = client_for(state)
        except Exception as e:  # noqa: BLE001 - shown in the column
            reply.stats.error, reply.stats.finished = _message(e), True
            continue
        runs.append(ColumnRun(req.column, partial(_with_usage, client, conv, req.params), reply))
    if not runs:
        yield None
        return
    for _ in stream_columns(runs, interval):
        yield None


def _with_usage(client: Any, conversation: list[dict], params: Any) -> Iterator[object]:
    """The client's text deltas, then the server's token count for this request when it reports one."""
    usage: list[StreamUsage] = []
    yield from client.stream(conversation, params, on_usage=lambda p, c: usage.append(StreamUsage(p, c)))
    if usage:
        yield usage[-1]


def _not_ready(state: Any) -> str:
    if not state.model:
        return "no model chosen for this column"
    if state.status == "failed":
        return f"'{state.model}' failed to load: {state.message}"
    if state.status in ("queued", "loading"):
        return f"'{state.model}' is still loading; send again when it shows ready"
    return f"'{state.model}' is not loaded: press Load"
