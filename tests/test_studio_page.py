"""The first page is light: no internal event handler is exposed as an API endpoint (nothing for gradio_client, no
API description inlined into GET /), the config carries no per-component API schemas, and status polls are answered
outside the queue (a direct POST), as the browser sends them."""

from __future__ import annotations

import httpx


def test_no_handler_is_an_api_and_polls_skip_the_queue(studio):
    from gradio_client import Client

    sp = studio()
    info = Client(sp.url, verbose=False).view_api(return_format="dict", print_info=False)
    assert info["named_endpoints"] == {} and info["unnamed_endpoints"] == {}
    assert httpx.get(sp.url + "/gradio_api/info").json() == {"named_endpoints": {}, "unnamed_endpoints": {}}

    cfg = httpx.get(sp.url + "/config").json()
    deps = cfg["dependencies"]
    assert len(deps) > 100 and all(d["api_visibility"] == "private" for d in deps)
    assert not [c["id"] for c in cfg["components"] if "api_info" in c or "example_inputs" in c]
    assert "api" not in cfg["footer_links"]
    page = httpx.get(sp.url + "/").text
    assert '"named_endpoints":{}' in page.replace(" ", "")

    comps = {c["id"]: c for c in cfg["components"]}
    polls = [d for d in deps if any(comps.get(t, {}).get("type") == "timer" and ev == "tick" for t, ev in d["targets"])]
    assert polls and all(d["queue"] is False for d in polls)
    table = next(c["id"] for c in cfg["components"] if c["props"].get("elem_id") == "jobs-table")
    tick = next(d for d in polls if table in d["outputs"])
    data = [None if comps[i]["type"] == "state" else comps[i]["props"].get("value") for i in tick["inputs"]]
    r = httpx.post(f"{sp.url}/gradio_api/run/{tick['api_name']}", timeout=60, json={
        "data": data, "fn_index": tick["id"], "session_hash": "pagetest001", "event_data": None,
        "trigger_id": tick["targets"][0][0]})
    assert r.status_code == 200, r.text[:500]
    assert len(r.json()["data"]) == len(tick["outputs"])


def test_the_config_made_without_value_schemas_is_the_trimmed_full_one(tmp_path):
    """The page's config skips computing the per-component value schemas it drops: the result is the same config, and
    the components answer their schemas again afterwards (nothing left shadowed)."""
    import json

    from studio.app import build_app
    from studio.options import StudioOptions
    from studio.page import trim_config

    demo, _ = build_app(StudioOptions(workspace=str(tmp_path / "ws")))
    blocks_config = demo.default_config
    ours = blocks_config.get_config()
    full = trim_config(type(blocks_config).get_config(blocks_config), demo)
    assert json.dumps(ours, sort_keys=True, default=str) == json.dumps(full, sort_keys=True, default=str)
    dropdown = next(b for b in demo.blocks.values() if type(b).__name__ == "Dropdown")
    assert "api_info" not in vars(dropdown) and dropdown.api_info()


def test_the_queue_gets_its_limit_without_rebuilding_the_app():
    import gradio as gr

    from studio.startup import queued

    with gr.Blocks() as demo:
        gr.Textbox()
    app = demo.app
    assert queued(demo, default_concurrency_limit=8) is demo
    assert demo._queue.default_concurrency_limit == 8 and demo.app is app


def test_handlers_are_inspected_once_only_while_building():
    """Inside the build, Gradio gets each handler's signature and type hints from a memo (the same answers); after
    it, Gradio's own functions are back and the memo is gone."""
    import inspect

    from gradio import helpers, utils

    from studio.startup import handlers_inspected_once

    def handler(text: str, n: int = 2) -> str:
        return text * n

    plain = (utils.inspect, helpers.inspect, utils.get_type_hints)
    hints = utils.get_type_hints(handler)
    with handlers_inspected_once():
        assert utils.inspect.signature(handler) is utils.inspect.signature(handler) == inspect.signature(handler)
        assert helpers.inspect.signature(handler) == inspect.signature(handler)
        assert utils.get_type_hints(handler) is utils.get_type_hints(handler) and utils.get_type_hints(handler) == hints
        assert utils.inspect.isfunction(handler) and utils.get_type_hints({}) == {}
    assert (utils.inspect, helpers.inspect, utils.get_type_hints) == plain


def test_no_app_is_made_before_launch_and_gradio_makes_them_again_after():
    import gradio as gr
    from gradio import routes

    from studio.startup import app_made_at_launch_only

    with app_made_at_launch_only():
        with gr.Blocks() as demo:
            gr.Textbox()
        assert demo.app is None and demo._queue is not None
    with gr.Blocks() as other:
        gr.Textbox()
    assert isinstance(other.app, routes.App)
