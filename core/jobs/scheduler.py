"""Which queued job gets which devices: pure functions, so packing and queueing are tested without GPUs.

Rules
- A job asks for GPUs (a count or exact indices) or for the CPU. `auto` means the config's own default
  (`DEFAULT_GPUS`, or its `auto_gpus()` method when it has one) on a GPU machine, and the CPU elsewhere.
- GPUs are exclusive: a GPU belongs to one job until it ends (model servers hold theirs until stopped).
- The CPU is shared by `cpu_slots` jobs at once (env `EDS_CPU_SLOTS`, default half the cores, at least 2): most
  CPU jobs wait on a remote API or are small, so serialising them would waste the box, yet a cap keeps a laptop
  usable.
- The queue is FIFO per resource: the first GPU job that does not fit blocks the GPU jobs behind it (so a 2-GPU
  job is not starved by a stream of 1-GPU jobs); CPU jobs queue separately and never wait for GPUs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from core.errors import UserError

CPU_KEY = "cpu"


class DeviceRequestError(UserError, ValueError):
    """A device request this machine can never satisfy (shown to the user at submit time)."""


@dataclass(frozen=True)
class Request:
    """What a job needs: the CPU (`count == 0`), `count` GPUs, or exactly `indices`."""

    count: int = 0
    indices: tuple[int, ...] | None = None

    @property
    def cpu(self) -> bool:
        return self.count == 0

    def to_json(self) -> dict:
        return {"count": self.count, "indices": list(self.indices) if self.indices is not None else None}

    @classmethod
    def from_json(cls, data: dict | None) -> Request:
        data = data or {}
        idx = data.get("indices")
        return cls(int(data.get("count") or 0), tuple(idx) if idx is not None else None)

    def describe(self) -> str:
        if self.cpu:
            return "CPU"
        if self.indices is not None:
            return "GPU " + ",".join(str(i) for i in self.indices)
        return f"{self.count} GPU" + ("s" if self.count > 1 else "")


def default_cpu_slots() -> int:
    env = os.environ.get("EDS_CPU_SLOTS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(2, (os.cpu_count() or 2) // 2)


def auto_gpus(config: Any) -> int:
    """GPUs a config wants when it says `gpus: auto` (pipelines: the most any step wants)."""
    steps = getattr(config, "steps", None)
    if isinstance(steps, list) and steps and all(hasattr(s, "job") for s in steps):
        return max(auto_gpus(s.job) for s in steps)
    fn = getattr(config, "auto_gpus", None)
    if callable(fn):
        return int(fn())
    return int(getattr(config, "DEFAULT_GPUS", 0) or 0)


def resolve_request(gpus: Any, config: Any, inventory: list[int]) -> Request:
    """Turn a `gpus` value ('auto', 'cpu', a count, or indices) into a Request valid on this inventory."""
    if gpus is None or gpus == "auto":
        want = auto_gpus(config)
        if not inventory or want <= 0:
            return Request()
        return Request(min(want, len(inventory)))
    if gpus == "cpu":
        return Request()
    if isinstance(gpus, bool):
        raise DeviceRequestError(f"gpus: {gpus!r} is not a device request; use 'auto', 'cpu', a count or indices",
                                 code="gpus_unclear", params={"gpus": gpus})
    if isinstance(gpus, int):
        if gpus < 0:
            raise DeviceRequestError(f"gpus: {gpus} must be 0 or more", code="gpus_unclear", params={"gpus": gpus})
        if gpus == 0:
            return Request()
        if not inventory:
            raise DeviceRequestError(
                f"the job asks for {gpus} GPU(s) but this machine has none; set gpus: cpu (or auto)",
                code="gpus_none", params={"n": gpus})
        if gpus > len(inventory):
            raise DeviceRequestError(f"the job asks for {gpus} GPUs but this machine has {len(inventory)}",
                                     code="gpus_too_few", params={"n": gpus, "have": len(inventory)})
        return Request(gpus)
    if isinstance(gpus, (list, tuple)):
        idx = tuple(dict.fromkeys(int(i) for i in gpus))
        if not idx:
            return Request()
        missing = [i for i in idx if i not in inventory]
        if missing:
            have = ", ".join(str(i) for i in inventory) or "none"
            raise DeviceRequestError(f"the job asks for GPU {missing} which this machine lacks (GPUs: {have})",
                                     code="gpus_missing", params={"missing": missing, "have": have})
        return Request(len(idx), idx)
    raise DeviceRequestError(f"gpus: {gpus!r} is not understood; use 'auto', 'cpu', a count (2) or indices ([0, 1])",
                             code="gpus_unclear", params={"gpus": gpus})


def gpu_index(key: str) -> int | None:
    return int(key.split(":", 1)[1]) if key.startswith("cuda:") else None


def cuda_visible_devices(devices: list[str]) -> str:
    """The CUDA_VISIBLE_DEVICES value for a job's devices ('' hides every GPU from a CPU job)."""
    return ",".join(str(i) for i in (gpu_index(d) for d in devices) if i is not None)


@dataclass(frozen=True)
class Waiting:
    job_id: str
    request: Request


def plan(
    queue: list[Waiting], inventory: list[int], held: set[int], cpu_running: int, cpu_slots: int,
    hold: set[str] | frozenset[str] = frozenset(),
) -> list[tuple[str, list[str]]]:
    """Jobs to start now, in queue order, with the device keys each gets. `held` = GPU indices in use; `hold` =
    queued jobs this caller may not start (they keep their place and block the jobs behind them)."""
    free = [i for i in inventory if i not in held]
    cpu_free = max(0, cpu_slots - cpu_running)
    gpu_blocked = cpu_blocked = False
    starts: list[tuple[str, list[str]]] = []
    for w in queue:
        r = w.request
        if w.job_id in hold:
            if r.cpu:
                cpu_blocked = True
            else:
                gpu_blocked = True
            continue
        if r.cpu:
            if cpu_blocked or cpu_free <= 0:
                cpu_blocked = True
                continue
            cpu_free -= 1
            starts.append((w.job_id, [CPU_KEY]))
            continue
        if gpu_blocked:
            continue
        if r.indices is not None:
            take = list(r.indices) if all(i in free for i in r.indices) else None
        else:
            take = free[: r.count] if len(free) >= r.count else None
        if take is None:
            gpu_blocked = True
            continue
        free = [i for i in free if i not in take]
        starts.append((w.job_id, [f"cuda:{i}" for i in take]))
    return starts
