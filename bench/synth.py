"""Benchmark of synthesis throughput: label 200 rows through the OpenAI-compatible backend against the local fake
server (100 ms latency per request) with 1 request in flight vs 32, through the real job (core.synth.job.run: rows
appended and flushed one by one, progress written). Prints rows/s of each and the ratio.

Run: .venv/bin/python bench/synth.py [--rows 200] [--latency 0.1]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.config.data_jobs import SynthJob  # noqa: E402
from core.data.io import write_records  # noqa: E402
from core.jobs.context import JobContext  # noqa: E402
from core.synth import job as synth_job  # noqa: E402
from core.workspace import Workspace  # noqa: E402
from tests.fake_openai_server import FakeOpenAIServer  # noqa: E402


def label_run(root: Path, rows: int, latency: float, concurrency: int) -> tuple[float, int]:
    ws = Workspace.open(root / f"ws-c{concurrency}")
    write_records(ws.datasets / "qs.jsonl", [{"id": f"r{i}", "instruction": f"Question {i}?"} for i in range(rows)])
    with FakeOpenAIServer(latency=latency) as srv:
        cfg = SynthJob(input="qs", operator="label", teacher={
            "type": "openai", "endpoint": {"base_url": srv.base_url, "model": "fake-model",
                                           "concurrency": concurrency}})
        run_dir = root / f"run-c{concurrency}"
        run_dir.mkdir()
        t0 = time.perf_counter()
        synth_job.run(cfg, JobContext(f"bench-c{concurrency}", run_dir, ws))
        elapsed = time.perf_counter() - t0
        peak = srv.max_in_flight
    done = sum(1 for _ in open(ws.datasets / "qs-label.jsonl", encoding="utf-8"))
    assert done == rows, f"expected {rows} rows, got {done}"
    return elapsed, peak


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200)
    ap.add_argument("--latency", type=float, default=0.1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for c in (1, 32):
            elapsed, peak = label_run(Path(tmp), args.rows, args.latency, c)
            results[c] = elapsed
            print(f"concurrency {c:>2}: {args.rows} rows in {elapsed:6.2f} s = {args.rows / elapsed:7.1f} rows/s "
                  f"(peak {peak} requests in flight)")
    ratio = results[1] / results[32]
    print(f"throughput ratio 32 vs 1: {ratio:.1f}x  (ideal {min(32, args.rows):d}x at {args.latency * 1000:.0f} ms "
          "latency)")
    print(json.dumps({"rows": args.rows, "latency_s": args.latency, "seconds_c1": round(results[1], 3),
                      "seconds_c32": round(results[32], 3), "ratio": round(ratio, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
