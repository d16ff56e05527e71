"""The `selftest` job: counts to N with a delay, writing progress and a fake loss curve, honouring stop and resume.

It lets a user check that jobs run on their box (`easydistill run --kind selftest`), and gives tests a cheap
real job. What it "saves" is `output/state.json` (the last finished step), so stop-then-resume is observable.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

from core.config.selftest import SelftestJob
from core.jobs.context import JobContext
from core.jobs.rundir import read_json, write_json_atomic


def fake_loss(step: int, total: int) -> float:
    return 2.5 * math.exp(-4.0 * step / max(1, total)) + 0.3 + 0.05 * math.sin(step)


def run(config: SelftestJob, ctx: JobContext) -> None:
    out = ctx.output_dir
    state_path = out / "state.json"
    start = int(read_json(state_path).get("step", 0)) if ctx.resumed else 0
    helper = None
    if config.spawn_child:
        # A helper in the job's process group, as dataloader workers or a model server would be.
        helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    seen = {
        "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "devices": ctx.devices, "pid": os.getpid(), "pgid": os.getpgid(0), "attempt": ctx.attempt,
        "helper_pid": helper.pid if helper else None,
    }
    (out / f"environment-{ctx.attempt}.json").write_text(json.dumps(seen, indent=1), encoding="utf-8")
    if start:
        print(f"resuming after step {start}", flush=True)
    for i in range(start, config.steps):
        if ctx.should_stop() and not config.ignore_stop:
            print(f"stop requested: stopping after step {i} (saved)", flush=True)
            return
        time.sleep(config.delay_s)
        step = i + 1
        if config.fail_at is not None and step == config.fail_at:
            raise RuntimeError(f"selftest failing at step {step} as asked (fail_at={config.fail_at})")
        loss = fake_loss(step, config.steps)
        ctx.progress(step, config.steps, loss=round(loss, 5), accuracy=round(1 - loss / 3, 5))
        write_json_atomic(state_path, {"step": step, "loss": loss})
        print(f"step {step}/{config.steps} loss {loss:.4f}", flush=True)
    print("selftest done", flush=True)
