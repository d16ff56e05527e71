"""Model reference -> local folder, and the chat-template check, with no import of core.llm or core.models.

Backends (core.llm) need exactly this much of the model registry to load a model; keeping it here, below both rooms,
lets core.models build on core.llm without core.llm reaching back up. `core.models.registry` re-exports these names.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from core.errors import BackendError
from core.workspace import Workspace

HUB_ID = re.compile(r"^(?:(hf|huggingface|ms|modelscope):)?([\w.\-]+/[\w.\-]+)$")


def read_json(path: Path) -> dict:
    """A model folder's JSON file; {} when it is absent, BackendError naming the file when it is broken."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BackendError(f"{path}: not valid JSON ({e})") from e


def has_chat_template(folder: Path) -> bool:
    if (folder / "chat_template.jinja").exists() or (folder / "chat_template.json").exists():
        return True
    return bool(read_json(folder / "tokenizer_config.json").get("chat_template"))


def require_chat_template(folder: Path) -> None:
    if not has_chat_template(folder):
        raise BackendError(
            f"model '{folder}' has no chat template, so conversations cannot be turned into prompts. Use an "
            "instruct/chat model, or add one: put a chat_template.jinja file (e.g. ChatML) in the model folder."
        )


def hub_snapshot(repo_id: str, hub: str = "hf") -> Path:
    """A local snapshot of a hub model (downloaded unless offline). Raises BackendError with what to do."""
    try:
        if hub in ("ms", "modelscope"):
            try:
                from modelscope import snapshot_download as ms_download
            except ImportError as e:
                raise BackendError(
                    f"'{repo_id}' is a ModelScope id but the modelscope package is not installed (pip install "
                    "modelscope), or download the model into workspace/models/"
                ) from e
            return Path(ms_download(repo_id))
        from huggingface_hub import snapshot_download

        offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
        return Path(snapshot_download(repo_id, local_files_only=offline))
    except BackendError:
        raise
    except Exception as e:  # the hub libraries raise many kinds; the user needs one message
        raise BackendError(
            f"model '{repo_id}' is not a local folder or workspace model, and the hub could not provide it "
            f"({type(e).__name__}: {str(e).splitlines()[0][:200]}). Put the model folder under workspace/models/, "
            "give a local path, or (with network) set HF_ENDPOINT to a reachable mirror / use 'modelscope:<id>'."
        ) from e


def resolve_model(ref: str, workspace: Workspace | None = None, confine: bool = False) -> Path:
    """A model reference (workspace model name, folder path, hub id, 'modelscope:<id>') -> a local folder.

    `confine=True` (references typed into the web UI) refuses paths outside the workspace's allowed roots.
    """
    ref = (ref or "").strip()
    if not ref:
        raise BackendError("no model given: choose a workspace model, a folder or a hub id")
    if workspace is not None:
        candidate = workspace.models / ref
        if "/" not in ref and "\\" not in ref and candidate.is_dir():
            return workspace.inside(candidate)  # a link leading out of the workspace is refused
    p = Path(ref).expanduser()
    if p.is_absolute() or ref.startswith((".", "~")) or p.exists():
        if workspace is None:
            path = p.resolve()
        else:  # a web visitor's path stays in the allowed roots; a local user's never enters the workspace's links
            path = workspace.resolve(ref) if confine else workspace.local(ref)
        if not path.is_dir():
            raise BackendError(f"model folder '{ref}' does not exist")
        return path
    m = HUB_ID.match(ref)
    if m:
        if workspace is not None and (workspace.models / ref).is_dir():
            return workspace.inside(workspace.models / ref)
        return hub_snapshot(m.group(2), m.group(1) or os.environ.get("EDS_MODEL_HUB", "hf"))
    known = ", ".join(sorted(p.name for p in workspace.models.iterdir() if p.is_dir())[:10]) if workspace else ""
    raise BackendError(
        f"unknown model '{ref}': not a folder, not a workspace model"
        + (f" (workspace has: {known})" if known else "")
        + ", not a hub id (org/name)"
    )
