"""The chat arena: conversations, model servers, parallel streaming, reasoning rendering (no gradio here)."""
