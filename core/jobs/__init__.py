"""The process manager: every long action is a job run in its own process with a run folder (DESIGN "The job").

Light on purpose (the studio imports it): the names below load on first use, and nothing here imports torch.

    from core.jobs import JobManager
    jobs = JobManager(workspace)
    job_id = jobs.submit(config)          # queued; starts when its devices are free
    jobs.get(job_id).progress             # 0..1, plus .eta_s, .status, .reason
    jobs.stop(job_id) / jobs.cancel(job_id) / jobs.resume(job_id) / jobs.logs(job_id) / jobs.metrics(job_id)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "JobManager": "core.jobs.manager",
    "JobInfo": "core.jobs.manager",
    "JobNotFound": "core.jobs.manager",
    "JobStateError": "core.jobs.manager",
    "DeviceRequestError": "core.jobs.scheduler",
    "JobContext": "core.jobs.context",
    "STOP_FLAG": "core.jobs.context",
    "ACTIVE": "core.jobs.rundir",
    "FINAL": "core.jobs.rundir",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'core.jobs' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
