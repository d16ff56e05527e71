"""What a job's worker entry point receives: where to write, how to report progress, when to stop.

Every job kind is `run(config, ctx) -> None` in its own module (the entry named by its config class). The entry
writes its results under `ctx.output_dir`, reports progress with `ctx.progress(...)`, and checks `ctx.should_stop()`
between units of work (a row, a training step): when it returns True the entry saves what it has and returns
normally; the worker then records the job as `stopped`. Raising means failure. Nothing here imports torch.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.workspace import Workspace

STOP_FLAG = "stop.request"
PROGRESS_LOG_S = 15.0  # a progress line in the job's log at most this often (and at a stage's last step)
RECENT_LINES = 400  # metrics lines of the current stage kept in memory to measure the rate for those log lines


@dataclass
class JobContext:
    job_id: str
    run_dir: Path
    workspace: Workspace
    attempt: int = 1  # >1 when resumed: entries continue from what output_dir holds
    devices: list[str] = field(default_factory=list)  # e.g. ["cuda:0"] or ["cpu"]
    step_name: str | None = None  # inside a pipeline: the step's name
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("job"))
    is_main: bool = True  # False in the extra ranks of a multi-GPU launch: only rank 0 writes metrics
    _recent: list[dict] = field(default_factory=list, init=False, repr=False)
    _logged: tuple[float, Any] = field(default=(0.0, None), init=False, repr=False)  # (time, step) of the last line

    @property
    def output_dir(self) -> Path:
        p = self.run_dir / "output"
        if self.step_name:
            p = p / self.step_name
        p.mkdir(parents=True, exist_ok=True)
        return p

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / "metrics.jsonl"

    @property
    def resumed(self) -> bool:
        return self.attempt > 1

    def should_stop(self) -> bool:
        """True once a graceful stop was requested (the studio or CLI created the stop flag)."""
        return (self.run_dir / STOP_FLAG).exists()

    def progress(self, step: int, total: int | None = None, **scalars: Any) -> None:
        """Append one metrics line: the manager derives progress %, rate, ETA and plots from these. `unit="rows"`
        says what `step` counts (default: steps)."""
        if not self.is_main:
            return
        rec: dict[str, Any] = {"time": time.time(), "step": step, "total": total}
        if self.attempt > 1:
            rec["attempt"] = self.attempt  # a resumed run: progress/ETA restart their clock here
        if self.step_name:
            rec["stage"] = self.step_name
        for k, v in scalars.items():
            if v is None or isinstance(v, (int, float, str, bool)):
                rec[k] = v
            else:
                try:
                    rec[k] = float(v)
                except (TypeError, ValueError):
                    rec[k] = str(v)
        line = json.dumps(rec, ensure_ascii=False)
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
        self._log_progress(rec)

    def _log_progress(self, rec: dict[str, Any]) -> None:
        """Every PROGRESS_LOG_S, and when a stage reaches its total, a line in the log saying how far it got and how
        fast (the same words and maths as the studio's status line)."""
        from core.jobs.progress import compute
        from core.jobs.summary import log_line

        if self._recent and self._recent[-1].get("stage") != rec.get("stage"):
            self._recent.clear()
        self._recent.append(rec)
        del self._recent[:-RECENT_LINES]
        now, step, total = rec["time"], rec["step"], rec["total"]
        final = bool(total) and step >= total and step != self._logged[1]
        if now - self._logged[0] < PROGRESS_LOG_S and not final:
            return
        self._logged = (now, step)
        line = log_line(compute(self._recent, now=now))
        if line:
            self.log.info(line)

    def event(self, message: str, **fields: Any) -> None:
        """A human-readable line in the log plus a structured note in metrics (kind=event)."""
        self.log.info(message)
        if not self.is_main:
            return
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"time": time.time(), "event": message, **fields}, ensure_ascii=False) + "\n")
