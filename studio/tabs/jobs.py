"""The jobs tab. Its contents come with their issue; until then it says what it will hold."""

from __future__ import annotations

import gradio as gr

from studio.ui import UIContext


def build(ui: UIContext) -> None:
    text = gr.Markdown(ui.t("jobs.placeholder"), elem_id="eds-jobs-placeholder")
    ui.reg("jobs.placeholder", text, "value")
