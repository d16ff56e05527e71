"""The page's language (studio/language.py, UIContext.lang): a page served in a language reads as a launch in it,
each open page keeps its own language, and handlers' messages and errors follow the page that asked — with no browser
(the browser test is test_language_browser.py)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import gradio as gr
import pytest

from studio.i18n import t

TEXT_PROPS = ("label", "info", "placeholder", "choices", "headers")
VALUE_TEXT = {"markdown", "html", "button", "downloadbutton", "uploadbutton"}


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


def _load_fn(demo):
    return next(f for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "load_page_language")


def _load(demo, lang: str | None, session: str, cookie: str = "") -> dict[int, dict]:
    """Load the page for `session` asking for `lang` (`?lang=`); {component id: the update its load sent}."""
    fn = _load_fn(demo)
    request = gr.Request(session_hash=session, query_params={"lang": lang} if lang else {}, headers={"cookie": cookie})
    out = _run(demo.call_function(fn, [c.value for c in fn.inputs], requests=request))["prediction"]
    return {c._id: u for c, u in zip(fn.outputs, out, strict=True) if isinstance(u, dict) and len(u) > 1}


def _texts(comp: dict, update: dict | None = None) -> dict[str, str]:
    """What a person reads on a component of the served config (after `update`): labels, help, placeholders,
    choices, headers, texts."""
    cfg = {**comp.get("props", {}), **(update or {})}
    out = {}
    for prop in TEXT_PROPS + ("value",):
        v = cfg.get(prop)
        if prop == "value":
            if comp["type"] == "dataframe" and isinstance(v, dict):
                prop, v = "headers", v.get("headers")
            elif comp["type"] not in VALUE_TEXT:
                continue
        if prop == "choices" and v:
            v = [c[0] if isinstance(c, (list, tuple)) else c for c in v]
        if v not in (None, "", []):
            out[prop] = str(v).strip()
    return out


@pytest.mark.parametrize("start,target", [("en", "zh"), ("zh", "en")])
def test_a_page_in_the_other_language_reads_as_a_launch_in_it(apps, start, target):
    """A page served in the other language than the launch's — its config (hidden sections, choices, table
    headers) and what its load re-renders (the panels handlers fill) — reads as it does when the studio is launched
    in that language."""
    from studio.language import translated_config

    demo, _ = apps[start]
    served = translated_config(demo, target)["components"]
    updates = _load(demo, target, f"page-{start}-{target}")
    launched = translated_config(apps[target][0], target)["components"]
    assert [c["type"] for c in served] == [c["type"] for c in launched]
    differ = []
    for a, b in zip(served, launched, strict=True):
        want, got = _texts(b), _texts(a, updates.get(a["id"]))
        differ += [f"{b['type']} #{b['props'].get('elem_id')}: {p}: {got.get(p)!r} != {v!r}" for p, v in want.items()
                   if got.get(p) != v]
    assert not differ, "\n".join(differ[:20])


def test_each_page_speaks_its_own_language(apps):
    """Page A loads in Chinese; page B, loaded plainly, is in the launch language — handlers answer each in its own,
    with no input for it."""
    demo, ui = apps["en"]
    _load(demo, "zh", "page-A")
    stop = next(f for f in demo.fns.values() if any(getattr(demo.blocks.get(i), "elem_id", None) == "jobs-stop"
                                                    for i, _ in f.targets))
    assert _call(demo, stop, [None, None], "page-A")[0] == t("jobs.pick_first", "zh")
    assert _call(demo, stop, [None, None], "page-B")[0] == t("jobs.pick_first", "en")
    assert ui.lang == "en"  # outside an event: the launch language
    _load(demo, None, "page-A", cookie="eds-lang=en; other=1")  # the switch's cookie, no ?lang=
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
