"""What the browser may fetch from the server's disk, and how large an upload may be.

Gradio serves a file by path (`/gradio_api/file=<path>`) when it lies in `allowed_paths` and not in `blocked_paths`
(both checked on the resolved path, so a symlink does not open a way out), and copies a file a handler returns into
its own cache only under the same rule (plus the current and temp folders, which `blocked_paths` still closes). So a
visitor gets the folders the UI hands out for download — datasets (with their exports and uploads), chat and
evaluation exports — and never the job store (`studio.sqlite`), the studio's log, run folders (logs, configs) or the
endpoint list (all blocked outright), nor models or caches (not allowed).

Uploads: `max_file_size` makes Gradio refuse a larger file in the page (before sending it) and on the server (413).
A proxy in front (PAI-DSW's, nginx with its 1 MB default `client_max_body_size`) may refuse smaller files with its
own 413, which Gradio shows as a raw "HTTP 413: <html>". The script from `upload_script` words both cases in the
page's language and says what to do instead: put the file under the workspace and import it by path.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from core.endpoints import ENDPOINTS_FILE
from core.workspace import Workspace
from studio.i18n import LANGS, t

DEFAULT_MAX_UPLOAD = "200mb"
CHAT_EXPORTS = "chat-exports"  # core.chat.export.EXPORT_FOLDER, under cache/
EVAL_EXPORTS = "eval-exports"  # where the Evaluate view writes the report a visitor downloads, under cache/
_SIZE = re.compile(r"^\s*(\d+)\s*(b|kb|mb|gb|tb)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4}


def parse_size(text: str | int) -> int:
    """'200mb', '1gb', '512kb' or bytes -> bytes (ValueError naming the accepted forms)."""
    if isinstance(text, int):
        return text
    m = _SIZE.match(text or "")
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"'{text}' is not a size: write e.g. 200mb, 1gb or 512kb")
    return int(m.group(1)) * _UNITS[(m.group(2) or "b").lower()]


def human_size(n: int) -> str:
    """1 MB, 1.5 GB, 300 B: the limit as the upload message states it."""
    for unit in ("TB", "GB", "MB", "KB"):
        value = n / _UNITS[unit.lower()]
        if value >= 1:
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} B"


def served_folders(ws: Workspace) -> list[Path]:
    """The folders whose files a visitor may download (created now, so Gradio's check finds them)."""
    folders = [ws.datasets, ws.cache / CHAT_EXPORTS, ws.cache / EVAL_EXPORTS]
    for f in folders:
        ws.inside(f).mkdir(parents=True, exist_ok=True)
    return folders


def blocked_files(ws: Workspace) -> list[Path]:
    """Never served, whatever else allows them: the job store, the studio's log, run folders, caches, endpoints."""
    store = ws.db_path
    db = [store, *(store.with_name(store.name + s) for s in ("-wal", "-shm", "-journal"))]
    return [*db, ws.root / "logs", ws.runs, ws.root / ENDPOINTS_FILE]


def launch_files(ws: Workspace, max_upload: int | None) -> dict:
    """The keyword arguments of `Blocks.launch` that decide what the browser may fetch and send."""
    return {
        "allowed_paths": [str(p) for p in served_folders(ws)],
        "blocked_paths": [str(p) for p in blocked_files(ws)],
        "max_file_size": max_upload,
    }


def upload_script(max_upload: int | None, launch_lang: str) -> str:
    """A page script wording a refused upload in the page's language: Gradio's own "File(s) exceed the maximum
    allowed size" (our limit) and a proxy's "HTTP 413" (a lower limit in front of us)."""
    limit = human_size(max_upload) if max_upload else ""
    texts = {lang: {"limit": t("app.upload_too_large", lang, limit=limit),
                    "proxy": t("app.upload_refused_by_proxy", lang)} for lang in LANGS}
    return (
        "<script>(function(){"
        f"var T={json.dumps(texts, ensure_ascii=False)};"
        "function lang(){try{var q=new URLSearchParams(location.search).get('lang');if(T[q])return q;"
        "var s=localStorage.getItem('eds-lang');if(T[s])return s;}catch(e){}"
        f"return (navigator.language||'').indexOf('zh')===0?'zh':'{launch_lang}';}}"
        # A proxy's 413 on an upload: answer Gradio's client with our words instead of the proxy's HTML page.
        "var F=window.fetch;window.fetch=function(u,o){return F.apply(this,arguments).then(function(r){"
        "var url=String((u&&u.url)||u);if(r.status===413&&url.indexOf('/upload')>=0){"
        "return new Response(T[lang()].proxy,{status:413,statusText:'Payload Too Large'});}return r;});};"
        # Gradio's own refusal (our limit), shown in a toast: replace its English text.
        "var M='exceed the maximum allowed size';"
        "function fix(n){if(n.nodeType===3){if(n.nodeValue.indexOf(M)>=0)n.nodeValue=T[lang()].limit;return;}"
        "for(var c=n.firstChild;c;c=c.nextSibling)fix(c);}"
        "new MutationObserver(function(ms){ms.forEach(function(m){m.addedNodes.forEach(fix);"
        "if(m.type==='characterData')fix(m.target);});})"
        ".observe(document.documentElement,{childList:true,subtree:true,characterData:true});"
        "})();</script>"
    )
