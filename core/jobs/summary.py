"""A job in one line — the single renderer of a job's status and progress for every tab and the CLI.

Words a person reads (the state, "ETA") come in through `words` so the studio can pass them in the page's
language; the CLI uses the English defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.jobs.progress import format_eta

TABLE_COLUMNS = ("id", "name", "kind", "status", "step", "progress", "eta", "devices", "started", "duration")


def percent(info: Any) -> str:
    """"42%" (empty when the job reports no progress)."""
    return "" if info.progress is None else f"{100 * info.progress:.0f}%"


def eta(info: Any) -> str:
    """The remaining time while the job runs (empty once it ended or when unknown)."""
    return "" if info.finished or not info.eta_s else format_eta(info.eta_s)


def state(info: Any, words: Mapping[str, str] | None = None) -> str:
    """The state in the reader's words, with the queue position while queued ("queued #2")."""
    text = (words or {}).get(info.status, info.status)
    return text + (f" #{info.queue_position}" if info.queue_position else "")


def status_line(info: Any, words: Mapping[str, str] | None = None, markdown: bool = True) -> str:
    """`**name** (`id`) — running · train · 3/10 · 30% · ETA 1m 05s`, then the reason on its own line if any.

    `words` maps states and "eta" to the reader's language."""
    w = words or {}
    name, ident = (f"**{info.name}**", f"(`{info.id}`)") if markdown else (info.name, f"({info.id})")
    parts = [f"{name} {ident} — {state(info, w)}"]
    if info.step:
        parts.append(str(info.step))
    if info.done is not None and info.total:
        parts.append(f"{info.done}/{info.total}")
    if percent(info):
        parts.append(percent(info))
    if eta(info):
        parts.append(f"{w.get('eta', 'ETA')} {eta(info)}")
    line = " · ".join(parts)
    return line + (f"\n\n{info.reason}" if markdown else f"\n  {info.reason}") if info.reason else line
