"""Benchmark of core.jobs: how fast a submitted job's worker is running, and what the studio's polling costs.

1. submit -> worker running: wall time from `submit()` until the worker process has loaded and written
   status `running` (median of several real selftest jobs, each on an idle manager).
2. studio polling with 50 finished + 2 running jobs: one Jobs-tab tick = list (with reconcile + scheduling pass),
   the selected job's log tail and metrics, the device panel, and the table rows. The 50 finished jobs are copies
   of one real finished run (rows + run folders); the 2 running ones are real workers writing metrics.

Run: .venv/bin/python bench/jobs.py
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.config.selftest import SelftestJob  # noqa: E402
from core.jobs.manager import JobManager, new_job_id  # noqa: E402
from core.jobs.rundir import read_status, update_status  # noqa: E402


def wait_running(run_dir: Path, timeout: float = 60.0) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if read_status(run_dir).get("status") == "running":
            return time.perf_counter()
        time.sleep(0.002)
    raise TimeoutError(f"{run_dir.name} never ran")


def bench_latency(root: Path, n: int = 7) -> tuple[list[float], list[float]]:
    m = JobManager(root / "ws-latency")
    submit_s, running_s = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        job_id = m.submit(SelftestJob(steps=1, delay_s=0.0))
        t1 = time.perf_counter()
        t2 = wait_running(Path(m.get(job_id, refresh=False).run_dir))
        submit_s.append(t1 - t0)
        running_s.append(t2 - t0)
        m.wait(job_id, 60)
    return submit_s, running_s


def fabricate_finished(m: JobManager, template_id: str, count: int) -> None:
    src = m.store.get(template_id)
    for i in range(count):
        job_id = new_job_id("selftest")
        while m.store.get(job_id) is not None:
            job_id = new_job_id("selftest")
        run_dir = m.workspace.runs / job_id
        shutil.copytree(src["run_dir"], run_dir)
        update_status(run_dir, id=job_id)
        row = {k: src[k] for k in ("kind", "status", "reason", "detail", "request", "devices", "attempt", "created_at",
                                   "queued_at", "started_at", "ended_at", "exit_code", "progress")}
        row.update(id=job_id, name=f"finished {i}", run_dir=str(run_dir), pid=None)
        m.store.insert(row)


def bench_polling(root: Path, iterations: int = 60) -> dict[str, float]:
    from studio.tabs.jobs import device_rows, table_rows

    m = JobManager(root / "ws-poll", cpu_slots=4)
    template = m.submit(SelftestJob(steps=200, delay_s=0.0))
    assert m.wait(template, 120).status == "succeeded"
    fabricate_finished(m, template, 49)
    running = [m.submit(SelftestJob(steps=100000, delay_s=0.01)) for _ in range(2)]
    time.sleep(3.0)  # let them write a few hundred metric lines
    selected = running[0]

    def tick() -> None:
        infos = m.list(limit=200)
        table_rows(infos)
        info = m.get(selected, refresh=False)
        m.logs(selected, 200)
        m.metrics(selected)
        device_rows(m.device_panel(), {i.id: i.name for i in infos}, lambda k, **f: k)
        assert info.status == "running" and len(infos) == 52

    tick()  # warm caches (metrics readers)
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        tick()
        times.append(time.perf_counter() - t0)
    cold = JobManager(m.workspace)
    t0 = time.perf_counter()
    cold.list(limit=200)
    cold_s = time.perf_counter() - t0
    lines = len(m.metrics(selected))
    for job_id in running:
        m.cancel(job_id, wait=10)
    times.sort()
    return {"median": statistics.median(times), "p90": times[int(0.9 * len(times)) - 1], "cold_list": cold_s,
            "metric_lines": lines}


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="eds-bench-jobs-") as tmp:
        root = Path(tmp)
        submit_s, running_s = bench_latency(root)
        poll = bench_polling(root)
    ms = lambda s: f"{1000 * s:.1f} ms"  # noqa: E731
    print(f"submit() call:                    median {ms(statistics.median(submit_s))}  (n={len(submit_s)})")
    print(f"submit -> worker running:         median {ms(statistics.median(running_s))}  "
          f"min {ms(min(running_s))}  max {ms(max(running_s))}")
    print(f"studio tick, 50 finished + 2 running: median {ms(poll['median'])}  p90 {ms(poll['p90'])}  "
          f"(selected job has {poll['metric_lines']} metric lines)")
    print(f"first list() of a fresh manager:  {ms(poll['cold_list'])}")
    print(json.dumps({"submit_ms": 1000 * statistics.median(submit_s),
                      "submit_to_running_ms": 1000 * statistics.median(running_s),
                      "tick_median_ms": 1000 * poll["median"], "tick_p90_ms": 1000 * poll["p90"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
