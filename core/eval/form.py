"""From the evaluation form's choices to an `EvaluateJob` (and the list of past evaluations to show).

The form offers the same model list as the chat columns (workspace models and registered endpoints); here a choice
becomes a BackendSpec: a workspace model is loaded by the evaluate job itself through transformers (or vLLM), an
endpoint is reached over HTTP. Web-UI configs are confined to the workspace before they are submitted.
"""

from __future__ import annotations

from typing import Any

from core.chat.servers import ENDPOINT_PREFIX, find_endpoint
from core.config.base import BackendSpec, EndpointSpec
from core.config.train import EvaluateJob
from core.workspace import Workspace


def spec_for(choice: str | None, ws: Workspace, backend: str = "transformers") -> BackendSpec | None:
    """A model picker's value as a BackendSpec; None for an empty choice."""
    choice = (choice or "").strip()
    if not choice:
        return None
    if choice.startswith(ENDPOINT_PREFIX):
        e = find_endpoint(ws, choice)
        return BackendSpec(type="openai", model=e.model or "",
                           endpoint=EndpointSpec(base_url=e.base_url, model=e.model, api_key_env=e.api_key_env))
    return BackendSpec(type=backend, model=choice)


def build_job(ws: Workspace, *, model: str, dataset: str, metrics: list[str], reference: str | None = None,
              judge: str | None = None, limit: int | None = None, answer_field: str | None = None,
              top_k: int = 20, max_new_tokens: int = 512, system_prompt: str | None = None,
              backend: str = "transformers", name: str = "", confine: bool = True) -> EvaluateJob:
    """Validate the form into a job config (pydantic errors name the field); web-UI input is confined to the
    workspace (`confine`), a local CLI user may name any path."""
    from core.refs import confine_paths

    if not model:
        raise ValueError("choose the model to evaluate")
    if not dataset:
        raise ValueError("choose a held-out dataset")
    data: dict[str, Any] = {
        "model": spec_for(model, ws, backend),
        "reference": spec_for(reference, ws, backend),
        "judge": spec_for(judge, ws, backend),
        "dataset": dataset,
        "metrics": list(metrics or []),
        "limit": int(limit) if limit else None,
        "answer_field": (answer_field or "").strip() or None,
        "top_k": int(top_k),
        "system_prompt": (system_prompt or "").strip() or None,
        "name": name or f"evaluate {model}",
    }
    job = EvaluateJob(**data)
    job.sampling.max_new_tokens = int(max_new_tokens)
    if confine:
        confine_paths(job, ws)
    return job


def dataset_choices(ws: Workspace) -> list[str]:
    """Workspace datasets by name (files directly under datasets/)."""
    from core.refs import DATASET_SUFFIXES

    out = []
    if ws.datasets.is_dir():
        for p in sorted(ws.datasets.iterdir()):
            if p.is_file() and p.suffix in DATASET_SUFFIXES:
                out.append(p.stem if p.suffix == ".jsonl" else p.name)
    return out


def evaluation_runs(jobs: Any) -> list[tuple[str, str]]:
    """(label, job id) of evaluate jobs, newest first, for the results and compare pickers."""
    out = []
    for info in jobs.list(kind="evaluate", limit=200, refresh=False):
        out.append((f"{info.name} · {info.id}", info.id))
    return out
