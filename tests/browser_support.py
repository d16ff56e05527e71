"""Real studio processes and a real headless Chromium (Debian's, driven by Playwright) for browser and server tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from core.net import free_port

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("EDS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage",
]


@dataclass
class StudioProcess:
    url: str  # http://127.0.0.1:PORT (without the root path)
    proc: subprocess.Popen
    log_path: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def start_studio(workspace_dir: str | os.PathLike, *extra_args: str, env: dict | None = None,
                 timeout: float = 90.0) -> StudioProcess:
    """Start `distill-studio` on a free loopback port and wait until it answers HTTP."""
    port = free_port()
    log_path = Path(workspace_dir).parent / f"studio-{port}.log"
    Path(workspace_dir).mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "studio.app", "--workspace", str(workspace_dir), "--port", str(port), *extra_args]
    full_env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", **(env or {})}
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=full_env, start_new_session=True)
    sp = StudioProcess(f"http://127.0.0.1:{port}", proc, log_path)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"studio exited with {proc.returncode}:\n{sp.log()[-3000:]}")
        try:
            r = httpx.get(sp.url + "/gradio_api/info", timeout=2)  # any answer (200/401) means it is up
            if r.status_code < 500:
                return sp
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    sp.stop()
    raise RuntimeError(f"studio did not answer within {timeout}s:\n{sp.log()[-3000:]}")


def launch_chromium(playwright):
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} not found: run `make browser` (apt-get install chromium)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


# Counts the page's Gradio events in flight (installed into every browser_page context by tests/conftest.py): one per
# queue/join until its process_completed arrives on the queue/data stream, and each queue=False run/predict until its
# answer is read. `settle` waits on it, so a test never types into a component that an event still to answer (the
# page's load events, a change's update) will overwrite.
SETTLE_JS = r"""
(() => {
  const eds = window.__eds = {joins: 0, pending: 0, last: Date.now()};
  const bump = (d) => { eds.pending += d; eds.last = Date.now(); };
  const orig = window.fetch.bind(window);
  const done = /"msg":\s*"process_completed"/g;
  window.fetch = async (input, init) => {
    const url = typeof input === "string" ? input : (input && input.url) || String(input);
    const join = url.includes("/queue/join"), run = url.includes("/run/predict"), data = url.includes("/queue/data");
    if (join) { eds.joins += 1; bump(1); }
    if (run) bump(1);
    let resp;
    try { resp = await orig(input, init); } catch (e) { if (join || run) bump(-1); throw e; }
    if ((join && !resp.ok) || run) {
      if (run) resp.clone().text().finally(() => bump(-1)); else bump(-1);
    }
    if (data && resp.ok && resp.body) {
      const [mine, theirs] = resp.body.tee();
      (async () => {
        const reader = theirs.getReader(), dec = new TextDecoder();
        let buf = "";
        for (;;) {
          let chunk;
          try { chunk = await reader.read(); } catch (e) { break; }
          if (chunk.done) break;
          buf += dec.decode(chunk.value, {stream: true});
          const cut = buf.lastIndexOf("\n\n");
          if (cut < 0) continue;
          const n = (buf.slice(0, cut).match(done) || []).length;
          buf = buf.slice(cut + 2);
          if (n) bump(-n);
        }
      })();
      return new Response(mine, {status: resp.status, statusText: resp.statusText, headers: resp.headers});
    }
    return resp;
  };
})();
"""


def settle(page, quiet_ms: int = 500, timeout: float = 60_000) -> None:
    """Wait until the page has sent its load events and every Gradio event it started has been answered, with no new
    one for `quiet_ms` (pages without the SETTLE_JS counter return at once)."""
    page.wait_for_function(
        f"(() => {{ const e = window.__eds; if (!e) return true;"
        f" return e.joins > 0 && e.pending <= 0 && Date.now() - e.last > {quiet_ms}; }})()",
        timeout=timeout, polling=100)


def _commit(page, box, value: str, blur) -> None:
    """Type `value` into a Gradio textbox/dropdown input and commit it (Enter, a click elsewhere) once the page has
    no event left to answer; then wait until the input shows a value and the events the commit set off are answered,
    and check that none of them cleared it."""
    settle(page)
    box.click()
    box.fill(value)
    box.press("Enter")
    blur()
    if value:
        page.wait_for_function("el => el.value !== ''", arg=box.element_handle(), timeout=10_000)
    settle(page)
    assert not value or box.input_value(), f"the value {value!r} typed into {box} did not stay set"


def fill(page, elem_id: str, value: str, blur: str) -> None:
    """Type into a Gradio textbox / dropdown and commit it: Enter, then a click on `blur` (a selector elsewhere)."""
    box = page.locator(f"#{elem_id} input, #{elem_id} textarea").first
    _commit(page, box, value, lambda: page.locator(blur).first.click())


def wait_final_status(page, selector: str, timeout_s: float = 60) -> str:
    """The text of a job status line once it shows an end state (or whatever it shows when time runs out)."""
    deadline, status = time.time() + timeout_s, ""
    while time.time() < deadline:
        status = page.locator(selector).inner_text()
        if any(w in status.lower() for w in ("succeeded", "failed", "cancelled")):
            break
        time.sleep(0.5)
    return status


def seed_workspace(workspace_dir: Path, models: dict[str, Path] | None = None,
                   datasets: dict[str, list[dict]] | None = None) -> Path:
    """A workspace folder for a studio to open: `models` (name -> model folder) copied under models/, `datasets`
    (name -> rows) written as datasets/<name>.jsonl."""
    for sub, items in (("models", models), ("datasets", datasets)):
        (workspace_dir / sub).mkdir(parents=True, exist_ok=True)
        for name, item in (items or {}).items():
            if sub == "models":
                shutil.copytree(item, workspace_dir / sub / name)
            else:
                (workspace_dir / sub / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in item))
    return workspace_dir


def open_tab(page, url: str, tab: str) -> None:
    """Load the studio page and switch to the tab of that (English) name."""
    page.goto(url)
    page.get_by_role("tab", name=tab, exact=True).click()


def pick_by_label(page, label: str, value: str, blur_text: str = "Guided") -> None:
    """Type a value into the dropdown of that label and commit it (Enter, then a click on text elsewhere); returns
    once the page's pending events are answered and the dropdown still holds a value."""
    box = page.get_by_label(label, exact=True)
    _commit(page, box, value, lambda: page.get_by_text(blur_text, exact=False).first.click())


def text_has(page, selector: str, *words: str, timeout: float = 60_000) -> str:
    """Wait until the element's text holds every word (case-insensitive); returns its text."""
    js_words = json.dumps([w.lower() for w in words])
    page.wait_for_function(
        f"(() => {{ const e = document.querySelector('{selector}'); if (!e) return false;"
        f" const t = e.innerText.toLowerCase(); return {js_words}.every(w => t.includes(w)); }})()", timeout=timeout)
    return page.locator(selector).inner_text()


def cancel_active_jobs(workspace_dir: Path, wait: float = 10) -> None:
    """Cancel every job still active in the workspace (a test's leftovers), so no worker outlives the test."""
    from core.jobs.manager import JobManager

    m = JobManager(workspace_dir)
    for info in m.list(status="active"):
        try:
            m.cancel(info.id, wait=wait)
        except ValueError:  # it ended meanwhile
            pass
