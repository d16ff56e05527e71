"""What the pickers offer: workspace models and registered endpoints, datasets, logit caches, past jobs.

One place for every tab and the CLI. What a picked model value means (`spec_for`, `choice_for`, `ENDPOINT_PREFIX`)
lives in `core.endpoints`, below the rooms that have forms; these lists read the rooms themselves, so they sit above.
"""

from __future__ import annotations

from typing import Any

from core.endpoints import ENDPOINT_PREFIX
from core.workspace import Workspace


def model_choices(ws: Workspace, endpoints: bool = True) -> list[tuple[str, str]]:
    """(label, value) of the models a job can chat with, generate from or train: workspace models (no bare adapters,
    no reward / classifier heads: they cannot generate), then registered endpoints."""
    from core.models.registry import list_models

    local, remote = [], []
    for m in list_models(ws):
        if m.source == "endpoint":
            if endpoints:
                remote.append((f"🌐 {m.name}", f"{ENDPOINT_PREFIX}{m.name}"))
        elif not m.is_adapter and m.head is None:
            local.append((m.name, m.name))
    return local + remote


def reward_model_choices(ws: Workspace) -> list[tuple[str, str]]:
    """(label, value) of workspace reward models (a train_reward output, or a one-label sequence classifier): what a
    GRPO reward or an evaluation's reward_model metric loads."""
    from core.models.registry import list_models

    return [(m.name, m.name) for m in list_models(ws)
            if m.source != "endpoint" and not m.is_adapter and m.head == "reward"]


def endpoint_choices(ws: Workspace) -> list[tuple[str, str]]:
    """(label, value) of the registered endpoints alone (a form that asks "which server?" next to a typed URL)."""
    return [c for c in model_choices(ws) if c[1].startswith(ENDPOINT_PREFIX)]


def local_model_names(ws: Workspace) -> list[str]:
    """Workspace model folders that hold a full model (what training and derivation can start from)."""
    return [value for _, value in model_choices(ws, endpoints=False)]


def dataset_choices(ws: Workspace) -> list[str]:
    """Workspace datasets by name."""
    from core.data.store import dataset_names

    return dataset_names(ws)


def cache_choices(ws: Workspace) -> list[str]:
    """Teacher logit caches under workspace/cache (folders with a meta.json)."""
    if not ws.cache.is_dir():
        return []
    return sorted(p.name for p in ws.cache.iterdir() if (p / "meta.json").is_file())


def job_choices(jobs: Any, kinds: tuple[str, ...] | None = None, limit: int = 50,
                pipelines: bool = False) -> list[tuple[str, str]]:
    """(label, id) of past jobs of `kinds`, newest first, for a tab's job picker; with `pipelines`, also the pipelines
    with a step of those kinds (the Start tab's ② Train)."""
    out = []
    for j in jobs.list(limit=200, refresh=False):
        if kinds is None or j.kind in kinds or (pipelines and set(kinds) & set(getattr(j, "step_kinds", ()))):
            out.append((f"{j.name} · {j.id}", j.id))
    return out[:limit]
