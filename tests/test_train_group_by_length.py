"""`group_by_length` (issue 14): training batches hold rows of similar length, so a step pads less."""

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


def test_group_by_length_pads_less_with_the_same_rows(tiny_models, workspace):
    from core.train import sft

    # answers of 1 to 40 words: random batches of 4 mix short and long rows
    rows = [{"id": f"r{i}", "instruction": f"Say {n} words.", "output": " ".join(["word"] * n)}
            for i, n in enumerate([1 + (i * 7) % 40 for i in range(48)])]
    (workspace.datasets / "mixed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    def trainer(**kw):
        run_dir = workspace.runs / f"g{len(kw)}"
        run_dir.mkdir(parents=True)
        cfg = SftJob(student=str(tiny_models.student), dataset="mixed", max_steps=12, per_device_train_batch_size=4,
                     gradient_accumulation_steps=1, save_steps=1000, **kw)
        return sft.build(cfg, JobContext("g", run_dir, workspace, devices=["cpu"]))[0]

    grouped, plain = trainer(group_by_length=True), trainer()
    assert grouped.args.train_sampling_strategy == "group_by_length"
    g_pad, g_real = _padding(grouped, 12)
    p_pad, p_real = _padding(plain, 12)
    assert g_real == p_real  # one epoch of the same 48 rows either way
    assert g_pad < p_pad / 2  # shuffled groups of 12 rows here (transformers: min(rows // (4 * batch), 50) batches)
