"""The page's language (studio/language.py, UIContext.lang): switching re-words everything a launch in that language
shows, each open page keeps its own language, and handlers' messages and errors follow the page that asked — with no
browser (the browser test is test_language_browser.py)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import gradio as gr
import pytest

from studio.i18n import t

TEXT_PROPS = ("label", "info", "placeholder", "choices", "headers")
VALUE_TEXT = {"Markdown", "HTML", "Button", "DownloadButton", "UploadButton"}


@pytest.fixture(scope="module")
def apps(tmp_path_factory):
    """The studio built in English and in Chinese on one workspace."""
    from studio.app import build_app
    from studio.options import StudioOptions

    ws = str(tmp_path_factory.mktemp("lang") / "ws")
    return {lang: build_app(StudioOptions(workspace=ws, lang=lang)) for lang in ("en", "zh")}


def _run(coro):
    """asyncio.run in a thread of its own: in the full suite Playwright's sync API keeps a loop in this one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _call(demo, block_fn, inputs, session):
    return _run(demo.call_function(block_fn, list(inputs), requests=gr.Request(session_hash=session)))["prediction"]


def _switch_fn(demo):
    radio = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "eds-lang")
    return next(f for f in demo.fns.values() if f.fn is not None and f.inputs and f.inputs[0] is radio)


def _switch(demo, lang: str, session: str) -> dict[int, dict]:
    """Switch `session`'s page to `lang`; {component id: the update sent}."""
    fn = _switch_fn(demo)
    out = _call(demo, fn, [lang, *(c.value for c in fn.inputs[1:])], session)
    return {c._id: u for c, u in zip(fn.outputs, out, strict=True) if isinstance(u, dict) and len(u) > 1}


def _texts(block, update: dict | None = None) -> dict[str, str]:
    """What a person reads on `block` (after `update`): labels, help, placeholders, choices, headers, texts."""
    cfg = {**block.get_config(), **(update or {})}
    out = {}
    for prop in TEXT_PROPS + ("value",):
        v = cfg.get(prop)
        if prop == "value":
            if type(block).__name__ == "Dataframe" and isinstance(v, dict):
                prop, v = "headers", v.get("headers")
            elif type(block).__name__ not in VALUE_TEXT:
                continue
        if prop == "choices" and v:
            v = [c[0] if isinstance(c, (list, tuple)) else c for c in v]
        if v not in (None, "", []):
            out[prop] = str(v).strip()
    return out


@pytest.mark.parametrize("start,target", [("en", "zh"), ("zh", "en")])
def test_switching_shows_what_a_launch_in_that_language_shows(apps, start, target):
    """Every text of every component — hidden sections, choices, table headers, the panels handlers fill — reads
    after a switch as it does when the studio is launched in that language."""
    demo, _ = apps[start]
    updates = _switch(demo, target, f"page-{start}-{target}")
    launched = list(apps[target][0].blocks.values())
    switched = list(demo.blocks.values())
    assert [type(b) for b in switched] == [type(b) for b in launched]
    differ = []
    for a, b in zip(switched, launched, strict=True):
        want, got = _texts(b), _texts(a, updates.get(a._id))
        differ += [f"{type(b).__name__} #{b.elem_id}: {p}: {got.get(p)!r} != {v!r}" for p, v in want.items()
                   if got.get(p) != v]
    assert not differ, "\n".join(differ[:20])


def test_each_page_speaks_its_own_language(apps):
    """Page A switches to Chinese; page B, never switched, stays in the launch language — handlers answer each in
    its own, with no input for it."""
    demo, ui = apps["en"]
    _switch(demo, "zh", "page-A")
    stop = next(f for f in demo.fns.values() if any(getattr(demo.blocks.get(i), "elem_id", None) == "jobs-stop"
                                                    for i, _ in f.targets))
    assert _call(demo, stop, [None, None], "page-A")[0] == t("jobs.pick_first", "zh")
    assert _call(demo, stop, [None, None], "page-B")[0] == t("jobs.pick_first", "en")
    assert ui.lang == "en"  # outside an event: the launch language
    _switch(demo, "en", "page-A")
    assert _call(demo, stop, [None, None], "page-A")[0] == t("jobs.pick_first", "en")


def test_errors_at_the_edge_read_in_the_page_language(workspace):
    """A UserError with a code, raised by any handler, is worded in the language of the page that asked; a bug's
    'internal error' too."""
    from core.jobs.errors import JobNotFound
    from studio.edge import guard_all
    from studio.ui import UIContext

    ui = UIContext(workspace=workspace)
    with gr.Blocks() as demo:
        box = gr.Textbox()

        def fails(kind: str):
            if kind == "user":
                raise JobNotFound("no job with id 'x1'", code="job_not_found", params={"job": "x1"})
            raise RuntimeError("a bug")

        box.submit(fails, box, box)
    log = workspace.root / "logs" / "studio.log"
    guard_all(demo, log, lambda: ui.t("forms.internal_error", log=log), ui.error_text)
    ui.set_page_lang("zh-page", "zh")
    fn = next(iter(demo.fns.values()))
    for session, lang in (("zh-page", "zh"), ("en-page", "en")):
        for kind, key, fmt in (("user", "errors.job_not_found", {"job": "x1"}),
                               ("bug", "forms.internal_error", {"log": log})):
            with pytest.raises(gr.Error) as e:
                _call(demo, fn, [kind], session)
            assert e.value.message == t(key, lang, **fmt)
