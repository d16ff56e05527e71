"""The page a browser loads first, kept light, and status polls that never wait in the queue (issue 17).

Gradio inlines two things into GET /: the page's config (every component and event) and, for each event listener
whose `api_visibility` is "public" (Gradio's default), a description of it as an API endpoint. The studio's events
are the internals of its own UI (the headless interface is the CLI), so `lighten` makes every one private: no API
page, nothing for gradio_client, and the first page no longer computes and carries a description of ~440 endpoints
(3.6 MB, the larger part of the page and of the time to the first answer). The browser calls events by index, as
before.

The config then drops what only that API description used or what the frontend assumes when it is absent (checked
against Gradio 6's frontend and gradio_client; the browser tests exercise the result):
- per component: the JSON schemas of its value (`api_info`, `api_info_as_input`, `api_info_as_output`,
  `example_inputs`: read by `Blocks.get_api_info` for public events only, and by gradio_client with a fallback) and,
  for Gradio's own components, `component_class_id` (the frontend finds a built-in component by its type name) and
  `preserved_by_key` (what a gr.render keeps on the server; no frontend reads it);
- per event, keys at the value the frontend takes for "absent" (false, null, [], the batch size of an event that is
  not batched, the stream interval of one that does not stream); not `trigger_after`, whose null the frontend tells
  from a missing key.

Polls: an event a `gr.Timer` triggers is sent outside the queue (`queue=False`: one POST answered from the server's
thread pool), so a status panel's refresh neither waits for a queue slot behind long events nor holds an event
stream open; each costs what its handler costs (the Jobs tab's is O(rows shown)). A generator or a handler with a
progress bar needs the queue, so such a timer event stays queued.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import gradio as gr

VALUE_SCHEMAS = ("api_info", "api_info_as_input", "api_info_as_output", "example_inputs")
ABSENT_MEANS = {  # event config key -> the value the frontend also assumes when the key is missing
    "trigger_only_on_success": False, "trigger_only_on_failure": False, "collects_event_data": False,
    "component_prop_inputs": [], "event_specific_args": None, "scroll_to_output": False, "js_implementation": None,
    "show_progress_on": None, "api_description": None, "time_limit": None, "render_id": None, "rendered_in": None,
}


def lighten(demo: gr.Blocks) -> gr.Blocks:
    """Every event private, polls out of the queue, the config trimmed (see the module's words) and computed once.
    Call inside `with gr.Blocks() as demo:` after the last event is wired: Gradio computes the config when the block
    closes, again when the app is created and twice more at launch (~0.3 s each for this page); the same result is
    reused until a component or event is added."""
    blocks_config = demo.default_config
    full = blocks_config.get_config
    cache: dict[str, Any] = {}

    def get_config(renderable: Any = None) -> dict:
        if renderable is not None:  # a gr.render's part, as Gradio makes it
            return full(renderable)
        key = (len(blocks_config.blocks), len(blocks_config.fns), blocks_config.fn_id)
        if cache.get("key") != key:
            for fn in blocks_config.fns.values():
                fn.api_visibility = "private"
                if _is_poll(demo, fn):
                    fn.queue = False
            cache.update(key=key, config=trim_config(_without_value_schemas(demo, full), demo))
        return dict(cache["config"])

    blocks_config.get_config = get_config  # type: ignore[method-assign]
    return demo


def _without_value_schemas(demo: gr.Blocks, make: Callable[[], dict]) -> dict:
    """`make()` (Gradio's config) without computing the value schemas `trim_config` drops: each component's four
    schema methods answer None meanwhile (~0.03 s CPU of the config's ~0.08 s: pydantic JSON schemas for ~45 of the
    studio's components). Gradio reads them nowhere else for a page whose events are all private."""
    shadowed = [b for b in list(demo.blocks.values()) if not getattr(b, "skip_api", True)]
    for block in shadowed:
        for name in VALUE_SCHEMAS:
            setattr(block, name, _no_schema)
    try:
        return make()
    finally:
        for block in shadowed:
            for name in VALUE_SCHEMAS:
                vars(block).pop(name, None)


def _no_schema() -> None:
    return None


def _is_poll(demo: gr.Blocks, fn: Any) -> bool:
    """An event a gr.Timer's tick triggers, with a plain function (a generator or a progress bar needs the queue)."""
    ticked = any(isinstance(demo.blocks.get(block_id), gr.Timer) and event == "tick" for block_id, event in fn.targets)
    plain = fn.fn is not None and not (inspect.isgeneratorfunction(fn.fn) or inspect.isasyncgenfunction(fn.fn))
    return ticked and plain and not fn.tracks_progress


def trim_config(config: dict, demo: gr.Blocks) -> dict:
    for comp in config.get("components", []):
        for key in VALUE_SCHEMAS:
            comp.pop(key, None)
        comp.get("props", {}).pop("preserved_by_key", None)
        block = demo.blocks.get(comp.get("id"))
        if block is not None and type(block).__module__.startswith("gradio."):
            comp.pop("component_class_id", None)
    for dep in config.get("dependencies", []):
        for key, absent in ABSENT_MEANS.items():
            if key in dep and dep[key] == absent:
                del dep[key]
        if not dep.get("batch"):
            dep.pop("max_batch_size", None)
        if dep.get("connection") != "stream":
            dep.pop("stream_every", None)
    return config
