"""The guided first distillation: Synthesize → Train → Compare, each stage's output feeding the next.

The stages are not a second copy of the recipe: their jobs are the `demo-cpu` preset's steps (label, sft, capture,
kd, evaluate) with the user's teacher, student and data put in, so the preset and the flow cannot drift apart.
Names of what each stage produces derive from the choices, so the next stage finds them without retyping paths.
Imports nothing heavy: the studio calls this directly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.config import PipelineJob, PipelineStep
from core.config.base import BackendSpec, JobBase
from core.endpoints import spec_for
from core.errors import UserError
from core.presets import find_preset
from core.workspace import Workspace

FLOW_PRESET = "demo-cpu"
HELDOUT_SHARE = 0.1


def slug(text: str) -> str:
    """A dataset/model name fragment from a model reference or path."""
    base = text.rstrip("/").split("/")[-1]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-").lower() or "model"


@dataclass(frozen=True)
class FlowPlan:
    teacher: BackendSpec  # a local model (transformers) or an endpoint (openai)
    student: str  # workspace model name, folder or hub id
    dataset: str  # workspace dataset of instructions

    @property
    def tag(self) -> str:
        return slug(self.teacher.endpoint.model or self.teacher.model) if self.teacher.endpoint else slug(
            self.teacher.model)

    # what each stage produces ---------------------------------------------------------------------------------
    @property
    def train_split(self) -> str:
        return f"{self.dataset}-train"

    @property
    def heldout_split(self) -> str:
        return f"{self.dataset}-heldout"

    @property
    def labelled(self) -> str:
        return f"{self.train_split}-{self.tag}"

    @property
    def heldout_labelled(self) -> str:
        return f"{self.heldout_split}-{self.tag}"

    @property
    def logits(self) -> str:
        return f"{self.labelled}-k10"

    @property
    def student_sft(self) -> str:
        return f"{slug(self.student)}-sft"

    @property
    def student_kd(self) -> str:
        return f"{slug(self.student)}-kd"


def _step(name: str) -> JobBase:
    preset = find_preset(FLOW_PRESET)
    for s in preset.config.steps:
        if s.name == name:
            return s.job
    raise KeyError(f"preset {FLOW_PRESET} has no step {name!r}")


def _teacher(base: BackendSpec, plan: FlowPlan) -> BackendSpec:
    """The user's teacher, keeping the preset's batching and dtype for a local one."""
    if plan.teacher.type == "openai":
        return plan.teacher
    return base.model_copy(update={"type": plan.teacher.type, "model": plan.teacher.model})


def prepare_data(plan: FlowPlan, ws: Workspace, seed: int = 42) -> tuple[int, int]:
    """Split the chosen instructions into train and held-out sets (fast, in-process: no model involved)."""
    from core.data.ops import split_dataset

    _, n_train, _, n_eval = split_dataset(ws, plan.dataset, HELDOUT_SHARE, seed, plan.train_split,
                                          plan.heldout_split)
    return n_train, n_eval


def synthesize_job(plan: FlowPlan) -> PipelineJob:
    """Stage 1: the teacher answers the training and the held-out instructions."""
    steps = []
    for name, src, out in (("label", plan.train_split, plan.labelled),
                           ("label-heldout", plan.heldout_split, plan.heldout_labelled)):
        base = _step(name)
        job = base.model_copy(update={"input": src, "output": out, "teacher": _teacher(base.teacher, plan)})
        steps.append(PipelineStep(name=name, job=job))
    return PipelineJob(name=f"synthesize {plan.dataset} with {plan.tag}", steps=steps)


def train_job(plan: FlowPlan, logit_kd: bool) -> PipelineJob:
    """Stage 2: SFT on the teacher's answers, then (same tokenizer only) white-box KD from its top-k log-probs."""
    sft = _step("sft").model_copy(update={"student": plan.student, "dataset": plan.labelled,
                                          "eval_dataset": plan.heldout_labelled, "output": plan.student_sft})
    steps = [PipelineStep(name="sft", job=sft)]
    if logit_kd:
        base = _step("capture")
        capture = base.model_copy(update={"input": plan.labelled, "output": plan.logits,
                                          "teacher": _teacher(base.teacher, plan)})
        kd = _step("kd").model_copy(update={
            "student": plan.student_sft, "teacher": plan.teacher.model, "dataset": plan.labelled,
            "eval_dataset": plan.heldout_labelled, "logits": plan.logits, "output": plan.student_kd})
        steps += [PipelineStep(name="capture", job=capture), PipelineStep(name="kd", job=kd)]
    return PipelineJob(name=f"train {slug(plan.student)} on {plan.labelled}", steps=steps)


def final_student(plan: FlowPlan, logit_kd: bool) -> str:
    return plan.student_kd if logit_kd else plan.student_sft


def compare_job(plan: FlowPlan, logit_kd: bool) -> PipelineJob:
    """Stage 3 (besides the chat): score the student before and after on the held-out answers of the teacher."""
    base = _step("eval-kd")
    metrics = list(base.metrics) if plan.teacher.type != "openai" else ["perplexity"]
    reference = plan.teacher if plan.teacher.type != "openai" else None
    steps = []
    for name, model in (("before", plan.student), ("after", final_student(plan, logit_kd))):
        job = base.model_copy(update={"model": base.model.model_copy(update={"model": model}),
                                      "reference": reference and _teacher(base.reference, plan),
                                      "dataset": plan.heldout_labelled,
                                      "metrics": metrics})
        steps.append(PipelineStep(name=f"eval-{name}", job=job))
    return PipelineJob(name=f"evaluate {slug(plan.student)} before/after", steps=steps)


# ------------------------------------------------------------------------------------------- for the Start tab

DEMO_DATASET = "demo-instructions"


class FlowError(UserError, ValueError):
    """The guided flow's choices cannot make a plan (one is missing, or teacher and student are the same)."""


def make_plan(teacher: str | None, student: str | None, dataset: str | None, ws: Workspace) -> FlowPlan:
    """The user's three choices, checked: each missing one is named."""
    missing = [what for what, v in (("teacher", teacher), ("student", student), ("data", dataset)) if not v]
    if missing:
        raise FlowError("choose " + ", ".join(missing) + " first")
    if teacher == student:
        raise FlowError("teacher and student are the same model: pick a smaller student (or derive one)")
    return FlowPlan(spec_for(teacher, ws), student, dataset)


def logit_kd_possible(plan: FlowPlan, ws: Workspace) -> tuple[bool, str]:
    """White-box KD needs the teacher's logits and a shared tokenizer; otherwise the flow trains by SFT only."""
    if plan.teacher.type == "openai":
        return False, "the teacher is an API endpoint: no logits, so training is black-box (SFT) only"
    from core.models.registry import check_logit_kd, resolve_model

    try:
        compat = check_logit_kd(resolve_model(plan.teacher.model, ws), resolve_model(plan.student, ws))
    except (OSError, ValueError) as e:
        return False, f"could not compare tokenizers ({e}); training is SFT only"
    return compat.ok, compat.message


def ensure_demo_dataset(ws: Workspace) -> str:
    """Import the bundled demo instructions once, as dataset `demo-instructions`."""
    from core.data.store import dataset_path, import_file

    if not dataset_path(ws, DEMO_DATASET).exists():
        from core.presets import BUNDLED

        import_file(ws, BUNDLED.parent / "assets" / "demo" / "instructions.json", DEMO_DATASET,
                    created_by="bundled demo")
    return DEMO_DATASET
