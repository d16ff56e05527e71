"""One arena conversation: shared user turns, one reply per column, per-column stats; exported as JSON.

Every column is its own conversation with its model: the user turns are shared, and each column's history holds that
column's own earlier replies (a student is not shown the teacher's answers). The session is plain data, so the UI
keeps one per browser tab in its state and the CLI/tests drive it the same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from core.chat.reasoning import split_reasoning
from core.chat.render import render_reply
from core.chat.reply_stats import ReplyStats

EXPORT_FORMAT = "eds-chat"


@dataclass
class Reply:
    text: str = ""
    stats: ReplyStats = field(default_factory=ReplyStats)
    model: str | None = None  # what answered (column label at the time)


@dataclass
class Turn:
    user: str
    replies: dict[int, Reply] = field(default_factory=dict)  # column index -> reply
    time: float = field(default_factory=time.time)


@dataclass
class ChatSession:
    system_prompt: str = ""
    turns: list[Turn] = field(default_factory=list)

    def conversation(self, column: int, upto: int | None = None) -> list[dict]:
        """Messages column `column` sends: system, then each turn's user text and this column's reply.

        The last turn's reply is left out (it is the one being generated). A failed or empty earlier reply is
        skipped together with its user turn, so the conversation still alternates user/assistant.
        """
        msgs: list[dict] = []
        if self.system_prompt.strip():
            msgs.append({"role": "system", "content": self.system_prompt.strip()})
        turns = self.turns if upto is None else self.turns[:upto]
        for i, t in enumerate(turns):
            last = i == len(turns) - 1
            reply = t.replies.get(column)
            if last:
                msgs.append({"role": "user", "content": t.user})
            elif reply is not None and reply.text and not reply.stats.error:
                msgs += [{"role": "user", "content": t.user}, {"role": "assistant", "content": reply.text}]
        return msgs

    def add_user(self, text: str) -> Turn:
        text = (text or "").strip()
        if not text:
            raise ValueError("type a message first")
        turn = Turn(text)
        self.turns.append(turn)
        return turn

    def start_reply(self, column: int, model: str | None) -> Reply:
        if not self.turns:
            raise ValueError("no message to answer")
        reply = Reply(model=model)
        self.turns[-1].replies[column] = reply
        return reply

    def can_regenerate(self) -> bool:
        return bool(self.turns)

    def regenerate(self) -> str:
        """Forget the last turn's replies (they are generated again); returns its user text."""
        if not self.turns:
            raise ValueError("nothing to regenerate yet")
        self.turns[-1].replies.clear()
        return self.turns[-1].user

    def clear(self) -> None:
        self.turns.clear()

    def export(self, columns: dict[int, dict[str, Any]] | None = None) -> dict[str, Any]:
        """The whole conversation as JSON-able data: models and settings per column, every turn with stats."""
        return {
            "format": EXPORT_FORMAT,
            "version": 1,
            "exported_at": time.time(),
            "system_prompt": self.system_prompt,
            "columns": {str(k): v for k, v in (columns or {}).items()},
            "turns": [
                {
                    "user": t.user,
                    "time": t.time,
                    "replies": {
                        str(c): {"model": r.model, "text": r.text, **_split(r.text), "stats": r.stats.to_dict()}
                        for c, r in sorted(t.replies.items())
                    },
                }
                for t in self.turns
            ],
        }

    def chatbot_messages(self, column: int, thought_title: str = "Reasoning") -> list[dict]:
        """Gradio Chatbot messages (role/content dicts) of one column, reasoning as collapsible blocks."""
        out: list[dict] = []
        for t in self.turns:
            out.append({"role": "user", "content": t.user})
            reply = t.replies.get(column)
            if reply is not None:
                out += render_reply(reply.text, reply.stats, thought_title)
        return out

    def last_stats(self, column: int) -> ReplyStats | None:
        """Stats of the column's latest reply (the footer under its chat)."""
        for t in reversed(self.turns):
            if column in t.replies:
                return t.replies[column].stats
        return None


def _split(text: str) -> dict[str, str]:
    segs = split_reasoning(text)
    thought = "\n\n".join(s.text for s in segs if s.kind == "thought")
    return {"reasoning": thought, "answer": "\n\n".join(s.text for s in segs if s.kind == "answer")} if thought else {}
