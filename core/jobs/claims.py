"""GPUs held until stopped: a job kind whose config says HOLDS_DEVICES (a model server) keeps its GPUs until someone
stops it, so a second such job given one of those GPUs would wait in the queue for ever. Several teachers at once
each take GPUs of their own (each serve job's worker and vLLM see only theirs through CUDA_VISIBLE_DEVICES);
`check_held_gpus` refuses at submit, naming the job in the way, when a new one claims a GPU another holds or asks for,
or asks for more GPUs than the servers leave free.
"""

from __future__ import annotations

from typing import Any

from core.jobs.scheduler import DeviceRequestError, Request, gpu_index


class GpuClaimed(DeviceRequestError):
    """A model server asked for a GPU another model server holds (or waits for) until it is stopped."""


def holds_devices(kind: str) -> bool:
    from core.config.registry import KINDS

    return bool(getattr(KINDS.get(kind), "HOLDS_DEVICES", False))


def _claimed(rows: list[dict]) -> tuple[dict[int, dict], int]:
    """(GPU index -> the holding job's row, GPUs asked for by count by holders not placed yet)."""
    held: dict[int, dict] = {}
    waiting = 0
    for row in rows:
        if not holds_devices(str(row.get("kind"))) or row.get("executor"):
            continue  # a job on a cluster holds the cluster's GPUs, not this machine's
        placed = [i for i in (gpu_index(str(d)) for d in row.get("devices") or []) if i is not None]
        req = Request.from_json(row.get("request"))
        for i in placed or list(req.indices or ()):
            held[i] = row
        if not placed and req.indices is None:
            waiting += req.count
    return held, waiting


def check_held_gpus(config: Any, request: Request, rows: list[dict], gpus: list[int]) -> None:
    """Raise GpuClaimed when `config` (a device-holding kind) cannot get its GPUs while the other holders in `rows`
    (queued and active jobs) keep theirs. Other kinds queue for GPUs as usual (their holders end on their own)."""
    if request.cpu or not getattr(type(config), "HOLDS_DEVICES", False):
        return
    held, waiting = _claimed(rows)
    if request.indices is not None:
        for i in request.indices:
            if i in held:
                other = held[i]
                free = ", ".join(str(g) for g in gpus if g not in held) or "none"
                raise GpuClaimed(
                    f"GPU {i} is held by {other.get('kind')} job {other.get('id')} ({other.get('name')}) until it is "
                    f"stopped: give this one other GPUs (free: {free}) or stop that job first")
        return
    left = len([g for g in gpus if g not in held]) - waiting
    if request.count > left:
        names = ", ".join(sorted({str(r.get("id")) for r in held.values()})) or "queued servers"
        raise GpuClaimed(f"the job asks for {request.count} GPU(s) but model servers hold or wait for "
                         f"{len(gpus) - max(left, 0)} of this machine's {len(gpus)} until stopped ({names}): stop one "
                         "first, or ask for fewer")
