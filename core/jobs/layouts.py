"""Multi-device training layouts: how a training step spreads over the devices it got, and the launch that does it.

`layout` (a training config's knob):
- auto: one process per GPU, DDP when there are several (what a multi-GPU training job always did); on the CPU one
  process, or DDP over gloo with `processes` ≥ 2.
- ddp: a full copy of the model on every device, gradients all-reduced. Needs ≥ 2 GPUs, or `processes` ≥ 2 on CPU.
- zero2 / zero3: DeepSpeed ZeRO stage 2 (optimizer state and gradients partitioned over the GPUs) / 3 (the weights
  too). Needs CUDA and the deepspeed package; one GPU is allowed (with `offload`, the point of ZeRO on one GPU).
- fsdp: PyTorch FSDP 2, fully sharded. Needs ≥ 2 GPUs.
`offload` moves the optimizer state (ZeRO-2) / optimizer state and weights (ZeRO-3, FSDP) to CPU memory.

The launch, from the supervising worker (core.jobs.launch):
- one process, no launcher, when the plan is `single`;
- DDP on CPU: `torch.distributed.run --nproc_per_node N -m core.jobs.worker RUN --rank` (accelerate's own launcher
  runs a single process for --cpu);
- every GPU layout: `accelerate launch --config_file <run>/launch/accelerate_config.yaml --num_processes N -m
  core.jobs.worker RUN --rank`, the config written first — for ZeRO with `ds_config.json` beside it, whose "auto"
  values the HF Trainer fills from the job's own knobs (batch size, accumulation, precision, clipping).
The files live in `<run>/launch/[<step>/]` with `layout.json` ({layout, processes, devices}): the record a resume is
checked against. A run whose checkpoints were written under one layout resumes only under the same one (and, for a
sharded layout, on the same number of processes): DeepSpeed and FSDP checkpoints are partitioned by rank.

Nothing here imports torch; `cuda_available` does, and only for a layout that needs CUDA.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from core.errors import UserError

SHARDED = ("zero2", "zero3", "fsdp")
LAUNCH_DIR = "launch"
ACCELERATE_FILE, DEEPSPEED_FILE, RECORD_FILE = "accelerate_config.yaml", "ds_config.json", "layout.json"


class LayoutRefused(UserError, ValueError):
    """The layout cannot run on the devices (or in the environment) the job got."""


class LayoutMismatch(UserError, ValueError):
    """A resume under a layout other than the one the run's checkpoints were written with."""


@dataclass(frozen=True)
class Plan:
    """How one training step runs: `layout` resolved (single, ddp, zero2, zero3, fsdp) on `processes` processes."""

    layout: str
    processes: int
    cpu: bool
    offload: bool = False

    @property
    def launcher(self) -> str:
        """none | torchrun | accelerate."""
        if self.layout == "single":
            return "none"
        return "torchrun" if self.cpu else "accelerate"

    @property
    def family(self) -> str:
        """Checkpoints of one family resume in another of the same (single and DDP save the same state)."""
        return "plain" if self.layout in ("single", "ddp") else self.layout

    def describe(self) -> str:
        unit = ("CPU process" if self.cpu else "GPU") + ("" if self.processes == 1 else "es" if self.cpu else "s")
        return f"{self.layout} on {self.processes} {unit}" + (" with CPU offload" if self.offload else "")


def deepspeed_installed() -> bool:
    return importlib.util.find_spec("deepspeed") is not None


def cuda_available() -> bool:
    import torch  # only for a layout that needs CUDA: the supervisor stays light otherwise

    return bool(torch.cuda.is_available())


def plan_for(config: Any, devices: list[str], *, cuda: bool | None = None, deepspeed: bool | None = None
             ) -> Plan | None:
    """The plan of a training config on `devices` (None for a job that is not a training step). Raises LayoutRefused
    with what to change when the layout does not fit."""
    layout = getattr(config, "layout", None)
    if layout is None or not str(getattr(config, "kind", "")).startswith("train_"):
        return None
    gpus = sum(1 for d in devices if d.startswith("cuda"))
    processes = int(getattr(config, "processes", 1) or 1)
    offload = bool(getattr(config, "offload", False))
    if gpus == 0:
        if layout in SHARDED:
            raise LayoutRefused(f"layout {layout} needs GPUs (CUDA) and this job runs on the CPU: give it GPUs, or use "
                                "layout ddp with processes ≥ 2 (or auto) on the CPU")
        if layout == "ddp" and processes < 2:
            raise LayoutRefused("layout ddp on the CPU needs processes ≥ 2 (one process is layout auto)")
        return Plan("ddp" if processes > 1 else "single", processes, cpu=True)
    if layout == "auto":
        return Plan("ddp" if gpus > 1 else "single", gpus, cpu=False)
    if layout in ("ddp", "fsdp") and gpus < 2:
        raise LayoutRefused(f"layout {layout} needs at least 2 GPUs and this job got {gpus}: ask for gpus: 2 or more "
                            "(or use layout auto on one GPU)")
    if layout in ("zero2", "zero3", "fsdp"):
        if layout != "fsdp" and not (deepspeed_installed() if deepspeed is None else deepspeed):
            raise LayoutRefused(f"layout {layout} needs DeepSpeed, which is not installed in the training "
                                "environment: pip install deepspeed (it builds against the CUDA toolkit), or use "
                                "layout fsdp, which needs nothing more than PyTorch")
        if not (cuda_available() if cuda is None else cuda):
            raise LayoutRefused(f"layout {layout} needs CUDA, and PyTorch here sees no CUDA device: a GPU build "
                                "of torch and a GPU driver are needed")
    return Plan(layout, gpus, cpu=False, offload=offload and layout in SHARDED)


# ---------------------------------------------------------------------------------------------------- the files


def deepspeed_config(stage: int, offload: bool = False) -> dict[str, Any]:
    """A DeepSpeed config whose "auto" values the HF Trainer fills from the job's knobs (transformers'
    HfTrainerDeepSpeedConfig): batch sizes, accumulation, clipping, bf16/fp16. The Trainer's own optimizer and
    schedule are kept (no optimizer/scheduler section)."""
    device = "cpu" if offload else "none"
    zero: dict[str, Any] = {"stage": stage, "overlap_comm": True, "contiguous_gradients": True,
                            "reduce_bucket_size": "auto",
                            "offload_optimizer": {"device": device, "pin_memory": True}}
    if stage == 3:
        zero.update({"offload_param": {"device": device, "pin_memory": True},
                     "stage3_prefetch_bucket_size": "auto", "stage3_param_persistence_threshold": "auto",
                     "sub_group_size": 1_000_000_000, "stage3_max_live_parameters": 1_000_000_000,
                     "stage3_max_reuse_distance": 1_000_000_000,
                     # the published model is whole weights, not shards (Trainer.save_model gathers them)
                     "stage3_gather_16bit_weights_on_model_save": True})
    else:
        zero.update({"allgather_partitions": True, "allgather_bucket_size": 200_000_000, "reduce_scatter": True})
    return {"train_batch_size": "auto", "train_micro_batch_size_per_gpu": "auto",
            "gradient_accumulation_steps": "auto", "gradient_clipping": "auto",
            "bf16": {"enabled": "auto"}, "fp16": {"enabled": "auto"}, "zero_optimization": zero,
            "steps_per_print": 1_000_000, "wall_clock_breakdown": False}


def accelerate_config(plan: Plan, ds_config_path: Path | str | None = None) -> dict[str, Any]:
    """The `accelerate launch --config_file` contents for a GPU plan (what `accelerate config` would write).
    Precision is left to the Trainer (its bf16/fp16 flags), as with the flag-built launch of DDP."""
    cfg: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE", "debug": False, "downcast_bf16": "no", "gpu_ids": "all",
        "machine_rank": 0, "main_training_function": "main", "mixed_precision": "no", "num_machines": 1,
        "num_processes": plan.processes, "rdzv_backend": "static", "same_network": True, "tpu_env": [],
        "tpu_use_cluster": False, "tpu_use_sudo": False, "use_cpu": False,
    }
    if plan.layout in ("zero2", "zero3"):
        cfg.pop("mixed_precision")  # with a DeepSpeed config file, precision is its bf16/fp16 sections' ("auto")
        cfg["distributed_type"] = "DEEPSPEED"
        cfg["deepspeed_config"] = {"deepspeed_config_file": str(ds_config_path or DEEPSPEED_FILE),
                                   "zero3_init_flag": plan.layout == "zero3"}
    elif plan.layout == "fsdp":
        cfg["distributed_type"] = "FSDP"
        cfg["fsdp_config"] = {
            "fsdp_version": 2, "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",  # the model's decoder layers
            "fsdp_reshard_after_forward": True, "fsdp_offload_params": plan.offload,
            "fsdp_cpu_ram_efficient_loading": True, "fsdp_state_dict_type": "FULL_STATE_DICT",
            # gradient checkpointing stays the Trainer's knob (both at once is refused by transformers)
            "fsdp_activation_checkpointing": False,
        }
    else:
        cfg["distributed_type"] = "MULTI_GPU"
        cfg["dynamo_config"] = {"dynamo_backend": "NO"}
    return cfg


def launch_dir(run_dir: Path, step: str | None = None) -> Path:
    return run_dir / LAUNCH_DIR / step if step else run_dir / LAUNCH_DIR


def render(plan: Plan, folder: Path) -> dict[str, str]:
    """{file name: text} of the files a plan launches with (what `write_files` writes and the form previews)."""
    out: dict[str, str] = {}
    if plan.launcher != "accelerate":
        return out
    ds_path = folder / DEEPSPEED_FILE
    out[ACCELERATE_FILE] = yaml.safe_dump(accelerate_config(plan, ds_path), sort_keys=False)
    if plan.layout in ("zero2", "zero3"):
        out[DEEPSPEED_FILE] = json.dumps(deepspeed_config(int(plan.layout[-1]), plan.offload), indent=2) + "\n"
    return out


def write_files(plan: Plan, folder: Path, devices: list[str]) -> Path | None:
    """Write the plan's launch files and its record; the accelerate config's path (None without accelerate)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in render(plan, folder).items():
        (folder / name).write_text(text, encoding="utf-8")
    record = {"layout": plan.layout, "processes": plan.processes, "cpu": plan.cpu, "offload": plan.offload,
              "devices": list(devices)}
    (folder / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return folder / ACCELERATE_FILE if plan.launcher == "accelerate" else None


def command(plan: Plan, run_dir: Path, config_file: Path | None, step: str | None = None,
            python: str | None = None, port: int = 29500) -> list[str]:
    """The launch command of a multi-process plan (pure: tested against accelerate's own parser)."""
    py = python or sys.executable
    if plan.launcher == "torchrun":
        cmd = [py, "-m", "torch.distributed.run", "--nproc_per_node", str(plan.processes), "--nnodes", "1",
               "--master_addr", "127.0.0.1", "--master_port", str(port), "-m"]
    else:
        cmd = [py, "-m", "accelerate.commands.launch", "--config_file", str(config_file),
               "--num_processes", str(plan.processes), "--main_process_port", str(port), "-m"]
    cmd += ["core.jobs.worker", str(run_dir), "--rank"]
    return cmd + (["--step", step] if step else [])


# ---------------------------------------------------------------------------------------------------- resume


def recorded(folder: Path) -> dict | None:
    try:
        return json.loads((folder / RECORD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def has_checkpoint(output_dir: Path) -> bool:
    return output_dir.is_dir() and any(p.is_dir() for p in output_dir.rglob("checkpoint-*"))


def check_resume(plan: Plan, folder: Path, output_dir: Path) -> None:
    """Refuse (LayoutMismatch) to resume checkpoints written under another layout, or a sharded layout's on another
    number of processes."""
    before = recorded(folder)
    if not before or not has_checkpoint(output_dir):
        return
    was = Plan(str(before.get("layout")), int(before.get("processes") or 1), bool(before.get("cpu")),
               bool(before.get("offload")))
    same = was.family == plan.family and (plan.family == "plain" or was.processes == plan.processes)
    if not same:
        raise LayoutMismatch(
            f"this run's checkpoints were written with layout {was.describe()}; now it would run as "
            f"{plan.describe()}. {was.layout} checkpoints resume only the same way: resume with layout "
            f"{was.layout} on {was.processes} {'processes' if was.cpu else 'GPUs'}, or start a new run")
