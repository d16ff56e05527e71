"""The studio as a real server process: API reachable, proxy root path honoured, auth enforced, light process."""

import subprocess
import sys

import httpx
import pytest

from tests.browser_support import ROOT


def test_gradio_client_reaches_studio(studio):
    from gradio_client import Client

    sp = studio()
    client = Client(sp.url, verbose=False)
    info = client.view_api(return_format="dict", print_info=False)
    assert "named_endpoints" in info and "unnamed_endpoints" in info
    cfg = httpx.get(sp.url + "/config").json()
    labels = {c.get("props", {}).get("label") for c in cfg["components"]}
    for tab in ("Start here", "Data", "Models", "Synthesis", "CoT Curation", "Training", "Chat", "Jobs"):
        assert tab in labels, f"tab {tab} missing from the served UI"


def test_root_path_behind_proxy(studio):
    """PAI-DSW serves the port under /dsw-<id>/proxy/<port>/: assets and API must be addressed under that root."""
    sp = studio("--root-path", "/dsw-1/proxy/7860")
    headers = {"X-Forwarded-Host": "dsw-gateway.example.com", "X-Forwarded-Proto": "https"}
    cfg = httpx.get(sp.url + "/config", headers=headers).json()
    assert cfg["root"] == "https://dsw-gateway.example.com/dsw-1/proxy/7860"
    page = httpx.get(sp.url + "/", headers=headers).text
    assert "/dsw-1/proxy/7860" in page


def test_root_path_from_env(studio):
    sp = studio(env={"GRADIO_ROOT_PATH": "/dsw-9/proxy/7860"})
    cfg = httpx.get(sp.url + "/config").json()
    assert cfg["root"].endswith("/dsw-9/proxy/7860")


def test_auth_blocks_unauthenticated(studio):
    sp = studio("--auth", "alice:s3cret-pw")
    assert httpx.get(sp.url + "/config").status_code in (401, 403)
    r = httpx.post(sp.url + "/gradio_api/queue/join", json={})
    assert r.status_code in (401, 403, 422) and "components" not in r.text
    with httpx.Client() as c:
        bad = c.post(sp.url + "/login", data={"username": "alice", "password": "nope"})
        assert bad.status_code == 400
        ok = c.post(sp.url + "/login", data={"username": "alice", "password": "s3cret-pw"})
        assert ok.status_code == 200
        assert c.get(sp.url + "/config").status_code == 200
    assert "s3cret-pw" not in sp.log()


def test_refuses_public_bind_without_auth(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "studio.app", "--workspace", str(tmp_path / "ws"), "--host", "0.0.0.0"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert r.returncode != 0
    assert "--auth" in r.stderr


# what the studio's process must not import at start: the ML stack, and the openai SDK (~0.6 s; imported where an
# endpoint backend is built, core.llm.openai_http)
HEAVY = ("torch", "transformers", "trl", "peft", "vllm", "openai")


def test_studio_process_imports_no_heavy_modules(tmp_path):
    code = (
        f"import sys; HEAVY = {HEAVY!r}; from studio.app import build_app; from studio.options import StudioOptions; "
        f"build_app(StudioOptions(workspace={str(tmp_path / 'ws')!r})); "
        "print('HEAVY=' + ','.join(m for m in HEAVY if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    heavy = [line for line in r.stdout.splitlines() if line.startswith("HEAVY=")][-1]
    assert heavy == "HEAVY=", f"heavy modules imported by the studio: {heavy}"


@pytest.mark.parametrize("lang", ["zh"])
def test_every_ui_string_is_translated(lang):
    from studio.i18n import missing, strings

    assert strings("en"), "no English strings loaded"
    assert missing(lang) == [], f"keys without a {lang} translation"
