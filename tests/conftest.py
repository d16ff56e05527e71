"""Shared fixtures. Heavy imports (torch, transformers) happen inside fixtures, never at collection time."""

from __future__ import annotations

import os
import signal
import warnings
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


_SIGS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_DEFAULT = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL, signal.SIGHUP: signal.SIG_DFL}
_seen_bad: list[str] = []


def _signals_reset(where: str) -> None:
    """Put SIGINT/SIGTERM/SIGHUP back to Python's defaults and unblocked in this (main) thread. Every subprocess a
    test starts inherits an ignored or blocked signal: a CLI whose SIGINT is ignored never sees the Ctrl-C a test
    sends (test_ctrl_c_without_a_terminal_stops_the_job hung in full runs, 3 of the last 5). Whatever left it so is
    named in pytest's warnings summary (the first three) for whoever hunts it."""
    bad = [f"{signal.Signals(s).name}={signal.getsignal(s)}" for s in _SIGS if signal.getsignal(s) == signal.SIG_IGN]
    blocked = set(_SIGS) & set(signal.pthread_sigmask(signal.SIG_BLOCK, []))
    bad += [f"{signal.Signals(s).name} blocked" for s in blocked]
    if bad and len(_seen_bad) < 3:
        _seen_bad.append(where)
        warnings.warn(f"{where}: {', '.join(bad)} (reset to the defaults)", stacklevel=1)
    for s in _SIGS:
        if signal.getsignal(s) is not _DEFAULT[s]:
            signal.signal(s, _DEFAULT[s])
    if blocked:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)


@pytest.fixture(autouse=True)
def _signal_dispositions(request):
    """Each test starts and ends with the default signal dispositions (see _signals_reset)."""
    _signals_reset(f"before {request.node.nodeid}")
    yield
    _signals_reset(f"after {request.node.nodeid}")
