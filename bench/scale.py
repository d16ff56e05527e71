"""Figures docs/scale.md extrapolates from (issue 15): what one synthesis job costs per row on our side, how rows/s
grows with teacher replicas, what a replica dying costs, and what a resume's read of the output costs per row.

1. Job-side cost per row: a label job (core.synth.job.run: HTTP client, parsing, JSONL append, progress lines)
   against one test server with no latency, 64 requests in flight: the job process's CPU seconds per row (the
   server runs in its own process, so its CPU is not counted) and rows/s.
2. Replicas: the same job over 1, 2 and 4 test servers (each its own process, `--latency` s per request, 8 requests in
   flight each): rows/s against the ideal replicas × 8 / latency.
3. A replica killed (SIGKILL) when a quarter of the rows are written, of 2: rows/s before and after, seconds from the
   kill until the job takes the replica out, rows written twice and rows lost (both must be 0).
4. Resume: reading the ids of a 200,000-row output (what a resumed job does first), per million rows.
5. Logit cache written by a capture / read by KD training (core.train.logit_cache, k = 10, vocabulary 151,936):
   CPU µs per token to encode and to decode, and bytes per token on disk (200,000 tokens of random top-k).

    .venv/bin/python bench/scale.py [--rows 2000] [--latency 0.1]

Test servers stand in for vLLM replicas; on the shared 2-core machine they compete with the job for the cores, so
rows/s at high rates is a floor (a real replica runs elsewhere).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.config.data_jobs import SynthJob  # noqa: E402
from core.data.io import write_records  # noqa: E402
from core.jobs.context import JobContext  # noqa: E402
from core.synth import job as synth_job  # noqa: E402
from core.workspace import Workspace  # noqa: E402

SERVER = """
import sys, time
from tests.fake_openai_server import FakeOpenAIServer
tag, latency = sys.argv[1], float(sys.argv[2])
srv = FakeOpenAIServer(answer=lambda m: tag + ": " + m[-1]["content"][-24:], latency=latency).start()
print(srv.port, flush=True)
time.sleep(3600)
"""


class Server:
    def __init__(self, tag: str, latency: float):
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER, tag, str(latency)], stdout=subprocess.PIPE,
                                     text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        self.url = f"http://127.0.0.1:{int(self.proc.stdout.readline())}/v1"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def spec(server: Server, concurrency: int) -> dict:
    return {"type": "openai", "model": "fake-model", "endpoint": {"base_url": server.url, "concurrency": concurrency,
                                                                  "max_retries": 1, "timeout_s": 5.0}}


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_job(root: Path, name: str, rows: int, servers: list[Server], concurrency: int,
            during=None) -> tuple[float, float, Path, Path]:
    """(wall s, job CPU s, output file, run folder)."""
    ws = Workspace.open(root / name)
    write_records(ws.datasets / "qs.jsonl", [{"id": f"r{i:07d}", "instruction": f"Question {i}?"}
                                            for i in range(rows)])
    cfg = SynthJob(input="qs", operator="label", teacher=spec(servers[0], concurrency),
                   backends=[spec(s, concurrency) for s in servers[1:]])
    run_dir = root / f"run-{name}"
    run_dir.mkdir()
    out = ws.datasets / "qs-label.jsonl"
    watcher = threading.Thread(target=during, args=(out,), daemon=True) if during else None
    if watcher:
        watcher.start()
    c0, t0 = cpu_s(), time.perf_counter()
    synth_job.run(cfg, JobContext(name, run_dir, ws))
    wall, cpu = time.perf_counter() - t0, cpu_s() - c0
    if watcher:
        watcher.join()
    return wall, cpu, out, run_dir


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def cache_costs(folder: Path, rows: int = 1000, length: int = 200, vocab: int = 151_936, k: int = 10) -> None:
    import numpy as np

    from core.train.logit_cache import CacheMeta, LogitCache, LogitCacheWriter

    rng = np.random.default_rng(0)
    ids = rng.integers(0, vocab, size=(rows * length, k))
    lps = np.sort(np.log(rng.dirichlet(np.ones(k + 1) * 0.3, size=rows * length)[:, :k] + 1e-9), axis=1)[:, ::-1]
    tokens = ids[:, 0].copy()
    c0 = cpu_s()
    w = LogitCacheWriter(folder, CacheMeta(teacher="bench", tokenizer_hash="x", vocab_size=vocab, k=k))
    for r in range(rows):
        sl = slice(r * length, (r + 1) * length)
        w.add(f"row-{r}", range(30, 30 + length), tokens[sl], ids[sl], lps[sl])
    w.close()
    enc = cpu_s() - c0
    c0 = cpu_s()
    cache = LogitCache(folder)
    for r in range(rows):
        cache.get(f"row-{r}")
    dec = cpu_s() - c0
    size = sum(p.stat().st_size for p in folder.iterdir())
    n = rows * length
    print(f"logit cache encode per token: ours {1e6 * enc / n:.2f} µs / 1 token = 1")
    print(f"logit cache decode per token: ours {1e6 * dec / n:.2f} µs / 1 token = 1")
    print(f"logit cache bytes per token: ours {size / n:.1f} B / 1 token = 1  (random ids, k = {k})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--latency", type=float, default=0.1)
    args = ap.parse_args()
    n, lat = args.rows, args.latency
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        s = Server("A", 0.0)
        try:
            run_job(root, "warm", 200, [s], 64)
            wall, cpu, _, _ = run_job(root, "cost", n, [s], 64)
        finally:
            s.kill()
        print(f"job-side CPU per row: ours {1000 * cpu / n:.2f} ms / 1 row = 1  ({n} rows, 64 in flight, "
              f"{n / wall:.0f} rows/s wall with the server on the same 2 cores)")

        rates = {}
        for k in (1, 2, 4):
            servers = [Server(chr(65 + i), lat) for i in range(k)]
            try:
                wall, _, _, _ = run_job(root, f"rep{k}", n, servers, 8)
            finally:
                for x in servers:
                    x.kill()
            rates[k] = n / wall
            ideal = k * 8 / lat
            print(f"rows/s over {k} replica(s): ours {rates[k]:.1f} / ideal {ideal:.1f} = {rates[k] / ideal:.2f}")
        print(f"rows/s 4 replicas vs 1: ours {rates[4]:.1f} / {rates[1]:.1f} = {rates[4] / rates[1]:.2f}")

        servers = [Server("A", lat), Server("B", lat)]
        marks: dict[str, float] = {}

        def kill_at_quarter(out: Path) -> None:
            while not (out.exists() and out.read_text().count("\n") >= n // 4):
                time.sleep(0.01)
            marks["kill"] = time.time()
            marks["rows_at_kill"] = out.read_text().count("\n")
            servers[1].kill()

        try:
            wall, _, out, run_dir = run_job(root, "kill", n, servers, 8, during=kill_at_quarter)
        finally:
            for x in servers:
                x.kill()
        rows_out = lines(out)
        ids = [r["id"] for r in rows_out]
        events = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
        down = next(e["time"] for e in events if e.get("down"))
        start = next(e["time"] for e in events if "replicas" in e and "event" in e)
        before = marks["rows_at_kill"] / (marks["kill"] - start)
        end = next(e["time"] for e in reversed(events) if "event" in e)
        after = (n - marks["rows_at_kill"]) / max(end - marks["kill"], 1e-6)
        print(f"rows/s after a replica died, of 2: ours {after:.1f} / before {before:.1f} = {after / before:.2f}  "
              f"(taken out {down - marks['kill']:.2f} s after the kill; written twice {len(ids) - len(set(ids))}, "
              f"lost {n - len(set(ids))})")

        big = root / "big.jsonl"
        with open(big, "w") as f:
            for i in range(200_000):
                f.write(json.dumps({"id": f"r{i:07d}", "instruction": f"Question {i}?",
                                    "output": "x" * 400, "teacher": "t"}) + "\n")
        c0 = cpu_s()
        got = synth_job.ids_in(big)
        per_m = (cpu_s() - c0) * 5
        assert len(got) == 200_000
        print(f"resume: read the ids of 1M output rows (~0.5 KB each): ours {per_m:.1f} CPU s / 1M rows = 1")
        cache_costs(root / "cache")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
