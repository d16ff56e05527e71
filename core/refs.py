"""Confinement of whole job configs: which files a config's names and paths may reach.

Names in a config are turned into files by their rooms (`core.data.store.resolve_dataset`,
`core.models.registry.resolve_model`); this module checks a config before it is submitted, with the rules of
`core.workspace`:

- `check_links` (every config, web or CLI; `JobControl.submit` runs it): no name or path that lands in the workspace
  leads out of it through a symlink — so a job refuses at submit, naming the field, rather than read or write
  elsewhere hours later.
- `confine_paths` (a remote visitor's config, from the web UI): additionally, no path points outside the workspace.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.workspace import PathOutsideWorkspace, Workspace

DATASET_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet", ".tsv")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")  # org/name


# Config keys that name files or folders (datasets, models, caches, templates, outputs).
PATH_FIELDS = {
    "input", "output", "dataset", "eval_dataset", "logits", "template", "student", "teacher", "source", "base",
    "rejected_from", "reward_model", "judge_template", "critique_template", "verify_template", "templates",
}


def path_values(config: Any) -> Iterator[tuple[str, str]]:
    """(dotted key, value) of every field of a config that names a file or folder (nested configs and steps too)."""
    from pydantic import BaseModel

    def walk(obj: Any, prefix: str) -> Iterator[tuple[str, str]]:
        if isinstance(obj, BaseModel):
            for name in type(obj).model_fields:
                value = getattr(obj, name)
                key = f"{prefix}{name}"
                if name in PATH_FIELDS and isinstance(value, str):
                    yield key, value
                elif name in PATH_FIELDS and isinstance(value, dict):  # judge templates per metric
                    yield from ((f"{key}.{k}", v) for k, v in value.items() if isinstance(v, str))
                elif name == "model" and isinstance(value, str) and getattr(obj, "type", "") != "openai":
                    yield key, value
                else:
                    yield from walk(value, key + ".")
        elif isinstance(obj, (list, tuple)):
            for i, v in enumerate(obj):
                yield from walk(v, f"{prefix}[{i}].")

    yield from walk(config, "")


def _is_path(value: str) -> bool:
    return "/" in value or os.sep in value or value.startswith((".", "~"))


def name_files(ws: Workspace, name: str) -> list[Path]:
    """The workspace files a bare name can turn into (dataset + sidecars, model, cache, template, a root file)."""
    stem = name.removesuffix(".jsonl").removesuffix(".json")
    files = [ws.datasets / f"{stem}{s}" for s in (".jsonl", ".rejects.jsonl", ".meta.json", ".json")]
    return [*files, ws.models / name, ws.cache / name, ws.templates / name, ws.root / name]


def check_link(ws: Workspace, value: str) -> None:
    """Refuse a name or path that lands in the workspace and leads out of it through a link (LinkOutsideWorkspace).
    A path elsewhere on the machine passes (a local user's choice; `confine_paths` refuses it for visitors)."""
    if not value or "\x00" in value:
        return
    if _is_path(value):
        ws.local(value, ws.root)
        if not HUB_ID.match(value):
            return
    for f in name_files(ws, value):
        if os.path.lexists(f):
            ws.inside(f)


def _named(key: str, e: PathOutsideWorkspace) -> PathOutsideWorkspace:
    e.args = (f"'{key}': {e}",)
    e.field = key  # type: ignore[attr-defined]  # the studio names the field beside the (translated) text
    return e


def check_links(config: Any, ws: Workspace) -> None:
    """Refuse a config (from anyone) with a name or path that leads out of the workspace through a symlink."""
    for key, value in path_values(config):
        try:
            check_link(ws, value)
        except PathOutsideWorkspace as e:
            raise _named(key, e) from None


def confine_paths(config: Any, ws: Workspace) -> None:
    """Refuse a config from a remote visitor that names a path outside the workspace, or a name or path that leads
    out through a link (raises PathOutsideWorkspace naming the field).

    Hub ids (org/name that is no existing path) stay allowed: they name no file on this machine.
    """
    for key, value in path_values(config):
        try:
            check_link(ws, value)
            if value and not (HUB_ID.match(value) and not Path(value).exists()):
                ws.resolve(value)
        except PathOutsideWorkspace as e:
            raise _named(key, e) from None
