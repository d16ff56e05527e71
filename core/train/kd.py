"""`train_kd` job: white-box KD from a cached teacher top-k, L = (1 − λ)·CE + λ·τ²·KD (REFERENCE §4).

The trainer is TRL's SFTTrainer (data handling, LoRA, checkpoints, logging) with our loss. The teacher's top-k is
looked up per batch by each row's id and each token's position (the collator carries the ids), never by row order,
and a position is used only when the cached token equals the student's label there. KD is normalised once over the
KD tokens of the whole accumulated batch, CE over its label tokens, so gradient accumulation and multi-GPU give the
update one big batch would. CE and KD come from one chunked pass over the vocabulary (`ce_kd_loss`; the model is
given no labels, so it computes no loss of its own) and are logged separately.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.config.train import KdJob
from core.jobs.context import JobContext
from core.train import common
from core.train.dataset import IGNORE, Example, tokenizer_fingerprint
from core.train.kd_losses import KdLossSpec, ce_kd_loss
from core.train.logit_cache import LogitCache

TEACHER_KEYS = ("teacher_ids", "teacher_logprobs", "teacher_tail", "kd_mask")


@dataclass
class KdCollator:
    """Pads like TRL's collator, then places each row's cached teacher top-k at the logits that predict its tokens.

    The logits at position t predict the token at t + 1, so the teacher entry for response token p goes to t = p − 1;
    the KD mask is set only where the cached token is the label at p (alignment is checked, not assumed).
    """

    base: Any
    cache: LogitCache
    k: int

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        import numpy as np
        import torch

        row_ids = [str(e["id"]) for e in examples]
        batch = self.base([{key: e[key] for key in ("input_ids", "labels")} for e in examples])
        input_ids, labels = batch["input_ids"], batch["labels"]
        b, length = input_ids.shape
        t_ids = np.zeros((b, length, self.k), dtype=np.int64)
        t_lp = np.zeros((b, length, self.k), dtype=np.float32)
        t_tail = np.zeros((b, length), dtype=np.float32)
        kd_mask = np.zeros((b, length), dtype=bool)
        ids_np, labels_np = input_ids.numpy(), labels.numpy()
        for r, rid in enumerate(row_ids):
            if rid not in self.cache:
                continue
            row = self.cache.get(rid)
            pos = row.positions.astype(np.int64)
            ok = (pos >= 1) & (pos < length)
            ok[ok] &= (ids_np[r, pos[ok]] == row.token_ids[ok]) & (labels_np[r, pos[ok]] != IGNORE)
            p = pos[ok] - 1
            t_ids[r, p] = row.topk_ids[ok]
            t_lp[r, p] = row.topk_logprobs[ok]
            t_tail[r, p] = row.tail[ok]
            kd_mask[r, p] = True
        batch.update(
            teacher_ids=torch.from_numpy(t_ids), teacher_logprobs=torch.from_numpy(t_lp),
            teacher_tail=torch.from_numpy(t_tail), kd_mask=torch.from_numpy(kd_mask),
        )
        return batch


def coverage(cache: LogitCache, items: list[Example]) -> tuple[int, int, int]:
    """(answer tokens, of which the cache covers with the same token, rows missing from the cache)."""
    import numpy as np

    total = covered = missing = 0
    for ex in items:
        answer = sum(ex.assistant_mask[1:])
        total += answer
        if ex.id not in cache:
            missing += 1
            continue
        row = cache.get(ex.id)
        pos = row.positions.astype(np.int64)
        ok = pos < len(ex.input_ids)
        ids = np.asarray(ex.input_ids)[pos[ok]]
        mask = np.asarray(ex.assistant_mask)[pos[ok]]
        covered += int(((ids == row.token_ids[ok]) & (mask == 1)).sum())
    return total, covered, missing


def make_trainer_class():
    """KdTrainer is built lazily: importing this module must not import TRL (the studio reads configs from here)."""
    import torch
    import torch.nn.functional as F
    from trl import SFTTrainer

    class KdTrainer(SFTTrainer):
        def __init__(self, *args, kd_spec: KdLossSpec, kd_ratio: float, vocab_limit: int | None = None, **kw):
            super().__init__(*args, **kw)
            self.kd_spec, self.kd_ratio, self.vocab_limit = kd_spec, kd_ratio, vocab_limit
            self._kd_items: torch.Tensor | None = None

        def _get_num_items_in_batch(self, batch_samples: list, device):
            n = super()._get_num_items_in_batch(batch_samples, device)
            kd = sum(b["kd_mask"].sum() for b in batch_samples if "kd_mask" in b)
            if torch.is_tensor(kd):
                kd = kd.to(device)
                if self.args.average_tokens_across_devices and self.args.world_size > 1:
                    kd = self.accelerator.gather(kd).sum()
            self._kd_items = kd if n is not None else None
            return n

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            mode = "train" if model.training else "eval"
            teacher = {key: inputs.pop(key) for key in TEACHER_KEYS}
            labels = inputs.pop("labels")  # never given to the model: its own loss would be a second CE pass
            inputs.pop("id", None)
            outputs = model(**inputs, use_cache=False)
            # The logits at t predict the token at t + 1: shift the labels, never the (B, T, V) logits.
            shifted = F.pad(labels[:, 1:], (0, 1), value=IGNORE)
            n_local = (shifted != IGNORE).sum()
            lam, tau = self.kd_ratio, self.kd_spec.temperature
            # CE and KD from one chunked pass over the vocabulary, gradient written once (core.train.kd_losses).
            out = ce_kd_loss(
                outputs.logits, shifted, teacher["teacher_ids"], teacher["teacher_logprobs"], teacher["kd_mask"],
                self.kd_spec, teacher_tail=teacher["teacher_tail"], ce_weight=1.0 - lam, kd_weight=lam * tau * tau,
                ce_items=num_items_in_batch, kd_items=self._kd_items if num_items_in_batch is not None else None,
                vocab_limit=self.vocab_limit,
            )
            loss = out.loss
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * (self.accelerator.num_processes // self.get_tp_size())
            with torch.no_grad():  # per-micro-batch means, for the plots
                n_kd = teacher["kd_mask"].sum()
                self._metrics[mode]["ce"].append((out.ce_sum / n_local.clamp(min=1)).item())
                self._metrics[mode]["kd"].append((out.per_token.sum() / n_kd.clamp(min=1)).item())
                self._metrics[mode]["kd_coverage"].append((n_kd / n_local.clamp(min=1)).item())
            return (loss, outputs) if return_outputs else loss

    return KdTrainer


def _check_models(ctx: JobContext, config: KdJob, student_path, tokenizer, cache: LogitCache) -> None:
    from core.llm.base import BackendError
    from core.models.registry import check_logit_kd, resolve_model
    from core.train.logit_cache import CacheError

    try:
        teacher_path = resolve_model(config.teacher, ctx.workspace)
    except BackendError as e:  # a remote teacher: the cache's tokenizer hash below still guards the ids
        ctx.event(f"teacher '{config.teacher}' is not a local folder ({e}); checking the cache's tokenizer only")
    else:
        verdict = check_logit_kd(teacher_path, student_path)
        if not verdict.ok:
            raise common.TrainSetupError(
                f"teacher '{config.teacher}' and student '{config.student}': {verdict.message}"
            )
    if cache.meta.tokenizer_hash != tokenizer_fingerprint(tokenizer):
        raise CacheError(
            f"logits: the cache '{config.logits}' was captured with a tokenizer different from the student's "
            f"({cache.meta.tokenizer_hash} vs {tokenizer_fingerprint(tokenizer)}); capture again with a teacher "
            "that shares the student's tokenizer, or use SFT (black-box KD)"
        )
    cache.check_compatible(temperature=config.temperature)


def build(config: KdJob, ctx: JobContext):
    """(trainer, tokenizer, callback, student path)."""
    from trl import SFTConfig
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from core.train.callbacks import JobProgressCallback
    from core.train.capture import cache_folder

    student_path = common.resolve_model_path(ctx, config.student)
    template = common.read_template(ctx, config.template)
    tokenizer = common.load_tokenizer(student_path, template)
    cache = LogitCache(cache_folder(ctx, config.logits))
    _check_models(ctx, config, student_path, tokenizer, cache)
    data = common.prepare_examples(ctx, config, tokenizer, template)
    for note in data.notes:
        ctx.event(note)
    total, covered, missing = coverage(cache, data.train)
    if covered == 0:
        raise common.TrainSetupError(
            f"logits: the cache '{config.logits}' holds none of the answer tokens of '{config.dataset}' "
            f"({missing} of {len(data.train)} rows missing); capture the teacher on this dataset with the same "
            "template and max_length"
        )
    share = covered / max(total, 1)
    ctx.event(f"teacher logits cover {share:.1%} of answer tokens ({missing} row(s) not in the cache)",
              kd_coverage=share)
    if config.packing:
        ctx.event("packing is off for KD: the teacher's logits are looked up per row")
    cpu = common.use_cpu(ctx)
    model = common.load_model(student_path, config, cpu)
    args = SFTConfig(**common.trainer_args(
        config, ctx, bool(data.eval), max_length=config.max_length, packing=False, remove_unused_columns=False,
    ))
    collator = KdCollator(DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id), cache, cache.meta.k)
    spec = KdLossSpec(divergence=config.divergence, beta=config.beta, alpha=config.alpha,
                      temperature=config.temperature, support=config.support)
    callback = JobProgressCallback(ctx)
    trainer = make_trainer_class()(
        model=model,
        args=args,
        data_collator=collator,
        train_dataset=common.to_hf_dataset(data.train),
        eval_dataset=common.to_hf_dataset(data.eval) if data.eval else None,
        processing_class=tokenizer,
        peft_config=common.lora_config(config),
        callbacks=[callback],
        kd_spec=spec,
        kd_ratio=config.kd_ratio,
        vocab_limit=min(len(tokenizer), cache.meta.vocab_size),
    )
    return trainer, tokenizer, callback, student_path


def run(config: KdJob, ctx: JobContext) -> None:
    trainer, tokenizer, callback, student_path = build(config, ctx)
    common.train_and_publish(
        trainer, ctx, config, tokenizer, callback, "kd", student_path,
        extra_provenance={"teacher": config.teacher, "logits": config.logits, "divergence": config.divergence},
    )
