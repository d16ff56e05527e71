"""The models tab. Its contents come with their issue; until then it says what it will hold."""

from __future__ import annotations

import gradio as gr

from studio.ui import UIContext


def build(ui: UIContext) -> None:
    text = gr.Markdown(ui.t("models.placeholder"), elem_id="eds-models-placeholder")
    ui.reg("models.placeholder", text, "value")
