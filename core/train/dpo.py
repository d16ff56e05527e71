"""`train_dpo` job: DPO on (prompt, chosen, rejected) with TRL's DPOTrainer; CogPO = the same with a β per pair.

The reference is the student itself (TRL loads a frozen copy; with LoRA it disables the adapter, no copy) or a model
named in `reference`. TRL logs rewards/chosen, rewards/rejected, rewards/margins and rewards/accuracies (β·log-ratio
of policy to reference), which the job's metrics carry as they are; loss covers the answer tokens only (TRL's
completion mask on the conversational format).

Why per-pair β needs code on top of TRL: `DPOConfig.beta` is one float for the whole run, `DPOTrainer._compute_loss`
reads it as `self.beta`, and the trainer drops every dataset column that is not one of its own signature columns
before collation — a `beta` column never reaches the loss. CogPO (REFERENCE §5) gives each pair type its own β (a
small preference gap wants a larger β). So: the column is kept (`_set_signature_columns_if_needed`), the collator
batches it (`BetaCollator`), and the loss uses it per pair (`PerPairBetaDPOTrainer.compute_loss`). Every TRL loss but
the batch-sorting ones (aot, aot_unpaired: refused by the config) is elementwise in β·Δ, so the per-pair β is handed to
TRL's own loss as a (B,) tensor in place of the float for that one call — TRL's loss formulas and metrics stay TRL's.
"""

from __future__ import annotations

from typing import Any

from core.config.train import DpoJob
from core.jobs.context import JobContext
from core.train import common
from core.train.preference import load_pairs, to_dataset


def trainer_classes():
    """(collator class, trainer class) for per-pair β, built on TRL's (imported late: torch stays out of the UI)."""
    import torch
    from trl import DPOTrainer
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    class BetaCollator(DataCollatorForPreference):
        """TRL's preference collator plus a `beta` tensor: one β per pair, in batch order."""

        def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
            out = super().torch_call(examples)
            if "beta" in examples[0]:
                out["beta"] = torch.tensor([float(e["beta"]) for e in examples], dtype=torch.float32)
            return out

    class PerPairBetaDPOTrainer(DPOTrainer):
        """DPOTrainer whose loss uses each pair's β from the batch (see the module docstring for why)."""

        def _set_signature_columns_if_needed(self) -> None:
            super()._set_signature_columns_if_needed()
            if self._signature_columns is not None and "beta" not in self._signature_columns:
                self._signature_columns = [*self._signature_columns, "beta"]

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            beta = inputs.pop("beta", None)  # not a model input: TRL passes every other key to the forward
            if beta is None:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            scalar, self.beta = self.beta, beta.to(self.accelerator.device)
            try:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            finally:
                self.beta = scalar

    return BetaCollator, PerPairBetaDPOTrainer


def build(config: DpoJob, ctx: JobContext):
    """(trainer, tokenizer, callback, student path): separate from `run` so tests and benchmarks can drive it."""
    from trl import DPOConfig, DPOTrainer

    from core.train.callbacks import JobProgressCallback

    student_path = common.resolve_model_path(ctx, config.student)
    template = common.read_template(ctx, config.template)
    tokenizer = common.load_tokenizer(student_path, template)
    pairs = load_pairs(ctx, config, with_beta=config.per_row_beta)
    for note in pairs.notes:
        ctx.event(note)
    cpu = common.use_cpu(ctx)
    model = common.load_model(student_path, config, cpu)
    ref_model = None
    if config.reference:
        ref_model = common.load_model(common.resolve_model_path(ctx, config.reference), config, cpu, trainable=False)
    args = DPOConfig(**common.trainer_args(
        config, ctx, bool(pairs.eval), beta=config.beta, loss_type=[config.loss_type], max_length=config.max_length,
        precompute_ref_log_probs=config.precompute_ref_log_probs,
        eval_on_start=bool(pairs.eval),  # the margin curve starts at 0 (policy = reference): the baseline to beat
    ))
    callback = JobProgressCallback(ctx)
    kw: dict[str, Any] = {}
    trainer_cls = DPOTrainer
    if config.per_row_beta:
        collator_cls, trainer_cls = trainer_classes()
        # what TRL does when it builds its own collator: same padding and truncation, pad id mirrored on the model
        model.config.pad_token_id = tokenizer.pad_token_id
        pad_multiple = args.pad_to_multiple_of if isinstance(args.pad_to_multiple_of, int) else None
        kw["data_collator"] = collator_cls(pad_token_id=tokenizer.pad_token_id, max_length=args.max_length,
                                           truncation_mode=args.truncation_mode, pad_to_multiple_of=pad_multiple)
    trainer = trainer_cls(
        model=model, ref_model=ref_model, args=args, train_dataset=to_dataset(pairs.train),
        eval_dataset=to_dataset(pairs.eval) if pairs.eval else None, processing_class=tokenizer,
        peft_config=common.lora_config(config), callbacks=[callback], **kw,
    )
    common.note_dropped(ctx, trainer, len(pairs.train), len(pairs.eval),
                        f"the prompt alone fills max_length={config.max_length}")
    ref = config.reference or ("the LoRA-disabled base" if config.lora else "a frozen copy of the student")
    betas = ", ".join(f"{n} from {src}" for src, n in sorted(pairs.beta_counts.items()))
    n_held = len(trainer.eval_dataset) if trainer.eval_dataset is not None else 0
    ctx.event(f"{'CogPO' if config.per_row_beta else 'DPO'} ({config.loss_type}, β={config.beta}"
              f"{'; per-pair β: ' + betas if betas else ''}) on {len(trainer.train_dataset)} pairs ({n_held} held "
              f"out), reference: {ref}, {'LoRA r=' + str(config.lora.r) if config.lora else 'full fine-tuning'}")
    return trainer, tokenizer, callback, student_path


def run(config: DpoJob, ctx: JobContext) -> None:
    trainer, tokenizer, callback, student_path = build(config, ctx)
    common.train_and_publish(
        trainer, ctx, config, tokenizer, callback, "cogpo" if config.per_row_beta else "dpo", student_path,
        extra_provenance={"beta": config.beta, "loss_type": config.loss_type, "reference": config.reference},
    )
