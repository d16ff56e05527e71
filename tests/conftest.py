"""Shared fixtures. Heavy imports (torch, transformers) happen inside fixtures, never at collection time."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def workspace(tmp_path):
    from core.workspace import Workspace

    return Workspace.open(tmp_path / "ws")


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """A tiny Qwen2-architecture teacher and student sharing one locally trained tokenizer (see core.models.tiny)."""
    from core.models.tiny import build_tiny_pair

    return build_tiny_pair(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(scope="session")
def _browser():
    from playwright.sync_api import sync_playwright

    from tests.browser_support import launch_chromium

    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        yield browser
        browser.close()


@pytest.fixture
def browser_page(_browser, request, artifacts_dir):
    """A fresh page in headless Chromium; on failure a screenshot lands in artifacts/."""
    from tests.browser_support import SETTLE_JS

    context = _browser.new_context(viewport={"width": 1400, "height": 1000})
    context.add_init_script(SETTLE_JS)  # counts Gradio events in flight, for browser_support.settle
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        try:
            page.screenshot(path=str(artifacts_dir / f"FAILED-{request.node.name}.png"), full_page=True)
        except Exception:
            pass
    context.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


@pytest.fixture
def studio(tmp_path):
    """A running studio on a fresh workspace; stopped after the test."""
    from tests.browser_support import start_studio

    procs = []

    def start(*args, **kw):
        sp = start_studio(tmp_path / "ws", *args, **kw)
        procs.append(sp)
        return sp

    yield start
    for sp in procs:
        sp.stop()


@pytest.fixture(autouse=True)
def _signal_dispositions():
    """A job worker run inside the test process ignores SIGINT/SIGTERM/SIGHUP as it finishes (Guard.quiet): put the
    handlers back after each test, or every later subprocess inherits SIGINT ignored (a CLI Ctrl-C test then hangs)."""
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    saved = {s: signal.getsignal(s) for s in sigs}
    yield
    for s, handler in saved.items():
        if signal.getsignal(s) != handler and handler is not None:
            signal.signal(s, handler)
