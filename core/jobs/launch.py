"""How a job's code is started: the worker command, its environment, and the multi-GPU launch of training.

Every job is one supervisor process, `python -m core.jobs.worker RUN_DIR`, which owns the run folder's status.
A training step whose layout spreads it over several processes (core.jobs.layouts: DDP, DeepSpeed ZeRO, FSDP on GPUs;
DDP over gloo on CPU) is run by the supervisor as `accelerate launch --config_file <run>/launch/accelerate_config.yaml
--num_processes N -m core.jobs.worker RUN_DIR --rank [--step NAME]` (torchrun on CPU; same process group, so
stop/cancel reach every rank), and the supervisor judges it by its exit status. One place writes the outcome,
single- or multi-GPU, plain or pipeline.
"""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from core.jobs import layouts
from core.jobs.context import JobContext
from core.jobs.scheduler import cuda_visible_devices, gpu_index
from core.net import free_port

WORKER_MODULE = "core.jobs.worker"
# Variables a job must not inherit from whoever starts it (another job's worker can start the next job).
_DROP_PREFIXES = ("EDS_SECRET_", "ACCELERATE_", "TORCHELASTIC_")
_DROP_NAMES = {"RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "EDS_JOB_ID",
               "EDS_RUN_DIR", "EDS_RANK_MODE", "CUDA_VISIBLE_DEVICES"}
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class EntryUnavailable(RuntimeError):
    """The job kind's worker code is not installed in this build (its module cannot be imported)."""


def worker_command(run_dir: Path, python: str | None = None) -> list[str]:
    return [python or sys.executable, "-m", WORKER_MODULE, str(run_dir)]


def distributed_command(
    num_processes: int, run_dir: Path, step: str | None = None, python: str | None = None, port: int = 29500,
) -> list[str]:
    """The `accelerate launch` command that runs one training entry on `num_processes` GPUs (pure: tested here)."""
    cmd = [
        python or sys.executable, "-m", "accelerate.commands.launch",
        "--multi_gpu", "--num_processes", str(num_processes), "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port),
        "-m", WORKER_MODULE, str(run_dir), "--rank",
    ]
    if step:
        cmd += ["--step", step]
    return cmd


def needs_distributed(config: Any, devices: list[str]) -> bool:
    """Training kinds given more than one GPU run as N processes (data parallel); everything else runs in one."""
    gpus = [d for d in devices if gpu_index(d) is not None]
    return str(getattr(config, "kind", "")).startswith("train_") and len(gpus) > 1


def job_env(
    base: Mapping[str, str], *, job_id: str, run_dir: Path, workspace_root: Path, devices: list[str],
    secrets: Mapping[str, str] | None = None, fake_gpus: str | None = None,
) -> dict[str, str]:
    """The worker's environment: the starter's, minus another job's leftovers, plus this job's devices/secrets."""
    env = {k: v for k, v in base.items() if k not in _DROP_NAMES and not k.startswith(_DROP_PREFIXES)}
    env.update({
        "EDS_JOB_ID": job_id,
        "EDS_RUN_DIR": str(run_dir),
        "EDS_WORKSPACE_ROOT": str(workspace_root),
        "CUDA_VISIBLE_DEVICES": cuda_visible_devices(devices),
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",  # so index i is nvidia-smi's GPU i
        "PYTHONUNBUFFERED": "1",
    })
    # OpenMP threads that spin while waiting make CPU inference 7-14x slower on a loaded 2-core box; a user's
    # own choice wins.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    pp = env.get("PYTHONPATH", "")
    if str(PROJECT_ROOT) not in pp.split(os.pathsep):
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), pp) if p)
    if fake_gpus:
        env["EDS_FAKE_GPUS"] = fake_gpus
    env.update(secrets or {})
    return env


def resolve_entry(config: Any) -> Callable[[Any, JobContext], None]:
    """Import the config's ENTRY ('module:function')."""
    entry = getattr(type(config), "ENTRY", "")
    if not entry or ":" not in entry:
        raise EntryUnavailable(f"job kind {getattr(config, 'kind', '?')!r} names no worker entry")
    module, func = entry.split(":", 1)
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and (module == e.name or module.startswith(e.name + ".")):
            raise EntryUnavailable(
                f"job kind {config.kind!r} is not available in this build (module {module} is missing)"
            ) from None
        raise
    fn = getattr(mod, func, None)
    if not callable(fn):
        raise EntryUnavailable(f"{module} has no function {func!r} (entry of job kind {config.kind!r})")
    return fn


class DistributedFailed(RuntimeError):
    def __init__(self, returncode: int, step: str | None):
        self.returncode = returncode
        where = f" in step {step!r}" if step else ""
        super().__init__(f"a training process{where} exited with code {returncode}; see the log for its traceback")


def run_entry(config: Any, ctx: JobContext) -> None:
    """Run one job (or pipeline step) entry in this process, or over several as its training layout says
    (core.jobs.layouts: the plan, refused when it does not fit; its launch files written into the run folder)."""
    plan = layouts.plan_for(config, ctx.devices)
    if plan is not None:
        folder = layouts.launch_dir(ctx.run_dir, ctx.step_name)
        layouts.check_resume(plan, folder, ctx.output_dir)
        config_file = layouts.write_files(plan, folder, ctx.devices)
        if plan.launcher != "none":
            _run_distributed(ctx, plan, config_file)
            return
    resolve_entry(config)(config, ctx)


def _run_distributed(ctx: JobContext, plan: layouts.Plan, config_file: Path | None) -> None:
    cmd = layouts.command(plan, ctx.run_dir, config_file, step=ctx.step_name, port=free_port())
    ctx.event(f"launching {plan.describe()}: {' '.join(cmd[1:4])} ...", processes=plan.processes,
              layout=plan.layout)
    env = {**os.environ, "EDS_RANK_MODE": "1"}
    # Same process group as this supervisor: a group signal reaches every rank. Output goes to our log.
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL)
    try:
        while proc.poll() is None:
            time.sleep(0.5)
    except BaseException:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise
    if proc.returncode != 0:
        raise DistributedFailed(proc.returncode, ctx.step_name)
