"""Cheaper training steps (issue 14): `group_by_length` batches rows of similar length, so a step pads less; the SFT
trainer's loss is one chunked cross-entropy pass (core.train.kd_losses), equal to TRL's own."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("trl")

from core.config.train import SftJob  # noqa: E402
from core.jobs.context import JobContext  # noqa: E402


def _padding(trainer, batches: int) -> tuple[int, int]:
    """(padded positions, real tokens) over the first `batches` training batches."""
    padded = real = 0
    for i, batch in enumerate(trainer.get_train_dataloader()):
        if i == batches:
            break
        mask = batch["attention_mask"]
        padded += int(mask.numel() - mask.sum())
        real += int(mask.sum())
    return padded, real


@pytest.fixture
def mixed(workspace):
    # answers of 1 to 40 words: random batches of 4 mix short and long rows
    rows = [{"id": f"r{i}", "instruction": f"Say {n} words.", "output": " ".join(["word"] * n)}
            for i, n in enumerate([1 + (i * 7) % 40 for i in range(48)])]
    (workspace.datasets / "mixed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return workspace


def _trainer(tiny_models, workspace, **kw):
    from core.train import sft

    run_dir = workspace.runs / f"g{len(list(workspace.runs.glob('*')))}"
    run_dir.mkdir(parents=True)
    cfg = SftJob(student=str(tiny_models.student), dataset="mixed", max_steps=12, per_device_train_batch_size=4,
                 gradient_accumulation_steps=1, save_steps=1000, **kw)
    return sft.build(cfg, JobContext("g", run_dir, workspace, devices=["cpu"]))[0]


def test_group_by_length_pads_less_with_the_same_rows(tiny_models, mixed):
    def trainer(**kw):
        return _trainer(tiny_models, mixed, **kw)

    grouped, plain = trainer(group_by_length=True), trainer()
    assert grouped.args.train_sampling_strategy == "group_by_length"
    g_pad, g_real = _padding(grouped, 12)
    p_pad, p_real = _padding(plain, 12)
    assert g_real == p_real  # one epoch of the same 48 rows either way
    assert g_pad < p_pad / 2  # shuffled groups of 12 rows here (transformers: min(rows // (4 * batch), 50) batches)


def test_sft_loss_and_gradient_are_trls(tiny_models, mixed):
    """The one-pass cross-entropy gives TRL's SFT loss and gradient on the same batch (fp32: 1e-5)."""
    import torch
    from trl import SFTTrainer

    trainer = _trainer(tiny_models, mixed)
    model = trainer.model
    batch = next(iter(trainer.get_train_dataloader()))
    n = int((batch["labels"] != -100).sum())
    results = []
    for loss_of in (type(trainer).compute_loss, SFTTrainer.compute_loss):
        model.zero_grad()
        loss = loss_of(trainer, model, dict(batch), num_items_in_batch=torch.tensor(n))
        loss.backward()
        results.append((float(loss.detach()), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    (ours, g_ours), (trl, g_trl) = results
    assert ours == pytest.approx(trl, rel=1e-5) and len(g_ours) == len(g_trl) > 0
    for a, b in zip(g_ours, g_trl, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
