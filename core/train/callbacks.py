"""The bridge between a TRL/transformers Trainer and the job protocol: metrics out, stop requests in.

Every trainer (SFT, KD, on-policy) gets this callback, so the Training tab plots the same names for each method:
loss, ce, kd, lr, grad_norm, tokens_per_s, eval_loss (plus whatever else the trainer logs). A stop request makes the
trainer save a checkpoint at the end of the current step and leave its loop; the entry then returns normally and the
job is recorded as stopped, resumable from that checkpoint.
"""

from __future__ import annotations

import math
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


class TimeBudgetCallback(TrainerCallback):
    """Train for a time budget instead of a step count: training leaves its loop at the end of the first optimizer
    step after which one more step (at the mean step time so far) would end more than half a step past `seconds`
    since training began. So a run ends within about half a step of its budget, over or under, rather than always
    up to a whole step over (model loading and data preparation before training do not count). `clock`: "wall"
    (monotonic wall time), "cpu" (this process's CPU time, all threads: what a shared machine's neighbours take does
    not count against the run) or a zero-argument function returning seconds.

    `anneal=True` also lays the learning-rate schedule over the budget rather than over `max_steps` (which is then
    only a cap): linear warm-up over the first `warmup` share of the budget, cosine to zero at its end. So methods
    of different step costs compared at one budget each end their schedule, whatever steps they got. It replaces
    the multipliers of the trainer's LambdaLR (every transformers schedule is one); another scheduler is left alone.

    Used by bench/kd_compare.py (SFT vs KD vs on-policy KD at equal time). `steps` and `elapsed` say what the run
    got; `reached` whether the budget (rather than max_steps or the data) ended it.
    """

    def __init__(self, seconds: float, clock: str | Any = "wall", anneal: bool = True, warmup: float = 0.05):
        if seconds < 0:
            raise ValueError(f"time budget must be >= 0 seconds, got {seconds}")
        if not 0 <= warmup < 1:
            raise ValueError(f"warmup must be a share of the budget in [0, 1), got {warmup}")
        if clock == "wall":
            clock = time.monotonic
        elif clock == "cpu":
            clock = time.process_time
        elif not callable(clock):
            raise ValueError(f"clock must be 'wall', 'cpu' or a function, got {clock!r}")
        self.seconds, self.clock, self.anneal, self.warmup = float(seconds), clock, anneal, warmup
        self._start: float | None = None
        self._first_step = 0
        self.elapsed = 0.0
        self.steps = 0
        self.reached = False

    def spent(self) -> float:
        return 0.0 if self._start is None else self.clock() - self._start

    def lr_factor(self) -> float:
        """The share of the peak learning rate at this moment of the budget."""
        if self.seconds <= 0:
            return 0.0
        f = min(self.spent() / self.seconds, 1.0)
        if f < self.warmup:
            return f / self.warmup
        return 0.5 * (1.0 + math.cos(math.pi * (f - self.warmup) / (1.0 - self.warmup)))

    def on_train_begin(self, args, state: TrainerState, control: TrainerControl, **kw: Any):
        self._start = self.clock()
        self._first_step = state.global_step  # > 0 when resumed: the budget is this run's
        scheduler = kw.get("lr_scheduler")
        scheduler = getattr(scheduler, "scheduler", scheduler)  # accelerate's wrapper, where there is one
        if self.anneal and scheduler is not None and hasattr(scheduler, "lr_lambdas"):
            # a plain function (not a bound method): LambdaLR's state_dict leaves functions out of checkpoints
            scheduler.lr_lambdas = [lambda _step: self.lr_factor() for _ in scheduler.lr_lambdas]
            optimizer = kw.get("optimizer")
            if optimizer is not None:  # the first step's rate, set when the scheduler was built
                for group, base in zip(optimizer.param_groups, scheduler.base_lrs, strict=False):
                    group["lr"] = base * self.lr_factor()
                scheduler._last_lr = [g["lr"] for g in optimizer.param_groups]

    def on_step_end(self, args, state: TrainerState, control: TrainerControl, **kw: Any):
        self.steps = state.global_step
        self.elapsed = self.spent()
        mean_step = self.elapsed / max(state.global_step - self._first_step, 1)
        if self.elapsed + mean_step / 2 >= self.seconds:
            self.reached = True
            control.should_training_stop = True
        return control
