"""`train_sft` job: black-box KD = supervised fine-tuning on teacher-written answers (TRL SFTTrainer).

Full fine-tuning or LoRA (peft), loss on assistant tokens only (our tokenization marks them for any chat template,
see core.train.dataset), eval split, checkpoints every N steps, resume from the last one, Stop saves a checkpoint.
"""

from __future__ import annotations

from core.config.train import SftJob
from core.jobs.context import JobContext
from core.train import common


def build(config: SftJob, ctx: JobContext):
    """(trainer, tokenizer, callback, student path): separate from `run` so tests and benchmarks can drive it."""
    from trl import SFTConfig, SFTTrainer

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
    trainer = SFTTrainer(
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
