"""The training tab. Its contents come with their issue; until then it says what it will hold."""

from __future__ import annotations

import gradio as gr

from studio.ui import UIContext


def build(ui: UIContext) -> None:
    text = gr.Markdown(ui.t("training.placeholder"), elem_id="eds-training-placeholder")
    ui.reg("training.placeholder", text, "value")
