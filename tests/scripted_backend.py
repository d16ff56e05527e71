"""A local (batched) backend double for jobs whose resume logic is under test: scripted answers make every call
checkable, `calls` records what was asked, and `on_call(n)` can raise a job's stop flag in the middle of a batch.
(A real tiny model answers too, but not predictably enough to count which questions were asked twice.)"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class ScriptedBackend:
    def __init__(self, reply: Callable[[list[dict]], str], key: Callable[[list[dict]], Any], name: str,
                 on_call: Callable[[int], None] | None = None, greedy: bool = False):
        self.reply, self.key, self.name, self.on_call, self.greedy = reply, key, name, on_call, greedy
        self.calls: list[Any] = []

    def chat(self, conversations, params, top_logprobs=0):
        from core.llm.base import Completion

        if self.greedy:
            assert params.temperature == 0
        out = []
        for conv in conversations:
            self.calls.append(self.key(conv))
            if self.on_call:
                self.on_call(len(self.calls))
            out.append(Completion(self.reply(conv), 10, 5))
        return out

    def close(self):
        pass
