"""Benchmark of the preference / RL training jobs (issue 13): our DPO and GRPO jobs vs the bare TRL scripts a user
would write, on the same tiny models, data and steps — the CPU-time ratio is the overhead of the job machinery (data
loading through core.data, metrics to the run folder, stop checks, publishing with provenance). Goal: ≤ 1.05.

Times are process CPU seconds (time.process_time) on one thread: the machines this runs on are shared, and wall time
there measures the neighbours as much as the code; even CPU time varies by ~10% between identical runs here, so each
side runs twice, interleaved, after a warm-up run, and the faster run of each counts.

    .venv/bin/python bench/train2.py [--quick]

Measured on this project's shared 2-core machine (tiny models, where a step costs 0.1 s): DPO 1.04–1.08x, CogPO
1.04–1.15x, GRPO ~1.17x. A profile of our DPO run puts everything of ours (metrics lines, stop checks, pair loading,
provenance) at ~50 ms of 3.4 s; the rest of the gap is run-to-run spread (GRPO's sampled answer lengths differ between
two runs, and with them the generation time). On a real model the fixed costs vanish against the steps.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

BATCH, LR, MAX_LEN = 8, 1e-4, 128
GROUP, COMPLETION = 4, 16


def _setup() -> tuple:
    from core.models.tiny import build_tiny_pair
    from core.workspace import Workspace

    tmp = Path(tempfile.mkdtemp(prefix="train2-bench-"))
    pair = build_tiny_pair(tmp / "tiny")
    ws = Workspace.open(tmp / "ws")
    rng = random.Random(0)
    rows = []
    for i in range(128):
        a, b = rng.randint(1, 50), rng.randint(1, 50)
        rows.append({"id": f"r{i}", "instruction": f"Add {a} and {b}.", "chosen": f"{a} plus {b} is {a + b}.",
                     "rejected": rng.choice(("I do not know.", "No idea.", "Ask someone else."))})
    (ws.datasets / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp, pair, ws, rows


def _run(ws, job: str, entry, config) -> float:
    from core.jobs.context import JobContext

    run_dir = ws.runs / job
    run_dir.mkdir(parents=True)
    t0 = time.process_time()
    entry(config, JobContext(job_id=job, run_dir=run_dir, workspace=ws, devices=["cpu"]))
    return time.process_time() - t0


def bench_dpo(tmp: Path, pair, ws, rows: list[dict], steps: int) -> dict:
    from core.config.train import DpoJob
    from core.train import dpo

    def bare_trl(n_steps: int, tag: str) -> float:
        """load, DPOTrainer on conversational pairs (a frozen reference copy), train, save."""
        t0 = time.process_time()
        from datasets import Dataset
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from trl import DPOConfig, DPOTrainer

        tok = AutoTokenizer.from_pretrained(str(pair.student))
        model = AutoModelForCausalLM.from_pretrained(str(pair.student))
        ds = Dataset.from_list([{"prompt": [{"role": "user", "content": r["instruction"]}],
                                 "chosen": [{"role": "assistant", "content": r["chosen"]}],
                                 "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in rows])
        args = DPOConfig(output_dir=str(tmp / tag), max_steps=n_steps, per_device_train_batch_size=BATCH,
                         learning_rate=LR, save_strategy="no", logging_steps=1, max_length=MAX_LEN, beta=0.1,
                         report_to="none", use_cpu=True, disable_tqdm=True, bf16=False, warmup_steps=0.1,
                         lr_scheduler_type="cosine", weight_decay=0.05, activation_checkpointing=False)
        trainer = DPOTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
        trainer.train()
        trainer.save_model(str(tmp / f"{tag}-model"))
        return time.process_time() - t0

    knobs = {"max_steps": steps, "per_device_train_batch_size": BATCH, "gradient_accumulation_steps": 1,
             "learning_rate": LR, "save_steps": 10_000, "logging_steps": 1, "max_length": MAX_LEN}
    def ours(tag: str, **extra) -> float:
        return _run(ws, tag, dpo.run, DpoJob(student=str(pair.student), dataset="pairs", output=tag, **knobs, **extra))

    bare_trl(2, "dpo-warmup")
    times: dict[str, list[float]] = {"bare": [], "ours": [], "cogpo": []}
    for i in range(2):
        times["bare"].append(bare_trl(steps, f"dpo-bare{i}"))
        times["ours"].append(ours(f"dpo{i}"))
        times["cogpo"].append(ours(f"cogpo{i}", pair_type_beta={"x": 0.2}))  # the per-pair β code path
    return {"steps": steps, "ours_s": min(times["ours"]), "cogpo_s": min(times["cogpo"]),
            "bare_trl_s": min(times["bare"])}


def _length_reward(completion_ids, **kw) -> list[float]:
    """The same rule as core.train.rewards.LengthReward(0, 3), for the bare script."""
    return [1.0 if len(c) <= 3 else 3 / len(c) for c in completion_ids]


def bench_grpo(tmp: Path, pair, ws, rows: list[dict], steps: int) -> dict:
    from core.config.train import GrpoJob
    from core.train import grpo

    def bare_trl(n_steps: int, tag: str) -> float:
        t0 = time.process_time()
        from datasets import Dataset
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from trl import GRPOConfig, GRPOTrainer

        tok = AutoTokenizer.from_pretrained(str(pair.student))
        model = AutoModelForCausalLM.from_pretrained(str(pair.student))
        ds = Dataset.from_list([{"prompt": [{"role": "user", "content": r["instruction"]}]} for r in rows])
        args = GRPOConfig(output_dir=str(tmp / tag), max_steps=n_steps, per_device_train_batch_size=BATCH,
                          learning_rate=LR, save_strategy="no", logging_steps=1, num_generations=GROUP,
                          max_completion_length=COMPLETION, report_to="none", use_cpu=True, disable_tqdm=True,
                          bf16=False, warmup_steps=0.1, lr_scheduler_type="cosine", weight_decay=0.05,
                          activation_checkpointing=False, log_completions=False)
        trainer = GRPOTrainer(model=model, reward_funcs=[_length_reward], args=args, train_dataset=ds,
                              processing_class=tok)
        trainer.train()
        trainer.save_model(str(tmp / f"{tag}-model"))
        return time.process_time() - t0

    def ours(tag: str) -> float:
        return _run(ws, tag, grpo.run, GrpoJob(
            student=str(pair.student), dataset="pairs", output=tag, reward_funcs=["length"], min_length=0,
            max_length_tokens=3, num_generations=GROUP, max_completion_length=COMPLETION, max_steps=steps,
            per_device_train_batch_size=BATCH, gradient_accumulation_steps=1, learning_rate=LR, save_steps=10_000,
            logging_steps=1))

    bare_trl(2, "grpo-warmup")
    bare, mine = [], []
    for i in range(2):
        bare.append(bare_trl(steps, f"grpo-bare{i}"))
        mine.append(ours(f"grpo{i}"))
    return {"steps": steps, "ours_s": min(mine), "bare_trl_s": min(bare)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer steps (a smoke run, noisier ratios)")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    tmp, pair, ws, rows = _setup()
    dpo_steps, grpo_steps = (6, 4) if a.quick else (30, 16)
    d = bench_dpo(tmp, pair, ws, rows, dpo_steps)
    print(f"== DPO job vs bare TRL DPOTrainer, tiny student, {d['steps']} steps (CPU s, 1 thread) ==")
    print(f"  ours {d['ours_s']:.1f} s   ours with per-pair β {d['cogpo_s']:.1f} s   bare TRL {d['bare_trl_s']:.1f} s"
          f"   overhead ratio {d['ours_s'] / d['bare_trl_s']:.2f}x (CogPO {d['cogpo_s'] / d['bare_trl_s']:.2f}x)")
    g = bench_grpo(tmp, pair, ws, rows, grpo_steps)
    print(f"== GRPO job vs bare TRL GRPOTrainer, length reward, {g['steps']} steps, group {GROUP} (CPU s, 1 thread) ==")
    print(f"  ours {g['ours_s']:.1f} s   bare TRL {g['bare_trl_s']:.1f} s   "
          f"overhead ratio {g['ours_s'] / g['bare_trl_s']:.2f}x")


if __name__ == "__main__":
    main()
