"""OpenAI-compatible endpoints registered in the workspace (`endpoints.json`), and what a model picker's value means.

A model picker's value is a workspace model name, a folder, a hub id, or `endpoint:<name>` for a registered endpoint;
`spec_for` turns it into the `BackendSpec` a job needs and `choice_for` back. It sits below `core.models` and
`core.forms` (it imports neither), so every room can name an endpoint the same way. Only the env-var *name* of an API
key is stored, never a key.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core.config.base import BackendSpec, EndpointSpec
from core.errors import BackendError, UserError
from core.modelpath import read_json
from core.workspace import Workspace

ENDPOINTS_FILE = "endpoints.json"
ENDPOINT_PREFIX = "endpoint:"  # how a model picker marks a registered endpoint


@dataclass
class EndpointEntry:
    name: str
    base_url: str
    model: str | None = None
    api_key_env: str | None = None
    notes: str = ""




def endpoints_path(ws: Workspace) -> Path:
    return ws.root / ENDPOINTS_FILE


def load_endpoints(ws: Workspace) -> list[EndpointEntry]:
    data = read_json(endpoints_path(ws))
    return [EndpointEntry(**e) for e in data.get("endpoints", [])]


def save_endpoint(ws: Workspace, entry: EndpointEntry) -> None:
    """Add or replace an endpoint by name. Only the env-var *name* of a key is stored, never a key."""
    if not entry.name.strip():
        raise BackendError("endpoint name is empty")
    if not re.match(r"^https?://", entry.base_url.strip()):
        raise BackendError(f"endpoint URL '{entry.base_url}' must start with http:// or https://")
    if entry.api_key_env and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", entry.api_key_env):
        raise BackendError(
            f"'{entry.api_key_env}' is not an environment variable name: give the NAME of the variable that holds "
            "the key (e.g. DASHSCOPE_API_KEY), not the key itself"
        )
    entries = [e for e in load_endpoints(ws) if e.name != entry.name] + [entry]
    path = endpoints_path(ws)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"endpoints": [asdict(e) for e in entries]}, indent=2), encoding="utf-8")
    tmp.replace(path)


def remove_endpoint(ws: Workspace, name: str) -> bool:
    entries = load_endpoints(ws)
    kept = [e for e in entries if e.name != name]
    if len(kept) == len(entries):
        return False
    endpoints_path(ws).write_text(json.dumps({"endpoints": [asdict(e) for e in kept]}, indent=2), encoding="utf-8")
    return True


class UnknownEndpoint(UserError, ValueError):
    """A picker named an endpoint that is not registered."""


def find_endpoint(ws: Workspace, choice: str) -> Any:
    """The registered endpoint a picker value `endpoint:<name>` (or a bare name) names."""
    name = choice[len(ENDPOINT_PREFIX):] if choice.startswith(ENDPOINT_PREFIX) else choice
    for e in load_endpoints(ws):
        if e.name == name:
            return e
    raise UnknownEndpoint(f"no endpoint named '{name}' is registered (Models tab: add it)", code="unknown_endpoint",
                          params={"name": name})


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
        for e in load_endpoints(ws):
            if e.base_url == spec.endpoint.base_url and (e.model or None) == (spec.endpoint.model or None):
                return f"{ENDPOINT_PREFIX}{e.name}"
        return spec.endpoint.model or spec.model
    return spec.model
