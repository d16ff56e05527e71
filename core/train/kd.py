"""`train_kd` job: white-box KD from a cached teacher top-k, L = (1 − λ)·CE + λ·τ²·KD (REFERENCE §4).

The trainer is TRL's SFTTrainer (data handling, LoRA, checkpoints, logging) with our loss. The teacher's top-k is
looked up per batch by each row's id and each token's position (the collator carries the ids), never by row order,
and a position is used only when the cached token equals the student's label there. KD is normalised once over the
KD tokens of the whole accumulated batch, CE over its label tokens, so gradient accumulation and multi-GPU give the
update one big batch would. CE and KD come from one chunked pass over the vocabulary (`ce_kd_loss`; the model is
given no labels, so it computes no loss of its own) and are logged separately.

Several caches (`teachers`): `MixtureCollator` mixes their top-k per token by weight (`core.train.kd_mixture`, the
formula there) into one target on the union of their ids, and the same loss runs on it. A teacher whose tokenizer is
not the student's (the check's method `uld`): `core.train.cross_tokenizer` (TRL's GOLD trainer, ULD loss) instead.
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


def _aligned(cache: LogitCache, rid: str, ids_row, labels_row, length: int):
    """(logits positions t, top-k ids, log-probs, tails) of a row's cached entries that predict its label at t + 1
    (the cached token is checked against the label there); None when the cache lacks the row."""
    import numpy as np

    if rid not in cache:
        return None
    row = cache.get(rid)
    pos = row.positions.astype(np.int64)
    ok = (pos >= 1) & (pos < length)
    ok[ok] &= (ids_row[pos[ok]] == row.token_ids[ok]) & (labels_row[pos[ok]] != IGNORE)
    return pos[ok] - 1, row.topk_ids[ok], row.topk_logprobs[ok], row.tail[ok]


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
            found = _aligned(self.cache, rid, ids_np[r], labels_np[r], length)
            if found is None:
                continue
            p, t_ids[r, p], t_lp[r, p], t_tail[r, p] = found
            kd_mask[r, p] = True
        batch.update(
            teacher_ids=torch.from_numpy(t_ids), teacher_logprobs=torch.from_numpy(t_lp),
            teacher_tail=torch.from_numpy(t_tail), kd_mask=torch.from_numpy(kd_mask),
        )
        return batch


@dataclass
class MixtureCollator:
    """Pads like TRL's collator, then places the weighted mixture of several teachers' cached top-k (aligned one by one
    as in `KdCollator`) at the logits that predict each token: ids on the union of their top-k, `teacher_valid` marking
    the slots in use (core.train.kd_mixture)."""

    base: Any
    caches: list[LogitCache]
    weights: list[float]

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        import numpy as np
        import torch

        from core.train.kd_mixture import mix_topk, shares

        batch = self.base([{key: e[key] for key in ("input_ids", "labels")} for e in examples])
        ids_np, labels_np = batch["input_ids"].numpy(), batch["labels"].numpy()
        b, length = ids_np.shape
        ks = [c.meta.k for c in self.caches]
        weights = np.asarray(self.weights, dtype=np.float64)
        mixed = []
        for r, e in enumerate(examples):
            present = np.zeros((length, len(ks)), dtype=bool)
            t_ids = [np.zeros((length, k), dtype=np.int64) for k in ks]
            t_lp = [np.zeros((length, k), dtype=np.float32) for k in ks]
            t_tail = [np.zeros(length, dtype=np.float32) for _ in ks]
            for j, cache in enumerate(self.caches):
                found = _aligned(cache, str(e["id"]), ids_np[r], labels_np[r], length)
                if found is not None:
                    p, t_ids[j][p], t_lp[j][p], t_tail[j][p] = found
                    present[p, j] = True
            share = shares(weights, present)
            at = np.nonzero(share.sum(1) > 0)[0]
            mixed.append((at, *mix_topk([x[at] for x in t_ids], [x[at] for x in t_lp], [x[at] for x in t_tail],
                                        share[at])))
        width = max([m[1].shape[1] for m in mixed] + [1])
        out_ids = np.zeros((b, length, width), dtype=np.int64)
        out_lp = np.zeros((b, length, width), dtype=np.float32)
        out_valid = np.zeros((b, length, width), dtype=bool)
        out_tail = np.zeros((b, length), dtype=np.float32)
        kd_mask = np.zeros((b, length), dtype=bool)
        for r, (at, m_ids, m_lp, m_tail, m_valid) in enumerate(mixed):
            w = m_ids.shape[1]
            out_ids[r, at, :w], out_lp[r, at, :w], out_valid[r, at, :w] = m_ids, m_lp, m_valid
            out_tail[r, at] = m_tail
            kd_mask[r, at] = True
        batch.update(
            teacher_ids=torch.from_numpy(out_ids), teacher_logprobs=torch.from_numpy(out_lp),
            teacher_tail=torch.from_numpy(out_tail), kd_mask=torch.from_numpy(kd_mask),
        )
        if not out_valid[kd_mask].all():  # a support of one size everywhere (weights 1/0, one teacher) needs no mask
            batch["teacher_valid"] = torch.from_numpy(out_valid)
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
            valid = inputs.pop("teacher_valid", None)  # a mixture of teachers: support slots in use
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
                self.kd_spec, teacher_tail=teacher["teacher_tail"], teacher_valid=valid, ce_weight=1.0 - lam,
                kd_weight=lam * tau * tau,
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


def _pair_verdict(ctx: JobContext, config: KdJob, student_path):
    """(teacher folder, the tokenizer check's verdict); (None, None) for a teacher that is not a local folder (a remote
    one: the caches' tokenizer hash below still guards the ids) or when none is named (several caches)."""
    from core.llm.base import BackendError
    from core.models.registry import check_logit_kd, resolve_model

    if not config.teacher:
        return None, None
    try:
        teacher_path = resolve_model(config.teacher, ctx.workspace)
    except BackendError as e:
        ctx.event(f"teacher '{config.teacher}' is not a local folder ({e}); checking the cache's tokenizer only")
        return None, None
    return teacher_path, check_logit_kd(teacher_path, student_path)


def _open_caches(ctx: JobContext, config: KdJob, tokenizer) -> tuple[list[str], list[LogitCache], list[float]]:
    """The job's caches (one, or the `teachers`), each checked: the student's tokenizer, the job's temperature."""
    from core.train.capture import cache_folder
    from core.train.logit_cache import CacheError

    if not config.teachers and not config.logits:
        raise common.TrainSetupError(
            "logits: choose the teacher's logit cache (a capture job writes one; the Training tab's 'capture first' "
            "runs it), or several under teachers"
        )
    names = [t.cache for t in config.teachers] or [config.logits]
    weights = [t.weight for t in config.teachers] or [1.0]
    caches = []
    fingerprint = tokenizer_fingerprint(tokenizer)
    for name in names:
        cache = LogitCache(cache_folder(ctx, name))
        if cache.meta.tokenizer_hash != fingerprint:
            raise CacheError(
                f"logits: the cache '{name}' was captured with a tokenizer different from the student's "
                f"({cache.meta.tokenizer_hash} vs {fingerprint}); capture again with a teacher that shares the "
                "student's tokenizer, or train with the teacher itself (cross-tokenizer KD) or SFT (black-box KD)"
            )
        cache.check_compatible(temperature=config.temperature)
        caches.append(cache)
    return names, caches, weights


def _say_coverage(ctx: JobContext, config: KdJob, names, caches, weights, items: list[Example]) -> None:
    """Log how much of the answers each cache covers; refuse when the teachers that count cover none of it."""
    useful = 0
    for name, cache, weight in zip(names, caches, weights, strict=True):
        total, covered, missing = coverage(cache, items)
        share = covered / max(total, 1)
        who = f"teacher logits '{name}'" if len(caches) > 1 else "teacher logits"
        ctx.event(f"{who} cover {share:.1%} of answer tokens ({missing} row(s) not in the cache)",
                  **({"kd_coverage": share} if len(caches) == 1 else {}))
        useful += covered if weight > 0 else 0
    if useful == 0:
        listed = "', '".join(n for n, w in zip(names, weights, strict=True) if w > 0)
        raise common.TrainSetupError(
            f"logits: the cache(s) '{listed}' hold none of the answer tokens of '{config.dataset}'; capture the "
            "teacher on this dataset with the same template and max_length"
        )


def build(config: KdJob, ctx: JobContext):
    """(trainer, tokenizer, callback, student path). `trainer.kd_method`: logits / truncate / mixture / uld."""
    from trl import SFTConfig
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from core.models.registry import KD_LOGITS, KD_ULD
    from core.train.callbacks import JobProgressCallback

    student_path = common.resolve_model_path(ctx, config.student)
    teacher_path, verdict = _pair_verdict(ctx, config, student_path)
    pair = f"teacher '{config.teacher}' and student '{config.student}'"
    if verdict is not None and verdict.method == KD_ULD and not config.teachers:
        from core.train import cross_tokenizer

        ctx.event(f"{pair}: {verdict.message}", kd_method=KD_ULD)
        if config.logits:
            ctx.event(f"the logit cache '{config.logits}' is not used: its ids are not the student's")
        return cross_tokenizer.build(config, ctx, student_path, teacher_path)
    if verdict is not None and not verdict.ok:
        raise common.TrainSetupError(f"{pair}: {verdict.message}")
    method = "mixture" if config.teachers else (verdict.method if verdict is not None else KD_LOGITS)
    if verdict is not None:
        ctx.event(f"{pair}: {verdict.message}", kd_method=method)
    template = common.read_template(ctx, config.template)
    tokenizer = common.load_tokenizer(student_path, template)
    names, caches, weights = _open_caches(ctx, config, tokenizer)
    data = common.prepare_examples(ctx, config, tokenizer, template)
    for note in data.notes:
        ctx.event(note)
    _say_coverage(ctx, config, names, caches, weights, data.train)
    if config.teachers:
        ctx.event("multi-teacher KD: " + ", ".join(
            f"'{n}' × {w / sum(weights):.3g}" for n, w in zip(names, weights, strict=True)
        ) + " mixed per token on the union of their top-k")
    if config.packing:
        ctx.event("packing is off for KD: the teacher's logits are looked up per row")
    cpu = common.use_cpu(ctx)
    model = common.load_model(student_path, config, cpu)
    args = SFTConfig(**common.trainer_args(
        config, ctx, bool(data.eval), max_length=config.max_length, packing=False, remove_unused_columns=False,
    ))
    base = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id)
    collator = MixtureCollator(base, caches, weights) if config.teachers else KdCollator(base, caches[0],
                                                                                        caches[0].meta.k)
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
        vocab_limit=min([len(tokenizer)] + [c.meta.vocab_size for c in caches]),
    )
    trainer.kd_method = method
    return trainer, tokenizer, callback, student_path


def provenance(config: KdJob, method: str) -> dict[str, Any]:
    """What the published model's eds_model.json says about its teacher(s)."""
    out: dict[str, Any] = {"teacher": config.teacher, "kd_method": method}
    if method == "uld":
        return {**out, "uld_hybrid": config.uld_hybrid}
    if config.teachers:
        out["teachers"] = [t.model_dump() for t in config.teachers]
    else:
        out["logits"] = config.logits
    return {**out, "divergence": config.divergence}


def run(config: KdJob, ctx: JobContext) -> None:
    trainer, tokenizer, callback, student_path = build(config, ctx)
    common.train_and_publish(
        trainer, ctx, config, tokenizer, callback, "kd", student_path,
        extra_provenance=provenance(config, getattr(trainer, "kd_method", "logits")),
    )
