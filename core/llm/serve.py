"""The `serve` job: hold a model behind an OpenAI-compatible endpoint until stopped.

model.type == "vllm": a managed vLLM server process on the job's devices (tensor parallel = number of GPUs, which are
the only ones it sees; a GPU count that does not divide the model's attention heads is refused before loading).
Several serve jobs run side by side on GPUs of their own; one claiming a GPU another server holds is refused at
submit (core.jobs.claims).
model.type == "transformers": the model in this worker, behind our own small server (local_server), so the Chat tab
and other jobs reach every model through one protocol (backend "openai"). The endpoint is written to
`output/endpoint.json` ({base_url, model, type, pid}) as soon as it answers; stop = terminate the server (its process
group for vLLM), which frees the devices.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from core.config.train import ServeJob
from core.jobs.context import JobContext
from core.modelpath import resolve_model

ENDPOINT_FILE = "endpoint.json"


def served_name(config: ServeJob) -> str:
    """The name clients ask for: the workspace model name (or the folder name of a path)."""
    return Path(config.model.model.rstrip("/")).name or "model"


def write_endpoint(ctx: JobContext, base_url: str, model: str, kind: str, pid: int) -> Path:
    path = ctx.output_dir / ENDPOINT_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"base_url": base_url, "model": model, "type": kind, "pid": pid,
                               "started": time.time()}, indent=2))
    tmp.replace(path)
    return path


def read_endpoint(run_dir: Path) -> dict | None:
    """The endpoint a serve job published (None while it is starting)."""
    for p in (Path(run_dir) / "output" / ENDPOINT_FILE, *Path(run_dir).glob(f"output/*/{ENDPOINT_FILE}")):
        if p.exists():
            return json.loads(p.read_text())
    return None


def _hold(ctx: JobContext, alive) -> None:
    while not ctx.should_stop():
        if not alive():
            raise RuntimeError("the model server exited unexpectedly (see the log above)")
        time.sleep(0.5)


def run(config: ServeJob, ctx: JobContext) -> None:
    spec = config.model
    name = served_name(config)
    path = resolve_model(spec.model, ctx.workspace)
    if spec.type == "vllm":
        _serve_vllm(config, ctx, str(path), name)
    elif spec.type == "transformers":
        _serve_transformers(config, ctx, path, name)
    else:
        raise ValueError("serve: model.type must be 'vllm' or 'transformers' (an 'openai' endpoint is already served)")


def vllm_server(config: ServeJob, devices: list[str], path: str, name: str, log_path: Path | None = None):
    """The vLLM server a serve job runs: tensor parallel over the job's GPUs, which are the only ones it sees
    (CUDA_VISIBLE_DEVICES = their indices), so several teachers run side by side on GPUs of their own."""
    from core.jobs.scheduler import cuda_visible_devices
    from core.llm.vllm_server import VllmServer, visible_gpu_count

    return VllmServer(path, name, config.model.vllm, host=config.host, port=config.port, dtype=config.model.dtype,
                      gpus=visible_gpu_count(devices), log_path=log_path,
                      trust_remote_code=config.model.trust_remote_code,
                      visible_devices=cuda_visible_devices(devices) if visible_gpu_count(devices) else None)


def _serve_vllm(config: ServeJob, ctx: JobContext, path: str, name: str) -> None:
    server = vllm_server(config, ctx.devices, path, name, ctx.run_dir / "vllm.log")
    gpus = server.gpus
    ctx.event(f"starting vLLM on {gpus or 'CPU'} {'GPU(s)' if gpus else ''}: {' '.join(server.command())}".strip())
    t0 = time.monotonic()
    server.start()
    try:
        if not server.wait_healthy(config.startup_timeout_s, ctx.should_stop):
            return
        write_endpoint(ctx, server.base_url, name, "vllm", server.proc.pid)
        ctx.event(f"vLLM serving {name} at {server.base_url} (ready in {time.monotonic() - t0:.0f} s)",
                  base_url=server.base_url)
        ctx.progress(1, 1, ready_s=round(time.monotonic() - t0, 1))
        _hold(ctx, server.alive)
    finally:
        server.stop()
        ctx.event("vLLM stopped")


def _serve_transformers(config: ServeJob, ctx: JobContext, path: Path, name: str) -> None:
    from core.llm.hf_local import HFLocalBackend
    from core.llm.local_server import LocalOpenAIServer

    t0 = time.monotonic()
    # ctx.devices name global GPU indices; CUDA_VISIBLE_DEVICES makes the first of them cuda:0 in this process
    device = "cuda" if any(d.startswith("cuda") for d in ctx.devices) else "cpu"
    backend = HFLocalBackend(path, dtype=config.model.dtype, device=device, batch_size=config.model.batch_size,
                             trust_remote_code=config.model.trust_remote_code, name=name)
    server = LocalOpenAIServer(backend, name, host=config.host, port=config.port).start()
    try:
        write_endpoint(ctx, server.base_url, name, "transformers", os.getpid())
        ctx.event(f"serving {name} (transformers, {device}) at {server.base_url}", base_url=server.base_url)
        ctx.progress(1, 1, ready_s=round(time.monotonic() - t0, 1))
        _hold(ctx, lambda: True)
    finally:
        server.stop()
        backend.close()
