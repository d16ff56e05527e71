"""Configs of data-producing jobs: synthesis with a teacher, judging, curation, teacher logit capture."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from core.config.base import BackendSpec, JobBase, Sampling, StrictModel

Operator = Literal["label", "expand", "refine", "extract", "cot_generate", "long2short", "short2long", "classify"]


class SynthJob(JobBase):
    """Run a synthesis operator (REFERENCE §2) over a dataset with a teacher; resumable by row id."""

    ENTRY = "core.synth.job:run"
    kind: Literal["synth"] = "synth"
    operator: Operator = "label"
    input: str = Field(description="input dataset (workspace dataset name or file)")
    output: str = Field(
        "", description="output dataset name (or, from the CLI, a file path); default: <input>-<operator>"
    )
    teacher: BackendSpec
    sampling: Sampling = Field(default_factory=Sampling)
    template: str | None = Field(None, description="prompt template file; default: assets/templates/<operator>.txt")
    prompt: str | None = Field(
        None, description="operator instruction text (EasyDistill `inference.prompt`); replaces the template's own"
    )
    system_prompt: str = "You are a helpful assistant."
    num_in_context_samples: int = Field(3, ge=0, le=64, description="expand: examples shown per request")
    num_output_samples: int = Field(10, ge=1, description="expand: new instructions to produce")
    limit: int | None = Field(None, ge=1, description="only the first N rows")
    seed: int = 42


JudgeMetric = Literal["rv", "cd", "correctness", "informativeness", "helpfulness", "generalization"]


class JudgeJob(JobBase):
    """Score rows with an LLM judge (RV, CD, correctness, instruction metrics), one call per row and metric."""

    ENTRY = "core.cot.judge_job:run"
    kind: Literal["judge"] = "judge"
    input: str
    output: str = ""
    judge: BackendSpec
    metrics: list[JudgeMetric] = Field(default_factory=lambda: ["rv", "cd", "correctness"])
    sampling: Sampling = Field(default_factory=lambda: Sampling(temperature=0.0, max_new_tokens=1024))
    limit: int | None = Field(None, ge=1)


class RvTarget(StrictModel):
    bin: int
    target: float | Literal["low", "medium", "high", "matched"]


class CurateJob(JobBase):
    """The RV/CD mixer and range filters (REFERENCE §3) that fit CoT data to a student's size."""

    ENTRY = "core.cot.curate_job:run"
    kind: Literal["curate"] = "curate"
    input: str
    output: str = ""
    min_correctness: float = 1
    cd_edges: list[float] = Field(default_factory=lambda: [0, 3, 6, 10])
    rv_target: float | Literal["low", "medium", "high", "matched"] = "matched"
    samples_per_bin: int | None = Field(None, ge=1)
    one_per_question: bool = False
    rv_range: tuple[float, float] | None = None
    cd_range: tuple[float, float] | None = None
    seed: int = 42


class CaptureJob(JobBase):
    """Teacher forcing over prompt + response: store the teacher's top-k log-probs per response token, by row id."""

    ENTRY = "core.train.capture:run"
    DEFAULT_GPUS = 1
    kind: Literal["capture"] = "capture"
    input: str = Field(description="labelled dataset (instruction/output or messages)")
    output: str = Field("", description="logit cache name under workspace/cache; default: <input>-<teacher>-k<k>")
    teacher: BackendSpec
    top_k: int = Field(10, ge=1, le=128)
    temperature: float = Field(1.0, gt=0)
    max_length: int = Field(512, ge=16)
    template: str | None = Field(None, description="chat template file; default: the teacher tokenizer's")
