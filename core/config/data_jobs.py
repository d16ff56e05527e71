"""Configs of data-producing jobs: synthesis with a teacher, judging, curation, teacher logit capture."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from core.config.base import BackendSpec, JobBase, Sampling, StrictModel

Operator = Literal["label", "expand", "refine", "extract", "cot_generate", "long2short", "short2long", "classify"]
REPLICAS_HELP = ("more replicas of the same model (OpenAI-compatible endpoints, e.g. vLLM servers or serve jobs): rows "
                 "are partitioned over the first backend and these by id; a replica that goes down hands its rows to "
                 "the others (core.synth.sharded)")


def check_replicas(first: BackendSpec, backends: list[BackendSpec], name: str) -> None:
    """Replicas are reached over HTTP: each one a server of its own (a local model would load once per replica)."""
    for k, spec in enumerate([first, *backends]):
        if spec.endpoint is None:
            where = name if k == 0 else f"backends[{k - 1}]"
            raise ValueError(f"{where}: with backends, every replica is an endpoint (type openai, or vllm with an "
                             "endpoint: a serve job's address); start local models as serve jobs first")


class LiveCaptureSpec(StrictModel):
    """Record the teacher's top-k log-probs of each answer while it generates (core.train.live_capture): the logit
    cache a capture job over the labelled rows would write, without its second pass. Same settings as that capture
    step (it then skips the rows found here)."""

    output: str = Field(description="logit cache name under workspace/cache")
    top_k: int = Field(10, ge=1, le=128)
    max_length: int = Field(512, ge=16)
    logprob_dtype: Literal["float16", "float32"] = "float16"


class SynthJob(JobBase):
    """Run a synthesis operator (REFERENCE §2) over a dataset with a teacher; resumable by row id.

    Output rows are appended as they finish (each with an id); a restarted job skips ids already in the output or in
    the rejects file. Rows the teacher could not serve (API error after retries, unparseable reply) go to the rejects
    file with the reason; `retry_rejects` runs them again.
    """

    ENTRY = "core.train.live_capture:run"  # core.synth.job.run, with the logit-cache writer `capture` needs
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
    capture: LiveCaptureSpec | None = Field(
        None, description="label with a transformers teacher: also write its top-k log-probs per answer token")
    backends: list[BackendSpec] = Field(default_factory=list, description=REPLICAS_HELP)

    @model_validator(mode="after")
    def _replicas(self) -> SynthJob:
        if self.backends:
            check_replicas(self.teacher, self.backends, "teacher")
        return self

    @model_validator(mode="after")
    def _capture_needs_local_label(self) -> SynthJob:
        if self.capture and (self.operator != "label" or self.teacher.type != "transformers" or self.backends):
            raise ValueError("capture while generating needs operator label and one transformers teacher; "
                             "run a capture job over the labelled rows instead")
        return self


JudgeMetric = Literal["rv", "cd", "correctness", "informativeness", "helpfulness", "generalization"]
RvPolicy = Literal["low", "medium", "high", "matched"]


class JudgeJob(JobBase):
    """Score rows with an LLM judge (REFERENCE §3): one call per row and metric, resumable by row id like synthesis.

    Scores go into the rows (`rv`, `cd`, `correctness`, ... and `<metric>_judge`); every raw judge reply is kept in
    `<output>.judge.ndjson`; rows the judge could not score (request failed, no score in the reply) go to the rejects
    file with what was scored and why the rest was not, so `retry_rejects` asks only for the missing metrics.
    """

    ENTRY = "core.cot.judge_job:run"
    kind: Literal["judge"] = "judge"
    input: str = Field(description="dataset to score (workspace dataset name or file: JSON/JSONL/CSV/Parquet)")
    output: str = Field(
        "", description="output dataset name, or a file path ending in .jsonl or .json; default: <input>-judge"
    )
    judge: BackendSpec = Field(description="the judging model (an instruct model or an OpenAI-compatible endpoint)")
    metrics: list[JudgeMetric] = Field(
        default_factory=lambda: ["rv", "cd", "correctness"],
        description="CoT: rv, cd, correctness; instruction data: informativeness, helpfulness, generalization, "
        "correctness", min_length=1,
    )
    sampling: Sampling = Field(
        default_factory=lambda: Sampling(temperature=0.0, max_new_tokens=1024),
        description="judge decoding; keep temperature 0 so a rerun gives the same scores",
    )
    templates: dict[JudgeMetric, str] = Field(
        default_factory=dict, description="rubric template per metric (workspace template name or file, with "
        "{instruction} and {response}); default: assets/templates/judge_<metric>.txt",
    )
    system_prompt: str = Field("You are a strict and careful grader.", description="system turn of every judge call")
    answer_field: str | None = Field(
        None, description="reference answer column: where a row has one, correctness is checked with math-verify "
        "against it instead of asking the judge",
    )
    rescore: bool = Field(
        False,
        description="also ask for metrics a row already has (imported OmniThought traces carry rv/cd/correctness)",
    )
    limit: int | None = Field(None, ge=1, description="only the first N rows")
    retry_rejects: bool = Field(False, description="judge the rows of the rejects file again (old file kept as .bak)")
    backends: list[BackendSpec] = Field(default_factory=list, description=REPLICAS_HELP)

    @model_validator(mode="after")
    def _replicas(self) -> JudgeJob:
        if self.backends:
            check_replicas(self.judge, self.backends, "judge")
        return self


class CurateSpec(StrictModel):
    """Range filters and the RV/CD mixer (REFERENCE §3), shared by the curate job and the live preview.

    Filters keep every row that passes them; the mixer samples only when `samples_per_bin` is set. Scores are the
    judge's 0–9 integers; a filter that is set drops rows missing that score.
    """

    min_correctness: float | None = Field(
        1, ge=0, le=1, description="drop rows whose correctness is below this (1 = correct traces only; rows without "
        "a correctness score are dropped too); empty = no correctness filter",
    )
    rv_min: int | None = Field(None, ge=0, le=9, description="lowest reasoning verbosity kept")
    rv_max: int | None = Field(None, ge=0, le=9, description="highest reasoning verbosity kept")
    cd_min: int | None = Field(None, ge=0, le=9, description="lowest cognitive difficulty kept")
    cd_max: int | None = Field(None, ge=0, le=9, description="highest cognitive difficulty kept")
    teachers: list[str] | None = Field(None, description="keep only traces written by these teachers")
    min_response_chars: int | None = Field(None, ge=0, description="shortest response kept (characters)")
    max_response_chars: int | None = Field(None, ge=1, description="longest response kept (characters)")
    cd_edges: list[float] = Field(
        default_factory=lambda: [0, 3, 6, 10], min_length=2,
        description="mixer: CD bin edges, increasing; the last bin includes its upper edge",
    )
    rv_target: float | RvPolicy | list[float | Literal["low", "medium", "high"]] = Field(
        "matched", description="mixer: RV each bin aims at — a number, low/medium/high (2/5/8), matched (2 rising to 8 "
        "with difficulty), or one value per bin",
    )
    samples_per_bin: int | None = Field(
        None, ge=1, description="mixer: traces kept per CD bin, closest RV to the target first; empty = no sampling"
    )
    one_per_question: bool = Field(False, description="keep at most one trace per question (the best-fitting one)")
    seed: int = Field(42, description="breaks ties between equally fitting traces")

    @field_validator("cd_edges")
    @classmethod
    def _increasing(cls, v: list[float]) -> list[float]:
        if any(b <= a for a, b in zip(v, v[1:], strict=False)):
            raise ValueError("CD bin edges must increase, e.g. [0, 3, 6, 10]")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> CurateSpec:
        for lo, hi in (("rv_min", "rv_max"), ("cd_min", "cd_max"), ("min_response_chars", "max_response_chars")):
            a, b = getattr(self, lo), getattr(self, hi)
            if a is not None and b is not None and a > b:
                raise ValueError(f"{lo} ({a}) is above {hi} ({b})")
        if isinstance(self.rv_target, list) and len(self.rv_target) != len(self.cd_edges) - 1:
            raise ValueError(f"rv_target lists {len(self.rv_target)} targets for {len(self.cd_edges) - 1} CD bins")
        return self


class CurateJob(CurateSpec, JobBase):
    """Fit CoT data to a student's size: filters + RV/CD mixer over a scored dataset, then the selection (as it is, or
    as SFT rows with the reasoning in <think>…</think> for a System-2 student, or the answer alone for System-1)."""

    ENTRY = "core.cot.curate_job:run"
    kind: Literal["curate"] = "curate"
    input: str = Field(description="scored dataset (judge output or imported OmniThought)")
    output: str = Field("", description="output dataset name, or a .jsonl/.json file path; default: <input>-curated")
    export: Literal["rows", "system2", "system1"] = Field(
        "rows",
        description="rows: the selected rows with their scores; system2: SFT rows whose answer is the reasoning in "
        "<think>…</think> then the solution; system1: SFT rows with the solution alone",
    )


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


# ------------------------------------------------------------------------------------------ whole-dataset operations


class DataOpJob(JobBase):
    """One streamed pass (or two) over a whole dataset, in bounded memory (core.data.job): what the Data tab's
    split / dedupe / statistics / export buttons submit, so a 10 GB file is never loaded by the studio."""

    ENTRY = "core.data.job:run"
    input: str = Field(description="dataset (workspace dataset name or file: JSON/JSONL/CSV/Parquet)")


class DataSplitJob(DataOpJob):
    """Seeded train/eval split by hash of each row's group (`question_id`, else its id): a row lands in the same part
    whatever the file's order or size; the eval part holds about `eval_share` of the groups."""

    kind: Literal["data_split"] = "data_split"
    eval_share: float = Field(0.1, gt=0, lt=1, description="share of the groups that go to eval")
    seed: int = Field(42, description="another seed gives another split")
    train_output: str = Field("", description="train dataset name; default: <input>-train")
    eval_output: str = Field("", description="eval dataset name; default: <input>-eval")
    group_key: str | None = Field("question_id", description="rows sharing this field stay in one part")


class DataDedupeJob(DataOpJob):
    """Drop repeated rows (the first occurrence is kept, in order) into a new dataset."""

    kind: Literal["data_dedupe"] = "data_dedupe"
    by: Literal["instruction", "instruction_output", "content"] = Field(
        "instruction", description="what makes two rows the same (whitespace and case folded)")
    output: str = Field("", description="output dataset name; default: <input>-dedup")


class DataStatsJob(DataOpJob):
    """Rows, lengths, duplicates, empty and missing fields (and token lengths of a sample) of a workspace dataset;
    the result goes to the run folder (output/result.json) for the Data tab."""

    kind: Literal["data_stats"] = "data_stats"
    tokenizer: str | None = Field(None, description="model folder (or workspace model name) whose tokenizer counts "
                                  "tokens; empty = characters only")
    token_sample: int = Field(2000, ge=1, le=1_000_000, description="rows whose tokens are counted (a seeded sample)")


class DataExportJob(DataOpJob):
    """Write a workspace dataset in another tool's format (and its LLaMA-Factory dataset_info.json entry)."""

    kind: Literal["data_export"] = "data_export"
    format: Literal["messages", "alpaca", "sharegpt", "easydistill", "dpo", "omnithought", "canonical"] = "messages"
    keep_ids: bool = Field(True, description="keep the row ids in the exported records")
    llamafactory: bool = Field(False, description="also add an entry to dataset_info.json beside the file")


class DataBalanceJob(DataOpJob):
    """Resample a classified dataset toward target shares per category (seeded; short categories keep all their
    rows, repeated with `upsample`)."""

    kind: Literal["data_balance"] = "data_balance"
    shares: dict[str, float] = Field(min_length=1, description="target share per category (normalised to sum 1)")
    total: int | None = Field(None, ge=1, description="rows in the result (default: as many as the input)")
    upsample: bool = Field(False, description="repeat the rows of categories below their share")
    seed: int = 42
    output: str = Field("", description="output dataset name; default: <input>-balanced")


DATA_OP_JOBS = (DataSplitJob, DataDedupeJob, DataStatsJob, DataExportJob, DataBalanceJob)
