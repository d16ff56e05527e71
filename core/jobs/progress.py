"""Progress, rate and ETA of a job, and plottable series, from the `{"step", "total", "time", ...}` lines workers write.

One scale per figure, so a person never reads a pipeline's percentage next to a stage's step count:

- `fraction` is of the whole job (a pipeline counts finished stages plus the fraction of the current one);
- `step` / `total` / `unit` / `rate` / `eta_s` are of the current stage (of the job when it is not a pipeline);
- `pipeline_eta_s` is of the whole pipeline: the current stage's ETA plus the stages still to come, each estimated
  at the mean active duration of the stages measured so far (an estimate, shown with "≈").

The rate is measured over a moving window (`RATE_WINDOW_S`) of the current *segment*: the trailing run of lines of
one stage and one attempt whose step never goes backwards. So the pace before a resume, of another stage, or of a
restarted counter never counts. The interval up to the first line that advanced the step is warm-up (loading a
model, the first compiled step, a resumed job skipping what it already did) and is left out as well: until two lines
after it exist the rate and ETA are unknown (None), never a guess from loading time.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

RESERVED = {"time", "step", "total", "stage", "event", "attempt", "unit"}
RATE_WINDOW_S = 90.0  # the rate is the pace over the last this-many seconds of the current segment
DEFAULT_UNIT = "steps"  # what `step` counts when the worker does not say (rows, pairs, ...)


@dataclass
class Progress:
    step: int | None = None  # the current stage's (or job's) last reported count ...
    total: int | None = None  # ... out of this many
    fraction: float | None = None  # 0..1 of the whole job
    eta_s: float | None = None  # remaining time of the current stage (of the job when not a pipeline)
    stage: str | None = None
    last_time: float | None = None
    unit: str = DEFAULT_UNIT  # what step/total count
    rate: float | None = None  # units per second over the moving window (None until measured)
    stage_index: int | None = None  # 0-based position of the current stage among a pipeline's stages
    pipeline_eta_s: float | None = None  # remaining time of the whole pipeline (an estimate)


def _progress_records(records: list[dict]) -> list[dict]:
    return [r for r in records if "event" not in r and isinstance(r.get("step"), (int, float))]


def compute(
    records: list[dict], stages: list[str] | None = None, done_stages: int | None = None, now: float | None = None,
) -> Progress:
    """Progress of a job from its metrics. `stages`: a pipeline's step names in order (None for plain jobs)."""
    recs = _progress_records(records)
    if not recs:
        return Progress(fraction=0.0 if stages else None, stage_index=(done_stages or 0) if stages else None)
    last = recs[-1]
    stage = last.get("stage")
    step, total = last.get("step"), last.get("total")
    frac_stage = None
    if isinstance(total, (int, float)) and total > 0:
        frac_stage = max(0.0, min(1.0, float(step) / float(total)))
    idx = None
    if stages:
        idx = stages.index(stage) if stage in stages else (done_stages or 0)
        fraction = (idx + (frac_stage or 0.0)) / len(stages)
    else:
        fraction = frac_stage
    seg = segment(recs)
    r = rate(seg)
    eta = stage_eta(last, r, now)
    out = Progress(step=int(step), total=int(total) if total else None, fraction=fraction, eta_s=eta, stage=stage,
                   last_time=last.get("time"), unit=str(last.get("unit") or DEFAULT_UNIT), rate=r, stage_index=idx)
    if stages and idx is not None:
        out.pipeline_eta_s = pipeline_eta(recs, seg, stages, idx, eta)
    return out


def segment(recs: list[dict]) -> list[dict]:
    """The trailing lines of the last line's stage and attempt, with a step that never went backwards (oldest first)."""
    last = recs[-1]
    stage, attempt = last.get("stage"), last.get("attempt", 1)
    seg = [last]
    for r in reversed(recs[:-1]):
        if r.get("stage") != stage or r.get("attempt", 1) != attempt or r["step"] > seg[-1]["step"]:
            break
        seg.append(r)
    seg.reverse()
    return seg


def rate(seg: list[dict], window_s: float = RATE_WINDOW_S) -> float | None:
    """Units per second over the last `window_s` of a segment, warm-up left out; None while unmeasured."""
    start = seg[0]["step"]
    warm = next((i for i, r in enumerate(seg) if r["step"] > start), None)
    if warm is None:
        return None
    points = [r for r in seg[warm:] if isinstance(r.get("time"), (int, float))]
    if len(points) < 2:
        return None
    last = points[-1]
    anchor = points[0]
    for r in points[:-1]:  # the newest point at least `window_s` old (or the first one after warm-up)
        if r["time"] <= last["time"] - window_s:
            anchor = r
        else:
            break
    dstep, dt = last["step"] - anchor["step"], last["time"] - anchor["time"]
    if dstep <= 0 or dt <= 0:
        return None
    return dstep / dt


def stage_eta(last: dict, per_s: float | None, now: float | None = None) -> float | None:
    """What is left of the current stage at `per_s`, less the time since its last line (never below 0)."""
    total = last.get("total")
    if not per_s or not isinstance(total, (int, float)) or total <= 0:
        return None
    remaining = max(0.0, (total - last["step"]) / per_s)
    if now is not None and isinstance(last.get("time"), (int, float)):
        remaining = max(0.0, remaining - max(0.0, now - last["time"]))
    return remaining


def active_seconds(recs: list[dict], stage: str | None) -> float:
    """How long a stage worked: per attempt, from its first line to its last (time stopped between attempts, or
    spent in other stages, does not count)."""
    spans: dict[int, tuple[float, float]] = {}
    for r in recs:
        t = r.get("time")
        if r.get("stage") != stage or not isinstance(t, (int, float)):
            continue
        a = r.get("attempt", 1)
        lo, hi = spans.get(a, (t, t))
        spans[a] = (min(lo, t), max(hi, t))
    return sum(hi - lo for lo, hi in spans.values())


def pipeline_eta(recs: list[dict], seg: list[dict], stages: list[str], idx: int, eta: float | None) -> float | None:
    """The current stage's ETA plus, for each stage still to come, the mean duration of the stages measured so far
    (those that ran, and the current one projected to its end). None until the current stage has an ETA."""
    if eta is None:
        return None
    after = len(stages) - idx - 1
    if after <= 0:
        return eta
    current = stages[idx]
    durations = [active_seconds(recs, s) for s in stages[:idx] if any(r.get("stage") == s for r in recs)]
    durations.append(active_seconds(recs, current) + eta)
    durations = [d for d in durations if d > 0]
    if not durations:
        return None
    return eta + after * sum(durations) / len(durations)


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
    """A remaining time as coarse as the estimate is: "40s", "7m", "1h32m", "2d03h" (rounded, never a false second)."""
    if seconds is None or seconds < 0:
        return ""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    minutes = round(s / 60)
    return f"{minutes}m" if minutes < 60 else format_duration(60 * minutes)


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


def format_rate(per_s: float | None) -> tuple[str, bool] | None:
    """(number, fast): "4.1" units per second when fast, else "12" seconds per unit (a slow training step reads
    "12 s/step", never "0.08 steps/s"); None when unmeasured."""
    if not per_s or per_s <= 0:
        return None
    if per_s >= 1:
        return (f"{per_s:.0f}" if per_s >= 100 else f"{per_s:.1f}"), True
    per_unit = 1 / per_s
    return (f"{per_unit:.0f}" if per_unit >= 10 else f"{per_unit:.1f}"), False


def format_time(ts: float | None) -> str:
    if not ts:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
