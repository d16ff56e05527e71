"""Saving an arena conversation as a JSON file the person downloads (models, sampling and every turn with stats).

The file lands in `workspace/cache/chat-exports/` — inside the workspace, so the studio may serve it for download,
and in the cache, because it is a copy the person takes away rather than a dataset the studio manages.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from core.chat.session import ChatSession
from core.errors import UserError
from core.workspace import Workspace

EXPORT_FOLDER = "chat-exports"


class NothingToExport(UserError, ValueError):
    """The conversation has no turns yet."""


def export_chat(ws: Workspace, session: ChatSession, requests: Iterable[Any] = ()) -> Path:
    """Write the conversation (with the model and sampling of each column in `requests`, `ColumnRequest`s) and return
    the file's path. Raises NothingToExport for an empty conversation."""
    if not session.turns:
        raise NothingToExport("nothing to export yet: send a message first")
    columns = {r.column: {"model": r.model, "sampling": vars(r.params)} for r in requests}
    folder = ws.cache / EXPORT_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"chat-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(session.export(columns), ensure_ascii=False, indent=1), encoding="utf-8")
    return path
