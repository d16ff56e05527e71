"""What the pickers offer (models, endpoints, datasets, logit caches, past jobs) and what a picked value means.

One place for all tabs and the CLI: a model picker's value is a workspace model name, a folder, a hub id, or
`endpoint:<name>` for a registered OpenAI-compatible endpoint; `spec_for` turns it into the `BackendSpec` a job needs.
"""

from __future__ import annotations

from typing import Any

from core.config.base import BackendSpec, EndpointSpec
from core.errors import UserError
from core.workspace import Workspace

ENDPOINT_PREFIX = "endpoint:"  # how a model picker marks a registered endpoint


class UnknownEndpoint(UserError, ValueError):
    """A picker named an endpoint that is not registered."""


def find_endpoint(ws: Workspace, choice: str) -> Any:
    """The registered endpoint a picker value `endpoint:<name>` (or a bare name) names."""
    from core.models.registry import load_endpoints

    name = choice[len(ENDPOINT_PREFIX):] if choice.startswith(ENDPOINT_PREFIX) else choice
    for e in load_endpoints(ws):
        if e.name == name:
            return e
    raise UnknownEndpoint(f"no endpoint named '{name}' is registered (Models tab: add it)")


def spec_for(choice: str | None, ws: Workspace, backend: str = "transformers") -> BackendSpec | None:
    """A model picker's value as a BackendSpec (None for an empty choice): an endpoint is reached over HTTP, anything
    else is loaded by the job itself through `backend` (transformers or vllm)."""
    choice = (choice or "").strip()
    if not choice:
        return None
    if choice.startswith(ENDPOINT_PREFIX):
        e = find_endpoint(ws, choice)
        return BackendSpec(type="openai", model=e.model or "",
                           endpoint=EndpointSpec(base_url=e.base_url, model=e.model, api_key_env=e.api_key_env))
    return BackendSpec(type=backend, model=choice)


def choice_for(spec: BackendSpec | None, ws: Workspace) -> str:
    """The picker value that `spec_for` would turn into `spec` (a registered endpoint by its name where one matches)."""
    if spec is None:
        return ""
    if spec.type == "openai" and spec.endpoint is not None:
        from core.models.registry import load_endpoints

        for e in load_endpoints(ws):
            if e.base_url == spec.endpoint.base_url and (e.model or None) == (spec.endpoint.model or None):
                return f"{ENDPOINT_PREFIX}{e.name}"
        return spec.endpoint.model or spec.model
    return spec.model


def model_choices(ws: Workspace, endpoints: bool = True) -> list[tuple[str, str]]:
    """(label, value) of the models a job can use: workspace models (no bare adapters), then registered endpoints."""
    from core.models.registry import list_models

    local, remote = [], []
    for m in list_models(ws):
        if m.source == "endpoint":
            if endpoints:
                remote.append((f"🌐 {m.name}", f"{ENDPOINT_PREFIX}{m.name}"))
        elif not m.is_adapter:
            local.append((m.name, m.name))
    return local + remote


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


def job_choices(jobs: Any, kinds: tuple[str, ...] | None = None, limit: int = 50) -> list[tuple[str, str]]:
    """(label, id) of past jobs of `kinds`, newest first, for a tab's job picker."""
    out = []
    for j in jobs.list(limit=200, refresh=False):
        if kinds is None or j.kind in kinds:
            out.append((f"{j.name} · {j.id}", j.id))
    return out[:limit]
