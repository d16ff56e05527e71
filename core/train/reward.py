"""`train_reward` job: a Bradley–Terry reward model on (prompt, chosen, rejected) with TRL's RewardTrainer.

The student's weights get a one-output score head (AutoModelForSequenceClassification, num_labels=1; the head starts
random, seeded). Loss −log σ(r(x, y_c) − r(x, y_r)) (REFERENCE §5); TRL logs accuracy / margin / mean reward. At the
end the held-out pairs are scored once more and their pairwise accuracy (share of pairs whose chosen answer gets the
higher reward) lands in the metrics (`heldout_accuracy`) and in output/reward_report.json. The published model is
what GRPO's `reward_model` reward and evaluation load.
"""

from __future__ import annotations

import json
from pathlib import Path

from core.config.train import RewardJob
from core.jobs.context import JobContext
from core.train import common
from core.train.preference import load_pairs, to_dataset

REPORT = "reward_report.json"


def merge_reward_adapter(adapter_dir: Path, base: Path, out_dir: Path) -> Path:
    """A LoRA adapter (and its fully trained score head) folded into the base loaded as a reward model."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(str(base), num_labels=1, dtype=torch.float32)
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(str(adapter_dir))
    merged.config.pad_token_id = tokenizer.pad_token_id
    out_dir.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))
    return out_dir


def build(config: RewardJob, ctx: JobContext):
    """(trainer, tokenizer, callback, student path, held-out pairs)."""
    from transformers import AutoModelForSequenceClassification, set_seed
    from trl import RewardConfig, RewardTrainer

    from core.train.callbacks import JobProgressCallback

    student_path = common.resolve_model_path(ctx, config.student)
    template = common.read_template(ctx, config.template)
    tokenizer = common.load_tokenizer(student_path, template)
    pairs = load_pairs(ctx, config)
    for note in pairs.notes:
        ctx.event(note)
    cpu = common.use_cpu(ctx)
    set_seed(config.seed)  # the score head is initialised at random: the same seed, the same start
    model = common.load_model(student_path, config, cpu, auto_class=AutoModelForSequenceClassification, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    extra = {"center_rewards_coefficient": config.center_rewards_coefficient}
    args = RewardConfig(**common.trainer_args(config, ctx, bool(pairs.eval), max_length=config.max_length, **extra))
    callback = JobProgressCallback(ctx)
    held = to_dataset(pairs.eval) if pairs.eval else None
    trainer = RewardTrainer(
        model=model, args=args, train_dataset=to_dataset(pairs.train), eval_dataset=held, processing_class=tokenizer,
        peft_config=common.lora_config(config, task_type="SEQ_CLS"), callbacks=[callback],
    )
    common.note_dropped(ctx, trainer, len(pairs.train), len(pairs.eval),
                        f"the chosen or rejected conversation is longer than max_length={config.max_length}")
    n_held = len(trainer.eval_dataset) if trainer.eval_dataset is not None else 0
    ctx.event(f"reward model on {len(trainer.train_dataset)} pairs ({n_held} held out), "
              f"{'LoRA r=' + str(config.lora.r) if config.lora else 'full fine-tuning'}")
    return trainer, tokenizer, callback, student_path, held


def report(trainer, ctx: JobContext, held, n_train: int) -> dict:
    """Held-out pairwise accuracy (or, with nothing held out, the training pairs' — labelled as such)."""
    data, split = (held, "heldout") if held is not None else (trainer.train_dataset, "train")
    scores = trainer.evaluate(eval_dataset=data)  # TRL's log() adds eval_accuracy / eval_margin to what it returns
    out = {"split": split, "pairs": len(data), "accuracy": scores.get("eval_accuracy"),
           "margin": scores.get("eval_margin"), "train_pairs": n_train}
    (ctx.output_dir / REPORT).write_text(json.dumps(out, indent=2), encoding="utf-8")
    step = trainer.state.global_step
    ctx.progress(step, trainer.state.max_steps, **{f"{split}_accuracy": out["accuracy"],
                                                   f"{split}_margin": out["margin"]})
    what = "held-out" if split == "heldout" else "training (nothing held out: set eval_split)"
    ctx.event(f"pairwise accuracy on {len(data)} {what} pairs: {out['accuracy']:.3f}", **out)
    return out


def run(config: RewardJob, ctx: JobContext) -> None:
    trainer, tokenizer, callback, student_path, held = build(config, ctx)
    target = common.train_and_publish(
        trainer, ctx, config, tokenizer, callback, "reward", student_path, merge=merge_reward_adapter,
        extra_provenance={"head": "reward"},
    )
    if target is not None:
        report(trainer, ctx, held, len(trainer.train_dataset))
