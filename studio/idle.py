"""An idle studio sleeps: Gradio's queue stops polling a thousand times a second when nothing is happening.

Gradio 6's queue has no wake-up on push; two loops poll instead: `start_processing` looks for a queued event every
`sleep_when_free` (1 ms on Linux) and `start_progress_updates` for progress to send every
`progress_update_sleep_when_free` (10 ms). That is ~1,100 event-loop wake-ups a second with no browser connected:
4.4 % of a core on an idle studio (60 s, /proc/<pid>/stat, bench/idle_cpu.py). No timer or thread of ours ticks
then: `gr.Timer`s run in the browser and the job manager has no loop.

`quiet_when_idle` keeps Gradio's own intervals while an event is queued or running or one was pushed in the last
`IDLE_AFTER_S` seconds, and otherwise sleeps `IDLE_SLEEP_S` (Gradio's own value on Windows: the first event after a
quiet spell starts at most 50 ms later) and `IDLE_PROGRESS_SLEEP_S` (no running event, no progress to send).
"""

from __future__ import annotations

import math
import time
from typing import Any

import gradio as gr

IDLE_AFTER_S = 5.0
IDLE_SLEEP_S = 0.05
IDLE_PROGRESS_SLEEP_S = 0.5


class _QuietQueue:
    """Mixed in front of Gradio's Queue class on the live instance (the intervals become properties)."""

    _busy_sleep: float = 0.001
    _busy_progress_sleep: float = 0.01
    _last_push: float = -math.inf
    idle_polls: int = 0  # how often a loop chose the idle interval (tests read it)

    def busy(self) -> bool:
        return (time.monotonic() - self._last_push < IDLE_AFTER_S or len(self) > 0  # type: ignore[arg-type]
                or any(j is not None for j in self.active_jobs))  # type: ignore[attr-defined]

    def _pick(self, busy_value: float, idle_value: float) -> float:
        if self.busy():
            return busy_value
        self.idle_polls += 1
        return idle_value

    @property
    def sleep_when_free(self) -> float:
        return self._pick(self._busy_sleep, IDLE_SLEEP_S)

    @sleep_when_free.setter
    def sleep_when_free(self, value: float) -> None:
        self._busy_sleep = value

    @property
    def progress_update_sleep_when_free(self) -> float:
        return self._pick(self._busy_progress_sleep, IDLE_PROGRESS_SLEEP_S)

    @progress_update_sleep_when_free.setter
    def progress_update_sleep_when_free(self, value: float) -> None:
        self._busy_progress_sleep = value

    async def push(self, *args: Any, **kwargs: Any) -> Any:
        self._last_push = time.monotonic()
        return await super().push(*args, **kwargs)  # type: ignore[misc]


def quiet_when_idle(demo: gr.Blocks) -> gr.Blocks:
    """Make `demo`'s queue (made by `demo.queue()`) sleep while idle; returns `demo` for chaining into launch()."""
    q = getattr(demo, "_queue", None)
    if q is None or isinstance(q, _QuietQueue):
        return demo
    own = dict(vars(q))
    q.__class__ = type("QuietQueue", (_QuietQueue, type(q)), {})
    q.sleep_when_free = own.get("sleep_when_free", _QuietQueue._busy_sleep)
    q.progress_update_sleep_when_free = own.get("progress_update_sleep_when_free",
                                                _QuietQueue._busy_progress_sleep)
    return demo
