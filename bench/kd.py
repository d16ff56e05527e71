"""Benchmark of the white-box KD path (issue 6), ratios printed in one run.

1. KD loss forward + backward at vocab 151,936, length 512, k = 10 (forward KL): our fused sparse top-k loss vs the
   same loss with plain autograd vs EasyDistill 1.x's dense path (scatter the top-k into a B·T·V teacher tensor,
   then KL over the whole vocabulary). Each variant runs in a fresh single-threaded process (so CPU time is
   comparable on a shared machine) with glibc returning large blocks to the OS at once; peak memory = growth of the
   process's peak RSS beyond the student logits and their own gradient buffer.
2. Logit cache: bytes per token and load / random-access time of our safetensors shards vs 1.x's JSON lines (one
   `{token_id: prob}` dict per position).
3. Our SFT job vs a bare TRL SFTTrainer script on the same data and steps (tiny models): CPU-time ratio (overhead).

Times are process CPU seconds (time.process_time): the machines this runs on are shared, and wall time there
measures the neighbours as much as the code.

    .venv/bin/python bench/kd.py [--quick]

`--demo` instead runs the README's demo result (minutes on a CPU): the offline demo pair (SmolLM2-135M-Instruct and
its 15-layer derived student), the teacher labels assets/demo/instructions.json, then SFT and KD through the real job
entries; it prints the student's held-out CE / KL to the teacher before, after SFT and after SFT + KD, and samples.

    .venv/bin/python bench/kd.py --demo [--workspace workspace] [--sft-steps 100] [--kd-steps 100]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

V, T, K = 151_936, 512, 10


# ---------------------------------------------------------------------------------------------------- 1. loss


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def loss_variant(variant: str, repeats: int) -> dict:
    """Run in a child process: time and extra peak memory of one KD variant."""
    import torch

    torch.manual_seed(0)
    ids, tlp = [], []
    for _ in range(0, T, 32):  # the teacher's top-k, built in slices so no dense teacher inflates the peak
        lp = torch.log_softmax(torch.randn(32, V) * 3, -1)
        top = lp.topk(K, -1)
        ids.append(top.indices)
        tlp.append(top.values)
        del lp, top
    ids, tlp = torch.cat(ids)[None], torch.cat(tlp)[None]
    mask = torch.ones(1, T, dtype=torch.bool)
    x = torch.randn(1, T, V).requires_grad_(True)  # the student's logits
    base = _peak_mb()

    from core.train.kd_losses import KdLossSpec, topk_kd_loss

    def dense():
        # EasyDistill 1.x: teacher probs scattered into a dense B·T·V tensor, KL over the vocabulary
        p = torch.zeros(1, T, V)
        p.scatter_(-1, ids, tlp.exp())
        logq = torch.log_softmax(x, -1)
        kl = (p * (torch.log(p.clamp_min(1e-10)) - logq)).sum(-1)
        return (kl * mask).sum() / mask.sum()

    def sparse(fused: bool):
        return topk_kd_loss(x, ids, tlp, mask, KdLossSpec(support="renormalize"), fused=fused)[0]

    fn = {"dense": dense, "sparse_autograd": lambda: sparse(False), "sparse_fused": lambda: sparse(True)}[variant]
    times = []
    for _ in range(repeats):
        x.grad = None
        t0 = time.process_time()
        loss = fn()
        loss.backward()
        times.append(time.process_time() - t0)
        del loss
    grad_mb = x.numel() * 4 / 2**20  # the logits' own gradient: every trainer has it, not counted
    extra = max(0.0, _peak_mb() - base - grad_mb)
    return {"variant": variant, "time_s": min(times), "times": times, "extra_peak_mb": extra}


def bench_loss(repeats: int) -> list[dict]:
    out = []
    for variant in ("dense", "sparse_autograd", "sparse_fused"):
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0",
               "OMP_NUM_THREADS": "1"}
        res = subprocess.run([sys.executable, __file__, "--child", variant, "--repeats", str(repeats)],
                             capture_output=True, text=True, check=True, env=env)
        out.append(json.loads(res.stdout.strip().splitlines()[-1]))
    return out


# ---------------------------------------------------------------------------------------------------- 2. cache


def bench_cache(rows: int, length: int) -> dict:
    import numpy as np

    from core.train.logit_cache import CacheMeta, LogitCache, LogitCacheWriter

    rng = np.random.default_rng(0)
    tmp = Path(tempfile.mkdtemp(prefix="kd-bench-"))
    data = {}
    for i in range(rows):
        ids = rng.integers(0, V, size=(length, K), dtype=np.int64)
        lps = np.sort(np.log(rng.dirichlet(np.ones(K * 4), size=length)[:, :K]), axis=-1)[:, ::-1]
        data[f"row-{i}"] = (ids, lps)
    meta = CacheMeta(teacher="bench", tokenizer_hash="x", vocab_size=V, k=K)
    with LogitCacheWriter(tmp / "cache", meta, shard_rows=256) as w:
        for rid, (ids, lps) in data.items():
            w.add(rid, range(10, 10 + length), ids[:, 0], ids, lps)
    jsonl = tmp / "logits.json"  # 1.x: one line per row, a list of {token_id: prob} dicts
    with open(jsonl, "w") as f:
        for ids, lps in data.values():
            f.write(json.dumps([{str(int(a)): float(np.exp(b)) for a, b in zip(r_ids, r_lp, strict=True)}
                                for r_ids, r_lp in zip(ids, lps, strict=True)]) + "\n")
    tokens = rows * length
    ours_bytes = LogitCache(tmp / "cache").nbytes()
    json_bytes = jsonl.stat().st_size

    t0 = time.perf_counter()
    cache = LogitCache(tmp / "cache")
    for rid in cache.ids():
        cache.get(rid)
    ours_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    with open(jsonl) as f:
        loaded = [json.loads(line) for line in f]
    json_load = time.perf_counter() - t0
    del loaded

    picks = random.Random(0).sample(list(data), 50)
    t0 = time.perf_counter()
    cache = LogitCache(tmp / "cache")
    for rid in picks:
        cache.get(rid)
    ours_random = time.perf_counter() - t0
    order = list(data)
    t0 = time.perf_counter()
    for rid in picks:  # no index in 1.x: the row is found by its line number, parsing the lines before it
        target = order.index(rid)
        with open(jsonl) as f:
            for n, line in enumerate(f):
                if n == target:
                    json.loads(line)
                    break
    json_random = time.perf_counter() - t0
    return {
        "tokens": tokens, "ours_bytes_per_token": ours_bytes / tokens, "json_bytes_per_token": json_bytes / tokens,
        "ours_load_s": ours_load, "json_load_s": json_load, "ours_random_50_s": ours_random,
        "json_random_50_s": json_random,
    }


# ---------------------------------------------------------------------------------------------------- 3. SFT overhead


def bench_sft(steps: int) -> dict:
    from core.config.train import SftJob
    from core.jobs.context import JobContext
    from core.models.tiny import build_tiny_pair
    from core.train import sft
    from core.workspace import Workspace

    tmp = Path(tempfile.mkdtemp(prefix="sft-bench-"))
    pair = build_tiny_pair(tmp / "tiny")
    ws = Workspace.open(tmp / "ws")
    rows = [{"id": f"r{i}", "instruction": f"Add {a} and {b}.", "output": f"Sure: {a} plus {b} is {a + b}."}
            for i, (a, b) in enumerate((random.randint(1, 50), random.randint(1, 50)) for _ in range(128))]
    (ws.datasets / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    knobs = {"max_steps": steps, "per_device_train_batch_size": 8, "gradient_accumulation_steps": 1,
             "learning_rate": 1e-3, "save_steps": 10_000, "logging_steps": 5, "max_length": 128}

    def bare_trl(n_steps: int, tag: str) -> float:
        """The script a user would write with TRL alone: load, SFTTrainer(assistant_only_loss), train, save."""
        t0 = time.process_time()
        from datasets import Dataset
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from trl import SFTConfig, SFTTrainer

        tok = AutoTokenizer.from_pretrained(str(pair.student))
        model = AutoModelForCausalLM.from_pretrained(str(pair.student))
        ds = Dataset.from_list([{"messages": [{"role": "user", "content": r["instruction"]},
                                              {"role": "assistant", "content": r["output"]}]} for r in rows])
        args = SFTConfig(output_dir=str(tmp / tag), max_steps=n_steps, per_device_train_batch_size=8,
                         learning_rate=1e-3, save_strategy="no", logging_steps=5, max_length=128,
                         assistant_only_loss=True, report_to="none", use_cpu=True, disable_tqdm=True,
                         warmup_steps=0.1, lr_scheduler_type="cosine", weight_decay=0.05)
        trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
        trainer.train()
        trainer.save_model(str(tmp / f"{tag}-model"))
        return time.process_time() - t0

    bare_trl(3, "warmup")  # imports and first-use costs paid before either is timed
    bare = bare_trl(steps, "bare")
    run_dir = ws.runs / "bench"
    run_dir.mkdir(parents=True)
    t0 = time.process_time()
    sft.run(SftJob(student=str(pair.student), dataset="d", output="ours", **knobs),
            JobContext(job_id="bench", run_dir=run_dir, workspace=ws, devices=["cpu"]))
    ours = time.process_time() - t0
    bare = min(bare, bare_trl(steps, "bare2"))
    return {"steps": steps, "ours_s": ours, "bare_trl_s": bare}


# ---------------------------------------------------------------------------------------------------- demo


def _ctx(ws, job: str):
    from core.jobs.context import JobContext

    (ws.runs / job).mkdir(parents=True, exist_ok=True)
    return JobContext(job_id=job, run_dir=ws.runs / job, workspace=ws, devices=["cpu"])


def demo(ws_dir: str, sft_steps: int, kd_steps: int, limit: int | None = None, samples: int = 3) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from core.config.data_jobs import CaptureJob
    from core.config.train import KdJob, SftJob
    from core.llm.base import SamplingParams
    from core.llm.hf_local import HFLocalBackend
    from core.models.demo import STUDENT_NAME, TEACHER_NAME, prepare_demo
    from core.models.derive import ce_kl
    from core.train import capture, kd, sft
    from core.train.dataset import in_eval_split
    from core.workspace import Workspace

    t_start = time.time()
    ws = Workspace.open(ws_dir)
    pair = prepare_demo(ws, say=lambda m, i, n: print(f"  [{i}/{n}] {m}", flush=True))
    data = ws.datasets / "demo-labelled.jsonl"
    instructions = [r["instruction"] for r in json.loads((ROOT / "assets/demo/instructions.json").read_text())]
    instructions = instructions[:limit] if limit else instructions
    if not data.exists():
        t0 = time.time()
        labeller = HFLocalBackend(pair.teacher, dtype="bfloat16", device="cpu", batch_size=16)
        outs = labeller.chat([[{"role": "user", "content": q}] for q in instructions],
                             SamplingParams(temperature=0.0, max_new_tokens=128))
        labeller.close()
        rows = [{"id": f"demo-{i}", "instruction": q, "output": o.text} for i, (q, o) in
                enumerate(zip(instructions, outs, strict=True)) if o.ok and o.text.strip()]
        data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        print(f"teacher labelled {len(rows)} instructions in {time.time() - t0:.0f} s", flush=True)
    rows = [json.loads(x) for x in data.read_text(encoding="utf-8").splitlines()]
    held = [r for r in rows if in_eval_split(r["id"], 0.1, 42)]
    held_convs = [[{"role": "user", "content": r["instruction"]}, {"role": "assistant", "content": r["output"]}]
                  for r in held]
    teacher = HFLocalBackend(pair.teacher, dtype="float32", device="cpu", batch_size=8)

    def measure(folder) -> tuple[float, float, float]:
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
        t_ce, s_ce, kl, _ = ce_kl(teacher, model, held_convs)
        return t_ce, s_ce, kl

    def answers(folder) -> list[str]:
        b = HFLocalBackend(folder, dtype="float32", device="cpu", batch_size=samples)
        outs = b.chat([[{"role": "user", "content": r["instruction"]}] for r in held[:samples]],
                      SamplingParams(temperature=0.0, max_new_tokens=64))
        b.close()
        return [o.text for o in outs]

    results = {"before": measure(pair.student)}
    before_answers = answers(pair.student)
    common = {"dataset": "demo-labelled", "eval_split": 0.1, "per_device_train_batch_size": 4,
              "gradient_accumulation_steps": 1, "warmup_ratio": 0.05, "max_length": 384, "save_steps": 50,
              "logging_steps": 10, "precision": "bf16"}
    t0 = time.time()
    sft.run(SftJob(student=STUDENT_NAME, output="demo-student-sft", max_steps=sft_steps, learning_rate=3e-4,
                   **common), _ctx(ws, f"demo-sft-{sft_steps}"))
    sft_s = time.time() - t0
    results["after SFT"] = measure(ws.models / "demo-student-sft")
    t0 = time.time()
    capture.run(CaptureJob(input="demo-labelled", output="demo-labelled-k20", top_k=20, max_length=384,
                           student="demo-student-sft",
                           teacher={"type": "transformers", "model": TEACHER_NAME, "dtype": "float32",
                                    "batch_size": 8}), _ctx(ws, "demo-capture"))
    cap_s = time.time() - t0
    t0 = time.time()
    kd.run(KdJob(student="demo-student-sft", teacher=TEACHER_NAME, logits="demo-labelled-k20",
                 output="demo-student-kd", max_steps=kd_steps, learning_rate=1e-4, kd_ratio=0.5,
                 divergence="forward_kl", **common), _ctx(ws, f"demo-kd-{kd_steps}"))
    kd_s = time.time() - t0
    results["after SFT + KD"] = measure(ws.models / "demo-student-kd")
    after_answers = answers(ws.models / "demo-student-kd")
    teacher_answers = [r["output"] for r in held[:samples]]

    print(f"== demo: {STUDENT_NAME} from {TEACHER_NAME}, {len(rows)} teacher answers "
          f"({len(held)} held out), SFT {sft_steps} steps ({sft_s:.0f} s), capture ({cap_s:.0f} s), "
          f"KD {kd_steps} steps ({kd_s:.0f} s), total {time.time() - t_start:.0f} s ==")
    print(f"teacher's own CE on its answers: {results['before'][0]:.2f}")
    print("| student | held-out CE | KL to teacher |\n|---|---|---|")
    for k, (_, ce, kl) in results.items():
        print(f"| {k} | {ce:.2f} | {kl:.2f} |")
    for r, b, a, t in zip(held[:samples], before_answers, after_answers, teacher_answers, strict=True):
        print(f"\n> {r['instruction']}\n- before: {b[:200]!r}\n- after:  {a[:200]!r}\n- teacher: {t[:200]!r}")


# ---------------------------------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="fewer repeats, smaller cache, fewer SFT steps")
    ap.add_argument("--demo", action="store_true", help="the README demo: SmolLM2 teacher -> derived student")
    ap.add_argument("--workspace", default="workspace")
    ap.add_argument("--sft-steps", type=int, default=100)
    ap.add_argument("--kd-steps", type=int, default=100)
    ap.add_argument("--limit", type=int, default=None, help="--demo: only the first N instructions (a dry run)")
    a = ap.parse_args()
    if a.demo:
        demo(a.workspace, a.sft_steps, a.kd_steps, a.limit)
        return
    if a.child:
        import torch

        torch.set_num_threads(1)
        print(json.dumps(loss_variant(a.child, a.repeats)))
        return
    repeats = 1 if a.quick else a.repeats
    print(f"== KD loss fwd+bwd, B=1 T={T} V={V:,} k={K} (CPU s, 1 thread, best of {repeats}) ==")
    res = {r["variant"]: r for r in bench_loss(repeats)}
    for r in res.values():
        print(f"  {r['variant']:16s} {r['time_s']:.3f} s   extra peak memory {r['extra_peak_mb']:.0f} MB")
    d, s, f = res["dense"], res["sparse_autograd"], res["sparse_fused"]
    print(f"  time   dense/fused {d['time_s'] / f['time_s']:.1f}x   autograd/fused {s['time_s'] / f['time_s']:.1f}x")
    print(f"  memory dense/fused {d['extra_peak_mb'] / max(f['extra_peak_mb'], 1):.1f}x   "
          f"autograd/fused {s['extra_peak_mb'] / max(f['extra_peak_mb'], 1):.1f}x "
          f"(fused extra: {f['extra_peak_mb']:.0f} MB)")

    rows, length = (200, 128) if a.quick else (1000, 200)
    c = bench_cache(rows, length)
    print(f"== logit cache, {c['tokens']:,} positions, k={K} ==")
    print(f"  bytes/token      ours {c['ours_bytes_per_token']:.1f}   1.x JSON {c['json_bytes_per_token']:.1f}   "
          f"size ratio {c['json_bytes_per_token'] / c['ours_bytes_per_token']:.1f}x")
    print(f"  load all rows    ours {c['ours_load_s']:.2f} s   1.x JSON {c['json_load_s']:.2f} s   "
          f"ratio {c['json_load_s'] / c['ours_load_s']:.1f}x")
    print(f"  50 rows by id    ours {c['ours_random_50_s'] * 1000:.1f} ms   1.x JSON {c['json_random_50_s']:.2f} s   "
          f"ratio {c['json_random_50_s'] / c['ours_random_50_s']:.0f}x")

    steps = 20 if a.quick else 60
    import torch

    torch.set_num_threads(1)  # CPU time of one thread: comparable even when the machine is shared
    sft_res = bench_sft(steps)
    print(f"== SFT job vs bare TRL SFTTrainer, tiny student, {steps} steps (CPU s, 1 thread) ==")
    print(f"  ours {sft_res['ours_s']:.1f} s   bare TRL {sft_res['bare_trl_s']:.1f} s   "
          f"overhead ratio {sft_res['ours_s'] / sft_res['bare_trl_s']:.2f}x")


if __name__ == "__main__":
    main()
