"""`train_sft` job: black-box KD = supervised fine-tuning on teacher-written answers (TRL SFTTrainer).

Full fine-tuning or LoRA (peft), loss on assistant tokens only (our tokenization marks them for any chat template,
see core.train.dataset), eval split, checkpoints every N steps, resume from the last one, Stop saves a checkpoint.
"""

from __future__ import annotations

from core.config.train import SftJob
from core.jobs.context import JobContext
from core.train import common


def make_trainer_class():
    """SftTrainer, built lazily (importing this module must not import TRL: the studio reads configs from here)."""
    import torch
    import torch.nn.functional as F
    from trl import SFTTrainer

    from core.train.dataset import IGNORE
    from core.train.kd_losses import ce_kd_loss

    class SftTrainer(SFTTrainer):
        """TRL's SFTTrainer with the cross-entropy of core.train.kd_losses.ce_kd_loss (no teacher): one chunked
        pass over the vocabulary, its gradient written once. TRL's own loss path also computes the entropy and the
        top-1 accuracy over the vocabulary at every step for its logs; on the demo (49k vocabulary, CPU) a step cost
        1.3-1.5x what the KD job's step costs with the same rows (bench/demo.py sft)."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs.pop("labels")  # never given to the model: its own loss would be a second pass
            inputs.pop("id", None)
            outputs = model(**inputs, use_cache=False)
            shifted = F.pad(labels[:, 1:], (0, 1), value=IGNORE)  # logits at t predict the token at t + 1
            none = shifted.new_zeros((*shifted.shape, 1))
            out = ce_kd_loss(outputs.logits, shifted, none, none.float(), torch.zeros_like(shifted, dtype=torch.bool),
                             ce_weight=1.0, kd_weight=0.0, ce_items=num_items_in_batch)
            loss = out.loss
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * (self.accelerator.num_processes // self.get_tp_size())
            return (loss, outputs) if return_outputs else loss

    return SftTrainer


def build(config: SftJob, ctx: JobContext):
    """(trainer, tokenizer, callback, student path): separate from `run` so tests and benchmarks can drive it."""
    from trl import SFTConfig

    from core.train.callbacks import JobProgressCallback

    student_path = common.resolve_model_path(ctx, config.student)
    template = common.read_template(ctx, config.template)
    tokenizer = common.load_tokenizer(student_path, template)
    data = common.prepare_examples(ctx, config, tokenizer, template)
    for note in data.notes:
        ctx.event(note)
    cpu = common.use_cpu(ctx)
    model = common.load_model(student_path, config, cpu)
    args = SFTConfig(**common.trainer_args(
        config, ctx, bool(data.eval), max_length=config.max_length, packing=config.packing,
    ))
    callback = JobProgressCallback(ctx)
    trainer = make_trainer_class()(
        model=model,
        args=args,
        train_dataset=common.to_hf_dataset(data.train),
        eval_dataset=common.to_hf_dataset(data.eval) if data.eval else None,
        processing_class=tokenizer,
        peft_config=common.lora_config(config),
        callbacks=[callback],
    )
    ctx.event(f"SFT on {len(data.train)} rows ({len(data.eval)} held out), "
              f"{'LoRA r=' + str(config.lora.r) if config.lora else 'full fine-tuning'}")
    return trainer, tokenizer, callback, student_path


def run(config: SftJob, ctx: JobContext) -> None:
    trainer, tokenizer, callback, student_path = build(config, ctx)
    common.train_and_publish(trainer, ctx, config, tokenizer, callback, "sft", student_path)
