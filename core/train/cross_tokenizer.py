"""Cross-tokenizer KD: a teacher whose tokenizer is not the student's, through TRL's experimental GOLD trainer and its
Universal Logit Distillation (ULD) loss (`trl.experimental.gold`, TRL 1.16).

`train_kd` comes here by itself when the tokenizer check (`core.models.registry.check_logit_kd`) says the vocabularies
differ (method `uld`). A logit cache cannot serve then (its ids are the teacher's), so the teacher is loaded in the
job, frozen, and scores each batch's answers as its own tokenizer splits them. Same-family vocabularies that differ
only by the padding of the output head (151,936 vs 152,064) never come here: they share the tokenizer, and the
cached top-k KD uses the first n logits (truncation).

What GOLD does, with our knobs:
- Data: each row's last assistant answer is the completion, the conversation before it the prompt, both rendered
  with the student's chat template; the teacher tokenizes the same prompt and completion texts with its own tokenizer
  (GOLD renders no teacher template: the teacher reads the student's format). Off-policy only (`lmbda` = 0): the
  dataset's answers, as the cached path.
- Alignment: with byte-level BPE tokenizers on both sides (Qwen, Llama 3, SmolLM, ...), answer tokens are grouped
  where both tokenizers cut the text at the same byte ("extended ULD"): a group of several tokens gets the
  distribution at its first position times the probabilities of the actual later tokens. Otherwise (SentencePiece)
  positions are paired in order and the longer answer is cut (the ULD paper's truncation).
- Loss: L = (1 − λ)·CE + λ·ULD with λ = `kd_ratio`; ULD = mean over answers of (1/n)·Σ_t Σ_r |p↓_t,r − q↓_t,r|, the L1
  distance between the teacher's and the student's probabilities each sorted in decreasing order (zero-padded to the
  larger vocabulary), both at temperature τ = `temperature` (no τ² factor). `uld_hybrid`: tokens whose strings both
  vocabularies hold are compared directly by generalized JSD (β = `beta`), only the rest by sorted L1, each part
  weighted by its share of the teacher's vocabulary. `divergence`, `alpha` and `support` do not apply (logged).
- Logged: `ce` and `kd` (the ULD distance) per step, as the cached KD logs CE and its divergence.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.config.train import KdJob
from core.jobs.context import JobContext
from core.train import common


def byte_level(tokenizer) -> bool:
    """Whether a tokenizer is byte-level BPE (extended ULD aligns those by byte offsets)."""
    from trl.experimental.utils import is_byte_level_tokenizer

    backend = getattr(tokenizer, "backend_tokenizer", None)
    return backend is not None and is_byte_level_tokenizer(backend)


def make_trainer_class():
    """Built lazily (TRL's experimental GOLD is imported only in the job process)."""
    import torch
    from trl.experimental.gold import GOLDTrainer

    class UldKdTrainer(GOLDTrainer):
        """GOLD with the CE and ULD parts logged apart (`ce`, `kd`)."""

        kd_method = "uld"

        def __init__(self, *args: Any, **kw: Any):
            super().__init__(*args, **kw)
            fn, parts = self.uld_loss_fn, {}
            inner = fn._compute_distillation_loss

            def recorded(*a: Any, **k: Any):
                out = inner(*a, **k)
                parts["kd"] = out.detach()
                return out

            fn._compute_distillation_loss = recorded
            self._uld_parts = parts

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            self._uld_parts.clear()
            out = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            loss = out[0] if return_outputs else out
            kd = self._uld_parts.get("kd")
            ce_w, kd_w = self.args.uld_crossentropy_weight, self.args.uld_distillation_weight
            if kd is not None:
                mode = "train" if model.training else "eval"
                with torch.no_grad():
                    kd_part = kd.reshape(()).float()
                    if kd_w > 0:
                        self._metrics[mode]["kd"].append((kd_part / kd_w).item())
                    if ce_w > 0:
                        self._metrics[mode]["ce"].append(((loss.detach().float() - kd_part) / ce_w).item())
            return out

    return UldKdTrainer


def _dataset(rows: list[dict]):
    from datasets import Dataset

    return Dataset.from_list([{"messages": r["messages"]} for r in rows])


def build(config: KdJob, ctx: JobContext, student_path: Path, teacher_path: Path):
    """(trainer, tokenizer, callback, student path) for cross-tokenizer KD between these two local models."""
    from trl.experimental.gold import GOLDConfig

    from core.train.callbacks import JobProgressCallback
    from core.train.onpolicy import _rows

    template = common.read_template(ctx, config.template)
    tokenizer = common.load_tokenizer(student_path, template)
    teacher_tokenizer = common.load_tokenizer(teacher_path)
    train, held, notes = _rows(ctx, config)
    for note in notes:
        ctx.event(note)
    if not train:
        raise common.TrainSetupError(f"dataset '{config.dataset}': no training rows left after the eval split")
    extended = byte_level(tokenizer) and byte_level(teacher_tokenizer)
    ctx.event(
        f"cross-tokenizer KD (ULD{', hybrid' if config.uld_hybrid else ''}) on {len(train)} rows ({len(held)} held "
        f"out): {'answers aligned by byte offsets' if extended else 'positions paired in order (not byte-level BPE)'}"
        f"; {config.divergence} / support / alpha do not apply"
    )
    if config.packing:
        ctx.event("packing is off for cross-tokenizer KD: answers are aligned one by one")
    cpu = common.use_cpu(ctx)
    student = common.load_model(student_path, config, cpu)
    teacher = common.load_model(teacher_path, config, cpu, trainable=False)
    args = GOLDConfig(
        **common.trainer_args(config, ctx, bool(held), max_length=config.max_length, packing=False),
        lmbda=0.0, beta=config.beta, max_completion_length=max(1, config.max_length // 2),
        teacher_tokenizer_name_or_path=str(teacher_path), use_uld_loss=True, use_extended_uld=extended,
        uld_use_hybrid_loss=config.uld_hybrid, uld_crossentropy_weight=1.0 - config.kd_ratio,
        uld_distillation_weight=config.kd_ratio, uld_student_temperature=config.temperature,
        uld_teacher_temperature=config.temperature,
    )
    callback = JobProgressCallback(ctx)
    trainer = make_trainer_class()(
        model=student, teacher_model=teacher, args=args, train_dataset=_dataset(train),
        eval_dataset=_dataset(held) if held else None, processing_class=tokenizer,
        peft_config=common.lora_config(config), callbacks=[callback],
    )
    return trainer, tokenizer, callback, student_path
