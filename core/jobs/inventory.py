"""The devices a manager schedules on: this machine's GPUs, or a list injected by tests (and passed on to workers)."""

from __future__ import annotations

import time

from core.devices import Device, discover_gpus

INVENTORY_TTL_S = 5.0  # GPU memory figures for the device panel


class Inventory:
    """Discovery runs once; `fresh=True` (the device panel) re-reads memory figures at most every few seconds."""

    def __init__(self, injected: list[Device] | None = None) -> None:
        self._injected = injected
        self._cache: tuple[float, list[Device]] | None = None

    def devices(self, fresh: bool = False) -> list[Device]:
        """GPUs of this machine ([] = CPU only)."""
        if self._injected is not None:
            return list(self._injected)
        now = time.monotonic()
        if self._cache is None or (fresh and now - self._cache[0] > INVENTORY_TTL_S):
            self._cache = (now, discover_gpus())
        return list(self._cache[1])

    def gpu_indices(self) -> list[int]:
        return [d.index for d in self.devices() if d.index is not None]

    def fake_spec(self) -> str | None:
        """EDS_FAKE_GPUS for workers, so a worker sees the same injected inventory as its manager."""
        if self._injected is None:
            return None
        if not self._injected:
            return "0"
        return ",".join(f"{d.name}:{d.memory_total_mb}" for d in self._injected)
