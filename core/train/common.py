"""What every training entry shares: model/tokenizer loading, data preparation, trainer arguments, the run loop
(resume from the last checkpoint, stop = checkpoint + return) and publishing the result under workspace/models.

SFT, KD and on-policy KD differ only in the trainer class and its extra knobs; everything a user sees the same way
across methods (metric names, checkpoint layout, resume, the exported model folder) lives here once.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config.train import TrainCommon
from core.errors import UserError
from core.jobs.context import JobContext
from core.train.dataset import Example, build_examples, load_conversations, split_examples

CHECKPOINTS = "checkpoints"
ADAPTER = "adapter"
PROVENANCE = "eds_model.json"


class TrainSetupError(UserError, ValueError):
    """A training job that cannot start as configured; the message says what to change."""


# ---------------------------------------------------------------------------------------------------- models & data


def resolve_model_path(ctx: JobContext, ref: str) -> Path:
    from core.models.registry import resolve_model

    return resolve_model(ref, ctx.workspace)


def read_template(ctx: JobContext, ref: str | None) -> str | None:
    """A chat template given as a file (workspace/templates/<name> or a path); None = the tokenizer's own."""
    if not ref:
        return None
    for cand in (ctx.workspace.templates / ref, Path(ref).expanduser()):
        if cand.is_file():
            return cand.read_text(encoding="utf-8")
    raise TrainSetupError(f"template: chat template file '{ref}' not found (looked in workspace/templates and {ref})")


def load_tokenizer(path: Path, template: str | None = None):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    if template:
        tok.chat_template = template  # saved with the model, so Chat and later jobs render the same way
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def use_cpu(ctx: JobContext) -> bool:
    import torch

    return not torch.cuda.is_available() or (bool(ctx.devices) and all(d == "cpu" for d in ctx.devices))


def precision_flags(precision: str, cpu: bool) -> dict[str, bool]:
    """bf16/fp16 flags for TrainingArguments. auto: bf16 on a GPU that has it, fp16 on older GPUs, fp32 on CPU;
    bf16 on a GPU without it: fp16, said in the log."""
    import torch

    if precision == "fp32":
        return {"bf16": False, "fp16": False}
    if precision == "bf16":
        if not cpu and not torch.cuda.is_bf16_supported():
            # a preset's bf16 (the CPU demo's, which the guided flow copies) on a GPU older than Ampere: Trainer
            # would refuse it outright; fp16 mixed precision is what such a GPU trains with
            logging.getLogger("job").warning("precision: bf16 asked, but this GPU has no bf16 support: training "
                                             "in fp16 mixed precision instead (set precision: fp16 or auto to "
                                             "silence this)")
            return {"bf16": False, "fp16": True}
        return {"bf16": True, "fp16": False}
    if precision == "fp16":
        if cpu:
            raise TrainSetupError("precision: fp16 needs a GPU; use bf16 or fp32 on CPU")
        return {"bf16": False, "fp16": True}
    if cpu:
        return {"bf16": False, "fp16": False}
    return {"bf16": torch.cuda.is_bf16_supported(), "fp16": not torch.cuda.is_bf16_supported()}


def load_model(path: Path, cfg: TrainCommon, cpu: bool, trainable: bool = True, auto_class: Any = None, **kw: Any):
    """The student (fp32 master weights; a frozen LoRA base in bf16 on GPUs) or a frozen teacher / reference.
    `auto_class` (default AutoModelForCausalLM) and `kw` load another head on the same weights (a reward model)."""
    import torch
    from transformers import AutoModelForCausalLM

    dtype = torch.float32
    flags = precision_flags(cfg.precision, cpu)
    if not cpu and (not trainable or cfg.lora is not None) and flags["bf16"]:
        dtype = torch.bfloat16
    model = (auto_class or AutoModelForCausalLM).from_pretrained(str(path), dtype=dtype, **kw)
    if not trainable:
        model.eval().requires_grad_(False)
    return model


def lora_config(cfg: TrainCommon, task_type: str = "CAUSAL_LM"):
    """peft's LoraConfig from our spec; a reward model is SEQ_CLS (its new score head is then trained in full)."""
    if cfg.lora is None:
        return None
    from peft import LoraConfig

    spec = cfg.lora
    return LoraConfig(
        r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout, target_modules=spec.target_modules,
        task_type=task_type,
    )


@dataclass
class PreparedData:
    train: list[Example]
    eval: list[Example]
    notes: list[str]


def prepare_examples(ctx: JobContext, cfg: TrainCommon, tokenizer, template: str | None) -> PreparedData:
    """Tokenize the dataset (and the held-out set or split) with the assistant-only mask."""
    notes: list[str] = []
    convs, no_answer = load_conversations(ctx.workspace, cfg.dataset)
    if no_answer:
        notes.append(f"{len(no_answer)} row(s) without an answer skipped (first: {no_answer[0]})")
    ex = build_examples(convs, tokenizer, cfg.max_length, template, source=cfg.dataset)
    if ex.truncated:
        notes.append(f"{ex.truncated} row(s) longer than max_length={cfg.max_length} were cut at the end")
    if ex.skipped:
        notes.append(f"{len(ex.skipped)} row(s) skipped: no answer token within max_length")
    if cfg.eval_dataset:
        held = build_examples(
            load_conversations(ctx.workspace, cfg.eval_dataset)[0], tokenizer, cfg.max_length, template,
            source=cfg.eval_dataset,
        ).items
        train = ex.items
    else:
        train, held = split_examples(ex.items, cfg.eval_split, cfg.seed)
    if not train:
        raise TrainSetupError(f"dataset '{cfg.dataset}': no training rows left after the eval split")
    return PreparedData(train, held, notes)


def to_hf_dataset(items: list[Example]):
    from datasets import Dataset

    return Dataset.from_list([e.to_record() for e in items])


def note_dropped(ctx: JobContext, trainer, kept_before: int, held_before: int, why: str) -> None:
    """Say how many rows a TRL trainer's own preprocessing dropped (DPO / reward filter by `max_length`), which it
    does silently."""
    for name, before, ds in (("training", kept_before, trainer.train_dataset), ("held-out", held_before,
                                                                               trainer.eval_dataset)):
        lost = before - (len(ds) if ds is not None else 0)
        if lost > 0:
            ctx.event(f"{lost} {name} pair(s) dropped: {why}; raise max_length to keep them")


# ---------------------------------------------------------------------------------------------------- trainer args


def trainer_args(cfg: TrainCommon, ctx: JobContext, has_eval: bool, **extra: Any) -> dict[str, Any]:
    """Keyword arguments every TRL config (SFTConfig, GKDConfig, DistillationConfig) takes, from our knobs."""
    cpu = use_cpu(ctx)
    eval_steps = cfg.eval_steps or cfg.save_steps
    kw: dict[str, Any] = {
        "output_dir": str(ctx.output_dir / CHECKPOINTS),
        "num_train_epochs": cfg.num_train_epochs,
        "max_steps": cfg.max_steps,
        "per_device_train_batch_size": cfg.per_device_train_batch_size,
        "per_device_eval_batch_size": cfg.per_device_train_batch_size,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "learning_rate": cfg.learning_rate,
        "weight_decay": cfg.weight_decay,
        "warmup_steps": min(cfg.warmup_ratio, 0.999),  # transformers 5: a float in [0, 1) is a ratio
        "lr_scheduler_type": cfg.lr_scheduler_type,
        "logging_steps": cfg.logging_steps,
        "logging_first_step": True,
        "save_strategy": "steps",
        "save_steps": cfg.save_steps,
        "save_total_limit": cfg.save_total_limit,
        "eval_strategy": "steps" if has_eval else "no",
        "eval_steps": eval_steps if has_eval else None,
        "activation_checkpointing": cfg.gradient_checkpointing,  # transformers 5 name (TRL defaults it on)
        # LengthGroupedSampler: shuffled groups of ~50 batches, each group sorted by length (transformers 5 name)
        "train_sampling_strategy": "group_by_length" if cfg.group_by_length else "random",
        "seed": cfg.seed,
        "data_seed": cfg.seed,
        "report_to": "none",
        "disable_tqdm": True,
        "use_cpu": cpu,
        "dataloader_num_workers": 0,
        "include_num_input_tokens_seen": "non_padding",
        "prediction_loss_only": True,  # eval needs the loss only; never gather B·T·V logits
        **precision_flags(cfg.precision, cpu),
    }
    if has_eval and cfg.save_steps % eval_steps == 0:
        kw.update(load_best_model_at_end=True, metric_for_best_model="eval_loss", greater_is_better=False)
    kw.update(extra)
    return kw


# ---------------------------------------------------------------------------------------------------- run + publish


def last_checkpoint(ctx: JobContext) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    folder = ctx.output_dir / CHECKPOINTS
    return get_last_checkpoint(str(folder)) if folder.is_dir() else None


def output_name(ctx: JobContext, cfg: TrainCommon, method: str) -> str:
    """The model's name under workspace/models: the configured one, else <student>-<method>[-n] (free or ours)."""
    if cfg.output:
        return cfg.output
    base = f"{Path(cfg.student.rstrip('/')).name}-{method}"
    name, n = base, 2
    models = ctx.workspace.models
    while (models / name).exists() and _provenance(models / name).get("job_id") != ctx.job_id:
        name, n = f"{base}-{n}", n + 1
    return name


def _provenance(folder: Path) -> dict:
    try:
        return json.loads((folder / PROVENANCE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def check_output_free(ctx: JobContext, name: str) -> None:
    """Refuse at start (not after hours of training) to overwrite a model this job did not write."""
    folder = ctx.workspace.inside(ctx.workspace.models / name)  # not through a link leading out of the workspace
    if folder.exists() and any(folder.iterdir()) and _provenance(folder).get("job_id") != ctx.job_id:
        raise TrainSetupError(
            f"output: workspace/models/{name} already exists and was not written by this job; choose another name"
        )


def write_provenance(folder: Path, **fields: Any) -> None:
    data = {"created": time.time(), **fields}
    (folder / PROVENANCE).write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")


def train_and_publish(
    trainer, ctx: JobContext, cfg: TrainCommon, tokenizer, callback, method: str, student_path: Path,
    extra_provenance: dict | None = None, merge: Callable[[Path, Path, Path], Path] | None = None,
) -> Path | None:
    """Train (resuming from the last checkpoint), then save the model under workspace/models/<name>.

    `merge(adapter_dir, base, target)` folds a LoRA adapter into its base (default: a causal LM's; a reward model
    passes its sequence-classification one).

    Returns the published folder, or None when a stop request ended training early (a checkpoint was saved and the
    job can be resumed).
    """
    name = output_name(ctx, cfg, method)
    check_output_free(ctx, name)
    resume = last_checkpoint(ctx)
    if resume:
        ctx.event(f"resuming from {Path(resume).name}", checkpoint=resume)
    trainer.train(resume_from_checkpoint=resume)
    if callback.stopped:
        step = trainer.state.global_step
        ctx.event(f"stopped at step {step}; checkpoint saved, resume to continue", step=step, stopped=True)
        trainer.accelerator.wait_for_everyone()
        return None
    target = ctx.workspace.models / name
    if cfg.lora is not None:
        adapter_dir = ctx.output_dir / ADAPTER
        trainer.save_model(str(adapter_dir))
        if trainer.is_world_process_zero():
            tokenizer.save_pretrained(str(adapter_dir))
            if merge is None:
                from core.models.export import merge_adapter as merge
            merge(adapter_dir, student_path, target)
    else:
        trainer.save_model(str(target))
        if trainer.is_world_process_zero():
            tokenizer.save_pretrained(str(target))
    if trainer.is_world_process_zero():
        write_provenance(
            target, job_id=ctx.job_id, method=method, base=str(student_path), dataset=cfg.dataset,
            lora=cfg.lora.model_dump() if cfg.lora else None, steps=trainer.state.global_step,
            **(extra_provenance or {}),
        )
        ctx.event(f"model saved to workspace/models/{name}", model=name, path=str(target))
    trainer.accelerator.wait_for_everyone()  # ranks leave together: none exits while rank 0 still merges/saves
    return target
