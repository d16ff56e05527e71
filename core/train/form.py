"""The training form: SFT (black-box KD), white-box KD from a teacher logit cache, on-policy KD, DPO / CogPO, reward
model, GRPO / RLOO.

One form, six job classes: `method` picks the config (`config_for`), and fields that only one method uses carry
its kind. White-box KD without a cache (or with "capture first" ticked) becomes one pipeline job, capture → train_kd,
so the teacher's logits are written at the KD temperature and the trainer reads exactly that cache. Two exceptions
capture nothing: several caches typed under `teachers` (multi-teacher KD), and a teacher whose tokenizer is not the
student's (the check's method `uld`: the KD job runs the teacher itself, cross-tokenizer KD).

Per-method defaults are the configs' own: a knob whose default differs between the method configs (learning rate,
epochs, accumulation) is reset when the method changes; LoRA multiplies the learning rate by `LORA_LR_FACTOR`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from core.config.base import JobBase
from core.config.data_jobs import CaptureJob
from core.config.registry import PipelineJob, PipelineStep
from core.config.train import DpoJob, GrpoJob, KdJob, OnPolicyKdJob, RewardJob, SftJob
from core.endpoints import ENDPOINT_PREFIX, spec_for
from core.forms.fields import FieldSpec, coerce, field, locate
from core.forms.form import FormError, JobForm
from core.models.registry import KD_ULD
from core.pickers import local_model_names, reward_model_choices
from core.workspace import Workspace

METHODS: dict[str, type[JobBase]] = {
    "sft": SftJob, "kd": KdJob, "onpolicy": OnPolicyKdJob, "dpo": DpoJob, "reward": RewardJob, "grpo": GrpoJob,
}
METHOD_OF_KIND = {cls.model_fields["kind"].default: m for m, cls in METHODS.items()}
LORA_LR_FACTOR = 10.0  # an adapter has far fewer weights: it wants a larger step than full fine-tuning
GPU_CHOICES = ("auto", "cpu", "1", "2", "4", "8")
# What TRL's `lr_scheduler_type` most often is; the widget accepts any other name transformers knows.
SCHEDULERS = ("cosine", "linear", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial")
CAPTURE_STEP, TRAIN_STEP = "capture", "train"

KD, OP = ("train_kd",), ("train_onpolicy",)
DPO, RM, RL = ("train_dpo",), ("train_reward",), ("train_grpo",)
CUSTOM = {"gradio": {"allow_custom_value": True}}
LOCAL_MODELS = {"choices_of": local_model_names}  # training loads the weights itself: no endpoints in its pickers
REWARD_MODELS = {"choices_of": reward_model_choices}  # reward heads only (they are left out of every other picker)

FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec(name="method", path="", widget="choice", choices=tuple(METHODS), default="sft", extra={"radio": True},
              help="sft: learn the teacher's written answers; kd: also its token distributions (logit cache); "
                   "onpolicy: the student writes, the teacher scores; dpo: prefer chosen over rejected answers "
                   "(CogPO with a β per pair); reward: a reward model on pairs; grpo: RL from rewards"),
    field(SftJob, "student", widget="model", extra=LOCAL_MODELS),
    field(KdJob, "teacher", widget="model", kinds=KD + OP, extra=LOCAL_MODELS),
    field(SftJob, "dataset", widget="dataset"),
    field(DpoJob, "rejected_from", widget="dataset", kinds=DPO + RM, required=False, optional=True),
    field(SftJob, "output"),
    field(SftJob, "eval_split", default=0.05, maximum=0.3),
    field(SftJob, "gpus", widget="choice", choices=GPU_CHOICES, extra=CUSTOM),
    # white-box KD
    FieldSpec(name="capture_first", path="", widget="bool", default=True, kinds=KD, group="kd",
              help="capture the teacher's top-k logits, then train, as one pipeline job"),
    field(KdJob, "logits", widget="cache", kinds=KD, group="kd", required=False, optional=True),
    field(KdJob, "teachers", widget="text", default="", kinds=KD, group="kd"),
    replace(field(CaptureJob, "top_k", kinds=KD, group="kd"), path=""),  # the capture step's; no key of KdJob
    field(KdJob, "kd_ratio", kinds=KD, group="kd"),
    field(KdJob, "temperature", kinds=KD, group="kd"),
    field(KdJob, "divergence", kinds=KD, group="kd"),
    field(KdJob, "beta", kinds=KD, group="kd"),
    field(KdJob, "alpha", kinds=KD, group="kd"),
    field(KdJob, "support", kinds=KD, group="kd"),
    field(KdJob, "uld_hybrid", kinds=KD, group="kd"),
    # on-policy KD
    field(OnPolicyKdJob, "trainer", kinds=OP, group="onpolicy"),
    field(OnPolicyKdJob, "lmbda", kinds=OP, group="onpolicy"),
    field(OnPolicyKdJob, "beta", name="op_beta", kinds=OP, group="onpolicy"),
    field(OnPolicyKdJob, "temperature", name="op_temperature", kinds=OP, group="onpolicy"),
    field(OnPolicyKdJob, "max_new_tokens", kinds=OP, group="onpolicy"),
    # DPO / CogPO
    field(DpoJob, "beta", name="dpo_beta", kinds=DPO, group="dpo"),
    field(DpoJob, "loss_type", name="dpo_loss_type", kinds=DPO, group="dpo"),
    field(DpoJob, "reference", widget="model", kinds=DPO, group="dpo", optional=True, extra=LOCAL_MODELS),
    field(DpoJob, "precompute_ref_log_probs", kinds=DPO, group="dpo"),
    field(DpoJob, "pair_type_beta", widget="text", default="", kinds=DPO, group="cogpo"),
    field(DpoJob, "pair_type_column", kinds=DPO, group="cogpo"),
    field(DpoJob, "beta_column", kinds=DPO, group="cogpo"),
    # reward model
    field(RewardJob, "center_rewards_coefficient", kinds=RM, group="reward"),
    # GRPO / RLOO
    field(GrpoJob, "trainer", name="rl_trainer", kinds=RL, group="grpo"),
    field(GrpoJob, "reward_funcs", kinds=RL, group="grpo"),
    field(GrpoJob, "reward_weights", kinds=RL, group="grpo"),
    field(GrpoJob, "num_generations", kinds=RL, group="grpo"),
    field(GrpoJob, "max_completion_length", kinds=RL, group="grpo"),
    field(GrpoJob, "temperature", name="rl_temperature", kinds=RL, group="grpo"),
    field(GrpoJob, "beta", name="rl_beta", kinds=RL, group="grpo"),
    field(GrpoJob, "loss_type", name="rl_loss_type", kinds=RL, group="grpo"),
    field(GrpoJob, "use_vllm", kinds=RL, group="grpo"),
    field(GrpoJob, "answer_field", kinds=RL, group="rewards"),
    field(GrpoJob, "reasoning_tag", kinds=RL, group="rewards"),
    field(GrpoJob, "min_length", kinds=RL, group="rewards"),
    field(GrpoJob, "max_length_tokens", kinds=RL, group="rewards"),
    field(GrpoJob, "reward_model", widget="model", kinds=RL, group="rewards", optional=True, extra=REWARD_MODELS),
    field(GrpoJob, "judge", widget="model", kinds=RL, group="rewards", optional=True),
    field(GrpoJob, "judge_template", kinds=RL, group="rewards"),
    # LoRA
    FieldSpec(name="use_lora", path="", widget="bool", default=False, group="lora",
              help="train a LoRA adapter instead of all weights"),
    field(SftJob, "lora.r", group="lora"),
    field(SftJob, "lora.alpha", group="lora"),
    field(SftJob, "lora.dropout", group="lora"),
    field(SftJob, "lora.target_modules", name="lora_targets", widget="text", group="lora"),
    # hyper-parameters
    field(SftJob, "num_train_epochs", group="hp"),
    field(SftJob, "max_steps", group="hp"),
    field(SftJob, "per_device_train_batch_size", group="hp"),
    field(SftJob, "gradient_accumulation_steps", group="hp"),
    field(SftJob, "learning_rate", group="hp"),
    field(SftJob, "weight_decay", group="hp"),
    field(SftJob, "warmup_ratio", group="hp"),
    field(SftJob, "lr_scheduler_type", widget="choice", choices=SCHEDULERS, group="hp", extra=CUSTOM),
    field(SftJob, "max_length", group="hp"),
    field(SftJob, "save_steps", group="hp"),
    field(SftJob, "save_total_limit", group="hp"),
    field(SftJob, "logging_steps", group="hp"),
    field(SftJob, "precision", group="hp"),
    field(SftJob, "gradient_checkpointing", group="hp"),
    # multi-device layout (core.jobs.layouts)
    field(SftJob, "layout", group="layout"),
    field(SftJob, "processes", group="layout"),
    field(SftJob, "offload", group="layout"),
    field(SftJob, "seed", group="hp"),
)


def _differs_by_method(f: FieldSpec) -> bool:
    return bool(f.path) and not f.kinds and len({repr(locate(cls, f.path)[1]) for cls in METHODS.values()}) > 1


# The knobs a method switch resets: those whose config default is not the same for every method.
PER_METHOD: tuple[str, ...] = tuple(f.name for f in FIELDS if _differs_by_method(f))


def method_defaults(method: str, use_lora: bool = False) -> dict[str, Any]:
    """The form values a method starts from (its config's defaults of the `PER_METHOD` knobs; LoRA's learning rate)."""
    cls = METHODS.get(method, SftJob)
    specs = {f.name: f for f in FIELDS}
    out = {name: locate(cls, specs[name].path)[1] for name in PER_METHOD}
    if use_lora and "learning_rate" in out:
        out["learning_rate"] = out["learning_rate"] * LORA_LR_FACTOR
    return out


def gpus_request(value: Any) -> str | int | list[int]:
    """The Devices picker's text as a `gpus` request: auto / cpu, a count ("2"), or indices ("0,1")."""
    text = str(value if value is not None else "").strip() or "auto"
    if text.isdigit():
        return int(text)
    if "," in text:
        try:
            return [int(p) for p in text.split(",") if p.strip()]
        except ValueError:
            raise FormError("auto, cpu, a GPU count or GPU indices such as 0,1", "gpus", code="gpus_form") from None
    return text


def gpus_text(request: Any) -> str:
    """A `gpus` request as the Devices picker shows it (the inverse of `gpus_request`)."""
    return ",".join(map(str, request)) if isinstance(request, list) else str(request)


def capture_cache_name(dataset: str, teacher: str, top_k: int) -> str:
    """The logit cache a capture step writes for this data, teacher and k (the capture job's own naming rule)."""
    from core.train.capture import default_cache_name

    return default_cache_name(dataset, teacher, top_k)


class TrainingForm(JobForm):
    config = SftJob
    fields = FIELDS

    # ------------------------------------------------------------------------------------------ values → config
    def config_for(self, values: dict[str, Any]) -> type[JobBase]:
        method = values.get("method") or "sft"
        if method not in METHODS:
            raise FormError(f"choose one of {', '.join(METHODS)}", "method", code="choose_one",
                            choices=", ".join(METHODS))
        return METHODS[method]

    def captures(self, values: dict[str, Any]) -> bool:
        """Whether a KD form runs capture → train (ticked, or no logit cache chosen; never with several teachers'
        caches). `to_data` also leaves out the capture of a cross-tokenizer pair."""
        return values.get("method") == "kd" and not str(values.get("teachers") or "").strip() and (
            bool(values.get("capture_first")) or not str(values.get("logits") or "").strip())

    def kd_check(self, ws: Workspace, values: dict[str, Any]):
        """The tokenizer check of the form's teacher and student (`Compatibility`: its message says how KD will
        distil), or None when either is not chosen or not a local model."""
        from core.llm.base import BackendError
        from core.models.registry import check_logit_kd, resolve_model

        teacher, student = (str(values.get(k) or "").strip() for k in ("teacher", "student"))
        if not teacher or not student or teacher.startswith(ENDPOINT_PREFIX):
            return None
        try:
            return check_logit_kd(resolve_model(teacher, ws), resolve_model(student, ws))
        except (BackendError, OSError, ValueError):
            return None

    def to_data(self, ws: Workspace, values: dict[str, Any]) -> dict[str, Any]:
        """The train job's data: the base mapping, then LoRA on/off, the device request, the logits of a capture."""
        kind = self.kind_of(values)
        needed = {"student": "the student model", "dataset": "a training dataset"}
        if kind in KD + OP:
            needed["teacher"] = "the teacher model"
        for name, what in needed.items():
            value = str(values.get(name) or "").strip()
            if not value:
                raise FormError(f"choose {what}", name, code="required")
            if name != "dataset" and value.startswith(ENDPOINT_PREFIX):
                raise FormError("training loads the model itself: choose a workspace model, folder or hub id, "
                                "not an endpoint", name, code="train_needs_local_model")
        data = super().to_data(ws, values)
        if values.get("use_lora"):
            targets = str(data["lora"].get("target_modules") or "all-linear").strip()
            data["lora"]["target_modules"] = "all-linear" if targets in ("", "all-linear") else [
                t.strip() for t in targets.split(",") if t.strip()]
        else:
            data.pop("lora", None)
        data["gpus"] = gpus_request(values.get("gpus"))
        if kind in KD and data.get("logits") is None:  # the picker's empty choice: no cache (KdJob's default "")
            data.pop("logits", None)
        if data.get("output") and not data.get("name"):
            data["name"] = data["output"]
        if self.captures(values):
            check = self.kd_check(ws, values)
            cross = check is not None and check.method == KD_ULD
            data["logits"] = "" if cross else capture_cache_name(data["dataset"], data["teacher"], self._top_k(values))
        return data

    def _top_k(self, values: dict[str, Any]) -> int:
        spec = next(f for f in self.fields if f.name == "top_k")
        k = coerce(spec, values.get("top_k"))
        if k is None or not spec.minimum <= k <= spec.maximum:
            raise FormError(f"between {spec.minimum:.0f} and {spec.maximum:.0f}", "top_k", code="between",
                            low=f"{spec.minimum:.0f}", high=f"{spec.maximum:.0f}")
        return int(k)

    def build_job(self, ws: Workspace, values: dict[str, Any], confine: bool = True) -> JobBase:
        """The train job, or for KD without a ready cache the pipeline capture → train_kd (see module doc)."""
        train = super().build_job(ws, values, confine)
        if not self.captures(values) or not getattr(train, "logits", ""):  # no cache to write: cross-tokenizer KD
            return train
        assert isinstance(train, KdJob)
        capture = CaptureJob(
            input=train.dataset, output=train.logits, teacher=spec_for(train.teacher, ws),
            top_k=self._top_k(values), temperature=train.temperature, max_length=train.max_length,
            student=train.student, gpus=train.gpus,
        )
        return PipelineJob(name=train.name, gpus=train.gpus, steps=[
            PipelineStep(name=CAPTURE_STEP, job=capture), PipelineStep(name=TRAIN_STEP, job=train)])

    # ------------------------------------------------------------------------------------------ config → values
    def values_of(self, job: JobBase, ws: Workspace) -> dict[str, Any]:
        """The form values of a train_* job, or of a capture → train_kd pipeline (capture ticked, its k)."""
        capture, train = _split(job)
        values = super().values_of(train, ws)
        for f in self.fields:  # a knob another method uses keeps its default, not this job's same-named value
            if f.path and not f.shown_for(train.kind):
                values[f.name] = f.default
        lora = getattr(train, "lora", None)
        targets = lora.target_modules if lora else values["lora_targets"]
        values.update(
            method=METHOD_OF_KIND[train.kind], use_lora=lora is not None, gpus=gpus_text(train.gpus),
            lora_targets=targets if isinstance(targets, str) else ", ".join(targets),
            capture_first=capture is not None, top_k=capture.top_k if capture else self.defaults()["top_k"],
        )
        if isinstance(train, KdJob):
            values["logits"] = "" if capture else train.logits
            values["teachers"] = ", ".join(f"{t.cache}={t.weight:g}" for t in train.teachers)
        if isinstance(train, DpoJob):  # the text boxes of a mapping and a list
            values["pair_type_beta"] = ", ".join(f"{k}={v:g}" for k, v in train.pair_type_beta.items())
        if isinstance(train, GrpoJob):
            values["reward_weights"] = ", ".join(f"{w:g}" for w in train.reward_weights or [])
        return values

    def kinds(self) -> tuple[str, ...]:
        return (*super().kinds(), "pipeline")

    @staticmethod
    def preview(ws: Workspace, job: JobBase) -> tuple[str, str]:
        """The YAML and command, and under the YAML (as comments, so it stays valid YAML) the launch files its
        layout writes into the run folder — or why the layout will be refused."""
        text, cli = JobForm.preview(ws, job)
        return text + layout_preview(_split(job)[1]), cli

    def accepts(self, job: JobBase) -> bool:
        try:
            _split(job)
        except FormError:
            return False
        return True


def _split(job: JobBase) -> tuple[CaptureJob | None, JobBase]:
    """(capture step or None, train job) of a job this form can show; FormError for any other job."""
    if isinstance(job, PipelineJob):
        kinds = [s.job.kind for s in job.steps]
        if kinds == ["capture", "train_kd"]:
            return job.steps[0].job, job.steps[1].job  # type: ignore[return-value]
        raise FormError(f"a pipeline of {' → '.join(kinds)} is not a training form's capture → train_kd",
                        code="not_training_job", kind=" → ".join(kinds))
    if job.kind not in METHOD_OF_KIND:
        raise FormError(f"a {job.kind} job is not a training job", code="not_training_job", kind=job.kind)
    return None, job


def _preview_devices(train: JobBase) -> list[str]:
    """The devices the job will get, as far as the form can tell (gpus: auto = one GPU, or all for a layout)."""
    gpus = train.gpus
    if gpus == "cpu":
        return ["cpu"]
    if isinstance(gpus, list):
        return [f"cuda:{i}" for i in gpus]
    from core.devices import discover_gpus  # nvidia-smi (EDS_FAKE_GPUS in tests), never torch

    have = len(discover_gpus())
    want = min(have, gpus if isinstance(gpus, int) else train.auto_gpus())  # type: ignore[attr-defined]
    return [f"cuda:{i}" for i in range(want)] or ["cpu"]


def layout_preview(train: JobBase) -> str:
    """`# launch: ...` comment lines: the plan, then each file it writes (accelerate config, DeepSpeed config)."""
    from core.jobs import layouts

    try:
        plan = layouts.plan_for(train, _preview_devices(train), cuda=True)
    except layouts.LayoutRefused as e:
        return f"\n# launch: refused: {e}\n"
    if plan is None or plan.launcher == "none":
        return ""
    lines = [f"# launch: {plan.describe()} ({plan.launcher}); written to <run folder>/{layouts.LAUNCH_DIR}/"]
    for name, body in layouts.render(plan, Path("<run folder>") / layouts.LAUNCH_DIR).items():
        lines.append(f"# --- {name}")
        lines += [f"#   {line}" for line in body.rstrip("\n").splitlines()]
    return "\n" + "\n".join(lines) + "\n"


FORM = TrainingForm()


def build_job(ws: Workspace, values: dict[str, Any], confine: bool = True) -> JobBase:
    """The form's values as a train_sft / _kd / _onpolicy / _dpo / _reward / _grpo job or a capture → train_kd
    pipeline."""
    return FORM.build_job(ws, values, confine)
