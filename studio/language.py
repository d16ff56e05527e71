"""The page's language switch: one event that re-words the whole page in the chosen language, for this page only.

What it sends back, in one batch (the browser applies a batch far faster than a chain of events):
- every registered text (`ui.reg`): labels, help, placeholders, choices' labels, button and markdown texts; a table
  registered with `headers` gets its rows back under the new headers;
- what each tab's `ui.on_language` refresh re-renders (status panels, tables a handler filled, help that depends on a
  choice), computed in the new language.

Handlers speak the page's language from then on (`UIContext.set_page_lang`). The choice is kept in the browser, so a
reload keeps it; `?lang=zh` in the address chooses too; Gradio's own words (upload areas, the footer's links) follow
on the next load (`head_script`).
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from gradio.blocks import Block

from core.errors import UserError
from studio.i18n import LANGS, t
from studio.ui import Refresh, UIContext

STORAGE_KEY = "eds-lang"  # the browser's localStorage key of the page's language


def wire_language(ui: UIContext, demo: gr.Blocks, radio: gr.Radio, footer: dict[str, Any]) -> None:
    """Wire `radio` (values: LANGS) to re-word the page; call after every tab is built. `footer`: the footer's
    format arguments (`app.footer`)."""
    words = _Switch(ui, footer)
    saved = gr.BrowserState("", storage_key=STORAGE_KEY, secret=STORAGE_KEY)

    def switch(new_lang: str, request: gr.Request, *values: Any) -> list[Any]:
        return [*words(new_lang, request.session_hash, *values), new_lang]

    radio.change(switch, inputs=[radio, *words.inputs], outputs=[*words.outputs, saved], show_progress="hidden")
    radio.change(None, radio, None, js=f"(l) => {{ localStorage.setItem('{STORAGE_KEY}', l); }}")

    def restore(stored: str, request: gr.Request):
        asked = request.query_params.get("lang") if request else None
        chosen = asked if asked in LANGS else stored if stored in LANGS else None
        return chosen or gr.skip()

    demo.load(restore, inputs=saved, outputs=radio, show_progress="hidden")


def head_script(launch_lang: str) -> str:
    """Gradio's own words (upload areas, the footer's links) follow the browser's language: before Gradio starts, say
    the browser's language is the page's (the switch's last choice, `?lang=`, or the launch language)."""
    return (
        "<script>(function(){try{var q=new URLSearchParams(location.search).get('lang');"
        f"var l=q||localStorage.getItem('{STORAGE_KEY}')||'{launch_lang}';"
        "var n=l==='zh'?'zh-CN':'en-US';"
        "Object.defineProperty(navigator,'language',{get:function(){return n;}});"
        "Object.defineProperty(navigator,'languages',{get:function(){return [n];}});}catch(e){}})();</script>"
    )


class _Switch:
    """The switch's handler. `inputs`: the components whose values it needs (registered tables' rows, the
    refreshes' inputs); `outputs`: every component it may update, each once."""

    def __init__(self, ui: UIContext, footer: dict[str, Any]):
        self.ui, self.footer = ui, footer
        self.items = list(ui.registry)
        self.refreshes: list[Refresh] = list(ui.refreshes)
        tables = [i.component for i in self.items if i.headers]
        self.inputs = _unique([*tables, *(c for r in self.refreshes for c in r.inputs)])
        self.outputs = _unique([*(i.component for i in self.items), *(c for r in self.refreshes for c in r.outputs)])

    def __call__(self, new_lang: str, session: str | None, *values: Any) -> list[Any]:
        """One update per output (gr.skip() where nothing changes), the page's texts in `new_lang`."""
        ui = self.ui
        old_lang = ui.lang
        ui.set_page_lang(session, new_lang)
        value_of = {id(c): v for c, v in zip(self.inputs, values, strict=True)}
        updates: dict[int, dict[str, Any]] = {}
        for item in self.items:
            texts = ui.text_for(item, new_lang)
            if item.key == "app.footer":
                texts["value"] = t("app.footer", new_lang, **self.footer)
            elif item.headers:  # the rows it shows, under the new headers
                texts["value"] = {"headers": texts["headers"], "data": _table_data(value_of[id(item.component)])}
            elif texts == ui.text_for(item, old_lang):
                continue  # the same in both languages ("YAML", "LoRA"): nothing to send
            _merge(updates, item.component, gr.update(**texts))
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
