"""A job in words — the single renderer of a job's status and progress for every tab and the CLI.

Every place that shows a job (the Jobs tab's table, progress bar and detail, the Start tab's stage lines, the
training / synthesis / models tabs, `easydistill jobs list|show` and the CLI's progress line) builds its text from
these functions, so a state, a percentage or an ETA reads the same everywhere.

Words a person reads (the states, "ETA", "step") come in through `words` so the studio can pass them in the page's
language (`UIContext.job_words()`); the CLI uses the English defaults (the raw state names).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from core.jobs.progress import format_duration, format_eta, format_time

TABLE_COLUMNS = ("id", "name", "kind", "status", "step", "progress", "eta", "devices", "started", "duration")
Words = Mapping[str, str]


def fraction(info: Any) -> float | None:
    """Progress as 0..1 (clamped), None when the job reports none."""
    return None if info.progress is None else max(0.0, min(1.0, float(info.progress)))


def percent(info: Any, decimals: int = 0) -> str:
    """"42%" (empty when the job reports no progress)."""
    frac = fraction(info)
    return "" if frac is None else f"{100 * frac:.{decimals}f}%"


def eta(info: Any) -> str:
    """The remaining time while the job runs (empty once it ended or when unknown)."""
    return "" if info.finished or not info.eta_s else format_eta(info.eta_s)


def state(info: Any, words: Words | None = None) -> str:
    """The state in the reader's words, with the queue position while queued ("queued #2")."""
    text = (words or {}).get(info.status, info.status)
    return text + (f" #{info.queue_position}" if info.queue_position else "")


def counts(info: Any, words: Words | None = None) -> str:
    """"step 3/10" of the current stage (empty when the job reports no total)."""
    if info.done is None or not info.total:
        return ""
    return f"{(words or {}).get('step', 'step')} {info.done}/{info.total}"


def progress_parts(info: Any, words: Words | None = None) -> list[str]:
    """The pieces of a progress line, in the one order everyone shows: state, pipeline step, counts, %, ETA."""
    w = words or {}
    parts = [state(info, w), info.step or "", counts(info, w), percent(info)]
    if eta(info):
        parts.append(f"{w.get('eta', 'ETA')} {eta(info)}")
    return [p for p in parts if p]


def progress_text(info: Any, words: Words | None = None) -> str:
    """`running · train · step 3/10 · 30% · ETA 1m05s` (a progress bar's caption, the CLI's progress line)."""
    return " · ".join(progress_parts(info, words))


def status_line(info: Any, words: Words | None = None, markdown: bool = True, suffix: str = "") -> str:
    """`**name** (`id`) — running · train · step 3/10 · 30% · ETA 1m05s`, then the reason on its own line if any.

    `suffix` ends the first line (the Start tab's "→ what this stage produces")."""
    name, ident = (f"**{info.name}**", f"(`{info.id}`)") if markdown else (info.name, f"({info.id})")
    line = f"{name} {ident} — {progress_text(info, words)}{suffix}"
    if not info.reason:
        return line
    return line + (f"\n\n{info.reason}" if markdown else f"\n  {info.reason}")


def queue_note(info: Any, words: Words | None = None) -> str:
    """While queued: "Waiting in the queue at position 2 for 2 GPUs." (`words["queued_at"]`, a template with {pos}
    and {request}, in the reader's language); empty otherwise."""
    if not info.queue_position:
        return ""
    template = (words or {}).get("queued_at", "Waiting in the queue at position {pos} for {request}.")
    return template.format(pos=info.queue_position, request=info.request)


def short_time(ts: float | None) -> str:
    """A table's compact local time ("11-30 05:49:34"); empty when unset."""
    return time.strftime("%m-%d %H:%M:%S", time.localtime(ts)) if ts else ""


def table_row(info: Any, words: Words | None = None) -> list[str]:
    """One row under `TABLE_COLUMNS` (the Jobs tab's table and `easydistill jobs list`)."""
    return [info.id, info.name, info.kind, state(info, words), info.step or "", percent(info), eta(info),
            ", ".join(info.devices), short_time(info.started_at), format_duration(info.duration_s)]


def detail_fields(info: Any) -> list[tuple[str, Any]]:
    """(label, value) of everything known about a job, unset ones left out (`easydistill jobs show`)."""
    fields: list[tuple[str, Any]] = [
        ("id", info.id), ("name", info.name), ("kind", info.kind), ("status", state(info)),
        ("reason", info.reason), ("step", info.step or ""), ("progress", percent(info, 1)), ("eta", eta(info)),
        ("devices", ", ".join(info.devices) or info.request), ("attempt", info.attempt),
        ("created", format_time(info.created_at)), ("started", format_time(info.started_at)),
        ("ended", format_time(info.ended_at)), ("duration", format_duration(info.duration_s)),
        ("exit code", "" if info.exit_code is None else info.exit_code), ("run folder", info.run_dir),
    ]
    return [(k, v) for k, v in fields if v not in ("", None)]
