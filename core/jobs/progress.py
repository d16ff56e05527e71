"""Progress %, ETA and plottable series from the `{"step", "total", "time", ...scalars}` lines workers write.

Inside a pipeline each line carries `stage` (the step's name): overall progress counts finished steps plus the
fraction of the current one. ETA uses the recent rate of the current stage and attempt only (a resumed run
restarts the clock; so does a step counter going backwards).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

RESERVED = {"time", "step", "total", "stage", "event", "attempt"}
RATE_WINDOW = 50


@dataclass
class Progress:
    step: int | None = None
    total: int | None = None
    fraction: float | None = None  # 0..1 of the whole job
    eta_s: float | None = None
    stage: str | None = None
    last_time: float | None = None


def _progress_records(records: list[dict]) -> list[dict]:
    return [r for r in records if "event" not in r and isinstance(r.get("step"), (int, float))]


def compute(
    records: list[dict], stages: list[str] | None = None, done_stages: int | None = None, now: float | None = None,
) -> Progress:
    """Progress of a job from its metrics. `stages`: a pipeline's step names in order (None for plain jobs)."""
    recs = _progress_records(records)
    if not recs:
        return Progress(fraction=0.0 if stages else None)
    last = recs[-1]
    stage = last.get("stage")
    step, total = last.get("step"), last.get("total")
    frac_stage = None
    if isinstance(total, (int, float)) and total > 0:
        frac_stage = max(0.0, min(1.0, float(step) / float(total)))
    if stages:
        idx = stages.index(stage) if stage in stages else (done_stages or 0)
        fraction = (idx + (frac_stage or 0.0)) / len(stages)
    else:
        fraction = frac_stage
    eta = _eta(recs, stage, now)
    return Progress(step=int(step), total=int(total) if total else None, fraction=fraction, eta_s=eta, stage=stage,
                    last_time=last.get("time"))


def _eta(recs: list[dict], stage: str | None, now: float | None) -> float | None:
    last = recs[-1]
    total = last.get("total")
    if not isinstance(total, (int, float)) or total <= 0:
        return None
    # The current segment: same attempt and stage, step never going backwards, at most RATE_WINDOW lines.
    seg = [last]
    attempt = last.get("attempt", 1)
    for r in reversed(recs[:-1]):
        if (r.get("stage") != stage or r.get("attempt", 1) != attempt or r["step"] > seg[-1]["step"]
                or len(seg) >= RATE_WINDOW):
            break
        seg.append(r)
    first = seg[-1]
    dstep = last["step"] - first["step"]
    dt = (last.get("time") or 0) - (first.get("time") or 0)
    if dstep <= 0 or dt <= 0:
        return None
    remaining = max(0.0, (total - last["step"]) * dt / dstep)
    if now is not None and last.get("time"):
        remaining = max(0.0, remaining - max(0.0, now - last["time"]))
    return remaining


def series(records: list[dict]) -> dict[str, list[tuple[float, float, str | None]]]:
    """Every numeric scalar over step: name -> [(step, value, stage)], for plots."""
    out: dict[str, list[tuple[float, float, str | None]]] = {}
    for r in _progress_records(records):
        for k, v in r.items():
            if k in RESERVED or isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            if isinstance(v, float) and not math.isfinite(v):
                continue
            out.setdefault(k, []).append((r["step"], float(v), r.get("stage")))
    return out


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return format_duration(seconds)


def format_duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return ""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h}h{m:02d}m"
    return f"{h // 24}d{h % 24:02d}h"


def format_time(ts: float | None) -> str:
    if not ts:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
