"""Helpers for the tests that run data jobs (synthesis, judging, pairs, CRV): read a JSON Lines output, check that
every input row ended in the output or the rejects exactly once, give a job an in-process context, write an input
with broken lines, and kill a real worker with SIGKILL once it has written enough, then resume it."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from core.jobs.context import JobContext


def lines(path: Path) -> list[dict]:
    """The records of a JSON Lines file; none when it is not there (yet)."""
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def each_row_once(ws, name: str, ids: list[str]) -> tuple[list[dict], list[dict]]:
    """(output rows, rejects) of dataset `name`: together they hold every id of `ids` exactly once, and every reject
    says why."""
    ok, bad = lines(ws.datasets / f"{name}.jsonl"), lines(ws.datasets / f"{name}.rejects.jsonl")
    got = [r["id"] for r in ok] + [r["id"] for r in bad]
    assert len(got) == len(set(got)), "a row was written twice"
    assert sorted(got) == sorted(ids), "a row was lost"
    assert all(r["reason"] for r in bad), "a reject does not say why"
    return ok, bad


def job_context(ws, tmp_path: Path, job_id: str = "t", attempt: int = 1) -> JobContext:
    """A context for running a job in this process, its run folder under tmp_path/run (kept between attempts)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    return JobContext(job_id, run_dir, ws, attempt=attempt)


def write_with_bad_lines(path: Path, rows: list[dict], bad: dict[int, str]) -> Path:
    """`rows` as JSON Lines at `path`, line n (1-based) replaced by the text bad[n]."""
    text = [json.dumps(r) for r in rows]
    for n, line in bad.items():
        text[n - 1] = line
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    return path


def kill_when_written(jm, job_id: str, path: Path, rows: int, timeout_s: float = 120):
    """Wait until the job's worker has written `rows` lines to `path`, SIGKILL it, and return the failed job's info."""
    deadline = time.monotonic() + timeout_s
    while len(lines(path)) < rows:
        assert time.monotonic() < deadline, f"job made no progress: {jm.logs(job_id)}"
        assert not jm.get(job_id).finished, f"job ended early: {jm.get(job_id)} {jm.logs(job_id)}"
        time.sleep(0.05)
    os.kill(jm.get(job_id).pid, signal.SIGKILL)
    info = jm.wait(job_id, timeout=60)
    assert info.status == "failed", info
    return info


def resume_to_success(jm, job_id: str) -> float:
    """Resume a job and wait for it to succeed; returns the time it was resumed (calls made since are the new
    attempt's)."""
    resumed_at = time.time()
    jm.resume(job_id)
    info = jm.wait(job_id, timeout=180)
    assert info.status == "succeeded", jm.logs(job_id)
    return resumed_at
