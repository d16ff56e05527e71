"""The data tab. Its contents come with their issue; until then it says what it will hold."""

from __future__ import annotations

import gradio as gr

from studio.ui import UIContext


def build(ui: UIContext) -> None:
    text = gr.Markdown(ui.t("data.placeholder"), elem_id="eds-data-placeholder")
    ui.reg("data.placeholder", text, "value")
