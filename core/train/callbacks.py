"""The bridge between a TRL/transformers Trainer and the job protocol: metrics out, stop requests in.

Every trainer (SFT, KD, on-policy) gets this callback, so the Training tab plots the same names for each method:
loss, ce, kd, lr, grad_norm, tokens_per_s, eval_loss (plus whatever else the trainer logs). A stop request makes the
trainer save a checkpoint at the end of the current step and leave its loop; the entry then returns normally and the
job is recorded as stopped, resumable from that checkpoint.
"""

from __future__ import annotations

import time
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from core.jobs.context import JobContext

# Trainer log keys -> the names the studio plots.
RENAMES = {"learning_rate": "lr", "train_loss": "final_train_loss"}
SKIP = {"total_flos", "train_runtime", "train_samples_per_second", "train_steps_per_second"}


class JobProgressCallback(TrainerCallback):
    def __init__(self, ctx: JobContext, stage: str = "train"):
        self.ctx = ctx
        self.stage = stage
        self.stopped = False  # True once training left its loop because of a stop request
        self._last_time: float | None = None
        self._last_tokens: float | None = None

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any):
        self._last_time = time.time()
        self._last_tokens = self._tokens(state, {})
        if state.is_world_process_zero:
            self.ctx.progress(state.global_step, state.max_steps, phase="train")

    @staticmethod
    def _tokens(state: TrainerState, logs: dict) -> float | None:
        if "num_tokens" in logs:  # TRL's running count of tokens trained on
            return float(logs["num_tokens"])
        seen = getattr(state, "num_input_tokens_seen", 0)
        return float(seen) if seen else None

    def on_log(self, args, state: TrainerState, control: TrainerControl, logs: dict | None = None, **kw: Any):
        if not state.is_world_process_zero or not logs:
            return
        scalars: dict[str, Any] = {}
        for key, value in logs.items():
            if key in SKIP or not isinstance(value, (int, float)):
                continue
            scalars[RENAMES.get(key, key)] = value
        now = time.time()
        tokens = self._tokens(state, logs)
        known = self._last_tokens is not None and self._last_time is not None
        if tokens is not None and known and now > self._last_time:
            if tokens > self._last_tokens:
                scalars["tokens_per_s"] = (tokens - self._last_tokens) / (now - self._last_time)
                self._last_tokens, self._last_time = tokens, now
        elif tokens is not None:
            self._last_tokens, self._last_time = tokens, now
        self.ctx.progress(state.global_step, state.max_steps, **scalars)

    def on_step_end(self, args, state: TrainerState, control: TrainerControl, **kw: Any):
        if _agreed(self.ctx.should_stop()):
            self.stopped = True
            control.should_save = True
            control.should_training_stop = True
        return control

    def on_save(self, args, state: TrainerState, control: TrainerControl, **kw: Any):
        if state.is_world_process_zero:
            self.ctx.event(f"checkpoint saved at step {state.global_step}", step=state.global_step, checkpoint=True)


def _agreed(flag: bool) -> bool:
    """Under data parallelism every rank must leave the loop at the same step: any rank's stop counts for all."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    import torch

    backend = dist.get_backend()
    device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)
