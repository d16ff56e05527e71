"""The Models tab's table: one row per model the studio can use, facts read from the files (no model is loaded).

`extra` is what a person typed into "Also inspect": folders inside the workspace and hub ids, comma or line separated.
"""

from __future__ import annotations

from core.models import registry
from core.workspace import Workspace

COLUMNS = ("name", "source", "architecture", "params", "layers", "vocab", "dtype", "chat", "size", "note")


def extra_items(text: str | None) -> list[str]:
    """The folders / hub ids in the "Also inspect" text."""
    return [x.strip() for x in (text or "").replace("\n", ",").split(",") if x.strip()]


def model_rows(ws: Workspace, extra: str | None = None) -> list[list]:
    """Rows under COLUMNS: workspace models, the extra folders (confined to the workspace: raises
    PathOutsideWorkspace) and hub ids, then registered endpoints (their URL and key variable in the note)."""
    paths, hubs = [], []
    for item in extra_items(extra):
        (hubs if registry.HUB_ID.match(item) and not (ws.root / item).exists() else paths).append(item)
    rows: list[list] = []
    for m in registry.list_models(ws, [str(ws.resolve(p)) for p in paths], hubs):
        if m.source == "endpoint":
            key = f" (key: ${m.api_key_env})" if m.api_key_env else ""
            rows.append([m.name, m.source, m.architecture, "", "", "", "", "", "", f"{m.base_url}{key}"])
            continue
        chat = "" if m.chat_template is None else ("yes" if m.chat_template else "NO")
        rows.append([m.name, m.source, m.architecture or "", registry.human_params(m.params), m.num_layers or "",
                     m.vocab_size or "", m.dtype or "", chat, registry.human_bytes(m.disk_bytes), m.error or ""])
    return rows
