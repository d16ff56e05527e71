"""The guided first distillation: Synthesize → Train → Compare, each stage's output feeding the next.

The stages are not a second copy of the recipe: their jobs are the `demo-cpu` preset's steps (label, capture, kd,
evaluate) with the user's teacher, student and data put in, so the preset and the flow cannot drift apart. Where
white-box KD cannot run (an API teacher, another tokenizer) ② is one SFT step made from the preset's kd step's
training settings, for SFT_STEP_SHARE of its steps.
Names of what each stage produces derive from the choices, so the next stage finds them without retyping paths.
"Rows to use" takes the first rows of the seeded train / held-out split (so the held-out rows never change with it),
names what it produces after the count, and sets the training steps (about the demo's EPOCHS passes, at most the
preset's). The time such a choice implies comes from `estimate`, built on the demo preset's measured stage times.
A stopped ② is resumed, not restarted: `train_offer` says what pressing ② again should do.
Imports nothing heavy: the studio calls this directly.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import PipelineJob, PipelineStep
from core.config.base import BackendSpec, JobBase
from core.config.train import SftJob
from core.endpoints import spec_for
from core.errors import UserError
from core.presets import find_preset
from core.workspace import Workspace

FLOW_PRESET = "demo-cpu"
HELDOUT_SHARE = 0.1
MIN_ROWS = 2  # one to train on, one held out
# passes over the training rows: about the preset's kd step, 300 steps of 4 rows over the demo's 265 training rows
# (4.53 passes); the demo's rows get the whole measured recipe (training_steps caps at the preset's steps)
EPOCHS = 4.55
MIN_STEPS = 10  # a few rows still get enough optimizer steps to move the student
# SFT (no white-box KD possible) runs this share of the KD step's steps: SFT overfits past ~2 passes where KD keeps
# learning. On the demo (bench/demo_sweep.py, 4 label seeds, held-out KL / perplexity): SFT 150 steps 1.668 / 17.7,
# SFT 300 steps 2.130 / 27.0; KD 300 steps 1.317 / 13.1.
SFT_STEP_SHARE = 0.5


def rows_split(rows: int) -> tuple[int, int]:
    """(training, held-out) of `rows`: HELDOUT_SHARE held out, at least one on each side when there are two."""
    heldout = min(max(1, round(rows * HELDOUT_SHARE)), rows - 1) if rows > 1 else 0
    return rows - heldout, heldout


def slug(text: str) -> str:
    """A dataset/model name fragment from a model reference or path."""
    base = text.rstrip("/").split("/")[-1]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-").lower() or "model"


@dataclass(frozen=True)
class FlowPlan:
    teacher: BackendSpec  # a local model (transformers) or an endpoint (openai)
    student: str  # workspace model name, folder or hub id
    dataset: str  # workspace dataset of instructions
    rows: int | None = None  # rows to use (train + held out); None = all

    @property
    def heldout_rows(self) -> int | None:
        """Held-out rows labelled (None: the whole held-out split)."""
        return None if self.rows is None else rows_split(self.rows)[1]

    @property
    def train_rows(self) -> int | None:
        """Training rows labelled (None: the whole training split)."""
        return None if self.rows is None else rows_split(self.rows)[0]

    @property
    def _scope(self) -> str:
        return "" if self.rows is None else f"-{self.rows}rows"

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
        return f"{self.train_split}{self._scope}-{self.tag}"

    @property
    def heldout_labelled(self) -> str:
        return f"{self.heldout_split}{self._scope}-{self.tag}"

    @property
    def logits(self) -> str:
        return f"{self.labelled}-k10"

    @property
    def student_sft(self) -> str:
        return f"{slug(self.student)}{self._scope}-sft"

    @property
    def student_kd(self) -> str:
        return f"{slug(self.student)}{self._scope}-kd"


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
    """Stage 1: the teacher answers the training and the held-out instructions (the first `rows` of them)."""
    steps = []
    for name, src, out, limit in (("label", plan.train_split, plan.labelled, plan.train_rows),
                                  ("label-heldout", plan.heldout_split, plan.heldout_labelled, plan.heldout_rows)):
        base = _step(name)
        job = base.model_copy(update={"input": src, "output": out, "teacher": _teacher(base.teacher, plan),
                                      "limit": limit})
        if base.capture:  # top-k recorded while labelling: a local teacher only, into the cache ② reads
            job.capture = base.capture.model_copy(update={"output": plan.logits}) if (
                plan.teacher.type == "transformers") else None
        steps.append(PipelineStep(name=name, job=job))
    return PipelineJob(name=f"synthesize {plan.dataset} with {plan.tag}", steps=steps)


def training_steps(train_rows: int | None, preset_steps: int, share: float = 1.0) -> int:
    """Optimizer steps for `train_rows` labelled rows: about EPOCHS passes, at least MIN_STEPS, at most the preset's
    (None: the preset's); `share` of that for SFT (SFT_STEP_SHARE). The demo's 265 training rows get the preset's
    300 (SFT: 150)."""
    steps = preset_steps
    if train_rows:
        kd = _step("kd")
        batch = kd.per_device_train_batch_size * kd.gradient_accumulation_steps
        steps = min(preset_steps, max(MIN_STEPS, math.ceil(train_rows * EPOCHS / batch)))
    return steps if share == 1.0 else max(MIN_STEPS, math.ceil(steps * share))


def _scaled(job: JobBase, train_rows: int | None, share: float = 1.0) -> JobBase:
    """A preset training step with its steps (and evaluation / checkpoint intervals) fitted to the rows (and to
    `share` of them)."""
    steps = training_steps(train_rows, job.max_steps, share)
    if steps == job.max_steps:
        return job
    every = max(1, min(job.eval_steps or steps, steps // 4))  # about four evaluations, a checkpoint every second one
    return job.model_copy(update={"max_steps": steps, "eval_steps": every, "save_steps": min(job.save_steps,
                                                                                               2 * every)})


def train_job(plan: FlowPlan, logit_kd: bool, train_rows: int | None = None) -> PipelineJob:
    """Stage 2: (same tokenizer, local teacher) white-box KD of the student from the teacher's top-k log-probs, as
    the preset's capture + kd steps; otherwise SFT on the teacher's answers, one step with the kd step's training
    settings for SFT_STEP_SHARE of its steps. `train_rows`: how many labelled rows there are (sets the steps; None:
    the preset's)."""
    data = {"student": plan.student, "dataset": plan.labelled, "eval_dataset": plan.heldout_labelled}
    if not logit_kd:
        kd = _step("kd")
        sft = SftJob(**kd.model_dump(include=set(SftJob.model_fields) - {"kind"}, exclude_unset=True))
        sft = _scaled(sft, train_rows, SFT_STEP_SHARE).model_copy(update={**data, "output": plan.student_sft})
        return PipelineJob(name=train_job_name(plan), steps=[PipelineStep(name="sft", job=sft)])
    base = _step("capture")
    capture = base.model_copy(update={"input": plan.labelled, "output": plan.logits,
                                      "teacher": _teacher(base.teacher, plan)})
    kd = _scaled(_step("kd"), train_rows).model_copy(update={
        **data, "teacher": plan.teacher.model, "logits": plan.logits, "output": plan.student_kd})
    return PipelineJob(name=train_job_name(plan), steps=[PipelineStep(name="capture", job=capture),
                                                         PipelineStep(name="kd", job=kd)])


def train_job_name(plan: FlowPlan) -> str:
    """The name ② gives its job: how a later press of ② (another page, after a restart) finds it again."""
    return f"train {slug(plan.student)} on {plan.labelled}"


def final_student(plan: FlowPlan, logit_kd: bool) -> str:
    """The model ② writes: the KD student, or the SFT one where white-box KD cannot run."""
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


def make_plan(teacher: str | None, student: str | None, dataset: str | None, ws: Workspace,
              rows: float | None = None) -> FlowPlan:
    """The user's choices, checked: each missing one is named. `rows` at or above the dataset's size means all."""
    missing = [what for what, v in (("teacher", teacher), ("student", student), ("data", dataset)) if not v]
    if missing:
        raise FlowError("choose " + ", ".join(missing) + " first")
    if teacher == student:
        raise FlowError("teacher and student are the same model: pick a smaller student (or derive one)")
    n = int(rows) if rows else None
    if n is not None and n < MIN_ROWS:
        raise FlowError(f"rows to use: at least {MIN_ROWS} (one to train on, one held out)")
    total = dataset_rows(ws, dataset)
    if n is not None and total is not None and n >= total:
        n = None
    return FlowPlan(spec_for(teacher, ws), student, dataset, n)


def logit_kd_possible(plan: FlowPlan, ws: Workspace) -> tuple[bool, str]:
    """White-box KD needs the teacher's logits and a shared tokenizer; otherwise the flow trains by SFT only. The
    why is a `core.said.Said` (English, with the code the studio words it by)."""
    from core.said import Said

    if plan.teacher.type == "openai":
        return False, Said("the teacher is an API endpoint: no logits, so training is black-box (SFT) only",
                           "start.why_endpoint")
    from core.models.registry import check_logit_kd, resolve_model

    try:
        compat = check_logit_kd(resolve_model(plan.teacher.model, ws), resolve_model(plan.student, ws))
    except (OSError, ValueError) as e:
        return False, Said(f"could not compare tokenizers ({e}); training is SFT only", "start.why_no_compare",
                           {"error": str(e)})
    return compat.ok, Said(compat.message, f"models.compat_{compat.code}" if compat.code else None, compat.params)


def ensure_demo_dataset(ws: Workspace) -> str:
    """Import the bundled demo instructions once, as dataset `demo-instructions`."""
    from core.data.store import dataset_path, import_file

    if not dataset_path(ws, DEMO_DATASET).exists():
        from core.presets import BUNDLED

        import_file(ws, BUNDLED.parent / "assets" / "demo" / "instructions.json", DEMO_DATASET,
                    created_by="bundled demo")
    return DEMO_DATASET


def dataset_rows(ws: Workspace, name: str | None) -> int | None:
    """Rows of a workspace dataset (its sidecar's count, else its lines); None when it cannot be read."""
    from core.data.io import count_lines
    from core.data.store import dataset_path, read_meta

    if not name:
        return None
    try:
        meta = read_meta(ws, name)
        if isinstance(meta.get("rows"), int) and not meta.get("growing"):
            return meta["rows"]
        path = dataset_path(ws, name)
        return count_lines(path) if path.is_file() else None
    except (UserError, OSError, ValueError):
        return None


# ------------------------------------------------------------------------------------------- the default pair


@dataclass(frozen=True)
class DefaultPair:
    teacher: str | None
    student: str | None
    only: str | None = None  # the one model there is (then it is the teacher and no student is chosen)


def default_pair(ws: Workspace) -> DefaultPair:
    """What a fresh page proposes: the offline demo pair when it is there; else the largest local model teaches and
    the largest smaller one (one sharing its vocabulary first: white-box KD needs it) learns. Never the same model:
    with one local model and an endpoint, the endpoint teaches; with one model alone, no student is proposed."""
    from core.endpoints import ENDPOINT_PREFIX
    from core.models.demo import STUDENT_NAME, TEACHER_NAME
    from core.models.registry import list_models

    models = list_models(ws)
    local = sorted((m for m in models if m.source != "endpoint" and not m.is_adapter and m.head is None),
                   key=lambda m: (-(m.params or 0), m.name))
    endpoints = [f"{ENDPOINT_PREFIX}{m.name}" for m in models if m.source == "endpoint"]
    names = {m.name for m in local}
    if {TEACHER_NAME, STUDENT_NAME} <= names:
        return DefaultPair(TEACHER_NAME, STUDENT_NAME)
    if len(local) < 2:
        if local and endpoints:
            return DefaultPair(endpoints[0], local[0].name)
        if local:
            return DefaultPair(local[0].name, None, only=local[0].name)
        return DefaultPair(endpoints[0] if endpoints else None, None)
    teacher, rest = local[0], local[1:]

    def rank(m: Any) -> tuple:
        smaller = (m.params or 0) < (teacher.params or 0)
        return (not smaller, m.vocab_size != teacher.vocab_size, -(m.params or 0), m.name)

    return DefaultPair(teacher.name, min(rest, key=rank).name)


# ------------------------------------------------------------------------------------------- time estimate


@dataclass(frozen=True)
class Costs:
    """Seconds per unit of work, measured with the offline demo pair (SmolLM2-135M-Instruct, 134.5M parameters →
    its 15-layer student, 81.4M) by the demo-cpu preset run from a fresh workspace on this project's 2-core CPU, on
    a quiet machine (`bench/demo.py run`, load ~1.7; README, "What the demo achieves on a CPU"): labelling 294 rows
    of up to 128 new tokens 187 s (bf16 teacher, the top-k recorded while labelling: the capture step finds nothing
    left, hence capture_row 0 for a local teacher), KD 300 steps of 4 rows (length 256, bf16 autocast, two
    evaluations) 526 s, an evaluation of 30 held-out rows against the teacher ~18 s. sft_step, which prices the SFT
    that ② runs where KD cannot, is from the former preset's SFT 150 steps (259 s, the same batch and length).
    `step_start` is a job step's start (process, imports, model loading), taken off the per-unit figures."""

    step_start: float = 10.0
    label_row: float = 0.63
    sft_step: float = 1.66
    capture_row: float = 0.0
    kd_step: float = 1.72
    eval_row: float = 0.27
    teacher_params: int = 134_515_008
    student_params: int = 81_413_568


DEMO_CPU = Costs()


@dataclass(frozen=True)
class Estimate:
    train_rows: int
    heldout_rows: int
    sft_steps: int  # 0: white-box KD runs instead (② is SFT only where it cannot)
    kd_steps: int  # 0: no white-box KD (an endpoint teacher, or another tokenizer)
    synth_s: float | None  # None: the teacher is an endpoint (its pace is the server's)
    train_s: float
    compare_s: float
    scaled: bool  # the models differ from the demo pair: the figures were scaled by their parameter counts

    @property
    def total_s(self) -> float:
        return (self.synth_s or 0.0) + self.train_s + self.compare_s


def minutes(seconds: float) -> int:
    """An estimate in whole minutes (0: under half a minute), as coarse as the figures behind it."""
    return round(seconds / 60)


def split_sizes(total: int, rows: int | None = None) -> tuple[int, int]:
    """(training rows, held-out rows) that ① labels out of a dataset of `total` rows when using `rows` of them."""
    train_all, heldout_all = rows_split(total)
    if rows is None or rows >= total:
        return train_all, heldout_all
    train, heldout = rows_split(rows)
    return min(train_all, train), min(heldout_all, heldout)


def estimate(total: int, rows: int | None, kd: bool, api_teacher: bool, teacher_params: int | None = None,
             student_params: int | None = None, costs: Costs = DEMO_CPU) -> Estimate:
    """The time the three stages take for `rows` of a `total`-row dataset; ② is capture + KD with `kd`, else SFT.
    Per-unit costs scale with the parameters of the model doing the work (teacher: labelling, capture; student:
    training; both: evaluation) when known."""
    n_train, n_heldout = split_sizes(total, rows)
    t = (teacher_params or costs.teacher_params) / costs.teacher_params
    s = (student_params or costs.student_params) / costs.student_params
    preset_steps = _step("kd").max_steps
    kd_steps = training_steps(n_train, preset_steps) if kd else 0
    sft = 0 if kd else training_steps(n_train, preset_steps, SFT_STEP_SHARE)
    start = costs.step_start
    synth = None if api_teacher else 2 * start + (n_train + n_heldout) * costs.label_row * t
    if kd:
        train = 2 * start + n_train * costs.capture_row * t + kd_steps * costs.kd_step * s
    else:
        train = start + sft * costs.sft_step * s
    per_eval = start + n_heldout * costs.eval_row * ((s + t) / 2 if not api_teacher else s)
    scaled = any(p is not None and abs(p / ref - 1) > 0.05 for p, ref in (
        (teacher_params, costs.teacher_params), (student_params, costs.student_params)))
    return Estimate(n_train, n_heldout, sft, kd_steps, synth, train, 2 * per_eval, scaled)


def model_params(ref: str | None, ws: Workspace) -> int | None:
    """Parameters of a workspace model (from its safetensors headers); None for an endpoint, a path or a hub id."""
    from core.models.registry import weight_stats

    if not ref or "/" in ref or "\\" in ref or ":" in ref:
        return None
    folder = ws.models / ref
    try:
        return weight_stats(ws.inside(folder))[0] if folder.is_dir() else None
    except (UserError, OSError, ValueError, KeyError):
        return None


def estimate_for(teacher: str | None, student: str | None, dataset: str | None, rows: float | None,
                 ws: Workspace) -> Estimate | None:
    """The estimate for the Start tab's current choices (None without a readable dataset). White-box KD is assumed
    when both are local models with the same vocabulary size (② checks the tokenizers themselves)."""
    from core.endpoints import ENDPOINT_PREFIX

    total = dataset_rows(ws, dataset)
    if not total:
        return None
    api = bool(teacher and teacher.startswith(ENDPOINT_PREFIX))
    tp, sp = model_params(teacher, ws), model_params(student, ws)
    kd = not api and tp is not None and sp is not None and _vocab(teacher, ws) == _vocab(student, ws)
    return estimate(total, int(rows) if rows else None, kd, api, tp, sp)


def _vocab(ref: str | None, ws: Workspace) -> int | None:
    from core.modelpath import read_json

    try:
        cfg = read_json(ws.inside(ws.models / str(ref) / "config.json"))
        return (cfg.get("text_config") or cfg).get("vocab_size")
    except (UserError, OSError, ValueError, AttributeError):
        return None


# ------------------------------------------------------------------------------------------- ② again: resume?

START, RESUME, RUNNING, DONE = "start", "resume", "running", "done"
CHECKPOINTS = "checkpoints"  # core.train.common.CHECKPOINTS (not imported: it pulls the training stack)


@dataclass(frozen=True)
class ResumePoint:
    done: tuple[str, ...]  # pipeline steps that finished in earlier attempts (a resume skips them)
    step: str | None  # the first unfinished step ...
    checkpoint: int | None  # ... and the optimizer step of its last checkpoint (None: none saved)


@dataclass(frozen=True)
class TrainOffer:
    action: str  # START: submit a new ②; RESUME: offer Resume (and a fresh start); RUNNING / DONE: say so
    job: Any = None  # the latest ② job of this plan (core.jobs JobInfo), if any
    point: ResumePoint | None = None


def latest_train_job(jobs: Any, plan: FlowPlan) -> Any:
    """The newest job ② submitted for this plan (found by its name), or None."""
    name = train_job_name(plan)
    return next((j for j in jobs.list(kind="pipeline", refresh=False) if j.name == name), None)


def resume_point(info: Any) -> ResumePoint | None:
    """What a resume of a ② job continues from: finished steps and the unfinished step's last checkpoint; None when
    nothing was saved (a resume would start from scratch anyway)."""
    from core.jobs.rundir import PIPELINE_FILE, read_json  # light: paths and JSON only

    run_dir = Path(info.run_dir)
    record = read_json(run_dir / PIPELINE_FILE)
    done = tuple(record.get("done", []))
    steps = list(info.steps or record.get("steps", []))
    step = next((s for s in steps if s not in done), None)
    checkpoint = None
    if step:
        saved = [p.name.split("-", 1)[1] for p in (run_dir / "output" / step / CHECKPOINTS).glob("checkpoint-*")]
        checkpoint = max((int(n) for n in saved if n.isdigit()), default=None)
    if not done and checkpoint is None:
        return None
    return ResumePoint(done, step, checkpoint)


def train_offer(jobs: Any, plan: FlowPlan) -> TrainOffer:
    """What pressing ② should do: start (no earlier job, or one that failed before saving anything), resume (it was
    stopped, or it failed / was cancelled after saving a checkpoint or finishing a step), or neither (it runs, or it
    succeeded)."""
    from core.jobs.rundir import STOPPED, SUCCEEDED

    info = latest_train_job(jobs, plan)
    if info is None:
        return TrainOffer(START)
    if not info.finished:
        return TrainOffer(RUNNING, info)
    if info.status == SUCCEEDED:
        return TrainOffer(DONE, info)
    point = resume_point(info)
    if info.status == STOPPED or point is not None:
        return TrainOffer(RESUME, info, point)
    return TrainOffer(START, info)


def used_kd(info: Any) -> bool:
    """Whether a ② job trains by white-box KD ([capture, kd]) rather than SFT ([sft]): its steps say (the tokenizer
    check decided at submit)."""
    return "kd" in (getattr(info, "steps", None) or [])


def fresh_start_blockers(plan: FlowPlan, ws: Workspace, logit_kd: bool | None = None) -> list[str]:
    """Models a new ② would have to overwrite (a training job refuses to replace a model another job wrote): the one
    it writes (`final_student`), or either when `logit_kd` is None (not decided)."""
    names = (plan.student_sft, plan.student_kd) if logit_kd is None else (final_student(plan, logit_kd),)
    return [name for name in names if (ws.models / name).is_dir() and any((ws.models / name).iterdir())]
