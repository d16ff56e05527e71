"""Configs of training jobs. Knobs follow TRL's names where TRL has them, so help text and YAML read alike."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from core.config.base import BackendSpec, JobBase, Sampling, StrictModel


class LoraSpec(StrictModel):
    r: int = Field(16, ge=1, le=1024)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"


Layout = Literal["auto", "ddp", "zero2", "zero3", "fsdp"]  # core.jobs.layouts
ALL_GPUS = 1024  # what "auto" asks for under a multi-device layout: the scheduler caps it at the machine's GPUs


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
    gradient_checkpointing: bool = Field(False, description="recompute activations in the backward pass: much less "
                                         "memory for ~30% more time per step")
    layout: Layout = Field(
        "auto", description="how training spreads over its devices: auto = one process per GPU, DDP when there are "
        "several; ddp = a full copy per device (≥2 GPUs, or processes ≥2 on CPU); zero2 / zero3 = DeepSpeed ZeRO, "
        "optimizer state + gradients / + weights partitioned over the GPUs (needs deepspeed and CUDA); fsdp = "
        "PyTorch FSDP, fully sharded (≥2 GPUs). With gpus: auto, a layout other than auto takes every GPU")
    processes: int = Field(1, ge=1, le=64, description="on CPU: training processes (DDP over gloo); on GPUs one "
                           "process runs per GPU")
    offload: bool = Field(False, description="zero2: optimizer state in CPU memory; zero3 / fsdp: weights too "
                          "(slower steps, far less GPU memory)")
    packing: bool = False
    group_by_length: bool = Field(False, description="batches of rows of similar length (less padding per step)")
    seed: int = 42
    template: str | None = Field(None, description="chat template file; default: the student tokenizer's")

    def auto_gpus(self) -> int:
        """What gpus: auto means: one GPU, or every GPU of the machine for a layout that spreads over several."""
        return self.DEFAULT_GPUS if self.layout == "auto" else ALL_GPUS

    @model_validator(mode="after")
    def _layout_fits_request(self):
        if self.layout in ("zero2", "zero3", "fsdp") and self.gpus == "cpu":
            raise ValueError(f"layout: {self.layout} runs on GPUs; on the CPU use ddp with processes ≥ 2 (or auto)")
        if self.layout == "ddp" and self.gpus == "cpu" and self.processes < 2:
            raise ValueError("layout: ddp on the CPU needs processes ≥ 2 (one process is layout auto)")
        if self.layout in ("ddp", "fsdp") and (self.gpus == 1 or isinstance(self.gpus, list) and len(self.gpus) == 1):
            raise ValueError(f"layout: {self.layout} needs at least 2 GPUs (gpus: 2 or more, or auto); one GPU is "
                             "layout auto")
        return self


class SftJob(TrainCommon):
    """Black-box KD: supervised fine-tuning on teacher-written responses, loss on assistant tokens only."""

    ENTRY = "core.train.sft:run"
    kind: Literal["train_sft"] = "train_sft"


Divergence = Literal["forward_kl", "reverse_kl", "jsd", "skew_kl", "skew_reverse_kl", "tv"]


class TeacherCache(StrictModel):
    """One teacher of a multi-teacher KD job: its logit cache and its weight in the per-token mixture."""

    cache: str = Field(description="a teacher logit cache (from a capture job) over the student's tokenizer")
    weight: float = Field(1.0, ge=0, description="its share of the mixture (the weights are normalised to sum 1)")


def _parse_teachers(v: Any) -> Any:
    """"cacheA=0.7, cacheB=0.3" (a form's text box) or {cacheA: 0.7, ...} -> [{"cache": ..., "weight": ...}, ...]."""
    if isinstance(v, str) and not v.strip():
        return []
    v = _parse_mapping(v)
    if isinstance(v, dict):
        return [{"cache": k, "weight": w} for k, w in v.items()]
    return v


class KdJob(TrainCommon):
    """White-box KD from a cached teacher top-k: L = (1-λ)·CE + λ·τ²·KD (REFERENCE §4). Several caches (`teachers`):
    KD against their weighted per-token mixture (core.train.kd_mixture). A teacher with another tokenizer: it runs in
    the job and the KD term is ULD's (core.train.cross_tokenizer), chosen by the tokenizer check."""

    ENTRY = "core.train.kd:run"
    kind: Literal["train_kd"] = "train_kd"
    teacher: str = Field("", description="the teacher the cache came from (checked for tokenizer compatibility); "
                         "with another tokenizer than the student's it runs in the job: cross-tokenizer KD (ULD)")
    logits: str = Field("", description="teacher logit cache (from a capture job); none for cross-tokenizer KD or "
                        "with `teachers`")
    teachers: list[TeacherCache] = Field(
        default_factory=list, description="multi-teacher KD: several logit caches (the student's tokenizer) mixed "
        "per token by weight, e.g. cacheA=0.7, cacheB=0.3; replaces `logits`")
    kd_ratio: float = Field(0.5, ge=0, le=1, description="λ: weight of the KD term")
    temperature: float = Field(1.0, gt=0, description="τ")
    divergence: Divergence = "forward_kl"
    beta: float = Field(0.5, ge=0, le=1, description="generalized JSD mixing (0 = forward KL, 1 = reverse KL)")
    alpha: float = Field(0.1, gt=0, lt=1, description="skew KL mixing")
    support: Literal["tail_bucket", "renormalize"] = "tail_bucket"
    uld_hybrid: bool = Field(False, description="cross-tokenizer KD: tokens both vocabularies hold compared directly "
                             "(generalized JSD, β), only the rest by sorted probabilities (ULD)")

    @field_validator("teachers", mode="before")
    @classmethod
    def _teachers(cls, v: Any) -> Any:
        return _parse_teachers(v)

    @model_validator(mode="after")
    def _sources(self):
        if self.teachers and self.logits:
            raise ValueError("logits: give one cache (logits) or several (teachers), not both")
        if self.teachers and not any(t.weight > 0 for t in self.teachers):
            raise ValueError("teachers: at least one weight must be > 0")
        if not self.teachers and not self.teacher:
            raise ValueError("teacher: name the teacher (the model its logit cache came from)")
        return self


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


DpoLoss = Literal[
    "sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot", "aot_unpaired",
    "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm",
]
# Losses that compare pairs across the batch (sorted log-ratios): a β per pair has no meaning there.
BATCH_LOSSES = ("aot", "aot_unpaired")


def _parse_mapping(v: Any) -> Any:
    """"easy=0.2, hard=0.05" (a form's text box) -> {"easy": 0.2, "hard": 0.05}; dicts pass through."""
    if not isinstance(v, str):
        return v
    out: dict[str, float] = {}
    for part in v.replace(";", ",").split(","):
        if not part.strip():
            continue
        key, sep, val = part.partition("=") if "=" in part else part.partition(":")
        if not sep or not key.strip():
            raise ValueError(f"'{part.strip()}' is not name=value (e.g. easy=0.2, medium=0.1, hard=0.05)")
        try:
            out[key.strip()] = float(val)
        except ValueError:
            raise ValueError(f"'{part.strip()}': {val.strip()!r} is not a number") from None
    return out


def _parse_floats(v: Any) -> Any:
    """"1, 0.5" (a form's text box) -> [1.0, 0.5]; lists pass through, an empty text is None."""
    if not isinstance(v, str):
        return v
    parts = [p.strip() for p in v.replace(";", ",").split(",") if p.strip()]
    try:
        return [float(p) for p in parts] or None
    except ValueError:
        raise ValueError(f"'{v}' is not a list of numbers separated by commas (e.g. 1, 0.5)") from None


class DpoJob(TrainCommon):
    """DPO on (prompt, chosen, rejected); CogPO when `beta_column` or `pair_type_beta` give a β per pair."""

    ENTRY = "core.train.dpo:run"
    kind: Literal["train_dpo"] = "train_dpo"
    dataset: str = Field(description="preference pairs: prompt/instruction + chosen + rejected (workspace name or "
                         "file); with `rejected_from`, a dataset of teacher answers (output)")
    beta: float = Field(0.1, gt=0, le=10, description="β: how far the policy may move from the reference (larger = "
                        "closer); the β of every pair without its own")
    loss_type: DpoLoss = Field("sigmoid", description="sigmoid = DPO −log σ(β·Δ); ipo, hinge, robust, ... (TRL's "
                               "DPO loss family)")
    beta_column: str | None = Field(None, description="CogPO: the dataset column holding each pair's β (rows "
                                    "without a value use pair_type_beta, then beta)")
    pair_type_beta: dict[str, float] = Field(
        default_factory=dict, description="CogPO: β per pair type, e.g. easy=0.2, medium=0.1, hard=0.05 (a small "
        "preference gap wants a larger β)")
    pair_type_column: str = Field("pair_type", description="the column pair_type_beta looks the pair's type up in")
    rejected_from: str | None = Field(
        None, description="a dataset of student answers: pairs = (teacher answer in `dataset`, this), matched by id"
    )
    reference: str | None = Field(
        None, description="the reference model; default: the student itself (a frozen copy, or with LoRA the base "
        "with the adapter disabled)")
    precompute_ref_log_probs: bool = Field(
        False, description="score every pair with the reference once before training (no reference in memory "
        "while training)")
    learning_rate: float = Field(5e-7, gt=0)
    num_train_epochs: float = Field(1.0, gt=0)

    @field_validator("pair_type_beta", mode="before")
    @classmethod
    def _pair_betas(cls, v: Any) -> Any:
        v = _parse_mapping(v)
        if isinstance(v, dict):
            bad = [k for k, b in v.items() if not isinstance(b, (int, float)) or b <= 0]
            if bad:
                raise ValueError(f"β must be a number > 0 (pair type {', '.join(map(str, bad))})")
        return v

    @model_validator(mode="after")
    def _per_row_beta(self):
        if self.per_row_beta and self.loss_type in BATCH_LOSSES:
            raise ValueError(f"loss_type '{self.loss_type}' compares pairs across the batch; a β per pair "
                             "(beta_column / pair_type_beta) needs a per-pair loss such as sigmoid or ipo")
        return self

    @property
    def per_row_beta(self) -> bool:
        return bool(self.beta_column or self.pair_type_beta)


class RewardJob(TrainCommon):
    """A Bradley–Terry reward model on (chosen, rejected): −log σ(r(x, y_c) − r(x, y_r))."""

    ENTRY = "core.train.reward:run"
    kind: Literal["train_reward"] = "train_reward"
    dataset: str = Field(description="preference pairs: prompt/instruction + chosen + rejected (workspace name or "
                         "file); with `rejected_from`, a dataset of teacher answers (output)")
    rejected_from: str | None = Field(
        None, description="a dataset of student answers: pairs = (teacher answer in `dataset`, this), matched by id"
    )
    num_train_epochs: float = Field(1.0, gt=0)
    center_rewards_coefficient: float | None = Field(
        None, ge=0, description="pulls rewards towards mean zero (0.01 is usual); empty = off")


GrpoReward = Literal["math_verify", "format", "length", "reward_model", "judge"]


class GrpoJob(TrainCommon):
    """GRPO (or RLOO): the student samples a group of answers per prompt, rewards rank them within the group."""

    ENTRY = "core.train.grpo:run"
    kind: Literal["train_grpo"] = "train_grpo"
    dataset: str = Field(description="prompts (instruction or messages); math_verify also needs the reference "
                         "answer column")
    trainer: Literal["grpo", "rloo"] = Field(
        "grpo", description="grpo: group-normalised advantages (TRL GRPOTrainer); rloo: leave-one-out baseline "
        "(TRL RLOOTrainer; what EasyDistill 1.x's rl_ppo runs as, TRL has no PPO trainer any more)")
    reward_funcs: list[GrpoReward] = Field(
        default_factory=lambda: ["math_verify", "format"],
        description="math_verify: the answer matches the reference column; format: reasoning tags present; length: "
        "answer length within bounds; reward_model: a trained reward model; judge: an LLM judge's 0-9 score")
    reward_weights: list[float] | None = Field(
        None, description="one weight per reward function, in order (e.g. 1, 0.5); empty = all 1")
    answer_field: str | None = Field(
        None, description="column with the reference answer; default: the first of answer, gold, reference, "
        "solution, output")
    reasoning_tag: str = Field("think", description="format reward: the answer must be <tag>reasoning</tag> then "
                               "the answer")
    min_length: int = Field(0, ge=0, description="length reward: fewest answer tokens that earn the full reward")
    max_length_tokens: int = Field(
        256, ge=1, description="length reward: most answer tokens that earn the full reward (beyond: max/length)")
    reward_model: str | None = Field(None, description="reward_model reward: a trained reward model (train_reward)")
    judge: BackendSpec | None = Field(None, description="judge reward: the judging model or endpoint")
    judge_template: str | None = Field(
        None, description="judge prompt file with {question}, {response}, {reference}, ending in <score>N</score> "
        "(0-9); default: the built-in one")
    num_generations: int = Field(4, ge=2, le=64, description="group size: answers sampled per prompt")
    max_completion_length: int = Field(256, ge=1, description="longest answer generated (tokens)")
    temperature: float = Field(1.0, gt=0, le=2, description="sampling temperature of the group's answers")
    beta: float = Field(0.0, ge=0, le=1, description="KL weight to the reference (0 = no reference model loaded)")
    loss_type: Literal["grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo"] = Field(
        "dapo", description="how token losses are averaged (grpo only): dapo = over the batch's tokens (no length "
        "bias); grpo = per answer; dr_grpo = by a constant")
    use_vllm: bool = Field(False, description="generate with vLLM (colocated on the training GPU); needs a GPU "
                           "and vllm installed")
    learning_rate: float = Field(1e-6, gt=0)
    num_train_epochs: float = Field(1.0, gt=0)

    @field_validator("reward_weights", mode="before")
    @classmethod
    def _weights(cls, v: Any) -> Any:
        return _parse_floats(v)

    @model_validator(mode="after")
    def _rewards(self):
        if not self.reward_funcs:
            raise ValueError("reward_funcs: choose at least one of math_verify, format, length, reward_model, judge")
        if self.reward_weights is not None and len(self.reward_weights) != len(self.reward_funcs):
            raise ValueError(f"reward_weights: {len(self.reward_weights)} weight(s) for {len(self.reward_funcs)} "
                             f"reward function(s) ({', '.join(self.reward_funcs)}); give one each or none")
        if "reward_model" in self.reward_funcs and not self.reward_model:
            raise ValueError("reward_model: the reward_model reward needs a trained reward model")
        if "judge" in self.reward_funcs and self.judge is None:
            raise ValueError("judge: the judge reward needs a judging model or endpoint")
        if self.min_length > self.max_length_tokens:
            raise ValueError("min_length: larger than max_length_tokens")
        batch = self.per_device_train_batch_size * self.gradient_accumulation_steps
        if batch % self.num_generations:
            raise ValueError(f"num_generations: per_device_train_batch_size × gradient_accumulation_steps = {batch} "
                             f"must be a multiple of the group size {self.num_generations} (whole groups per step)")
        return self


class ExportJob(JobBase):
    """Merge a LoRA adapter into its base (or copy a full checkpoint) into workspace/models/<name>."""

    ENTRY = "core.models.export:run"
    kind: Literal["export"] = "export"
    source: str = Field(description="run output / checkpoint / adapter folder")
    base: str | None = Field(None, description="base model for an adapter; default: from adapter_config.json")
    output: str = Field(description="model name under workspace/models")


EvalMetric = Literal["exact_match", "math_verify", "judge_winrate", "kl", "perplexity", "rouge_l",
                     "reward_model"]


class EvaluateJob(JobBase):
    """Score a model on a held-out set: answer checks, judge win-rate vs a reference, KL/perplexity vs the teacher."""

    ENTRY = "core.eval.job:run"
    DEFAULT_GPUS = 1
    kind: Literal["evaluate"] = "evaluate"
    model: BackendSpec | None = Field(None, description="the model to evaluate (usually the student)")
    students: list[BackendSpec] = Field(
        default_factory=list, description="several models to evaluate in one go (after `model`, if given), each "
        "against the same reference: its answers and scores are computed once"
    )
    reference: BackendSpec | None = Field(
        None, description="the model to compare against (usually the teacher): its answers, the judge's other side, "
        "the distribution KL is measured to"
    )
    judge: BackendSpec | None = Field(None, description="the judge for judge_winrate (an instruct model or endpoint)")
    reward_model: str | None = Field(
        None, description="the reward_model metric: a trained reward model (a train_reward output) scoring each answer"
    )
    dataset: str = Field(description="held-out dataset (workspace name or file)")
    metrics: list[EvalMetric] = Field(
        default_factory=lambda: ["exact_match"],
        description="exact_match / math_verify: the answer against the gold column; judge_winrate: model vs reference, "
        "judged in both orders; kl: KL(reference ‖ model) on reference responses; perplexity: of the model on them; "
        "rouge_l: ROUGE-L F1 of the model's answer against them (character-level for Chinese); "
        "reward_model: the mean score a trained reward model gives the model's answers (and the reference's)",
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
        if self.model is None and not self.students:
            raise ValueError("model: choose the model to evaluate (or several under 'students')")
        if not m:
            raise ValueError("metrics: choose at least one of exact_match, math_verify, judge_winrate, kl, perplexity, "
                             "rouge_l, reward_model")
        if "judge_winrate" in m and (self.judge is None or self.reference is None):
            raise ValueError("judge_winrate needs both 'judge' (the judging model) and 'reference' (the other side)")
        if "kl" in m and self.reference is None:
            raise ValueError("kl needs 'reference': the teacher whose distribution the model is compared to")
        if "reward_model" in m and not self.reward_model:
            raise ValueError("reward_model: the reward_model metric needs a trained reward model (a train_reward job's "
                             "output)")
        if m & {"perplexity", "rouge_l"} and self.reference is None and self.responses == "reference":
            raise ValueError("responses: reference needs a 'reference' model; or use the dataset's output column")
        return self

    @property
    def evaluated(self) -> list[BackendSpec]:
        """The models scored against the reference, in order: `model`, then `students`."""
        return ([self.model] if self.model is not None else []) + list(self.students)


class ServeJob(JobBase):
    """A model server that holds its devices until stopped: transformers worker or managed vLLM."""

    ENTRY = "core.llm.serve:run"
    DEFAULT_GPUS = 1
    HOLDS_DEVICES: ClassVar[bool] = True  # until stopped: no two servers on one GPU (core.jobs.claims)
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
