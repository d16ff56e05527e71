"""The Gradio face of EasyDistill Studio. Talks to `core` only; never imports torch/transformers at module level."""
