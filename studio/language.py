"""The page's language: each page is served in its language from the start, and the switch loads the page again in
the other one.

Why not re-word the page in place: after one event updating ~450 components, Gradio 6's frontend stays slow for as
long as the page is open while any gr.Timer ticks (a bare Gradio app of 400 textboxes in 8 tabs and one 1.5 s timer,
on this repo's loaded 2-core machine: 8 tab clicks took 0.7 s before such an update and 51 s after it; the studio
after its old in-place switch: 8 clicks, 2-9 s before, 120-150 s after). So:

- `PageLanguageMiddleware` reads the language a request asks for (`?lang=`, else the `eds-lang` cookie the switch
  sets, else the launch language) and the page's config is served with every registered text (`ui.reg`: labels,
  help, placeholders, choices, button and markdown texts, table headers) in that language (`_Translator`, applied
  where Gradio hands out the per-request copy of the config).
- When the page loads, one event records the page's language for its session (`UIContext.set_page_lang`: handlers
  speak it from then on), gives registered tables their headers on the server too (so rows a handler sends later
  come under them), and runs each tab's `ui.on_language` refresh (the panels handlers fill) in that language.
- The switch (a user's click) stores the choice (cookie, browser storage) and loads the page with `?lang=`; Gradio's
  own words (upload areas, the footer's links) follow the browser's language, which the middleware's first script in
  the page sets to the page's.
"""

from __future__ import annotations

import copy
from contextvars import ContextVar
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qs

import gradio as gr
import gradio.route_utils as route_utils
from gradio.blocks import Block
from starlette.middleware import Middleware

from core.errors import UserError
from studio.i18n import LANGS, t
from studio.ui import Refresh, UIContext

COOKIE = "eds-lang"  # the cookie (and browser storage key) holding the page's language
_ASKED: ContextVar[str | None] = ContextVar("eds_asked_lang", default=None)  # the language this request asks for
_TRANSLATORS: list[_Translator] = []
KEPT = 16


def asked_lang(query_lang: str | None, cookie_header: str | None) -> str | None:
    """The language a request asks for: `?lang=`, else the switch's cookie; None if neither names one of LANGS."""
    if query_lang in LANGS:
        return query_lang
    try:
        morsel = SimpleCookie(cookie_header or "").get(COOKIE)
    except CookieError:  # a malformed Cookie header: as if there were none
        return None
    return morsel.value if morsel is not None and morsel.value in LANGS else None


def with_page_language(app_kwargs: dict[str, Any], launch_lang: str) -> dict[str, Any]:
    """`launch(app_kwargs=...)` with PageLanguageMiddleware added to the middleware already there."""
    mine = Middleware(PageLanguageMiddleware, launch_lang=launch_lang)
    return {**app_kwargs, "middleware": [*app_kwargs.get("middleware", []), mine]}


class PageLanguageMiddleware:
    """ASGI: the language each HTTP request asks for (`_ASKED`, for the config it may be served), and a page's HTML
    telling the browser its language before Gradio starts: Gradio's own words (upload areas, the footer's links)
    follow the browser's language (`navigator.language`, read once as the page starts)."""

    def __init__(self, app: Any, launch_lang: str = "en"):
        self.app, self.launch_lang = app, launch_lang

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("lang") or [None]
        asked = asked_lang(query[0], headers.get("cookie"))
        token = _ASKED.set(asked)
        try:
            if scope.get("method") == "GET":
                send = _HtmlLanguage(send, asked or self.launch_lang)
            await self.app(scope, receive, send)
        finally:
            _ASKED.reset(token)


class _HtmlLanguage:
    """An ASGI `send` that puts a script setting the browser's language first in an HTML page's <head>."""

    def __init__(self, send: Any, lang: str):
        self.send, self.start, self.body = send, None, b""
        tag = "zh-CN" if lang == "zh" else "en-US"
        self.script = ("<script>(function(){try{Object.defineProperty(navigator,'language',{get:function(){return '"
                       + tag + "';}});Object.defineProperty(navigator,'languages',{get:function(){return ['" + tag
                       + "'];}});}catch(e){}})();</script>").encode()

    async def __call__(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            ctype = dict(message.get("headers", [])).get(b"content-type", b"")
            if ctype.startswith(b"text/html"):
                self.start = message  # held until the body is complete
                return
        elif message["type"] == "http.response.body" and self.start is not None:
            self.body += message.get("body", b"")
            if message.get("more_body"):
                return
            body = self.body.replace(b"<head>", b"<head>" + self.script, 1)
            headers = [(k, v) for k, v in self.start.get("headers", []) if k.lower() != b"content-length"]
            await self.send({**self.start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            self.start = None
            await self.send({"type": "http.response.body", "body": body})
            return
        await self.send(message)


def wire_language(ui: UIContext, demo: gr.Blocks, radio: gr.Radio, footer: dict[str, Any]) -> None:
    """Serve `demo`'s page in the language each request asks for, wire `radio` (values: LANGS) to load the page in
    the chosen one, and the page's load to set up its session in its language. Call after every tab is built;
    `footer`: the footer's format arguments (`app.footer`)."""
    words = _Translator(ui, radio, footer)
    _TRANSLATORS[:] = [*_TRANSLATORS[-(KEPT - 1):], words]  # one per studio built in this process (tests build many)
    _patch_gradio_config_copy()
    radio.input(None, radio, None, js=_SWITCH_JS)

    def load_page_language(request: gr.Request, *values: Any) -> list[Any]:
        lang = asked_lang(request.query_params.get("lang"), request.headers.get("cookie")) or ui.launch_lang
        return words.load(lang, request.session_hash, *values)

    demo.load(load_page_language, inputs=words.inputs, outputs=words.outputs, show_progress="hidden")


_SWITCH_JS = (
    "(l) => { try { localStorage.setItem('" + COOKIE + "', l); } catch (e) {}"
    " document.cookie = '" + COOKIE + "=' + l + '; path=/; max-age=31536000; samesite=lax';"
    " const u = new URL(window.location.href); u.searchParams.set('lang', l); window.location.assign(u.toString()); }"
)


class _Translator:
    """One studio page's words: its config in each language, and what its load sends for the page's session."""

    def __init__(self, ui: UIContext, radio: gr.Radio, footer: dict[str, Any]):
        self.ui, self.radio_id, self.footer = ui, radio._id, footer
        self.items = list(ui.registry)
        self.tables = [i for i in self.items if i.headers]
        self.refreshes: list[Refresh] = list(ui.refreshes)
        self.inputs = _unique([*(i.component for i in self.tables), *(c for r in self.refreshes for c in r.inputs)])
        self.outputs = _unique([*(i.component for i in self.tables), *(c for r in self.refreshes for c in r.outputs)])
        self._props: dict[str, dict[int, dict[str, Any]]] = {}

    def owns(self, config: dict) -> bool:
        return any(c.get("id") == self.radio_id and c.get("props", {}).get("elem_id") == "eds-lang"
                   for c in config.get("components", []))

    def props(self, lang: str) -> dict[int, dict[str, Any]]:
        """{component id: its text props in `lang`} (what `ui.reg` registered), as the config carries them."""
        if lang not in self._props:
            out: dict[int, dict[str, Any]] = {self.radio_id: {"value": lang}}
            for item in self.items:
                texts = self.ui.text_for(item, lang)
                if item.key == "app.footer":
                    texts["value"] = t("app.footer", lang, **self.footer)
                if "choices" in texts:
                    texts["choices"] = [list(c) for c in texts["choices"]]
                out[item.component._id] = texts
            self._props[lang] = out
        return self._props[lang]

    def translate(self, config: dict, lang: str) -> dict:
        """`config` (a per-request copy) with the registered texts in `lang`; the component dicts it changes are
        copied, never the app's own."""
        props = self.props(lang)
        comps = []
        for c in config.get("components", []):
            new = props.get(c.get("id"))
            if new:
                p = {**c.get("props", {}), **new}
                if isinstance(p.get("value"), dict) and "headers" in new:  # a table: its value's headers too
                    p["value"] = {**p["value"], "headers": new["headers"]}
                c = {**c, "props": p}
            comps.append(c)
        return {**config, "components": comps}

    def load(self, lang: str, session: str | None, *values: Any) -> list[Any]:
        """The page's load: its session speaks `lang`; in another language than the launch's, tables get their
        headers on the server and the refreshes re-render their panels (gr.skip() elsewhere)."""
        ui = self.ui
        ui.set_page_lang(session, lang)
        if lang == ui.launch_lang:
            return [gr.skip() for _ in self.outputs]
        value_of = {id(c): v for c, v in zip(self.inputs, values, strict=True)}
        updates: dict[int, dict[str, Any]] = {}
        for item in self.tables:
            headers = ui.text_for(item, lang)["headers"]
            rows = _table_data(value_of[id(item.component)])
            _merge(updates, item.component, gr.update(headers=headers, value={"headers": headers, "data": rows}))
        for r in self.refreshes:
            args = [{c: value_of[id(c)] for c in r.inputs}] if isinstance(r.inputs, set) else \
                [value_of[id(c)] for c in r.inputs]
            try:
                out = r.fn(*args)
            except UserError:  # e.g. a job deleted meanwhile: its panel says so on the next tick
                continue
            for comp, update in _pairs(r.outputs, out):
                _merge(updates, comp, update)
        return [updates.get(id(c), gr.skip()) for c in self.outputs]


def _patch_gradio_config_copy() -> None:
    """Translate the per-request copy of the config Gradio serves (the page's HTML and /config both pass it through
    `route_utils.update_root_in_config`), for the page whose components it holds, into the language asked."""
    original = route_utils.update_root_in_config
    if getattr(original, "__eds_lang__", False):
        return

    def update_root_in_config(config: Any, root: str) -> Any:
        config = original(config, root)
        lang = _ASKED.get()
        if lang is None:
            return config
        for tr in _TRANSLATORS:
            if lang != tr.ui.launch_lang and tr.owns(config):
                return tr.translate(config, lang)
        return config

    update_root_in_config.__eds_lang__ = True  # type: ignore[attr-defined]
    route_utils.update_root_in_config = update_root_in_config


def translated_config(demo: gr.Blocks, lang: str) -> dict:
    """The config `demo`'s page is served with in `lang` (tests)."""
    config = copy.deepcopy(demo.get_config_file())
    tr = next(tr for tr in _TRANSLATORS if tr.owns(config))
    return config if lang == tr.ui.launch_lang else tr.translate(config, lang)


def _unique(components: list[Any]) -> list[Any]:
    seen: set[int] = set()
    return [c for c in components if not (id(c) in seen or seen.add(id(c)))]


def _pairs(outputs: list[Any], out: Any) -> list[tuple[Any, Any]]:
    """(component, what the handler returned for it), as Gradio reads a handler's return value."""
    if isinstance(out, dict) and out and all(isinstance(k, Block) for k in out):
        return list(out.items())
    if len(outputs) == 1:
        return [(outputs[0], out)]
    return list(zip(outputs, out, strict=True))


def _merge(updates: dict[int, dict[str, Any]], component: Any, returned: Any) -> None:
    """Fold what a handler returned for `component` into one update (a later value wins)."""
    if isinstance(returned, Block):
        new = {**returned.constructor_args, "__type__": "update"}
        new.pop("render", None)
    elif isinstance(returned, dict) and returned.get("__type__") == "update":
        new = dict(returned)
    else:
        new = {"__type__": "update", "value": returned}
    updates[id(component)] = {**updates.get(id(component), {}), **new}


def _table_data(shown: Any) -> list[list[Any]]:
    """The rows a table shows, from its input value (a pandas DataFrame, a {headers, data} dict or a list)."""
    if shown is None:
        return []
    if isinstance(shown, dict):
        return list(shown.get("data") or [])
    if hasattr(shown, "columns") and hasattr(shown, "values"):
        return [list(r) for r in shown.astype(object).where(shown.notna(), None).values.tolist()]
    return [list(r) for r in shown]
