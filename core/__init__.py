"""EasyDistill Studio engine. Imports no gradio, and nothing heavy at package import time."""

__version__ = "0.1.0"
