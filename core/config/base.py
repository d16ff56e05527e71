"""Shared pieces of every job config: strictness, model/backend references, sampling, device requests.

Configs are pydantic models: the same class validates YAML, builds the UI form (field descriptions are its help
text) and is what a job's entry point receives. Unknown keys are errors that name the key.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class EndpointSpec(StrictModel):
    """An OpenAI-compatible server (vLLM, PAI-EAS, DashScope, Ollama, ...)."""

    base_url: str = Field(description="e.g. http://127.0.0.1:8000/v1")
    model: str | None = Field(None, description="served model name; empty = the only model the server lists")
    api_key_env: str | None = Field(None, description="name of the environment variable holding the API key")
    api_key: SecretStr | None = Field(
        None, description="accepted for EasyDistill configs, never written back; prefer api_key_env"
    )
    concurrency: int = Field(8, ge=1, le=1024, description="requests in flight")
    timeout_s: float = Field(120.0, gt=0, description="per-request timeout")
    max_retries: int = Field(5, ge=0, le=50, description="retries on 429/5xx/timeouts, with backoff")


class VllmOptions(StrictModel):
    python: str | None = Field(None, description="Python of the vLLM environment (default: .venv-vllm/bin/python)")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    max_model_len: int = Field(4096, ge=16)
    enforce_eager: bool = False
    enable_chunked_prefill: bool | None = None
    extra_args: list[str] = Field(default_factory=list)


class BackendSpec(StrictModel):
    """How to reach a model: a local/hub model through transformers or vLLM, or a remote endpoint."""

    type: Literal["transformers", "openai", "vllm"] = "transformers"
    model: str = Field("", description="local folder, workspace model name or hub id (served name for openai)")
    endpoint: EndpointSpec | None = None
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    batch_size: int = Field(8, ge=1, description="rows per generate() call (transformers)")
    trust_remote_code: bool = False
    vllm: VllmOptions | None = None

    @field_validator("endpoint")
    @classmethod
    def _endpoint_for_openai(cls, v, info):
        if info.data.get("type") == "openai" and v is None:
            raise ValueError("type 'openai' needs an endpoint with base_url")
        return v


class Sampling(StrictModel):
    temperature: float = Field(0.8, ge=0, le=5, description="0 = greedy")
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int | None = Field(None, ge=1)
    max_new_tokens: int = Field(512, ge=1, le=131072)
    seed: int | None = 777
    stop: list[str] = Field(default_factory=list)


GpuRequest = int | list[int] | Literal["auto", "cpu"]


class JobBase(StrictModel):
    """Fields every job has. Subclasses set `kind` (a Literal) and ENTRY, the worker's `module:function`."""

    ENTRY: ClassVar[str] = ""
    DEFAULT_GPUS: ClassVar[int] = 0  # what "auto" means when GPUs exist (0 = runs on CPU / needs none)

    kind: str
    name: str = Field("", description="a name to find the job by; default: kind + time")
    gpus: GpuRequest = Field(
        "auto", description="'auto', 'cpu', a count (2) or indices ([0, 1]); none on machines without GPUs"
    )
