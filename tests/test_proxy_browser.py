"""The studio behind a real reverse proxy: Debian's nginx on loopback serving it under a PAI-DSW-like sub-path
(`/user/x/proxy/7860/`, the prefix stripped, `Host: $host:$server_port`, `X-Forwarded-Host: $host` without the port,
SSE and websocket upgrade headers), started by the test on a free port with a config of its own and stopped after.

In Chromium through the proxy: styles load, tabs switch, a small file is uploaded and imported, exported, and the
export's download link (which Gradio builds from the forwarded host, see studio/proxy.py) keeps the proxy's port and
really downloads the file; a self-test job's progress moves on its own. Without nginx (`make test` installs it:
scripts/setup_proxy.sh) the browser test is skipped, saying so. The header rules themselves are unit-tested here too.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from core.net import free_port
from studio.proxy import public_headers, split_host
from tests.browser_support import cancel_active_jobs

PREFIX = "/user/x/proxy/7860"
PCT = "document.querySelector('#jobs-progress .eds-job-progress')"

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
{user}
events {{ worker_connections 256; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    client_max_body_size 20m;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    server {{
        listen 127.0.0.1:{port};
        location {prefix}/ {{
            proxy_pass http://127.0.0.1:{upstream}/;
            proxy_http_version 1.1;
            proxy_set_header Host $host:$server_port;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_buffering off;
            proxy_read_timeout 600s;
        }}
    }}
}}
"""


def nginx_binary() -> str | None:
    found = shutil.which("nginx")
    return found or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)


@contextmanager
def nginx_proxy(upstream_port: int, tmp: Path) -> Iterator[str]:
    """nginx in front of 127.0.0.1:`upstream_port` under PREFIX; yields the page's address through it."""
    binary = nginx_binary()
    if binary is None:
        pytest.skip("nginx is not installed: the proxy test needs Debian's nginx (scripts/setup_proxy.sh, run by "
                    "`make test`, installs it)")
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = tmp / "nginx.conf"
    # As root the workers would run as nobody, who cannot write the temp folders under pytest's private tmp.
    user = "user root;" if os.geteuid() == 0 else ""
    conf.write_text(NGINX_CONF.format(tmp=tmp, user=user, port=port, prefix=PREFIX, upstream=upstream_port))
    proc = subprocess.Popen([binary, "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "error.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 20
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {(tmp / 'error.log').read_text(errors='replace')[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError("nginx did not listen within 20 s") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}{PREFIX}/"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# ------------------------------------------------------------------------------------------------ the header rules


@pytest.mark.parametrize("headers, want", [
    ({"host": "127.0.0.1:7860"}, {}),  # no proxy: nothing to do
    ({"host": "gw:8080", "x-forwarded-host": "gw"}, {"x-forwarded-host": "gw:8080"}),  # Host $host:$server_port
    ({"host": "gw", "x-forwarded-host": "gw", "x-forwarded-port": "8080"}, {"x-forwarded-host": "gw:8080"}),
    ({"host": "gw:8080", "x-forwarded-host": "gw:9000"}, {}),  # the proxy said the port: kept
    ({"host": "127.0.0.1:7860", "x-forwarded-host": "gw"}, {}),  # the upstream's Host names another host
    # the browser's Origin is the address it used (wins over an upstream Host of the same name)
    ({"host": "127.0.0.1:7860", "x-forwarded-host": "127.0.0.1", "origin": "http://127.0.0.1:8081"},
     {"x-forwarded-host": "127.0.0.1:8081"}),
    ({"host": "gw", "origin": "http://gw:8081"}, {"x-forwarded-host": "gw:8081"}),  # Host $host, no X-Forwarded
    ({"host": "x", "x-forwarded-host": "gw", "origin": "https://gw"}, {"x-forwarded-proto": "https"}),
    ({"host": "x", "x-forwarded-host": "gw", "origin": "https://gw:8443"},
     {"x-forwarded-proto": "https", "x-forwarded-host": "gw:8443"}),
    ({"host": "x", "x-forwarded-host": "gw", "origin": "https://evil.example"}, {}),  # another site's page
    ({"host": "x", "x-forwarded-host": "gw", "x-forwarded-port": "443", "x-forwarded-proto": "https"}, {}),
    ({"host": "x", "x-forwarded-host": "[::1]", "x-forwarded-port": "8080"}, {"x-forwarded-host": "[::1]:8080"}),
])
def test_forwarded_host_keeps_the_port(headers, want):
    assert public_headers(headers) == want


def test_split_host():
    assert split_host("GW.example.com:8080") == ("gw.example.com", 8080)
    assert split_host("[::1]:80") == ("::1", 80) and split_host("gw") == ("gw", None)


# -------------------------------------------------------------------------------------------- through real nginx


@pytest.mark.browser
@pytest.mark.timeout(300)
def test_studio_through_nginx_sub_path(studio, browser_page, tmp_path, artifacts_dir):
    ws = tmp_path / "ws"
    src = tmp_path / "facts.jsonl"
    rows = [{"instruction": f"Fact {i}?", "output": f"Answer {i}."} for i in range(6)]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    if nginx_binary() is None:
        pytest.skip("nginx is not installed: the proxy test needs Debian's nginx (scripts/setup_proxy.sh, run by "
                    "`make test`, installs it)")
    sp = studio("--root-path", PREFIX)
    with nginx_proxy(int(sp.url.rsplit(":", 1)[1]), tmp_path / "nginx") as url:
        origin = url.split(PREFIX)[0]
        assert httpx.get(url + "config").json()["root"] == origin + PREFIX  # the port kept, without a browser
        page = browser_page
        failed: list[str] = []
        styles: list[str] = []
        page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else
                styles.append(r.url) if r.url.split("?")[0].endswith(".css") else None)
        # (Gradio's client aborts an event stream it no longer needs: net::ERR_ABORTED is not a failure)
        page.on("requestfailed", lambda r: None if "ERR_ABORTED" in (r.failure or "") else
                failed.append(f"{r.failure} {r.url}"))
        try:
            page.goto(url)
            data_tab = page.get_by_role("tab", name="Data", exact=True)
            data_tab.wait_for()
            # Styles came through the proxy and apply: a styled tab, not the browser's default serif button.
            assert styles and all(s.startswith(origin + PREFIX) for s in styles), styles
            assert "Times" not in data_tab.evaluate("e => getComputedStyle(e).fontFamily")

            # Tabs switch; a small file is uploaded through the proxy and imported.
            data_tab.click()
            page.locator("#data-upload input[type=file]").set_input_files(str(src))
            page.wait_for_selector("#data-detected:has-text('EasyDistill')")
            page.get_by_label("Dataset name").fill("facts")
            page.get_by_role("button", name="Import", exact=True).click()
            page.wait_for_selector("#data-import-result:has-text('imported 6 row(s)')")

            # Export, then download it through the link the studio built: the proxy's host, port and sub-path.
            page.get_by_text("Convert, export, split, dedupe").click()
            page.get_by_role("button", name="Export", exact=True).click()
            page.wait_for_selector("#data-export-result:has-text('6 row(s) written')", timeout=60_000)
            link = page.get_by_role("row").filter(has_text="facts-messages").get_by_role("link").first  # "⇣ 1.2 KB"
            href = link.get_attribute("href")
            assert href.startswith(f"{origin}{PREFIX}/gradio_api/file="), href
            with page.expect_download() as got:
                link.click()
            download = got.value
            assert download.failure() is None, download.failure()
            exported = [json.loads(x) for x in Path(download.path()).read_text(encoding="utf-8").splitlines()]
            assert [r["messages"][0]["content"] for r in exported] == [r["instruction"] for r in rows]
            assert (ws / "datasets" / "exports" / download.suggested_filename).exists()

            # A self-test job's progress moves by itself, through the proxy's event stream.
            page.get_by_role("tab", name="Jobs", exact=True).click()
            page.get_by_label("Self-test steps").fill("300")
            page.get_by_role("button", name="Run a self-test job").click()
            page.wait_for_function(f"{PCT} && {PCT}.dataset.status === 'running' && Number({PCT}.dataset.pct) > 0")
            first = float(page.locator("#jobs-progress .eds-job-progress").get_attribute("data-pct"))
            page.wait_for_function(f"Number({PCT}.dataset.pct) > {first}")
            page.screenshot(path=str(artifacts_dir / "proxy-jobs-running.png"), full_page=True)
            assert not failed, failed
        finally:
            cancel_active_jobs(ws)
