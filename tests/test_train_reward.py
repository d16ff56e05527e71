"""Reward model job on tiny models: after a few steps it ranks held-out chosen answers above rejected ones more often
than chance, reports that accuracy in the run folder, and publishes a one-output scoring model (full and LoRA)."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from core.config.train import RewardJob  # noqa: E402
from core.workspace import Workspace  # noqa: E402
from tests.test_train import make_ctx, metrics  # noqa: E402
from tests.test_train_dpo import SMALL, _pairs  # noqa: E402

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def ws(tmp_path_factory, tiny_models):
    ws = Workspace.open(tmp_path_factory.mktemp("reward") / "ws")
    rows = _pairs(64, 1)
    (ws.datasets / "prefs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return ws


def test_reward_model_ranks_held_out_chosen_above_rejected(ws, tiny_models):
    from transformers import AutoModelForSequenceClassification

    from core.train import reward

    ctx = make_ctx(ws, "rm")
    reward.run(RewardJob(student=str(tiny_models.student), dataset="prefs", eval_split=0.25, output="rm",
                         max_steps=12, save_steps=100, learning_rate=1e-3, **SMALL), ctx)
    rep = json.loads((ctx.output_dir / reward.REPORT).read_text())
    assert rep["split"] == "heldout" and rep["pairs"] >= 8
    assert rep["accuracy"] > 0.75, rep  # chance is 0.5
    assert any(r.get("heldout_accuracy") == rep["accuracy"] for r in metrics(ctx))
    model = AutoModelForSequenceClassification.from_pretrained(str(ws.models / "rm"))
    assert model.config.num_labels == 1 and model.config.pad_token_id is not None
    assert json.loads((ws.models / "rm" / "eds_model.json").read_text())["method"] == "reward"


def test_reward_model_with_lora_merges_its_score_head(ws, tiny_models):
    from transformers import AutoModelForSequenceClassification

    from core.train import reward

    ctx = make_ctx(ws, "rm-lora")
    reward.run(RewardJob(student=str(tiny_models.student), dataset="prefs", output="rm-lora", max_steps=4,
                         save_steps=100, learning_rate=1e-3, lora={"r": 4, "alpha": 8, "dropout": 0.0}, **SMALL), ctx)
    rep = json.loads((ctx.output_dir / reward.REPORT).read_text())
    assert rep["split"] == "train"  # nothing held out: said so, not passed off as held-out accuracy
    model = AutoModelForSequenceClassification.from_pretrained(str(ws.models / "rm-lora"))
    ids = torch.tensor([[1, 422, 261, 201, 882]])
    with torch.no_grad():
        assert model(ids).logits.shape == (1, 1)


def test_pairs_longer_than_max_length_are_dropped_and_said(ws, tiny_models):
    """TRL's RewardTrainer filters pairs whose chosen or rejected conversation exceeds max_length, silently; the job
    log says how many."""
    from core.train import reward

    ctx = make_ctx(ws, "rm-short")
    trainer, *_ = reward.build(RewardJob(student=str(tiny_models.student), dataset="prefs", max_length=30,
                                         max_steps=1, **SMALL), ctx)
    events = [r["event"] for r in metrics(ctx) if "event" in r]
    dropped = next(e for e in events if "dropped" in e)
    kept = len(trainer.train_dataset)
    assert kept < 64 and dropped.startswith(f"{64 - kept} training pair(s) dropped") and "max_length=30" in dropped
    assert f"reward model on {kept} pairs" in events[-1]
