"""BackendSpec -> Backend. The one place that knows which implementation serves which spec.

- transformers: the model in this process (a job worker), batched, CPU or GPU.
- openai: any OpenAI-compatible endpoint.
- vllm: an endpoint if one is given (e.g. a running serve job), otherwise a vLLM server this job starts on its own
  devices and stops when the backend is closed.
"""

from __future__ import annotations

from pathlib import Path

from core.config.base import BackendSpec, EndpointSpec
from core.llm.base import Backend, BackendError
from core.modelpath import resolve_model
from core.workspace import Workspace


def make_backend(
    spec: BackendSpec,
    workspace: Workspace | None = None,
    device: str | None = None,
    devices: list[str] | None = None,
    log_dir: Path | None = None,
) -> Backend:
    """Build the backend a job config asks for. Heavy imports happen here, not at module import."""
    if spec.type == "openai" or (spec.type == "vllm" and spec.endpoint is not None):
        from core.llm.openai_http import OpenAIBackend

        endpoint = spec.endpoint
        if endpoint is None:
            raise BackendError("backend type 'openai' needs an endpoint (base_url)")
        if spec.model and not endpoint.model:
            endpoint = endpoint.model_copy(update={"model": spec.model})
        return OpenAIBackend(endpoint)

    path = resolve_model(spec.model, workspace)
    if spec.type == "transformers":
        from core.llm.hf_local import HFLocalBackend

        if device is None and devices:
            # job devices are global GPU indices, but the worker's CUDA_VISIBLE_DEVICES renumbers them from 0
            device = "cuda" if any(d.startswith("cuda") for d in devices) else "cpu"
        return HFLocalBackend(path, dtype=spec.dtype, device=device, batch_size=spec.batch_size,
                              trust_remote_code=spec.trust_remote_code, name=Path(spec.model).name or path.name)
    if spec.type == "vllm":
        return _managed_vllm(spec, path, devices, log_dir)
    raise BackendError(f"unknown backend type '{spec.type}'")


def _managed_vllm(spec: BackendSpec, path: Path, devices: list[str] | None, log_dir: Path | None) -> Backend:
    """Start vLLM for this job and talk to it over HTTP; closing the backend stops the server."""
    from core.llm.openai_http import OpenAIBackend
    from core.llm.vllm_server import VllmServer, visible_gpu_count

    name = Path(spec.model).name or path.name
    server = VllmServer(str(path), name, spec.vllm, dtype=spec.dtype, gpus=visible_gpu_count(devices),
                        log_path=(log_dir / "vllm.log") if log_dir else None,
                        trust_remote_code=spec.trust_remote_code)
    server.start()
    try:
        server.wait_healthy()
    except BaseException:
        server.stop()
        raise
    endpoint = EndpointSpec(base_url=server.base_url, model=name, concurrency=max(8, spec.batch_size),
                            timeout_s=600.0, max_retries=3)
    return OpenAIBackend(endpoint, name=name, on_close=server.stop)
