"""A job in words — the single renderer of a job's status and progress for every tab, the CLI and the job's log.

Every place that shows a job (the Jobs tab's table, progress bar and detail, the Start tab's stage lines, the
training / synthesis / models tabs, `easydistill jobs list|show`, the CLI's progress line, the progress lines a
worker writes into its log) builds its text from these functions, so a state, a count or an ETA reads the same
everywhere. One scale per figure (see core.jobs.progress):

    running · stage 2 of 9 · label · 113/265 rows · 4.1 rows/s · stage ETA 1m · pipeline ETA ≈ 24m
    running · 30/100 steps · 30% · 12 s/step · ETA 14m

Words a person reads come in through `words` so the studio can pass them in the page's language
(`UIContext.job_words()`, which reads `jobs.word_<key>` for each of `WORD_KEYS`); the CLI uses `DEFAULT_WORDS`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from core.jobs.progress import DEFAULT_UNIT, format_duration, format_eta, format_rate, format_time

TABLE_COLUMNS = ("id", "name", "kind", "status", "step", "progress", "eta", "devices", "started", "duration")
Words = Mapping[str, str]

# English defaults of the words (and templates) a progress line uses; the studio passes its own language's.
DEFAULT_WORDS: dict[str, str] = {
    "eta": "ETA", "stage_eta": "stage ETA", "pipeline_eta": "pipeline ETA", "stage_of": "stage {i} of {n}",
    "counts": "{done}/{total} {units}", "rate_fast": "{n} {units}/s", "rate_slow": "{n} s/{unit}",
    "unit_rows": "rows", "unit_rows_one": "row", "unit_steps": "steps", "unit_steps_one": "step",
    "attempt": "attempt {n}",
}
# The studio reads these from `jobs.word_<key>` ("eta" is the table's column title, "attempt" the detail's words).
WORD_KEYS = tuple(k for k in DEFAULT_WORDS if k not in ("eta", "attempt"))


def _w(words: Words | None, key: str) -> str:
    return (words or {}).get(key) or DEFAULT_WORDS.get(key, key)


def fraction(info: Any) -> float | None:
    """Progress of the whole job as 0..1 (clamped), None when the job reports none."""
    return None if info.progress is None else max(0.0, min(1.0, float(info.progress)))


def percent(info: Any, decimals: int = 0) -> str:
    """"42%" of the whole job (empty when the job reports no progress)."""
    frac = fraction(info)
    return "" if frac is None else f"{100 * frac:.{decimals}f}%"


def _stage_index(info: Any) -> int | None:
    """The running step's position in a pipeline (None for a plain job)."""
    steps = list(getattr(info, "steps", None) or [])
    return steps.index(info.step) if info.step and info.step in steps else None


def _left_after(info: Any) -> int:
    idx = _stage_index(info)
    return 0 if idx is None else len(info.steps) - idx - 1


def eta(info: Any) -> str:
    """The remaining time of the whole job while it runs ("≈ 24m" for a pipeline with stages still to come: those are
    estimated); empty once it ended or when unknown. The table's ETA column and the CLI use this."""
    if info.finished:
        return ""
    if _left_after(info):
        whole = getattr(info, "pipeline_eta_s", None)
        return f"≈ {format_eta(whole)}" if whole is not None else ""
    return format_eta(info.eta_s) if info.eta_s is not None else ""


def state(info: Any, words: Words | None = None) -> str:
    """The state in the reader's words, with the queue position while queued ("queued #2")."""
    text = (words or {}).get(info.status, info.status)
    return text + (f" #{info.queue_position}" if info.queue_position else "")


def _units(info: Any, words: Words | None, one: bool = False) -> str:
    unit = getattr(info, "unit", None) or DEFAULT_UNIT
    key = f"unit_{unit}" + ("_one" if one else "")
    found = (words or {}).get(key) or DEFAULT_WORDS.get(key)
    if found:
        return found
    return unit[:-1] if one and unit.endswith("s") else unit


def counts(info: Any, words: Words | None = None) -> str:
    """"113/265 rows" of the current stage (empty when the job reports no total)."""
    if info.done is None or not info.total:
        return ""
    return _w(words, "counts").format(done=info.done, total=info.total, units=_units(info, words))


def rate(info: Any, words: Words | None = None) -> str:
    """"4.1 rows/s", or "12 s/step" when slower than one a second; empty when unmeasured or ended."""
    shown = None if info.finished else format_rate(getattr(info, "rate", None))
    if shown is None:
        return ""
    n, fast = shown
    if fast:
        return _w(words, "rate_fast").format(n=n, units=_units(info, words))
    return _w(words, "rate_slow").format(n=n, unit=_units(info, words, one=True))


def stage(info: Any, words: Words | None = None) -> str:
    """"stage 2 of 9 · label" inside a pipeline, the stage's name alone when its position is unknown."""
    idx = _stage_index(info)
    if idx is None:
        return info.step or ""
    return f"{_w(words, 'stage_of').format(i=idx + 1, n=len(info.steps))} · {info.step}"


def etas(info: Any, words: Words | None = None) -> list[str]:
    """["ETA 14m"] for a plain job; ["stage ETA 1m", "pipeline ETA ≈ 24m"] inside a pipeline."""
    if info.finished:
        return []
    if _stage_index(info) is None:
        return [f"{_w(words, 'eta')} {format_eta(info.eta_s)}"] if info.eta_s is not None else []
    out = [f"{_w(words, 'stage_eta')} {format_eta(info.eta_s)}"] if info.eta_s is not None else []
    if _left_after(info) and eta(info):
        out.append(f"{_w(words, 'pipeline_eta')} {eta(info)}")
    return out


def progress_parts(info: Any, words: Words | None = None) -> list[str]:
    """The pieces of a progress line, in the one order everyone shows: state, stage, counts, % (plain jobs only: a
    pipeline's percentage is of another scale than its stage's counts), rate, ETAs."""
    pct = percent(info) if _stage_index(info) is None else ""
    parts = [state(info, words), stage(info, words), counts(info, words), pct, rate(info, words),
             *etas(info, words)]
    return [p for p in parts if p]


def progress_text(info: Any, words: Words | None = None) -> str:
    """`running · stage 2 of 3 · train · 30/100 steps · 2.0 steps/s · stage ETA 35s · pipeline ETA ≈ 3m`."""
    return " · ".join(progress_parts(info, words))


def status_line(info: Any, words: Words | None = None, markdown: bool = True, suffix: str = "") -> str:
    """`**name** (`id`) — running · 3/10 steps · 30% · ETA 1m`, then the reason on its own line if any.

    `suffix` ends the first line (the Start tab's "→ what this stage produces")."""
    name, ident = (f"**{info.name}**", f"(`{info.id}`)") if markdown else (info.name, f"({info.id})")
    attempt = getattr(info, "attempt", 1) or 1
    again = f" · {_w(words, 'attempt').format(n=attempt)}" if attempt > 1 else ""
    line = f"{name} {ident} — {progress_text(info, words)}{again}{suffix}"
    if not info.reason:
        return line
    return line + (f"\n\n{info.reason}" if markdown else f"\n  {info.reason}")


def log_line(p: Any, words: Words | None = None) -> str:
    """A worker's periodic progress line for its log, from a `core.jobs.progress.Progress`:
    `progress: label · 113/265 rows · 4.1 rows/s · ETA 1m` (empty when there is nothing to say)."""
    view = _ProgressView(p)
    parts = [p.stage or "", counts(view, words), rate(view, words)]
    if p.eta_s is not None:
        parts.append(f"{_w(words, 'eta')} {format_eta(p.eta_s)}")
    text = " · ".join(x for x in parts if x)
    return f"progress: {text}" if text else ""


class _ProgressView:
    """A Progress read through the JobInfo names the renderers use."""

    finished = False

    def __init__(self, p: Any) -> None:
        self.done, self.total, self.unit, self.rate = p.step, p.total, p.unit, p.rate


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
    """One row under `TABLE_COLUMNS` (the Jobs tab's table and `easydistill jobs list`): the progress and ETA columns
    are of the whole job."""
    return [info.id, info.name, info.kind, state(info, words), info.step or "", percent(info), eta(info),
            ", ".join(info.devices), short_time(info.started_at), format_duration(info.duration_s)]


def detail_fields(info: Any) -> list[tuple[str, Any]]:
    """(label, value) of everything known about a job, unset ones left out (`easydistill jobs show`)."""
    fields: list[tuple[str, Any]] = [
        ("id", info.id), ("name", info.name), ("kind", info.kind), ("status", state(info)),
        ("reason", info.reason), ("step", stage(info)), ("counts", counts(info)), ("rate", rate(info)),
        ("progress", percent(info, 1)), ("eta", eta(info)),
        ("devices", ", ".join(info.devices) or info.request), ("attempt", info.attempt),
        ("created", format_time(info.created_at)), ("started", format_time(info.started_at)),
        ("ended", format_time(info.ended_at)), ("duration", format_duration(info.duration_s)),
        ("exit code", "" if info.exit_code is None else info.exit_code), ("run folder", info.run_dir),
    ]
    return [(k, v) for k, v in fields if v not in ("", None)]
