"""A reply as chat-widget messages: reasoning collapsed under a title, the answer plain, errors visible.

Gradio 6's Chatbot takes `{"role", "content", "metadata"}` dicts; a message whose metadata has a `title` is drawn as
a collapsible block (status "pending" shows a spinner and keeps it open while the thought streams, "done" closes it).
Kept free of gradio imports: the dicts are plain data, so tests check the rendering without a browser.
"""

from __future__ import annotations

from core.chat.reasoning import split_reasoning
from core.chat.reply_stats import ReplyStats

CURSOR = " ▌"


def render_reply(text: str, stats: ReplyStats | None = None, thought_title: str = "Reasoning",
                 error_prefix: str = "⚠️") -> list[dict]:
    """Chatbot messages for one reply (possibly still streaming)."""
    stats = stats or ReplyStats(finished=True)
    streaming = not stats.finished and not stats.error
    out: list[dict] = []
    segs = split_reasoning(text)
    for i, s in enumerate(segs):
        last = i == len(segs) - 1
        if s.kind == "thought":
            status = "pending" if (streaming and last and not s.closed) else "done"
            out.append({"role": "assistant", "content": s.text, "metadata": {"title": thought_title,
                                                                             "status": status}})
        else:
            out.append({"role": "assistant", "content": s.text + (CURSOR if streaming and last else "")})
    if streaming and not segs:
        out.append({"role": "assistant", "content": CURSOR.strip()})
    if stats.error:
        out.append({"role": "assistant", "content": f"{error_prefix} {stats.error}"})
    return out
