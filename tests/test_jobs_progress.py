"""The progress maths of core.jobs.progress: the rate over a moving window of the current stage and attempt (warm-up
and the time before a resume left out), a stage's ETA, and a pipeline's estimated ETA; plus the progress lines a
worker writes into its log."""

from __future__ import annotations

import logging

import pytest

from core.jobs.context import JobContext
from core.jobs.progress import RATE_WINDOW_S, compute, format_eta, format_rate, pipeline_eta, rate, segment


def _lines(steps_times, **extra):
    return [{"time": float(t), "step": s, "total": 100, **extra} for s, t in steps_times]


def test_warm_up_before_the_first_advance_does_not_count():
    # 60 s loading a model at step 0, then one step a second: the rate is 1/s, not 5 steps in 65 s.
    recs = _lines([(0, 0), (1, 60), (2, 61), (3, 62), (4, 63), (5, 64)])
    p = compute(recs, now=64.0)
    assert p.rate == pytest.approx(1.0) and p.eta_s == pytest.approx(95.0)


def test_no_rate_until_measured_after_warm_up():
    assert compute(_lines([(0, 0), (1, 60)]), now=60.0).rate is None  # one point after warm-up: nothing measured
    assert compute(_lines([(0, 0), (1, 60)]), now=60.0).eta_s is None
    assert compute(_lines([(0, 0)])).eta_s is None


def test_rate_is_the_recent_pace_not_the_average():
    # slow for 10 minutes (1 step / 10 s), then fast (2 steps / s) for the last 2 minutes: the window sees the fast.
    slow = [(i, 10 * i) for i in range(0, 61)]
    fast = [(60 + 2 * k, 600 + k) for k in range(1, 121)]
    recs = _lines(slow + fast)
    assert rate(segment(recs)) == pytest.approx(2.0)
    # a window wider than the run averages over everything after warm-up
    assert rate(segment(recs), window_s=1e9) == pytest.approx((300 - 1) / (720 - 10))


def test_resume_restarts_the_clock():
    # attempt 1 reached step 40 in 400 s; stopped for an hour; attempt 2 loads for 50 s then runs 4 steps / s.
    first = _lines([(i, 10 * i) for i in range(0, 41)])
    second = _lines([(40, 4000), (44, 4051), (48, 4052), (52, 4053)], attempt=2)
    p = compute(first + second, now=4053.0)
    assert p.rate == pytest.approx(4.0)
    assert p.eta_s == pytest.approx(48 / 4.0)  # not (100-52) steps at the old pace, nor with the hour stopped
    assert compute(first + second[:2], now=4051.0).eta_s is None  # just resumed: unmeasured, not "1h32m"


def test_a_counter_going_backwards_starts_a_new_segment():
    recs = _lines([(0, 0), (50, 50), (60, 60), (1, 61), (3, 62), (5, 63)])
    assert [r["step"] for r in segment(recs)] == [1, 3, 5]
    assert compute(recs).rate == pytest.approx(2.0)


def test_stage_and_pipeline_eta():
    # stage a (label): 100 rows in 100 s of work. Stage b (train) now: 20/40 steps at 1 step/s. Stages c, d to come.
    recs = [{"time": float(t), "step": t, "total": 100, "stage": "a", "unit": "rows"} for t in range(0, 101, 10)]
    recs += [{"time": 200.0 + s, "step": s, "total": 40, "stage": "b"} for s in range(0, 21)]
    p = compute(recs, stages=["a", "b", "c", "d"], now=220.0)
    assert (p.stage, p.stage_index, p.step, p.total, p.unit) == ("b", 1, 20, 40, "steps")
    assert p.fraction == pytest.approx((1 + 0.5) / 4)
    assert p.eta_s == pytest.approx(20.0)
    # measured durations: a 100 s, b 20 s so far + 20 s to go = 40 s; mean 70 s for each of c and d
    assert p.pipeline_eta_s == pytest.approx(20.0 + 2 * 70.0)
    last = compute(recs, stages=["a", "b"], now=220.0)
    assert last.pipeline_eta_s == pytest.approx(last.eta_s)  # the last stage: the pipeline ends with it


def test_pipeline_eta_ignores_time_stopped_between_attempts():
    recs = [{"time": float(t), "step": t, "total": 100, "stage": "a"} for t in range(0, 51, 10)]
    recs += [{"time": 10_000.0 + t, "step": 50 + t, "total": 100, "stage": "a", "attempt": 2} for t in range(0, 51, 10)]
    recs += [{"time": 10_100.0 + s, "step": s, "total": 10, "stage": "b", "attempt": 2} for s in range(0, 6)]
    seg = segment(recs)
    eta = 5.0
    assert pipeline_eta(recs, seg, ["a", "b", "c"], 1, eta) == pytest.approx(eta + (100 + 10) / 2)


def test_rate_and_eta_formats():
    assert format_rate(4.12) == ("4.1", True) and format_rate(250.0) == ("250", True)
    assert format_rate(1 / 12) == ("12", False) and format_rate(0.5) == ("2.0", False)
    assert format_rate(None) is None and format_rate(0.0) is None
    assert [format_eta(s) for s in (40, 65, 24 * 60 + 10, 3599, 92 * 60)] == ["40s", "1m", "24m", "1h00m", "1h32m"]
    assert RATE_WINDOW_S > 0


def test_worker_writes_progress_lines_into_its_log(tmp_path, workspace, caplog, monkeypatch):
    now = [0.0]
    monkeypatch.setattr("core.jobs.context.time.time", lambda: now[0])
    ctx = JobContext("j", tmp_path, workspace, step_name="label")
    with caplog.at_level(logging.INFO, logger="job"):
        for done in range(0, 21):  # a metrics line every 5 s, one row each
            now[0] = 5.0 * done
            ctx.progress(done, 20, unit="rows")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("progress:")]
    assert 5 <= len(lines) <= 8  # periodic (every 15 s), not one per metrics line
    assert lines[-1] == "progress: label · 20/20 rows · 5.0 s/row · ETA 0s"
    assert "rows/s" not in " ".join(lines) and all("label ·" in line for line in lines)
