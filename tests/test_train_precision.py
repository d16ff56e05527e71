"""Which mixed precision a training job asks Trainer for: the preset's bf16 must not stop a run on a GPU without
bf16 (the guided flow copies the CPU demo's `precision: bf16` to the user's models)."""

from __future__ import annotations

import logging

import pytest


def test_bf16_falls_back_to_fp16_on_a_gpu_without_it_and_says_so(monkeypatch, caplog):
    import torch

    from core.train.common import precision_flags

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    with caplog.at_level(logging.WARNING, logger="job"):
        assert precision_flags("bf16", cpu=False) == {"bf16": False, "fp16": True}
    assert any("no bf16 support" in r.getMessage() for r in caplog.records)
    assert precision_flags("auto", cpu=False) == {"bf16": False, "fp16": True}

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    caplog.clear()
    assert precision_flags("bf16", cpu=False) == {"bf16": True, "fp16": False}
    assert not caplog.records


def test_cpu_keeps_bf16_autocast_and_refuses_fp16():
    from core.train.common import TrainSetupError, precision_flags

    assert precision_flags("bf16", cpu=True) == {"bf16": True, "fp16": False}
    assert precision_flags("auto", cpu=True) == {"bf16": False, "fp16": False}
    with pytest.raises(TrainSetupError, match="fp16 needs a GPU"):
        precision_flags("fp16", cpu=True)
