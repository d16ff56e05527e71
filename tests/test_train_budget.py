"""TimeBudgetCallback: training stops at the first step that finds the budget spent, and with `anneal` its learning
rate warms up and decays to zero over the budget (not over max_steps). A fake clock that advances one "second" per
optimizer step makes it exact; a tiny model built in memory makes it fast."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainerCallback, TrainingArguments  # noqa: E402

from core.train.callbacks import TimeBudgetCallback  # noqa: E402


class Ticker(TrainerCallback):
    """The fake clock: one second per optimizer step, passed once the optimizer has stepped (before the scheduler
    and the budget callback look, as real time has by then), and the learning rate each step used."""

    def __init__(self):
        self.now = 0.0
        self.lrs: list[float] = []

    def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kw):
        self.lrs.append(optimizer.param_groups[0]["lr"])

    def on_optimizer_step(self, args, state, control, **kw):
        self.now += 1.0


def _train(tmp_path, budget: TimeBudgetCallback, ticker: Ticker, max_steps: int = 1000, lr: float = 1e-3) -> Trainer:
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=16))
    rows = [{"input_ids": [i % 30 + 1, 2, 3, 4], "labels": [i % 30 + 1, 2, 3, 4]} for i in range(64)]
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=max_steps, per_device_train_batch_size=2,
                             learning_rate=lr, lr_scheduler_type="cosine", warmup_steps=0.1, save_strategy="no",
                             report_to="none", use_cpu=True, disable_tqdm=True, logging_steps=1)
    trainer = Trainer(model=model, args=args, train_dataset=rows, callbacks=[ticker, budget])
    trainer.train()
    return trainer


def test_training_stops_at_the_budget_and_anneals_over_it(tmp_path):
    ticker = Ticker()
    budget = TimeBudgetCallback(10.0, clock=lambda: ticker.now, warmup=0.2)
    trainer = _train(tmp_path, budget, ticker)
    # step k ends at k s: after step 9 a 10th would end at 10 s, within the budget: taken; after step 10 an 11th would
    # end a whole step past it: stop. max_steps (1000) never mattered
    assert trainer.state.global_step == 10 and budget.steps == 10
    assert budget.reached and budget.elapsed == 10.0
    # the learning rate each step used: warm-up over the first 2 s (20%), peak, cosine down towards 0 by 10 s
    lrs = ticker.lrs
    assert len(lrs) == 10
    assert lrs[0] == 0.0 and lrs[1] == pytest.approx(0.5e-3) and lrs[2] == pytest.approx(1e-3)
    assert all(a > b for a, b in zip(lrs[2:], lrs[3:], strict=False))  # strictly decaying after the peak
    assert lrs[-1] == pytest.approx(1e-3 * 0.5 * (1 + torch.cos(torch.tensor(7 / 8 * torch.pi)).item()))
    logged = [h["learning_rate"] for h in trainer.state.log_history if "learning_rate" in h]
    assert logged == pytest.approx(lrs)  # what the trainer reports is what was used


@pytest.mark.parametrize("seconds, steps", [(9.4, 9), (9.6, 10), (10.4, 10)])
def test_the_last_step_ends_within_half_a_step_of_the_budget(tmp_path, seconds, steps):
    ticker = Ticker()
    budget = TimeBudgetCallback(seconds, clock=lambda: ticker.now)
    trainer = _train(tmp_path, budget, ticker)
    assert trainer.state.global_step == steps and budget.reached
    assert abs(budget.elapsed - seconds) <= 0.5


def test_max_steps_still_caps_and_without_anneal_the_schedule_is_the_trainers(tmp_path):
    ticker = Ticker()
    budget = TimeBudgetCallback(100.0, clock=lambda: ticker.now, anneal=False)
    trainer = _train(tmp_path, budget, ticker, max_steps=6)
    assert trainer.state.global_step == 6 and not budget.reached and budget.elapsed == 6.0
    # the trainer's own schedule over max_steps: 1 warm-up step (10% of 6, rounded up), cosine over the other 5
    assert ticker.lrs == pytest.approx([0.0] + [1e-3 * 0.5 * (1 + math.cos(math.pi * k / 5)) for k in range(5)])


def test_a_zero_budget_trains_one_step_and_bad_settings_are_refused(tmp_path):
    ticker = Ticker()
    trainer = _train(tmp_path, TimeBudgetCallback(0.0), ticker)  # the wall clock: the first step ends past 0 s
    assert trainer.state.global_step == 1
    for bad in ({"seconds": -1}, {"seconds": 1, "warmup": 1.0}, {"seconds": 1, "clock": "gpu"}):
        with pytest.raises(ValueError):
            TimeBudgetCallback(**bad)
