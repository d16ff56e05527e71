"""What a signed-in visitor can fetch from the server's disk through Gradio's file route, asked with real HTTP requests
against a launched studio: the exports and datasets the UI hands out, never the job store, logs, run folders, models,
caches or a file a link in the workspace points to; and the upload limit (--max-upload-size), enforced by the
server and announced to the page."""

from __future__ import annotations

import json
import os
from urllib.parse import quote

import httpx


def _file(c: httpx.Client, url: str, path) -> httpx.Response:
    return c.get(f"{url}/gradio_api/file={quote(str(path))}")


def test_file_route_serves_exports_only_and_upload_limit(studio, tmp_path):
    ws = tmp_path / "ws"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("SECRET", encoding="utf-8")
    files = {
        "export": ws / "datasets" / "exports" / "qa-alpaca.json",
        "dataset": ws / "datasets" / "qa.jsonl",
        "chat_export": ws / "cache" / "chat-exports" / "chat-1.json",
        "run_log": ws / "runs" / "synth-1" / "log.txt",
        "run_config": ws / "runs" / "synth-1" / "job.yaml",
        "model": ws / "models" / "m" / "config.json",
        "cache": ws / "cache" / "teacher-k8" / "meta.json",
        "endpoints": ws / "endpoints.json",
    }
    for name, path in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"file": name}), encoding="utf-8")
    os.symlink(outside / "secret.txt", ws / "datasets" / "evil.jsonl")
    sp = studio("--auth", "alice:pw-123456", "--max-upload-size", "2kb")
    with httpx.Client() as c:
        assert _file(c, sp.url, files["export"]).status_code in (401, 403)  # signed out: nothing at all
        assert c.post(sp.url + "/gradio_api/upload", files={"files": ("a.jsonl", b"x")}).status_code in (401, 403)
        assert c.post(sp.url + "/login", data={"username": "alice", "password": "pw-123456"}).status_code == 200
        served = {n: _file(c, sp.url, p) for n, p in files.items()}
        for name in ("export", "dataset", "chat_export"):
            assert served[name].status_code == 200 and json.loads(served[name].text) == {"file": name}, name
        for name in ("run_log", "run_config", "model", "cache", "endpoints"):
            assert served[name].status_code == 403, (name, served[name].status_code)
        made = [ws / "studio.sqlite", ws / "logs" / "studio.log"]  # the studio's own job store and log
        made += [p for p in (ws / "studio.sqlite-wal", ws / "studio.sqlite-shm") if p.exists()]
        for path in made:
            assert path.is_file() and _file(c, sp.url, path).status_code == 403, path
        for escape in (ws / "datasets" / "evil.jsonl", ws / "datasets" / ".." / "studio.sqlite", outside / "secret.txt",
                       "/etc/passwd"):
            r = _file(c, sp.url, escape)
            assert r.status_code == 403 and "SECRET" not in r.text, escape

        # Uploads: the page is told the limit, and the server refuses a larger file itself.
        assert c.get(sp.url + "/config").json()["max_file_size"] == 2048
        small = c.post(sp.url + "/gradio_api/upload", files={"files": ("a.jsonl", b"x" * 1000)})
        assert small.status_code == 200
        big = c.post(sp.url + "/gradio_api/upload", files={"files": ("b.jsonl", b"x" * 5000)})
        assert big.status_code == 413


def test_studio_refuses_a_workspace_folder_that_links_out(tmp_path):
    """A workspace whose models/ is a link elsewhere would hand that folder to every visitor: the studio says so and
    does not start (a message, no traceback) until the operator allows the target with --allow-root."""
    import pytest

    from studio.app import main

    ws, elsewhere = tmp_path / "ws", tmp_path / "elsewhere"
    ws.mkdir()
    elsewhere.mkdir()
    os.symlink(elsewhere, ws / "models")
    with pytest.raises(SystemExit) as e:
        main(["--workspace", str(ws), "--port", "9"])
    assert str(e.value).startswith("error: 'models' is a link that leads outside the workspace")
