"""What the names in a job config point at: the one place that turns dataset/model/cache references into paths.

A config may name a dataset by workspace name (`alpaca-labelled` -> datasets/alpaca-labelled.jsonl), by a file in the
workspace, or (CLI) by any local path; a model by workspace name (models/<name>), a local folder or a hub id.
Configs that arrive from the web UI are checked with `confine_paths` before they are submitted, so a remote visitor
cannot make a job read or write outside the workspace.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from core.workspace import PathOutsideWorkspace, Workspace

DATASET_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet", ".tsv")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")  # org/name


def _looks_like_path(ref: str) -> bool:
    return ref.startswith(("/", "./", "../", "~")) or ref.endswith(DATASET_SUFFIXES) or os.sep + os.sep in ref


def resolve_dataset(ref: str, ws: Workspace) -> Path:
    """An existing dataset file for `ref`; FileNotFoundError says where it looked."""
    ref = ref.strip()
    candidates = [Path(ref).expanduser()] if os.path.isabs(os.path.expanduser(ref)) else []
    candidates += [ws.datasets / f"{ref}.jsonl", ws.datasets / ref, ws.root / ref]
    for c in candidates:
        if c.is_file():
            return c.resolve()
    raise FileNotFoundError(
        f"dataset '{ref}' not found (looked for {', '.join(str(c) for c in candidates)}); "
        "import it in the Data tab or give a file path"
    )


def dataset_output_path(name: str, ws: Workspace) -> Path:
    """Where a job writes the dataset it produces: a workspace name becomes datasets/<name>.jsonl."""
    name = name.strip()
    if os.path.isabs(os.path.expanduser(name)) or name.endswith(DATASET_SUFFIXES) or "/" in name:
        p = Path(name).expanduser()
        return p if p.is_absolute() else (ws.root / p)
    return ws.datasets / f"{name}.jsonl"


def resolve_model(ref: str, ws: Workspace) -> str:
    """A local folder for `ref` if there is one, else `ref` itself as a hub id (validated by its shape)."""
    ref = ref.strip()
    if not ref:
        raise ValueError("no model given")
    p = Path(ref).expanduser()
    for c in ([p] if p.is_absolute() else [ws.models / ref, ws.root / ref, p]):
        if c.is_dir():
            return str(c.resolve())
    if _looks_like_path(ref) or not HUB_ID.match(ref):
        raise FileNotFoundError(
            f"model '{ref}' is neither a folder under {ws.models} or on disk nor a hub id like 'Qwen/Qwen2.5-0.5B'"
        )
    return ref


def model_output_path(name: str, ws: Workspace) -> Path:
    p = Path(name).expanduser()
    return p if p.is_absolute() else ws.models / name


def cache_path(name: str, ws: Workspace) -> Path:
    p = Path(name).expanduser()
    return p if p.is_absolute() else ws.cache / name


# Config keys that name files or folders (datasets, models, caches, templates, outputs).
PATH_FIELDS = {
    "input", "output", "dataset", "eval_dataset", "logits", "template", "student", "teacher", "source", "base",
    "rejected_from", "reward_model",
}


def confine_paths(config: Any, ws: Workspace) -> None:
    """Refuse a config from a remote visitor that names a path outside the workspace (raises PathOutsideWorkspace).

    Hub ids (org/name that is no existing path) stay allowed: they name no file on this machine.
    """
    from pydantic import BaseModel

    def check(key: str, value: str) -> None:
        if not value or (HUB_ID.match(value) and not Path(value).exists()):
            return
        try:
            ws.resolve(value)
        except PathOutsideWorkspace as e:
            raise PathOutsideWorkspace(f"'{key}': {e}") from None

    def walk(obj: Any, prefix: str) -> None:
        if isinstance(obj, BaseModel):
            for name in type(obj).model_fields:
                value = getattr(obj, name)
                key = f"{prefix}{name}"
                if name in PATH_FIELDS and isinstance(value, str):
                    check(key, value)
                elif name == "model" and isinstance(value, str) and getattr(obj, "type", "") != "openai":
                    check(key, value)
                else:
                    walk(value, key + ".")
        elif isinstance(obj, (list, tuple)):
            for i, v in enumerate(obj):
                walk(v, f"{prefix}[{i}].")

    walk(config, "")
