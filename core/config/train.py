"""Configs of training jobs. Knobs follow TRL's names where TRL has them, so help text and YAML read alike."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from core.config.base import BackendSpec, JobBase, Sampling, StrictModel


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
    save_steps: int = Field(100, ge=1, description="save a checkpoint every N optimizer steps (and on Stop)")
    save_total_limit: int | None = Field(3, ge=1, description="keep at most N checkpoints (the best one stays too)")
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
    teacher: str = Field(description="the model that scores the student's samples (same tokenizer as the student)")
    # The student's own samples give noisier gradients than teacher-written answers: a gentler default schedule.
    num_train_epochs: float = Field(1.0, gt=0)
    gradient_accumulation_steps: int = Field(4, ge=1)
    learning_rate: float = Field(5e-6, gt=0)
    trainer: Literal["gkd", "distillation"] = "gkd"
    lmbda: float = Field(0.5, ge=0, le=1, description="share of on-policy (student-generated) batches")
    beta: float = Field(0.5, ge=0, le=1, description="generalized JSD mixing (0 = forward KL, 1 = reverse KL)")
    temperature: float = Field(0.9, gt=0, description="sampling temperature of the student's answers")
    max_new_tokens: int = Field(128, ge=1, description="length of each student answer")


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


EvalMetric = Literal["exact_match", "math_verify", "judge_winrate", "kl", "perplexity"]


class EvaluateJob(JobBase):
    """Score a model on a held-out set: answer checks, judge win-rate vs a reference, KL/perplexity vs the teacher."""

    ENTRY = "core.eval.job:run"
    DEFAULT_GPUS = 1
    kind: Literal["evaluate"] = "evaluate"
    model: BackendSpec = Field(description="the model to evaluate (usually the student)")
    reference: BackendSpec | None = Field(
        None, description="the model to compare against (usually the teacher): its answers, the judge's other side, "
        "the distribution KL is measured to"
    )
    judge: BackendSpec | None = Field(None, description="the judge for judge_winrate (an instruct model or endpoint)")
    dataset: str = Field(description="held-out dataset (workspace name or file)")
    metrics: list[EvalMetric] = Field(
        default_factory=lambda: ["exact_match"],
        description="exact_match / math_verify: the answer against the gold column; judge_winrate: model vs reference, "
        "judged in both orders; kl: KL(reference ‖ model) on reference responses; perplexity: of the model on them",
    )
    limit: int | None = Field(None, ge=1, description="evaluate only the first N rows")
    sampling: Sampling = Field(
        default_factory=lambda: Sampling(temperature=0.0, seed=None),
        description="generation settings of the evaluated and reference models (default: greedy)",
    )
    system_prompt: str | None = Field(None, description="system prompt for rows that have none")
    answer_field: str | None = Field(
        None, description="column with the gold answer; default: the first of answer, gold, reference, solution, output"
    )
    judge_template: str | None = Field(
        None, description="judge prompt file with {question}, {answer_a}, {answer_b}; default: the built-in one"
    )
    judge_max_new_tokens: int = Field(512, ge=1, description="room for the judge's reasoning and verdict")
    responses: Literal["auto", "reference", "dataset"] = Field(
        "auto", description="the teacher responses kl/perplexity are measured on: generated by the reference, or the "
        "dataset's output column; auto = the reference's when a reference is given"
    )
    top_k: int = Field(
        20, ge=1, le=100000, description="top-k log-probs per position for kl (k = vocabulary size gives the exact KL)"
    )

    @model_validator(mode="after")
    def _needs(self):
        m = set(self.metrics)
        if not m:
            raise ValueError("metrics: choose at least one of exact_match, math_verify, judge_winrate, kl, perplexity")
        if "judge_winrate" in m and (self.judge is None or self.reference is None):
            raise ValueError("judge_winrate needs both 'judge' (the judging model) and 'reference' (the other side)")
        if "kl" in m and self.reference is None:
            raise ValueError("kl needs 'reference': the teacher whose distribution the model is compared to")
        if "perplexity" in m and self.reference is None and self.responses == "reference":
            raise ValueError("responses: reference needs a 'reference' model; or use the dataset's output column")
        return self


class ServeJob(JobBase):
    """A model server that holds its devices until stopped: transformers worker or managed vLLM."""

    ENTRY = "core.llm.serve:run"
    DEFAULT_GPUS = 1
    kind: Literal["serve"] = "serve"
    model: BackendSpec
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535, description="0 = pick a free port")
    startup_timeout_s: float = Field(900.0, gt=0, description="give up if the server is not healthy after this long")


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
