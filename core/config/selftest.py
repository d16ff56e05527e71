from __future__ import annotations

from typing import Literal

from pydantic import Field

from core.config.base import JobBase


class SelftestJob(JobBase):
    """Counts to `steps` with a delay, writing progress and a fake loss curve: checks that jobs run on this box."""

    ENTRY = "core.jobs.selftest:run"
    kind: Literal["selftest"] = "selftest"
    steps: int = Field(20, ge=1, le=1_000_000)
    delay_s: float = Field(0.2, ge=0, le=60)
    fail_at: int | None = Field(None, description="raise an error at this step (to test failure handling)")
    ignore_stop: bool = Field(
        False, description="keep counting after a stop request (to check that a stop is forced after its timeout)"
    )
    spawn_child: bool = Field(
        False, description="start a helper process that sleeps (to check that stop/cancel leave no orphan behind)"
    )
