"""Benchmark of the white-box KD path (issues 6 and 17): every line is `name: ours / baseline = ratio`, measured in
one run (a ratio below 1 means ours is smaller or faster).

1. Losses at vocab 151,936, k = 10, one sequence (B = 1):
   - the KD term alone, forward + backward, T = 512: our fused top-k loss vs EasyDistill 1.x's path as 1.x runs it
     (the teacher tensor built from the parsed JSON: a float64 B·T·V array filled per position, its bf16 copy, the
     shift-right gather; then KL over the whole vocabulary) and vs the same top-k loss in plain autograd;
   - the whole training loss (1 − λ)·CE + λ·KD, T = 512: ours (one chunked pass, core.train.kd_losses.ce_kd_loss)
     vs 1.x (transformers' own causal-LM loss on the logits, plus 1.x's KD) and vs our trainer before issue 17
     (a dense cross_entropy next to the fused KD term); at T = 8192 (bf16 logits, 2.3 GiB) ours vs the floor.
   Each variant runs in a fresh single-threaded process with glibc's mmap threshold at 64 KiB (every tensor is its
   own mapping, returned to the OS when freed, so the resident set follows the live tensors). Peak memory = the
   process's resident high-water mark (VmHWM, reset through /proc/self/clear_refs just before the call) minus its
   resident set then: what the loss's forward + backward adds on top of the logits and the teacher data. The floor is
   the logits' own gradient (B·T·V elements), which any trainer holds. tracemalloc sees none of torch's memory.
2. Logit cache at k = 10, V = 151,936, rows of 200 answer tokens: bytes per token, load-all, and open + fetch one
   row at 100k, 1M and 100M tokens, vs 1.x's JSON lines (one `{token_id: prob}` dict per position, parsed all at
   once as 1.x's trainer does). 100M tokens are simulated by the index: a real 1M-token cache whose index is
   rewritten to hold 500,000 rows (100M tokens' worth), pointing at the real rows (open + fetch reads the index and
   one row's bytes, so the shard sizes do not enter). Page cache warm (files just written).
3. Our SFT job vs a bare TRL SFTTrainer script on the same data and steps (tiny models): CPU-time ratio (overhead).

Times are process CPU seconds (time.process_time), medians of the repeats: the machines this runs on are shared,
and wall time there measures the neighbours as much as the code. Cache open + fetch times are wall time (they are
system calls and page-cache reads), medians of 200, the cache sizes taking turns.

    .venv/bin/python bench/kd.py [--quick] [--repeats 3] [--long-repeats 1] [--long-dtype bfloat16]

`--demo` instead runs the README's demo result (minutes on a CPU): the offline demo pair (SmolLM2-135M-Instruct and
its 15-layer derived student), the teacher labels assets/demo/instructions.json, then SFT and KD through the real job
entries; it prints the student's held-out CE / KL to the teacher before, after SFT and after SFT + KD, and samples.

    .venv/bin/python bench/kd.py --demo [--workspace workspace] [--sft-steps 100] [--kd-steps 100]

`--compare` instead runs the controlled comparison of issue 14 (bench/kd_compare.py, its own options follow): SFT,
offline top-k KD with each divergence, SFT → KD, GKD and TRL's DistillationTrainer on the demo pair, each trained for
the same time budget on the same teacher-labelled rows, then held-out KL / perplexity / ROUGE-L against the teacher
and sample answers.

    .venv/bin/python bench/kd.py --compare [--budget 40] [--clock wall|cpu] [--rows 96] [--methods ...]
    .venv/bin/python bench/kd.py --compare --from-json artifacts/kd-compare.json   # a saved run's report, no training
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
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
T_LONG = 8192
PROMPT = 16  # prompt tokens at the start of the sequence (no label, no teacher)
LAM = 0.5  # λ: (1 − λ)·CE + λ·KD
MIB = 2**20


def line(name: str, ours: float, base: float, unit: str, base_name: str, note: str = "") -> None:
    """`name: ours X / baseline Y = ratio` (the one format every bench prints)."""
    def fmt(v: float) -> str:
        if unit == "s":
            return f"{v:.3f} s" if v < 10 else f"{v:.1f} s"
        if unit == "ms":
            return f"{v:.2f} ms"
        if unit == "MiB":
            return f"{v:.0f} MiB"
        return f"{v:.1f} {unit}"

    print(f"{name}: ours {fmt(ours)} / {base_name} {fmt(base)} = {ours / base:.3g}" + (f"  ({note})" if note else ""),
          flush=True)


# ---------------------------------------------------------------------------------------------------- 1. losses


def _status_mib(field: str) -> float:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+)", text).group(1)) / 1024.0


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux ≥ 4.0)


def _teacher_topk(rng, n: int, k: int, flat: bool = False):
    """Teacher top-k over n positions: Zipf-like distributions p_i ∝ i^−α·e^{0.2ε} over the vocabulary (α per
    position: U(1.6, 4) peaked, as a teacher on its own answers; U(0.8, 1.8) flat, as a small teacher on text it did
    not write), sorted; the tail is what the top-k leave; the forced token is sampled from the teacher (so it is
    outside the top-k with probability = the tail). Returns ids (n, k), log-probs (n, k), tail (n,), tokens (n,)."""
    import numpy as np

    ranks = np.arange(1, V + 1, dtype=np.float64)
    grid = np.linspace(0.7, 4.1, 69)
    logz = np.array([np.log(np.sum(ranks ** -a)) for a in grid])
    alpha = rng.uniform(0.8, 1.8, n) if flat else rng.uniform(1.6, 4.0, n)
    lp = -alpha[:, None] * np.log(ranks[:k])[None] - np.interp(alpha, grid, logz)[:, None]
    lp = -np.sort(-(lp + 0.2 * rng.normal(size=(n, k))), axis=1)
    lp = np.minimum(lp, 0.0)
    tail = np.clip(1.0 - np.exp(lp).sum(1), 0.0, 1.0)
    lp -= np.log(np.maximum(np.exp(lp).sum(1) + tail, 1.0))[:, None]
    ids = rng.integers(0, V, size=(n, k))
    probs = np.concatenate([np.exp(lp), tail[:, None]], 1)
    pick = (probs.cumsum(1) < rng.uniform(0, 1, n)[:, None] * probs.sum(1, keepdims=True)).sum(1)
    tokens = np.where(pick < k, ids[np.arange(n), np.minimum(pick, k - 1)], rng.integers(0, V, n))
    return ids, lp, tail, tokens


def _x1_teacher_tensor(loaded: list, max_seq_length: int, labels):
    """EasyDistill 1.x's `_load_teacher_logits` + `_shift_tensor_right`: a dense float64 array filled from the
    parsed `{id: prob}` dicts, copied to bf16, then shifted right to the first label with a B·T·V gather."""
    import numpy as np
    import torch

    batch = len(loaded)
    arr = np.zeros((batch, max_seq_length, V))
    for i in range(len(loaded)):
        for j in range(len(loaded[i])):
            keys = np.array(list(loaded[i][j].keys()), dtype=int)
            values = np.array(list(loaded[i][j].values()))
            arr[i, j, keys] = values
    inputs = torch.tensor(arr, dtype=torch.bfloat16)
    del arr
    b, seqlen, vocab = inputs.shape
    shift = torch.argmax((labels != -100).int(), dim=1)
    idx = torch.arange(seqlen).unsqueeze(0).expand(b, seqlen) - shift.unsqueeze(1)
    keep = idx >= 0
    gathered = torch.gather(inputs, 1, idx.clamp(min=0).unsqueeze(2).expand(-1, -1, vocab))
    keep = keep.unsqueeze(2).expand(-1, -1, vocab)
    return torch.where(keep, gathered, torch.full_like(gathered, 0))


def _x1_kd(student_logits, teacher_probs, labels):
    """1.x's `_compute_white_box_distillation_loss`, forward KL."""
    import torch
    import torch.nn.functional as F

    mask = (labels != -100).float()
    loss = F.kl_div(F.log_softmax(student_logits, dim=-1), teacher_probs, reduction="none", log_target=False)
    loss = loss.sum(dim=-1) / torch.sum(mask.view(-1), dim=0)
    return (loss * mask).sum() / mask.sum()


def loss_variant(variant: str, length: int, dtype_name: str, repeats: int) -> dict:
    """Run in a child process: CPU time and peak memory growth of one loss variant's forward + backward."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from transformers.loss.loss_utils import ForCausalLMLoss

    from core.train.kd_losses import KdLossSpec, ce_kd_loss, topk_kd_loss

    dtype = getattr(torch, dtype_name)
    rng = np.random.default_rng(0)
    n = length - PROMPT
    ids, lp, tail, tokens = _teacher_topk(rng, n, K)
    labels = torch.full((1, length), -100, dtype=torch.long)
    labels[0, PROMPT:] = torch.from_numpy(tokens)
    shifted = F.pad(labels[:, 1:], (0, 1), value=-100)
    # Ours: the teacher of the token at p sits at the logits that predict it, t = p − 1.
    t_ids = torch.zeros(1, length, K, dtype=torch.long)
    t_lp = torch.zeros(1, length, K)
    t_tail = torch.zeros(1, length)
    kd_mask = torch.zeros(1, length, dtype=torch.bool)
    t_ids[0, PROMPT - 1 : length - 1] = torch.from_numpy(ids)
    t_lp[0, PROMPT - 1 : length - 1] = torch.from_numpy(lp).float()
    t_tail[0, PROMPT - 1 : length - 1] = torch.from_numpy(tail).float()
    kd_mask[0, PROMPT - 1 : length - 1] = True
    # 1.x: the cache file's rows as json.load gives them back ({"id": prob} per response position).
    loaded = [json.loads(json.dumps([{str(int(a)): float(np.exp(b)) for a, b in zip(r_ids, r_lp, strict=True)}
                                     for r_ids, r_lp in zip(ids, lp, strict=True)]))] if "1x" in variant else None
    x = torch.empty(1, length, V, dtype=dtype)
    bank = torch.randn(64, V, generator=torch.Generator().manual_seed(1)).mul_(2.0).to(dtype)
    for i in range(length):  # random logits without a length·V random draw (minutes at T = 8192)
        x[0, i] = bank[(i * 7) % 64]
    x.requires_grad_(True)
    spec = KdLossSpec()  # forward KL, top-k + tail bucket: the trainer's default

    def kd_ours():
        return topk_kd_loss(x, t_ids, t_lp, kd_mask, spec, teacher_tail=t_tail)[0]

    def kd_ref():
        return topk_kd_loss(x, t_ids, t_lp, kd_mask, spec, teacher_tail=t_tail, fused=False)[0]

    def kd_1x():
        return _x1_kd(x, _x1_teacher_tensor(loaded, length, labels), labels)

    def ce_kd(fused: bool):
        return ce_kd_loss(x, shifted, t_ids, t_lp, kd_mask, spec, teacher_tail=t_tail, ce_weight=1 - LAM,
                          kd_weight=LAM, fused=fused).loss

    def ce_kd_before():  # the KD trainer until issue 17: a dense cross_entropy next to the fused KD term
        n_lab = (shifted != -100).sum()
        ce = F.cross_entropy(x.view(-1, V).float(), shifted.reshape(-1), ignore_index=-100, reduction="sum") / n_lab
        return (1 - LAM) * ce + LAM * kd_ours()

    def ce_kd_1x():  # the model's own loss (transformers' causal-LM loss on its logits), then 1.x's KD term
        lm = ForCausalLMLoss(x, labels, vocab_size=V)
        return (1 - LAM) * lm + LAM * kd_1x()

    fn = {"kd_ours": kd_ours, "kd_ref": kd_ref, "kd_1x": kd_1x, "ce_kd_ours": lambda: ce_kd(True),
          "ce_kd_ref": lambda: ce_kd(False), "ce_kd_before": ce_kd_before, "ce_kd_1x": ce_kd_1x}[variant]
    times, peaks = [], []
    for _ in range(repeats):
        x.grad = None
        base = _status_mib("VmRSS")
        _reset_peak()
        t0 = time.process_time()
        loss = fn()
        loss.backward()
        times.append(time.process_time() - t0)
        del loss
        peaks.append(_status_mib("VmHWM") - base)
    grad_mib = x.numel() * x.element_size() / MIB
    return {"variant": variant, "time_s": statistics.median(times), "peak_mib": statistics.median(peaks),
            "grad_mib": grad_mib, "times": times, "peaks": peaks}


def run_variant(variant: str, length: int, dtype: str, repeats: int) -> dict:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--child", variant, "--length", str(length), "--dtype", dtype,
           "--repeats", str(repeats)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise RuntimeError(f"{variant} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def bench_losses(repeats: int, long_repeats: int, long_dtype: str) -> None:
    print(f"== losses, B=1 V={V:,} k={K}, fp32 logits unless said (CPU s of one thread and peak memory growth, "
          f"median of {repeats}) ==", flush=True)
    r = {v: run_variant(v, T, "float32", repeats) for v in ("kd_ours", "kd_ref", "kd_1x")}
    o, floor = r["kd_ours"], r["kd_ours"]["grad_mib"]
    line(f"KD term fwd+bwd T={T} time", o["time_s"], r["kd_1x"]["time_s"], "s", "1.x (teacher tensor + dense KL)")
    line(f"KD term fwd+bwd T={T} time", o["time_s"], r["kd_ref"]["time_s"], "s", "plain autograd")
    line(f"KD term fwd+bwd T={T} peak", o["peak_mib"], r["kd_1x"]["peak_mib"], "MiB", "1.x")
    line(f"KD term fwd+bwd T={T} peak", o["peak_mib"], r["kd_ref"]["peak_mib"], "MiB", "plain autograd")
    line(f"KD term fwd+bwd T={T} peak", o["peak_mib"], floor, "MiB", "floor (the logits' grad)")
    r = {v: run_variant(v, T, "float32", repeats) for v in ("ce_kd_ours", "ce_kd_before", "ce_kd_ref", "ce_kd_1x")}
    o = r["ce_kd_ours"]
    line(f"CE+KD loss fwd+bwd T={T} time", o["time_s"], r["ce_kd_1x"]["time_s"], "s", "1.x (HF loss + 1.x KD)")
    line(f"CE+KD loss fwd+bwd T={T} time", o["time_s"], r["ce_kd_before"]["time_s"], "s",
         "before (dense CE + fused KD)")
    line(f"CE+KD loss fwd+bwd T={T} time", o["time_s"], r["ce_kd_ref"]["time_s"], "s", "plain autograd")
    line(f"CE+KD loss fwd+bwd T={T} peak", o["peak_mib"], r["ce_kd_1x"]["peak_mib"], "MiB", "1.x")
    line(f"CE+KD loss fwd+bwd T={T} peak", o["peak_mib"], r["ce_kd_before"]["peak_mib"], "MiB", "before")
    line(f"CE+KD loss fwd+bwd T={T} peak", o["peak_mib"], r["ce_kd_ref"]["peak_mib"], "MiB", "plain autograd")
    line(f"CE+KD loss fwd+bwd T={T} peak", o["peak_mib"], floor, "MiB", "floor (the logits' grad)")
    if long_repeats:
        o = run_variant("ce_kd_ours", T_LONG, long_dtype, long_repeats)
        x1_gib = T_LONG * V * (8 + 2 + 2 + 2 + 4 + 4) / 2**30
        line(f"CE+KD loss fwd+bwd T={T_LONG} {long_dtype} peak", o["peak_mib"], o["grad_mib"], "MiB",
             "floor (the logits' grad)",
             f"ours {o['time_s']:.1f} s CPU, median of {long_repeats}; 1.x would need > {x1_gib:.0f} GiB beside the "
             "logits (float64 teacher array, its bf16 copies, fp32 log-softmax and KL), not run here")


# ---------------------------------------------------------------------------------------------------- 2. cache

ROW_LEN = 200


def _write_caches(folder: Path, rows: int, flat: bool, seed: int, json_path: Path | None = None,
                  versions: tuple[tuple[str, int, str], ...] = (("v2", 2, "none"),)) -> dict[str, Path]:
    """Teacher-labelled rows of ROW_LEN answer tokens into our caches (name, version, compression) and, if asked,
    1.x's JSON lines. Returns the cache folders."""
    import numpy as np

    from core.train.logit_cache import CacheMeta, LogitCacheWriter

    rng = np.random.default_rng(seed)
    writers = {name: LogitCacheWriter(folder / name, CacheMeta(teacher="bench", tokenizer_hash="x", vocab_size=V,
                                                               k=K, compression=comp), shard_rows=256, version=ver)
               for name, ver, comp in versions}
    out = open(json_path, "w") if json_path else None  # noqa: SIM115 - closed below
    try:
        for start in range(0, rows, 100):
            batch = min(100, rows - start)
            ids, lp, tail, tokens = _teacher_topk(rng, batch * ROW_LEN, K, flat)
            for b in range(batch):
                sl = slice(b * ROW_LEN, (b + 1) * ROW_LEN)
                prompt = 20 + (start + b) % 37
                for w in writers.values():
                    w.add(f"row-{start + b}", range(prompt, prompt + ROW_LEN), tokens[sl], ids[sl], lp[sl], tail[sl])
                if out:  # 1.x: one line per row, a list of {token_id: prob} dicts
                    out.write(json.dumps([{str(int(a)): float(np.exp(c)) for a, c in zip(r_i, r_l, strict=True)}
                                          for r_i, r_l in zip(ids[sl], lp[sl], strict=True)]) + "\n")
    finally:
        for w in writers.values():
            w.close()
        if out:
            out.close()
    return {name: folder / name for name in writers}


def _open_fetch_ms(caches: dict[str, tuple[Path, list[str]]], trials: int = 200) -> dict[str, float]:
    """Median wall ms of LogitCache(folder) + get(one random id), a fresh object each time; the caches take turns in
    a shuffled order, so a busy neighbour slows them alike."""
    from core.train.logit_cache import LogitCache

    rnd = random.Random(1)
    times: dict[str, list[float]] = {name: [] for name in caches}
    names = list(caches)
    for _ in range(trials):
        rnd.shuffle(names)
        for name in names:
            folder, ids = caches[name]
            rid = rnd.choice(ids)
            t0 = time.perf_counter()
            LogitCache(folder).get(rid)
            times[name].append((time.perf_counter() - t0) * 1000)
    return {name: statistics.median(t) for name, t in times.items()}


def _x1_parse_all_s(path: Path) -> float:
    """1.x's trainer: every line of the logits file parsed into memory before the first step."""
    t0 = time.perf_counter()
    with open(path) as f:
        loaded = [json.loads(x) for x in f]
    took = time.perf_counter() - t0
    del loaded
    return took


def _simulate_index(src: Path, dst: Path, rows: int) -> None:
    """A cache whose index holds `rows` rows (ids sim-0..) pointing, in turn, at the real rows of `src`."""
    from core.train import logit_cache as lc

    shutil.copytree(src, dst)
    real = list(lc._Index(src / lc.INDEX_FILE).entries())
    lc.write_index(dst, ((f"sim-{i}", *real[i % len(real)][1:]) for i in range(rows)),
                   covered=1 + max(e[1] for e in real), positions=rows * ROW_LEN)


def bench_cache(quick: bool) -> None:
    import numpy as np

    from core.train.logit_cache import LogitCache

    tmp = Path(tempfile.mkdtemp(prefix="kd-bench-"))
    try:
        rows_small, rows_big = 500, (1000 if quick else 5000)  # 100k and 1M tokens (200k with --quick)
        print(f"== logit cache, k={K}, V={V:,}, rows of {ROW_LEN} answer tokens ==", flush=True)
        small = _write_caches(tmp / "small", rows_small, False, 0, tmp / "small.json",
                              (("v2", 2, "none"), ("v2z", 2, "zstd"), ("v1", 1, "none")))
        tokens = rows_small * ROW_LEN
        size = {name: LogitCache(path).nbytes() / tokens for name, path in small.items()}
        json_size = (tmp / "small.json").stat().st_size / tokens
        line("cache bytes/token, peaked teacher", size["v2"], json_size, "B", "1.x JSON")
        line("cache bytes/token, peaked teacher", size["v2"], size["v1"], "B", "our version 1")
        line("cache bytes/token, peaked teacher", size["v2z"], size["v2"], "B", "no zstd", "ours with zstd")
        flat = _write_caches(tmp / "flat", rows_small, True, 1, tmp / "flat.json")
        escapes = []
        cache = LogitCache(flat["v2"])
        for rid in cache.ids()[:50]:
            row = cache.get(rid)
            escapes.append(float(np.mean(~(row.topk_ids == row.token_ids[:, None]).any(1))))
        line("cache bytes/token, flat teacher", LogitCache(flat["v2"]).nbytes() / tokens,
             (tmp / "flat.json").stat().st_size / tokens, "B", "1.x JSON",
             f"{np.mean(escapes):.0%} of the forced tokens outside the top-{K}")

        big = _write_caches(tmp / "big", rows_big, False, 2, tmp / "big.json")["v2"]
        big_tokens = rows_big * ROW_LEN
        cache = LogitCache(big)
        t0 = time.perf_counter()
        for rid in cache.ids():
            cache.get(rid)
        ours_all = time.perf_counter() - t0
        x1_big = _x1_parse_all_s(tmp / "big.json")
        line(f"cache load all rows, {big_tokens:,} tokens", ours_all, x1_big, "s", "1.x parse all")
        x1_small = _x1_parse_all_s(tmp / "small.json")
        sim_rows = 100_000_000 // ROW_LEN
        _simulate_index(big, tmp / "sim", sim_rows)
        ms = _open_fetch_ms({"small": (small["v2"], LogitCache(small["v2"]).ids()),
                             "big": (big, LogitCache(big).ids()),
                             "sim": (tmp / "sim", [f"sim-{i}" for i in range(0, sim_rows, 997)])})
        ms_small, ms_big, ms_sim = ms["small"], ms["big"], ms["sim"]
        line(f"cache open + fetch one row, {tokens:,} tokens", ms_small, x1_small * 1000, "ms", "1.x parse all")
        line(f"cache open + fetch one row, {big_tokens:,} tokens", ms_big, x1_big * 1000, "ms", "1.x parse all")
        index_mib = (tmp / "sim" / "index.bin").stat().st_size / MIB
        line("cache open + fetch one row, 100,000,000 tokens (simulated index)", ms_sim, ms_small, "ms",
             f"ours at {tokens:,} tokens", f"index of {sim_rows:,} rows, {index_mib:.0f} MiB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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
    if "--compare" in sys.argv[1:]:
        from kd_compare import main as compare  # bench/ is this script's folder, first on sys.path

        compare([x for x in sys.argv[1:] if x != "--compare"])
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--child")
    ap.add_argument("--length", type=int, default=T)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--long-repeats", type=int, default=1, help="repeats at T = 8192 (0: skip)")
    ap.add_argument("--long-dtype", default="bfloat16", help="logits dtype at T = 8192 (float32 needs ~10 GiB)")
    ap.add_argument("--quick", action="store_true", help="1 repeat, no T = 8192, a smaller cache, fewer SFT steps")
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
        print(json.dumps(loss_variant(a.child, a.length, a.dtype, a.repeats)))
        return
    t_start = time.time()
    bench_losses(1 if a.quick else a.repeats, 0 if a.quick else a.long_repeats, a.long_dtype)
    bench_cache(a.quick)

    steps = 20 if a.quick else 40
    import torch

    torch.set_num_threads(1)  # CPU time of one thread: comparable even when the machine is shared
    sft_res = bench_sft(steps)
    line(f"SFT job, tiny student, {steps} steps, CPU time", sft_res["ours_s"], sft_res["bare_trl_s"], "s",
         "bare TRL SFTTrainer script")
    print(f"(bench/kd.py took {time.time() - t_start:.0f} s wall)")


if __name__ == "__main__":
    main()
