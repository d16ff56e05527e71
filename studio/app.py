"""`distill-studio`: builds the Gradio app (tabs, language switch, footer) and serves it.

Light on purpose: importing this module pulls in gradio and core's light parts, never torch/transformers/trl/peft.
"""

from __future__ import annotations

import gc
import importlib
import inspect
import os
import sys

import gradio as gr

from core import __version__
from core.devices import describe, discover_gpus
from core.errors import UserError
from core.presets import BUNDLED
from core.workspace import ENV_ALLOW_ROOTS, Workspace
from studio.edge import guard_all, setup_logging
from studio.idle import quiet_when_idle
from studio.language import wire_language, with_page_language
from studio.options import StudioOptions, parse_args
from studio.page import lighten
from studio.proxy import proxy_app_kwargs
from studio.serving import launch_files, upload_script
from studio.startup import app_made_at_launch_only, argspecs_once, handlers_inspected_once, queued, upload_folder_once
from studio.ui import UIContext

# (module, i18n key of the tab title). Each module has build(ui: UIContext) -> None.
TABS = [
    ("studio.tabs.start", "app.tab_start"),
    ("studio.tabs.data", "app.tab_data"),
    ("studio.tabs.models", "app.tab_models"),
    ("studio.tabs.synthesis", "app.tab_synthesis"),
    ("studio.tabs.curation", "app.tab_curation"),
    ("studio.tabs.training", "app.tab_training"),
    ("studio.tabs.chat", "app.tab_chat"),
    ("studio.tabs.jobs", "app.tab_jobs"),
]

ASSETS = BUNDLED.parent / "assets"
LANG_CHOICES = [("English", "en"), ("中文", "zh")]  # the page's language switch (studio/language.py)

CSS = """
.eds-footer { font-size: 0.85em; opacity: 0.8; }
"""


def build_app(opts: StudioOptions) -> tuple[gr.Blocks, UIContext]:
    argspecs_once()
    with handlers_inspected_once():  # Gradio inspects each handler five times as it wires it: studio/startup.py
        return _build_app(opts)


def _build_app(opts: StudioOptions) -> tuple[gr.Blocks, UIContext]:
    # The bundled demo data (assets/) is readable by visitors: it is public and presets point at it.
    ws = Workspace.open(opts.workspace, [*opts.allow_roots, ASSETS])
    ui = UIContext(workspace=ws, lang=opts.lang, options={"root_path": opts.root_path})
    with gr.Blocks(title="EasyDistill Studio", analytics_enabled=False) as demo:
        with gr.Row(equal_height=True, elem_id="eds-header"):
            ui.reg("app.title", gr.Markdown(f"## {ui.t('app.title')}", elem_id="eds-title"), "value", template="## {}")
            lang = gr.Radio(
                choices=LANG_CHOICES, value=ui.launch_lang, label="Language / 语言", show_label=False, container=False,
                elem_id="eds-lang", scale=0, min_width=180,
            )
        with gr.Tabs(elem_id="eds-tabs") as tabs:
            ui.shared["tabs"] = tabs
            for module, key in TABS:
                name = module.rsplit(".", 1)[1]
                with ui.reg(key, gr.Tab(ui.t(key), id=name, elem_id=f"eds-tab-{name}")):
                    importlib.import_module(module).build(ui)
        for wire in ui.deferred:
            wire()
        devices = describe(discover_gpus())
        ui.reg(
            "app.footer",
            gr.Markdown(ui.t("app.footer", version=__version__, workspace=ws.root, devices=devices),
                        elem_classes="eds-footer", elem_id="eds-footer"),
            "value",
        )
        wire_language(ui, demo, lang, {"version": __version__, "workspace": ws.root, "devices": devices})
        lighten(demo)  # no event exposed as API, a trimmed config made once, polls outside the queue: studio/page.py
    log_path = setup_logging(ws.root)
    guard_all(demo, log_path, lambda: ui.t("forms.internal_error", log=log_path), ui.error_text)
    return demo, ui


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    # What the imports made, and then the built page, live as long as the studio's process: frozen, the garbage
    # collector's full passes stop rescanning them (one ~0.1 s pass while building, then each pass while serving).
    # Here, not in build_app: a test process builds many apps and should collect the ones it is done with.
    gc.freeze()
    upload_folder_once()
    try:
        with app_made_at_launch_only():  # launch() makes the app it serves; none before: studio/startup.py
            demo, ui = build_app(opts)
    except UserError as e:  # e.g. a workspace folder that is a link leading out of it: say so, no traceback
        raise SystemExit(f"error: {e}") from None
    gc.freeze()
    # Jobs this studio starts (and the CLI run from here) reach the same allowed roots as its visitors.
    os.environ[ENV_ALLOW_ROOTS] = os.pathsep.join(str(r) for r in ui.workspace.extra_roots)
    print(f"EasyDistill Studio {__version__}: workspace {ui.workspace.root}", flush=True)
    quiet_when_idle(queued(demo, default_concurrency_limit=8)).launch(  # no polling while idle: studio/idle.py
        **_no_reachability_probe(),
        server_name=opts.host,
        server_port=opts.port,
        root_path=opts.root_path or None,
        auth=opts.auth or None,
        ssr_mode=False,
        app_kwargs=with_page_language(proxy_app_kwargs(), ui.launch_lang),  # + the page's language: studio/language.py
        share=False,
        css=CSS,
        head=upload_script(opts.max_upload, ui.launch_lang),
        show_error=True,
        footer_links=["settings"],  # no "api": the studio's events are private (studio/page.py)
        **launch_files(ui.workspace, opts.max_upload),  # what the browser may fetch and upload
    )
    return 0


def _no_reachability_probe() -> dict[str, bool]:
    """Gradio's launch() sends one HEAD / with a 3 s timeout and, on a timeout, refuses to start unless a public share
    link is made ("localhost is not accessible", meant for Colab). On a busy machine the first page render takes
    longer than that (measured 3.5 s at load 9 on 2 cores) and the studio died at start. We never make share links
    and check our own health, so the probe is skipped; `_frontend` gates nothing else in launch()."""
    return {"_frontend": False} if "_frontend" in inspect.signature(gr.Blocks.launch).parameters else {}


if __name__ == "__main__":
    sys.exit(main())
