"""The chat tab. Its contents come with their issue; until then it says what it will hold."""

from __future__ import annotations

import gradio as gr

from studio.ui import UIContext


def build(ui: UIContext) -> None:
    text = gr.Markdown(ui.t("chat.placeholder"), elem_id="eds-chat-placeholder")
    ui.reg("chat.placeholder", text, "value")
