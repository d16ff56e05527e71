"""Pipelines: steps run in order inside one worker; a step starts only if the one before succeeded.

Each step runs with `ctx.step_name` set (its output goes to `output/<step>/`, its metrics carry `stage`), and
the running step is shown in status.json (with every step's name and kind: the Training tab lists the pipelines that
train). Finished steps are recorded in `pipeline.json`; a resumed attempt skips them and continues with the first
unfinished step. All steps share the pipeline's devices (a step's own `gpus` is not used); a training step given
several GPUs is launched across them.
"""

from __future__ import annotations

from core.config.registry import PipelineJob
from core.jobs.context import JobContext
from core.jobs.launch import run_entry
from core.jobs.rundir import PIPELINE_FILE, read_json, update_status, write_json_atomic


def run(config: PipelineJob, ctx: JobContext) -> None:
    record = ctx.run_dir / PIPELINE_FILE
    done: list[str] = list(read_json(record).get("done", [])) if ctx.resumed else []
    names = [s.name for s in config.steps]
    write_json_atomic(record, {"steps": names, "done": done})
    update_status(ctx.run_dir, steps=names, step_kinds=[s.job.kind for s in config.steps])
    for i, step in enumerate(config.steps):
        if step.name in done:
            ctx.event(f"step {step.name!r} succeeded in an earlier attempt: skipped", skipped=step.name)
            continue
        if ctx.should_stop():
            return
        ctx.step_name = step.name
        update_status(ctx.run_dir, step=step.name, step_index=i)
        ctx.log.info("pipeline step %d/%d: %s (%s)", i + 1, len(names), step.name, step.job.kind)
        try:
            run_entry(step.job, ctx)
        finally:
            ctx.step_name = None
        if ctx.should_stop():
            return  # the step saved what it had and returned early: not finished, resume reruns it
        done.append(step.name)
        write_json_atomic(record, {"steps": names, "done": done})
