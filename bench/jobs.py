"""Benchmark of core.jobs: how fast a submitted job's worker is running, and what the studio's polling costs.

1. submit -> worker running: wall time from `submit()` until the worker process has loaded and written
   status `running` (median of several real selftest jobs, each on an idle manager).
2. studio polling with 50 finished + 2 running jobs: one Jobs-tab tick = list (with reconcile + scheduling pass),
   the selected job's log tail and metrics, the device panel, and the table rows. The 50 finished jobs are copies
   of one real finished run (rows + run folders); the 2 running ones are real workers writing metrics.
3. the same tick at 200 and at 5,000 jobs (rows added to the same workspace: copies of the finished job's row): the
   table shows the newest 200 either way, and a refresh costs O(rows shown), so the ratio stays near 1.

Each figure is printed as `name: ours / baseline = ratio`; the baseline of 1. is starting a bare Python process
(`python -c pass`, the floor of any worker start). The workspace is removed only once no job runs and the manager's
threads (worker reapers, the stop watchdog) have ended: a reaper that refreshed after the folder was gone once
failed the cleanup with "no such table: jobs".

Run: .venv/bin/python bench/jobs.py
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.config.selftest import SelftestJob  # noqa: E402
from core.jobs.control import new_job_id  # noqa: E402
from core.jobs.manager import JobManager  # noqa: E402
from core.jobs.rundir import read_status, update_status  # noqa: E402


def wait_running(run_dir: Path, timeout: float = 60.0) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if read_status(run_dir).get("status") == "running":
            return time.perf_counter()
        time.sleep(0.002)
    raise TimeoutError(f"{run_dir.name} never ran")


def settle(m: JobManager, timeout: float = 120.0) -> None:
    """Wait until no job of `m` runs and its threads (worker reapers, the stop watchdog) have ended, then close its
    job list: nothing may still write to a workspace about to be removed."""
    deadline = time.monotonic() + timeout
    while m.list(status="active") and time.monotonic() < deadline:
        time.sleep(0.2)
    for th in threading.enumerate():
        if th.name.startswith("reap-") or th.name == "jobs-stop-watchdog":
            th.join(max(0.0, deadline - time.monotonic()))
    m.store.close()


def bare_python_start(n: int = 7) -> list[float]:
    """The floor of a worker start: a bare Python interpreter that does nothing."""
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        out.append(time.perf_counter() - t0)
    return out


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
    settle(m)
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


def add_rows(m: JobManager, template_id: str, total: int) -> None:
    """Copies of a finished job's row (sharing its run folder) until the list holds `total` jobs."""
    src = {k: v for k, v in m.store.get(template_id).items() if k != "seq"}
    have = len(m.store.rows())
    with m.store.tx() as conn:
        for i in range(have, total):
            m.store.insert({**src, "id": f"{template_id}-copy{i:05d}", "name": f"finished {i}"}, conn)


TABLE_LIMIT = 200  # studio.tabs.jobs.TABLE_LIMIT


def bench_polling(root: Path, iterations: int = 60, many: int = 5000) -> dict[str, float]:
    from studio.tabs.jobs import device_rows, table_rows

    m = JobManager(root / "ws-poll", cpu_slots=4)
    template = m.submit(SelftestJob(steps=200, delay_s=0.0))
    assert m.wait(template, 120).status == "succeeded"
    fabricate_finished(m, template, 49)
    running = [m.submit(SelftestJob(steps=100000, delay_s=0.01)) for _ in range(2)]
    time.sleep(3.0)  # let them write a few hundred metric lines
    selected = running[0]

    def tick(expect: int) -> None:
        """What one Jobs-tab tick asks core: the table's rows, the jobs that run, the selected job's log and curves,
        the device panel."""
        infos = m.list(limit=TABLE_LIMIT)
        table_rows(infos)
        live = m.list(status="active", refresh=False)
        info = m.get(selected, refresh=False)
        m.logs(selected, 200)
        m.metrics(selected)
        device_rows(m.device_panel(), {i.id: i.name for i in live}, lambda k, **f: k)
        assert info.status == "running" and len(infos) == min(expect, TABLE_LIMIT) and len(live) == 2

    def measure(expect: int) -> list[float]:
        tick(expect)  # warm caches (metrics readers)
        times = []
        for _ in range(iterations):
            t0 = time.perf_counter()
            tick(expect)
            times.append(time.perf_counter() - t0)
        return sorted(times)

    try:
        times = measure(52)
        cold = JobManager(m.workspace)
        t0 = time.perf_counter()
        cold.list(limit=TABLE_LIMIT)
        cold_s = time.perf_counter() - t0
        cold.store.close()
        add_rows(m, template, TABLE_LIMIT)
        times_full = measure(TABLE_LIMIT)
        add_rows(m, template, many)
        times_many = measure(many)
        lines = len(m.metrics(selected))
    finally:
        for job_id in running:
            m.cancel(job_id, wait=30)
        settle(m)
    return {"median": statistics.median(times), "p90": times[int(0.9 * len(times)) - 1], "cold_list": cold_s,
            "metric_lines": lines, "full_median": statistics.median(times_full),
            "many_median": statistics.median(times_many), "many": many}


def main() -> int:
    bare_s = bare_python_start()
    with tempfile.TemporaryDirectory(prefix="eds-bench-jobs-") as tmp:
        root = Path(tmp)
        submit_s, running_s = bench_latency(root)
        poll = bench_polling(root)
    ms = lambda s: f"{1000 * s:.1f} ms"  # noqa: E731
    run_med, bare_med = statistics.median(running_s), statistics.median(bare_s)
    print(f"submit() call: median {ms(statistics.median(submit_s))}  (n={len(submit_s)})")
    print(f"submit -> worker running: {ms(run_med)} / bare python start {ms(bare_med)} = {run_med / bare_med:.1f}x  "
          f"(min {ms(min(running_s))}, max {ms(max(running_s))})")
    print(f"studio tick, 50 finished + 2 running: median {ms(poll['median'])}  p90 {ms(poll['p90'])}  "
          f"(selected job has {poll['metric_lines']} metric lines)")
    print(f"studio tick at {poll['many']:,} jobs / at {TABLE_LIMIT} jobs: {ms(poll['many_median'])} / "
          f"{ms(poll['full_median'])} = {poll['many_median'] / poll['full_median']:.2f}x  (both show {TABLE_LIMIT} "
          "rows; O(rows shown): ~1)")
    print(f"first list() of a fresh manager:  {ms(poll['cold_list'])}")
    print(json.dumps({"submit_ms": 1000 * statistics.median(submit_s), "submit_to_running_ms": 1000 * run_med,
                      "bare_python_ms": 1000 * bare_med, "tick_median_ms": 1000 * poll["median"],
                      "tick_p90_ms": 1000 * poll["p90"], "tick_200_median_ms": 1000 * poll["full_median"],
                      "tick_5000_median_ms": 1000 * poll["many_median"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
