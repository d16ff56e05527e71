"""The UI edge: every event handler of the Blocks runs inside one guard, the studio's only `except Exception`.

A `core.errors.UserError` (a bad value, a refused path, a job in the wrong state) is shown to the person as a Gradio
error toast, worded in the page's language (`UIContext.error_text`: the error's `code` + `params`). Anything else is
a bug: its traceback goes to `<workspace>/logs/studio.log` and the person sees "internal error, the details are in
<log>" — nothing is swallowed, nothing leaks a traceback into the page.

Each handler keeps its kind (function, generator, coroutine, async generator), so Gradio still streams generators,
awaits coroutines, and — through `functools.wraps` — still sees `gr.SelectData` / `gr.Request` annotations.

Which page an event comes from (`event_session`) is read from Gradio's own per-event context, which Gradio sets
around each call of a handler and each step of a generator, in whatever thread it runs: no handler takes an extra
input for it, and `UIContext.lang` turns it into the page's current language.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from core.errors import UserError

LOG_NAME = "easydistill.studio"
LOG_FILE = "studio.log"

log = logging.getLogger(LOG_NAME)


def setup_logging(root: Path) -> Path:
    """Log the studio's errors to `<root>/logs/studio.log` (once per path, however often the app is built)."""
    path = (Path(root) / "logs" / LOG_FILE).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    if not any(isinstance(h, logging.FileHandler) and Path(h.baseFilename) == path for h in log.handlers):
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    return path


def event_session() -> str | None:
    """The Gradio session (one open page) whose event is being handled now; None outside an event."""
    from gradio.context import LocalContext

    return getattr(LocalContext.request.get(None), "session_hash", None)


class _Edge:
    """What a guarded handler does with an exception: show a UserError, log a bug and show where it was logged.

    `internal_message` (a text, or a function giving it in the page's language) and `wording` (a UserError's text for
    the person; default: its English report) are called inside the event, so they can read the page's language."""

    def __init__(self, log_path: Path, internal_message: str | Callable[[], str],
                 wording: Callable[[Exception], str] | None = None):
        self.log_path = log_path
        self.internal_message = internal_message
        self.wording = wording

    @contextlib.contextmanager
    def catching(self, fn: Callable[..., Any]) -> Iterator[None]:
        """Around one call (or one whole stream) of `fn`: the only place the studio catches every exception."""
        try:
            yield
        except gr.Error:  # a handler's own message for the person
            raise
        except Exception as e:  # the UI edge: shown if a UserError, logged with its traceback otherwise
            raise self.failed(fn, e) from e

    def failed(self, fn: Callable[..., Any], e: Exception) -> gr.Error:
        """The message for the person; a bug's traceback is logged first."""
        if isinstance(e, UserError):
            return gr.Error(self.wording(e) if self.wording else e.report())
        log.error("handler %s.%s failed", getattr(fn, "__module__", "?"), getattr(fn, "__qualname__", fn),
                  exc_info=e)
        msg = self.internal_message
        return gr.Error(msg() if callable(msg) else msg)


def guard(fn: Callable[..., Any], edge: _Edge) -> Callable[..., Any]:
    """`fn` wrapped by a guard of the same kind (plain, generator, coroutine, async generator)."""
    if inspect.isasyncgenfunction(fn):
        @functools.wraps(fn)
        async def async_gen(*args: Any, **kwargs: Any) -> Any:
            with edge.catching(fn):
                async for item in fn(*args, **kwargs):
                    yield item
        return async_gen
    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def coro(*args: Any, **kwargs: Any) -> Any:
            with edge.catching(fn):
                return await fn(*args, **kwargs)
        return coro
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen(*args: Any, **kwargs: Any) -> Any:
            with edge.catching(fn):
                return (yield from fn(*args, **kwargs))
        return gen

    @functools.wraps(fn)
    def plain(*args: Any, **kwargs: Any) -> Any:
        with edge.catching(fn):
            return fn(*args, **kwargs)
    return plain


def guard_all(demo: gr.Blocks, log_path: Path, internal_message: str | Callable[[], str],
              wording: Callable[[Exception], str] | None = None) -> int:
    """Guard every event handler of `demo` (call after all tabs are built); returns how many were wrapped."""
    edge = _Edge(log_path, internal_message, wording)
    n = 0
    for block_fn in demo.fns.values():
        if block_fn.fn is None or getattr(block_fn.fn, "__eds_guarded__", False):
            continue
        block_fn.fn = guard(block_fn.fn, edge)
        block_fn.fn.__eds_guarded__ = True  # type: ignore[attr-defined]
        n += 1
    return n
