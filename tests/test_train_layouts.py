"""Multi-device training layouts (core.jobs.layouts): the accelerate / DeepSpeed configs a layout writes, read back by
accelerate's own launcher code (config-file parser, launch-argument merge, the environment it hands the ranks) and
turned into accelerate's DeepSpeedPlugin / FullyShardedDataParallelPlugin — deepspeed itself is not installed here,
and those two build without it; the refusals when a layout does not fit the devices; resume only on the layout the
checkpoints were written with; the Training form's preview; and a real 2-process CPU DDP job (torchrun) through the
job manager (slow)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from core.config.selftest import SelftestJob
from core.config.train import ALL_GPUS, SftJob
from core.jobs import launch, layouts
from core.jobs.context import JobContext
from core.jobs.layouts import LayoutMismatch, LayoutRefused, Plan, plan_for

GPUS2 = ["cuda:0", "cuda:1"]


def _sft(**kw) -> SftJob:
    return SftJob(student="s", dataset="d", **kw)


def _launched(cmd: list[str]):
    """What `accelerate launch` makes of our command: accelerate's parser, its config-file merge, and the environment
    it gives each rank (the steps of accelerate.commands.launch.launch_command, without starting anything)."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    args = launch_command_parser().parse_args(cmd[3:])
    args, defaults, mp_from_config = _validate_launch_command(args)
    if args.use_deepspeed:
        args.deepspeed_fields_from_accelerate_config = ",".join(
            [*defaults.deepspeed_config, *(["mixed_precision"] if mp_from_config else [])])
        _, env = prepare_deepspeed_cmd_env(args)
    else:
        env = prepare_multi_gpu_env(args)
    return args, env


@pytest.mark.parametrize("layout,offload", [("zero2", False), ("zero3", True)])
def test_deepspeed_configs_pass_accelerates_parser_and_plugin(tmp_path, monkeypatch, layout, offload):
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DeepSpeedPlugin, DistributedType

    plan = Plan(layout, 4, cpu=False, offload=offload)
    folder = layouts.launch_dir(tmp_path, "train")
    path = layouts.write_files(plan, folder, [f"cuda:{i}" for i in range(4)])
    assert sorted(p.name for p in folder.iterdir()) == ["accelerate_config.yaml", "ds_config.json", "layout.json"]
    assert load_config_from_file(str(path)).distributed_type == DistributedType.DEEPSPEED
    cmd = layouts.command(plan, tmp_path, path, step="train", python="/py", port=29555)
    args, env = _launched(cmd)
    assert args.use_deepspeed and args.num_processes == 4 and args.main_process_port == 29555
    assert args.training_script == "core.jobs.worker" and args.module
    assert args.training_script_args == [str(tmp_path), "--rank", "--step", "train"]
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    plugin = DeepSpeedPlugin()  # reads the environment a rank gets, and our ds_config.json through it
    stage = int(layout[-1])
    assert plugin.zero_stage == stage and plugin.hf_ds_config.is_zero3() == (stage == 3)
    assert plugin.offload_optimizer_device == ("cpu" if offload else "none")
    assert plugin.zero3_init_flag == (stage == 3)
    zero = plugin.deepspeed_config["zero_optimization"]
    assert zero["stage"] == stage and plugin.deepspeed_config["train_micro_batch_size_per_gpu"] == "auto"
    if stage == 3:
        assert zero["stage3_gather_16bit_weights_on_model_save"]  # the published model is whole weights
        assert plugin.offload_param_device == "cpu"


def test_fsdp_and_ddp_configs_pass_accelerates_parser_and_plugin(tmp_path, monkeypatch):
    from accelerate.utils import FullyShardedDataParallelPlugin

    plan = Plan("fsdp", 2, cpu=False, offload=True)
    path = layouts.write_files(plan, tmp_path / "fsdp", GPUS2)
    args, env = _launched(layouts.command(plan, tmp_path, path, port=29556))
    assert args.use_fsdp and args.num_processes == 2 and not args.use_deepspeed
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    fsdp = FullyShardedDataParallelPlugin()
    assert fsdp.fsdp_version == 2 and fsdp.reshard_after_forward is True
    assert "FULL_STATE_DICT" in str(fsdp.state_dict_type) and fsdp.cpu_offload
    assert fsdp.auto_wrap_policy.__name__ == "transformer_auto_wrap_policy"
    assert not (tmp_path / "fsdp" / "ds_config.json").exists()

    plan = Plan("ddp", 2, cpu=False)
    path = layouts.write_files(plan, tmp_path / "ddp", GPUS2)
    args, env = _launched(layouts.command(plan, tmp_path, path, port=29557))
    assert args.multi_gpu and args.num_processes == 2 and env["ACCELERATE_MIXED_PRECISION"] == "no"


def test_cpu_ddp_runs_through_torchrun():
    from torch.distributed.run import get_args_parser

    plan = plan_for(_sft(layout="ddp", processes=2, gpus="cpu"), ["cpu"])
    assert plan == Plan("ddp", 2, cpu=True) and plan.launcher == "torchrun"
    cmd = layouts.command(plan, Path("/r"), None, step="train", python="/py", port=29558)
    args = get_args_parser().parse_args(cmd[3:])
    assert args.nproc_per_node == "2" and args.module and args.training_script == "core.jobs.worker"
    assert args.training_script_args == ["/r", "--rank", "--step", "train"] and args.master_port == 29558


def test_plans_and_refusals():
    assert plan_for(_sft(), ["cpu"]) == Plan("single", 1, cpu=True)
    assert plan_for(_sft(), ["cuda:3"]) == Plan("single", 1, cpu=False)
    assert plan_for(_sft(), GPUS2) == Plan("ddp", 2, cpu=False)  # what a 2-GPU training job always did
    assert plan_for(_sft(layout="fsdp", offload=True), GPUS2, cuda=True) == Plan("fsdp", 2, False, offload=True)
    assert plan_for(_sft(layout="zero3"), ["cuda:0"], cuda=True, deepspeed=True) == Plan("zero3", 1, cpu=False)
    assert plan_for(_sft(layout="zero2", offload=False), GPUS2, cuda=True, deepspeed=True).launcher == "accelerate"
    assert plan_for(SelftestJob(), GPUS2) is None  # not a training step

    with pytest.raises(LayoutRefused, match="needs DeepSpeed, which is not installed"):
        plan_for(_sft(layout="zero3"), GPUS2, cuda=True, deepspeed=False)
    with pytest.raises(LayoutRefused, match="needs CUDA"):
        plan_for(_sft(layout="zero2"), GPUS2, cuda=False, deepspeed=True)
    with pytest.raises(LayoutRefused, match="needs GPUs"):
        plan_for(_sft(layout="fsdp"), ["cpu"])
    with pytest.raises(LayoutRefused, match="at least 2 GPUs and this job got 1"):
        plan_for(_sft(layout="fsdp"), ["cuda:0"], cuda=True)
    with pytest.raises(LayoutRefused, match="processes ≥ 2"):
        plan_for(_sft(layout="ddp"), ["cpu"])
    # what the config can tell before any device is given
    with pytest.raises(ValidationError, match="zero3 runs on GPUs"):
        _sft(layout="zero3", gpus="cpu")
    with pytest.raises(ValidationError, match="at least 2 GPUs"):
        _sft(layout="ddp", gpus=[1])
    assert _sft(layout="fsdp").auto_gpus() == ALL_GPUS and _sft().auto_gpus() == 1


def _ctx(tmp_path: Path, step: str | None = None) -> JobContext:
    from core.workspace import Workspace

    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    return JobContext("j", run, Workspace.open(tmp_path / "ws"), devices=["cpu"], step_name=step, attempt=2)


def test_resume_only_on_the_layout_the_checkpoints_were_written_with(tmp_path, monkeypatch):
    ran: list[str] = []
    monkeypatch.setattr(launch, "resolve_entry", lambda cfg: lambda c, ctx: ran.append(ctx.step_name or "-"))
    ctx = _ctx(tmp_path, "train")
    folder = layouts.launch_dir(ctx.run_dir, "train")
    layouts.write_files(Plan("zero3", 4, cpu=False), folder, [f"cuda:{i}" for i in range(4)])
    launch.run_entry(_sft(), ctx)  # no checkpoint yet: nothing to protect, the new layout is recorded
    assert ran == ["train"] and json.loads((folder / "layout.json").read_text())["layout"] == "single"

    layouts.write_files(Plan("zero3", 4, cpu=False), folder, [f"cuda:{i}" for i in range(4)])
    (ctx.output_dir / "checkpoints" / "checkpoint-40").mkdir(parents=True)
    with pytest.raises(LayoutMismatch, match=r"written with layout zero3 on 4 GPUs; now it would run as single "
                       r"on 1 CPU process.*resume with layout zero3 on 4 GPUs, or start a new run"):
        launch.run_entry(_sft(), ctx)
    assert ran == ["train"]  # refused before anything ran
    # single <-> ddp save the same state: allowed; a sharded layout needs the same number of processes too
    layouts.check_resume(Plan("single", 1, cpu=False), layouts.launch_dir(ctx.run_dir, "x"), ctx.output_dir)
    layouts.write_files(Plan("ddp", 2, cpu=False), folder, GPUS2)
    layouts.check_resume(Plan("single", 1, cpu=True), folder, ctx.output_dir)
    layouts.write_files(Plan("fsdp", 4, cpu=False), folder, GPUS2)
    with pytest.raises(LayoutMismatch, match="fsdp on 4 GPUs"):
        layouts.check_resume(Plan("fsdp", 2, cpu=False), folder, ctx.output_dir)
    layouts.check_resume(Plan("fsdp", 4, cpu=False), folder, ctx.output_dir)


def test_a_refused_layout_fails_before_anything_is_launched(tmp_path, monkeypatch):
    monkeypatch.setattr(launch, "_run_distributed", lambda *a: pytest.fail("launched"))
    monkeypatch.setattr(layouts, "deepspeed_installed", lambda: False)
    ctx = _ctx(tmp_path)
    ctx.devices = GPUS2
    with pytest.raises(LayoutRefused, match="pip install deepspeed"):
        launch.run_entry(_sft(layout="zero2"), ctx)
    assert not layouts.launch_dir(ctx.run_dir).exists()


def test_training_form_shows_layout_and_its_launch_files(workspace, monkeypatch):
    from core.train.form import FORM

    monkeypatch.setenv("EDS_FAKE_GPUS", "4")  # the preview counts GPUs with nvidia-smi (faked here)
    monkeypatch.setattr(layouts, "deepspeed_installed", lambda: True)
    values = {**FORM.defaults(), "student": "tiny", "dataset": "d", "layout": "zero3", "offload": True,
              "gradient_checkpointing": True}
    job = FORM.build_job(workspace, values)
    assert (job.layout, job.offload, job.gradient_checkpointing) == ("zero3", True, True)
    back = FORM.values_of(job, workspace)
    assert (back["layout"], back["offload"], back["processes"]) == ("zero3", True, 1)
    text, _ = FORM.preview(workspace, job)
    assert yaml.safe_load(text)["layout"] == "zero3"  # the launch files are comments: still the job's YAML
    assert "# launch: zero3 on 4 GPUs with CPU offload (accelerate)" in text
    assert "#   distributed_type: DEEPSPEED" in text and '#       "stage": 3,' in text
    text, _ = FORM.preview(workspace, FORM.build_job(workspace, {**values, "layout": "fsdp", "gpus": "2"}))
    assert "# launch: fsdp on 2 GPUs" in text and "#     fsdp_version: 2" in text and "ds_config" not in text
    monkeypatch.setattr(layouts, "deepspeed_installed", lambda: False)
    text, _ = FORM.preview(workspace, job)
    assert "# launch: refused: layout zero3 needs DeepSpeed" in text
    assert "# launch" not in FORM.preview(workspace, FORM.build_job(workspace, {**values, "layout": "auto"}))[0]


@pytest.mark.slow
def test_two_process_cpu_ddp_job_through_the_job_manager(tiny_models, workspace):
    """layout ddp, processes 2, on the CPU: the supervisor launches 2 ranks with torchrun, rank 0 alone writes."""
    from core.jobs.manager import JobManager

    rows = [{"id": f"r{i}", "instruction": f"Add {i} and {i}.", "output": f"{2 * i}"} for i in range(16)]
    (workspace.datasets / "adds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = SftJob(student=str(tiny_models.student), dataset="adds", output="ddp-student", max_steps=2, gpus="cpu",
                 layout="ddp", processes=2, per_device_train_batch_size=2, gradient_accumulation_steps=1,
                 save_steps=100, logging_steps=1)
    jm = JobManager(workspace)
    job = jm.submit(cfg)
    deadline = time.monotonic() + 400
    while not jm.get(job).finished and time.monotonic() < deadline:
        time.sleep(1)
    info = jm.get(job)
    run = workspace.runs / job
    log = (run / "log.txt").read_text()
    assert info.status == "succeeded", log[-3000:]
    assert "launching ddp on 2 CPU processes: -m torch.distributed.run" in log
    assert json.loads((run / "launch" / "layout.json").read_text())["processes"] == 2
    steps = [m["step"] for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in m]
    assert steps == [1, 2]  # one writer: rank 0
    assert (workspace.models / "ddp-student" / "model.safetensors").is_file()
