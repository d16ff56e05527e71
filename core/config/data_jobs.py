"""Configs of data-producing jobs: synthesis with a teacher, judging, curation, teacher logit capture."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from core.config.base import BackendSpec, JobBase, Sampling, StrictModel

Operator = Literal["label", "expand", "refine", "extract", "cot_generate", "long2short", "short2long", "classify"]


class SynthJob(JobBase):
    """Run a synthesis operator (REFERENCE §2) over a dataset with a teacher; resumable by row id.

    Output rows are appended as they finish (each with an id); a restarted job skips ids already in the output or in
    the rejects file. Rows the teacher could not serve (API error after retries, unparseable reply) go to the rejects
    file with the reason; `retry_rejects` runs them again.
    """

    ENTRY = "core.synth.job:run"
    kind: Literal["synth"] = "synth"
    operator: Operator = "label"
    input: str = Field(description="input dataset (workspace dataset name or file: JSON/JSONL/CSV/Parquet)")
    output: str = Field(
        "", description="output dataset name (workspace/datasets/<name>.jsonl), or a file path ending in .jsonl or "
        ".json (a .json file is written as a JSON array when the job ends); default: <input>-<operator>"
    )
    teacher: BackendSpec
    sampling: Sampling = Field(default_factory=Sampling)
    template: str | None = Field(
        None, description="prompt template file with {placeholders}; default: assets/templates/<operator>.txt"
    )
    prompt: str | None = Field(
        None, description="EasyDistill 1.x `inference.prompt`: an instruction put before the input instead of the "
        "template (the request is this text, a newline, then the input)"
    )
    system_prompt: str = "You are a helpful assistant."
    num_in_context_samples: int = Field(3, ge=0, le=64, description="expand: examples shown per request")
    num_output_samples: int = Field(10, ge=1, description="expand: new instructions to produce (in total)")
    limit: int | None = Field(None, ge=1, description="only the first N rows")
    seed: int = Field(42, description="seeds every random choice (in-context examples, resampling)")
    parse_retries: int = Field(1, ge=0, le=10, description="ask again (new seed) when a reply cannot be parsed")
    retry_rejects: bool = Field(False, description="run the rows of the rejects file again (old file kept as .bak)")
    categories: list[str] | None = Field(
        None, description="classify: task categories (default: the DistilQwen list of 32)"
    )
    target_shares: dict[str, float] | None = Field(
        None, description="classify: target share per category; when set, a resampled <output>-balanced dataset is "
        "written at the end (instruction balancing)"
    )
    balance_total: int | None = Field(None, ge=1, description="classify: rows in the balanced dataset (default: all)")
    balance_upsample: bool = Field(False, description="classify: repeat rows of categories below their share")


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
    tokenizer: str | None = Field(
        None, description="tokenizer folder that locates response tokens (default: the teacher's model folder; "
        "needed for a remote teacher)"
    )
    student: str | None = Field(
        None, description="the student this cache is for: its tokenizer is checked against the teacher's first"
    )
    logprob_dtype: Literal["float16", "float32"] = Field("float16", description="storage of the top-k log-probs")
