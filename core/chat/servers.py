"""Model servers for the chat arena: Load = submit a `serve` job, Unload = stop it, status from its run folder.

The studio process never holds weights: a column's model runs in a serve job (our transformers server or a managed
vLLM), which writes `output/endpoint.json` once it answers; the column then talks to it over the OpenAI-compatible
protocol like to any remote endpoint. Registered remote endpoints need no job at all.

Servers are found by model, not remembered per browser tab: a column showing model X uses the active serve job of X,
whoever started it. So a second user (or a reloaded page) attaches to the running server instead of loading the
weights again, and requests from several users queue at that one server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from core.config.base import BackendSpec, EndpointSpec
from core.config.train import ServeJob
from core.endpoints import ENDPOINT_PREFIX, find_endpoint, spec_for
from core.errors import UserError
from core.jobs.rundir import CONFIG_FILE, QUEUED, RUNNING, STOPPING
from core.jobs.summary import queue_note
from core.llm.serve import read_endpoint
from core.workspace import Workspace

# What a column shows. "ready" = the server answers requests.
NOT_LOADED, QUEUED_S, LOADING, READY, STOPPING_S, FAILED_S, STOPPED_S = (
    "not_loaded", "queued", "loading", "ready", "stopping", "failed", "stopped")
STATES = (NOT_LOADED, QUEUED_S, LOADING, READY, STOPPING_S, FAILED_S, STOPPED_S)
LOADABLE = (NOT_LOADED, FAILED_S, STOPPED_S)  # a column in these states offers Load
STATUS_ICONS = {NOT_LOADED: "⚪", QUEUED_S: "⏳", LOADING: "⏳", READY: "🟢", STOPPING_S: "⏹️", FAILED_S: "🔴",
                STOPPED_S: "⚪"}


class ServerError(UserError, ValueError):
    """A Load / Unload that cannot apply to the column's choice (no model chosen, a remote endpoint)."""


@dataclass
class ServerState:
    model: str
    status: str
    message: str = ""
    job_id: str | None = None
    base_url: str | None = None
    served_model: str | None = None
    api_key_env: str | None = None
    devices: list[str] | None = None
    pid: int | None = None
    remote: bool = False  # a registered endpoint: nothing to load or unload

    @property
    def ready(self) -> bool:
        return self.status == READY

    @property
    def loaded(self) -> bool:
        """Holding (or about to hold) a server: Unload applies."""
        return self.status in (QUEUED_S, LOADING, READY) and not self.remote

    def backend_spec(self) -> BackendSpec:
        if not self.ready or not self.base_url:
            raise RuntimeError(f"'{self.model}' is not loaded: press Load and wait until it is ready")
        return BackendSpec(type="openai", model=self.served_model or self.model, endpoint=EndpointSpec(
            base_url=self.base_url, model=self.served_model, api_key_env=self.api_key_env, max_retries=8,
            timeout_s=600.0))


class ModelServers:
    """Load / unload / status of chat model servers, on top of the job manager."""

    def __init__(self, jobs: Any, workspace: Workspace):
        self.jobs = jobs
        self.ws = workspace
        self._model_of: dict[str, tuple[str, str]] = {}  # job id -> (model ref, backend type), from job.yaml

    # which job serves what -------------------------------------------------------------------------------------------

    def _served(self, info: Any) -> tuple[str, str] | None:
        if info.id not in self._model_of:
            try:
                data = yaml.safe_load((Path(info.run_dir) / CONFIG_FILE).read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError):
                return None
            model = data.get("model") or {}
            self._model_of[info.id] = (str(model.get("model") or ""), str(model.get("type") or "transformers"))
        return self._model_of[info.id]

    def active(self) -> list[Any]:
        """Serve jobs that are queued or running (newest first)."""
        return self.jobs.list(status="active", kind="serve")

    def job_for(self, model: str, active: list[Any] | None = None) -> Any | None:
        for info in self.active() if active is None else active:
            served = self._served(info)
            if served and served[0] == model:
                return info
        return None

    # actions ---------------------------------------------------------------------------------------------------------

    def load(self, model: str, backend: str = "transformers", gpus: Any = "auto", dtype: str = "auto") -> str:
        """Start a server for `model` (or return the one already running). Returns the job id."""
        model = (model or "").strip()
        if not model:
            raise ServerError("choose a model first")
        if model.startswith(ENDPOINT_PREFIX):
            raise ServerError("a remote endpoint needs no loading: it is ready to chat")
        existing = self.job_for(model)
        if existing is not None:
            return existing.id
        from core.models.registry import resolve_model

        resolve_model(model, self.ws, confine=True)  # a clear error for an unknown model before any job starts
        spec = spec_for(model, self.ws, backend).model_copy(update={"dtype": dtype})  # type: ignore[union-attr]
        config = ServeJob(model=spec, name=f"chat: {model}", gpus=gpus)
        job_id = self.jobs.submit(config)
        self._model_of[job_id] = (spec.model, backend)
        return job_id

    def unload(self, model: str, wait: float | None = None) -> ServerState:
        """Stop the server of `model` (it frees its memory and devices); a no-op when none runs."""
        info = self.job_for(model)
        if info is not None:
            if info.status in (QUEUED,):
                self.jobs.cancel(info.id, wait=wait)
            else:
                self.jobs.stop(info.id, wait=wait)
        return self.status(model)

    # status ----------------------------------------------------------------------------------------------------------

    def statuses(self, models: list[str]) -> list[ServerState]:
        """Status of several columns with one look at the job list (the UI timer calls this)."""
        active = self.active()
        return [self.status(m, active) for m in models]

    def status(self, model: str, active: list[Any] | None = None) -> ServerState:
        model = (model or "").strip()
        if not model:
            return ServerState(model="", status=NOT_LOADED)
        if model.startswith(ENDPOINT_PREFIX):
            return self._endpoint_state(model)
        info = self.job_for(model, active)
        if info is None:
            return self._last_outcome(model)
        return self._job_state(model, info)

    def _job_state(self, model: str, info: Any) -> ServerState:
        st = ServerState(model=model, status=LOADING, job_id=info.id, devices=list(info.devices or []), pid=info.pid)
        if info.status == QUEUED:
            st.status = QUEUED_S
            st.message = queue_note(info)
            return st
        if info.status == STOPPING:
            st.status = STOPPING_S
            return st
        ep = read_endpoint(info.run_dir) or {}
        if info.status == RUNNING and ep.get("base_url"):
            st.status = READY
            st.base_url = str(ep["base_url"])
            st.served_model = ep.get("model") or None
            st.message = ", ".join(info.devices or []) or ""
            return st
        elapsed = f"{time.time() - info.started_at:.0f} s" if info.started_at else ""
        st.message = " · ".join(x for x in (self._last_event(info.id), elapsed) if x)
        return st

    def _last_outcome(self, model: str) -> ServerState:
        """No active server: say why the last one for this model ended if it failed (within the last hour)."""
        for info in self.jobs.list(kind="serve", status="finished", limit=20, refresh=False):
            served = self._served(info)
            if not served or served[0] != model:
                continue
            if info.status == "failed" and (info.ended_at or 0) > time.time() - 3600:
                why = (info.reason or info.detail or "").strip().splitlines()
                msg = why[0][:400] if why else "the server exited (see its log in the Jobs tab)"
                return ServerState(model=model, status=FAILED_S, message=msg, job_id=info.id)
            break
        return ServerState(model=model, status=NOT_LOADED)

    def _last_event(self, job_id: str) -> str:
        try:
            recs = self.jobs.metrics(job_id)
        except Exception:  # noqa: BLE001 - status is best effort while the worker starts
            return ""
        for r in reversed(recs):
            if r.get("event"):
                return str(r["event"])
            if r.get("total"):
                return f"{100 * float(r.get('step') or 0) / float(r['total']):.0f}%"
        return ""

    def _endpoint_state(self, model: str) -> ServerState:
        try:
            e = find_endpoint(self.ws, model)
        except ValueError as err:
            return ServerState(model=model, status=FAILED_S, message=str(err))
        return ServerState(model=model, status=READY, base_url=e.base_url, served_model=e.model,
                           api_key_env=e.api_key_env, remote=True, message=e.base_url)


def server_line(state: ServerState, words: Mapping[str, str] | None = None) -> str:
    """A column's server in one line — icon, state, detail ("🟢 ready — cpu") — the one renderer of a ServerState.

    `words` maps the states, "none" (no model chosen) and "remote" (a registered endpoint) to the reader's language;
    without it the raw state names are shown."""
    w = words or {}
    if not state.model:
        return w.get("none", "⚪ no model chosen")
    text = w.get("remote", "remote endpoint, ready") if state.remote else w.get(state.status, state.status)
    detail = f" — {state.message}" if state.message else ""
    return f"{STATUS_ICONS.get(state.status, '⚪')} {text}{detail}"


_CLIENTS: dict[tuple, Any] = {}
_CLIENTS_LOCK = threading.Lock()


def client_for(state: ServerState) -> Any:
    """An OpenAI-compatible backend for a ready server, shared process-wide (one connection pool per server)."""
    spec = state.backend_spec()
    key = (state.base_url, state.served_model, state.api_key_env)
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            from core.llm import make_backend

            client = _CLIENTS[key] = make_backend(spec)
        return client
