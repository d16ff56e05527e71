"""What Gradio recomputes while the studio starts, computed once (issue 17: start to HTTP 200 <= 1.15x a bare Gradio
app). Each helper keeps Gradio's behaviour and answers; only repeated work on the same input is skipped. Measured on
the 2-core box with bytecode cached (`bench/studio.py --only start`, in-process `time.process_time`)."""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import gradio as gr


def _inspect_with(**replaced: Callable[..., Any]) -> SimpleNamespace:
    """The `inspect` module as a namespace with `replaced` functions: what a Gradio module gets in place of its
    `inspect` (the rest of the process keeps the real one; a SimpleNamespace also marks the patch as made)."""
    names = {k: getattr(inspect, k) for k in dir(inspect) if not k.startswith("__")}
    return SimpleNamespace(**{**names, **replaced})


def argspecs_once() -> None:
    """Gradio wraps every component's `__init__` in a function that calls `inspect.getfullargspec` on the same
    `__init__` on each call (twice per component: its class's and `Component`'s): about 60 % of the time to create a
    component, ~0.15 ms each, ~0.13 s CPU for the studio's ~870 blocks at start (bench/studio.py). An `__init__`'s
    argument list never changes, so `gradio.component_meta` gets `inspect` with that one function cached."""
    from gradio import component_meta

    spec = getattr(component_meta.inspect, "getfullargspec", None)
    if spec is None or isinstance(component_meta.inspect, SimpleNamespace):
        return
    component_meta.inspect = _inspect_with(getfullargspec=functools.cache(spec))
    init_signatures_once()


def init_signatures_once() -> None:
    """Gradio's `Block.get_config` takes `inspect.signature(cls.__init__)` for every block each time the page's
    config is made (~33 us each, ~0.03 s CPU for the studio's ~870 blocks). A class's `__init__` never changes, so
    `gradio.blocks` gets `inspect` with the signatures of `__init__`s cached; any other callable's as before."""
    from gradio import blocks

    if isinstance(blocks.inspect, SimpleNamespace):
        return
    signature = inspect.signature
    init_signature = functools.cache(signature)

    def cached(obj, *args, **kwargs):  # noqa: ANN001, ANN202 (inspect.signature's own arguments)
        if args or kwargs or getattr(obj, "__name__", None) != "__init__":
            return signature(obj, *args, **kwargs)
        return init_signature(obj)

    blocks.inspect = _inspect_with(signature=cached)


def upload_folder_once() -> None:
    """Every Gradio block asks `gradio.utils.get_upload_folder()` at creation (`GRADIO_TEMP_DIR`, else the temp
    folder's `gradio`, resolved through the file system each time: ~0.015 s CPU for the studio's ~870 blocks). The
    answer is the same for the whole process, so it is asked once and set as `GRADIO_TEMP_DIR` (an existing setting
    wins; jobs started from here inherit the same folder they would compute)."""
    from gradio.utils import get_upload_folder

    os.environ.setdefault("GRADIO_TEMP_DIR", get_upload_folder())


def queued(demo: gr.Blocks, default_concurrency_limit: int) -> gr.Blocks:
    """`demo.queue(default_concurrency_limit=...)` without building the FastAPI app again: `gr.Blocks()` already made
    the queue (its `__init__` calls `queue()`), and each `queue()` rebuilds the app (~0.04 s CPU, 166 routes) that
    `launch()` then replaces with the one it serves. Only the default limit differs from the queue made at init, so
    that is set on it; a Gradio without that queue gets the plain call."""
    q = getattr(demo, "_queue", None)
    resolve = getattr(q, "_resolve_concurrency_limit", None)
    if resolve is None or not hasattr(q, "default_concurrency_limit"):
        return demo.queue(default_concurrency_limit=default_concurrency_limit)
    q.default_concurrency_limit = resolve(default_concurrency_limit)
    return demo


@contextlib.contextmanager
def handlers_inspected_once() -> Iterator[None]:
    """While the page is built, each event handler's signature and type hints are computed once: Gradio asks for them
    five times per event as it wires it (`gradio.utils` and `gradio.helpers.special_args`; ~0.05 s CPU for the
    studio's ~270 events, the string annotations of `from __future__ import annotations` evaluated each time).
    Scoped to the build: the memo holds the handlers (alive in the page anyway) and is dropped at the end, so a
    process building many apps keeps nothing; events called later ask Gradio as before."""
    from gradio import helpers, utils

    plain_hints = utils.get_type_hints
    signatures: dict[Any, inspect.Signature] = {}
    hints: dict[Any, Any] = {}

    def signature(obj: Any, *args: Any, **kwargs: Any) -> inspect.Signature:
        if args or kwargs:
            return inspect.signature(obj, *args, **kwargs)
        return _memo(signatures, obj, inspect.signature)

    def get_type_hints(fn: Any) -> Any:
        return _memo(hints, fn, plain_hints)

    patched = _inspect_with(signature=signature)
    saved = (utils.inspect, helpers.inspect)
    utils.inspect = helpers.inspect = patched  # type: ignore[assignment]
    utils.get_type_hints = get_type_hints
    try:
        yield
    finally:
        utils.inspect, helpers.inspect = saved
        utils.get_type_hints = plain_hints


def _memo(memo: dict[Any, Any], key: Any, make: Callable[[Any], Any]) -> Any:
    """`make(key)`, remembered in `memo`; an unhashable key, or one whose `make` raises, is asked each time."""
    try:
        hit = memo.get(key, _MISSING)
    except TypeError:
        return make(key)
    if hit is _MISSING:
        hit = memo[key] = make(key)
    return hit


_MISSING = object()


@contextlib.contextmanager
def app_made_at_launch_only() -> Iterator[None]:
    """While `main()` builds the page, Gradio's `App.create_app` makes nothing: `gr.Blocks()` (through its `queue()`)
    and the block's end each build a FastAPI app of 166 routes that nothing reads before `launch()` builds the one it
    serves (~0.035 s CPU each; the first also imports what any app needs, which launch then does). `demo.app` is None
    until launch. Only for `main()`: a caller of `build_app` that serves `demo.app` itself gets Gradio's."""
    from gradio import routes

    plain = routes.App.__dict__["create_app"]
    routes.App.create_app = staticmethod(_no_app)  # type: ignore[method-assign]
    try:
        yield
    finally:
        routes.App.create_app = plain  # type: ignore[method-assign]


def _no_app(*_args: Any, **_kwargs: Any) -> None:
    return None
