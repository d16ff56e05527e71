"""Confinement of whole job configs that arrive from the web UI.

Names in a config are turned into files by their rooms (`core.data.store.resolve_dataset`,
`core.models.registry.resolve_model`); this module checks, before a visitor's config is submitted, that none of its
path fields points outside the workspace, so a remote visitor cannot make a job read or write elsewhere.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from core.workspace import PathOutsideWorkspace, Workspace

DATASET_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet", ".tsv")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")  # org/name


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
