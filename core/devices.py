"""Device discovery without importing torch: `nvidia-smi` (the studio process must stay light)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Device:
    index: int | None  # None = the CPU
    name: str
    memory_total_mb: int = 0
    memory_used_mb: int = 0

    @property
    def key(self) -> str:
        return "cpu" if self.index is None else f"cuda:{self.index}"

    def to_dict(self) -> dict:
        return {**asdict(self), "key": self.key}


CPU = Device(index=None, name="CPU")


def _fake_inventory(spec: str) -> list[Device]:
    """`EDS_FAKE_GPUS=2` or `EDS_FAKE_GPUS=A100:80000,A100:80000`: a pretend inventory for tests of scheduling."""
    if spec.isdigit():
        return [Device(i, "FakeGPU", 24000, 0) for i in range(int(spec))]
    out = []
    for i, part in enumerate(spec.split(",")):
        name, _, mem = part.partition(":")
        out.append(Device(i, name or "FakeGPU", int(mem or 24000), 0))
    return out


def discover_gpus(timeout: float = 5.0) -> list[Device]:
    """GPUs seen by nvidia-smi (index, name, memory). An empty list means: run on the CPU."""
    fake = os.environ.get("EDS_FAKE_GPUS")
    if fake:
        return _fake_inventory(fake)
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=index,name,memory.total,memory.used", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=timeout, check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    devices = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 4 and parts[0].isdigit():
            devices.append(Device(int(parts[0]), parts[1], _int(parts[2]), _int(parts[3])))
    return devices


def _int(s: str) -> int:
    try:
        return int(float(s))
    except ValueError:
        return 0


def describe(devices: list[Device]) -> str:
    """One line for footers and logs."""
    if not devices:
        return "CPU"
    return ", ".join(f"GPU{d.index} {d.name} ({d.memory_used_mb}/{d.memory_total_mb} MiB)" for d in devices)
