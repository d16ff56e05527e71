"""Every job kind the studio knows, and `JobConfig`: the union a config file validates into.

To add a kind: write its config class (with `kind: Literal[...]` and ENTRY) and list it in KINDS.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from core.config.base import JobBase, StrictModel
from core.config.data_jobs import (
    CaptureJob,
    CurateJob,
    DataBalanceJob,
    DataDedupeJob,
    DataExportJob,
    DataSplitJob,
    DataStatsJob,
    JudgeJob,
    SynthJob,
)
from core.config.pairs_jobs import CrvJob, PairsJob
from core.config.selftest import SelftestJob
from core.config.train import (
    DeriveJob,
    DpoJob,
    EvaluateJob,
    ExportJob,
    GrpoJob,
    KdJob,
    OnPolicyKdJob,
    PrepareDemoJob,
    RewardJob,
    ServeJob,
    SftJob,
)

StepConfig = Annotated[
    SelftestJob | SynthJob | JudgeJob | CurateJob | CaptureJob | PairsJob | CrvJob | SftJob | KdJob | OnPolicyKdJob
    | DpoJob | RewardJob | GrpoJob | ExportJob | EvaluateJob | ServeJob | DeriveJob | PrepareDemoJob | DataSplitJob
    | DataDedupeJob | DataStatsJob | DataExportJob | DataBalanceJob,
    Field(discriminator="kind"),
]


class PipelineStep(StrictModel):
    name: str = Field(description="a short name shown as the job's current step")
    job: StepConfig


class PipelineJob(JobBase):
    """Steps run in order; a step starts only if the previous one succeeded (EasyDistill's infer-then-train)."""

    ENTRY = "core.jobs.pipeline:run"
    kind: Literal["pipeline"] = "pipeline"
    steps: list[PipelineStep] = Field(min_length=1)


JobConfig = Annotated[StepConfig | PipelineJob, Field(discriminator="kind")]

KINDS: dict[str, type[JobBase]] = {
    cls.model_fields["kind"].default: cls
    for cls in (
        SelftestJob, SynthJob, JudgeJob, CurateJob, CaptureJob, PairsJob, CrvJob, SftJob, KdJob, OnPolicyKdJob, DpoJob,
        RewardJob, GrpoJob, ExportJob, EvaluateJob, ServeJob, DeriveJob, PrepareDemoJob, DataSplitJob, DataDedupeJob,
        DataStatsJob, DataExportJob, DataBalanceJob, PipelineJob,
    )
}
