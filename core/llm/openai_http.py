"""Any OpenAI-compatible chat server (vLLM, PAI-EAS, DashScope, Ollama, our own transformers server).

N requests in flight; each retried with exponential backoff + jitter on 429 / 5xx / timeouts / connection errors /
malformed bodies, honouring Retry-After; every request has a timeout, so a dead server yields per-row failures, never
a hang. The API key comes from an environment variable (or a literal in a config) and never reaches a log line.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import os
import random
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from core.config.base import EndpointSpec
from core.llm.base import BackendError, Completion, Conversation, SamplingParams, ScoredResponse, TokenTopK
from core.llm.openai_protocol import ProtocolError, chat_request, parse_chat_response
from core.secrets import scrub

log = logging.getLogger(__name__)
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524}


class RequestFailed(Exception):
    """One request failed for good (after retries, or at once for errors retrying cannot fix)."""


@dataclass
class Usage:
    """Running totals across all requests of a backend (thread-safe)."""

    requests: int = 0
    ok: int = 0
    failed: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0  # most HTTP calls this backend had open at once (bounded by the concurrency setting)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **kw: int) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("requests", "ok", "failed", "retries", "prompt_tokens",
                                               "completion_tokens", "peak_in_flight")}


def resolve_api_key(endpoint: EndpointSpec) -> str | None:
    """The key: from the named environment variable (preferred), else the literal, else none (local servers)."""
    if endpoint.api_key_env:
        value = os.environ.get(endpoint.api_key_env)
        if not value:
            raise BackendError(
                f"environment variable {endpoint.api_key_env} is not set; it should hold the API key for "
                f"{endpoint.base_url} (export {endpoint.api_key_env}=... before starting the studio or job)"
            )
        return value
    if endpoint.api_key is not None:
        return endpoint.api_key.get_secret_value() or None
    return None


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After is either delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class OpenAIBackend:
    """Backend over HTTP. `extra_body` is merged into every chat request (server-specific knobs)."""

    def __init__(
        self,
        endpoint: EndpointSpec,
        name: str | None = None,
        extra_body: dict | None = None,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        max_retry_after: float = 120.0,
        on_close: Any = None,
    ) -> None:
        self.endpoint = endpoint
        self.base_url = endpoint.base_url.rstrip("/")
        self.concurrency = endpoint.concurrency
        self.max_retries = endpoint.max_retries
        self.backoff_base, self.backoff_max, self.max_retry_after = backoff_base, backoff_max, max_retry_after
        self.extra_body = dict(extra_body or {})
        self._key = resolve_api_key(endpoint)
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        t = endpoint.timeout_s
        self._client = httpx.Client(
            timeout=httpx.Timeout(t, connect=min(t, 10.0)), headers=headers,
            limits=httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency),
        )
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="openai-http")
        self._closed = threading.Event()
        self._on_close = on_close
        self._model: str | None = endpoint.model or None
        self._owned_by: str | None = None
        self.usage = Usage()
        self.name = name or self._model or self.base_url

    # ---------------------------------------------------------------- plumbing

    @property
    def root_url(self) -> str:
        """The server root (vLLM's /tokenize and /health live there, not under /v1)."""
        return self.base_url[:-3] if self.base_url.endswith("/v1") else self.base_url

    def _clean(self, text: str) -> str:
        return scrub(text, [self._key] if self._key else [])

    def _backoff(self, attempt: int) -> float:
        d = min(self.backoff_max, self.backoff_base * (2 ** attempt))
        return d / 2 + random.uniform(0, d / 2)

    def _request(self, method: str, url: str, body: dict | None = None) -> Any:
        """JSON from one call, with retries. Raises RequestFailed with the reason (never containing the key)."""
        last = "no attempt made"
        for attempt in range(self.max_retries + 1):
            if self._closed.is_set():
                raise RequestFailed("backend closed")
            wait: float | None = None
            try:
                self.usage.add(in_flight=1)
                try:
                    r = self._client.request(method, url, json=body)
                finally:
                    self.usage.add(in_flight=-1)
                if r.status_code in RETRY_STATUS:
                    last = f"HTTP {r.status_code}: {self._clean(r.text[:200])}"
                    wait = retry_after_seconds(r.headers.get("retry-after"))
                    if wait is not None:
                        wait = min(wait, self.max_retry_after)
                elif r.status_code >= 400:
                    raise RequestFailed(f"HTTP {r.status_code} from {url}: {self._clean(_error_message(r))}")
                else:
                    try:
                        return r.json()
                    except ValueError:
                        last = f"malformed JSON from server: {self._clean(r.text[:200])!r}"
            except httpx.TimeoutException:
                last = f"timed out after {self.endpoint.timeout_s:g} s"
            except httpx.TransportError as e:
                last = f"connection error: {self._clean(str(e) or type(e).__name__)}"
            if attempt == self.max_retries:
                break
            self.usage.add(retries=1)
            delay = wait if wait is not None else self._backoff(attempt)
            log.info("retry %d/%d in %.2fs after: %s", attempt + 1, self.max_retries, delay, last)
            if self._closed.wait(delay):
                raise RequestFailed("backend closed")
        raise RequestFailed(f"{last} (gave up after {self.max_retries + 1} attempts)")

    def _list_models(self) -> list[dict]:
        try:
            data = self._request("GET", f"{self.base_url}/models")
        except RequestFailed as e:
            raise BackendError(f"cannot list models at {self.base_url}: {e}") from e
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise BackendError(f"{self.base_url}/models did not return a model list")
        return items

    def served_models(self) -> list[str]:
        """Names the server lists at /models (raises BackendError with the reason when it cannot)."""
        return [str(m.get("id")) for m in self._list_models() if isinstance(m, dict)]

    @property
    def model(self) -> str:
        """The served model name: the configured one, or the only one the server lists."""
        if self._model is None:
            items = self._list_models()
            ids = [m.get("id") for m in items if isinstance(m, dict)]
            if len(ids) != 1:
                raise BackendError(
                    f"{self.base_url} serves {len(ids)} models ({', '.join(map(str, ids[:10]))}): choose one"
                    if ids else f"{self.base_url} lists no models"
                )
            self._model = ids[0]
            self._owned_by = items[0].get("owned_by")
            if self.name == self.base_url:
                self.name = self._model
        return self._model

    @property
    def is_vllm(self) -> bool:
        """vLLM adds prompt_logprobs, /tokenize and token-id spelled logprobs; we use them only when present."""
        if self._owned_by is None:
            try:
                items = self._list_models()
                self._owned_by = next((m.get("owned_by") for m in items if m.get("id") == self.model), "") or ""
            except BackendError:
                self._owned_by = ""
        return self._owned_by == "vllm"

    # ---------------------------------------------------------------- protocol

    def chat(
        self, conversations: Sequence[Conversation], params: SamplingParams, top_logprobs: int = 0
    ) -> list[Completion]:
        try:
            model = self.model
            extra = dict(self.extra_body)
            if top_logprobs and self.is_vllm:
                extra.setdefault("return_tokens_as_token_ids", True)
        except BackendError as e:
            return [Completion(text="", finish_reason="error", error=str(e)) for _ in conversations]

        def one(conv: Conversation) -> Completion:
            self.usage.add(requests=1)
            body = chat_request(model, list(conv), params, top_logprobs, extra=extra)
            try:
                c = parse_chat_response(self._request("POST", f"{self.base_url}/chat/completions", body))
            except (RequestFailed, ProtocolError) as e:
                self.usage.add(failed=1)
                return Completion(text="", finish_reason="error", error=str(e))
            self.usage.add(ok=1, prompt_tokens=c.prompt_tokens, completion_tokens=c.completion_tokens)
            return c

        return list(self._pool.map(one, conversations))

    def stream(self, conversation: Conversation, params: SamplingParams) -> Iterator[str]:
        body = chat_request(self.model, list(conversation), params, stream=True, extra=self.extra_body)
        url = f"{self.base_url}/chat/completions"
        last = ""
        self.usage.add(requests=1)
        for attempt in range(self.max_retries + 1):
            sent_any = False
            wait = None
            try:
                with self._client.stream("POST", url, json=body) as r:
                    if r.status_code in RETRY_STATUS:
                        r.read()
                        last = f"HTTP {r.status_code}"
                        wait = retry_after_seconds(r.headers.get("retry-after"))
                    elif r.status_code >= 400:
                        r.read()
                        self.usage.add(failed=1)
                        raise BackendError(f"HTTP {r.status_code} from {url}: {self._clean(_error_message(r))}")
                    else:
                        for delta, usage in _sse_deltas(r.iter_lines()):
                            if usage:
                                self.usage.add(prompt_tokens=usage.get("prompt_tokens") or 0,
                                               completion_tokens=usage.get("completion_tokens") or 0)
                            if delta:
                                sent_any = True
                                yield delta
                        self.usage.add(ok=1)
                        return
            except httpx.TimeoutException:
                last = f"timed out after {self.endpoint.timeout_s:g} s"
            except (httpx.TransportError, ProtocolError) as e:
                last = self._clean(str(e) or type(e).__name__)
            if sent_any or attempt == self.max_retries:  # a half-sent answer cannot be retried without repeating
                break
            self.usage.add(retries=1)
            if self._closed.wait(min(wait, self.max_retry_after) if wait is not None else self._backoff(attempt)):
                break
        self.usage.add(failed=1)
        raise BackendError(f"streaming from {url} failed: {last}")

    def score(self, conversations: Sequence[Conversation], k: int, temperature: float = 1.0) -> list[ScoredResponse]:
        """Teacher forcing through vLLM's prompt_logprobs (one prefill per row, no generation beyond 1 token)."""
        def failed(msg: str) -> ScoredResponse:
            return ScoredResponse(positions=[], response_token_ids=[], error=msg)

        if temperature != 1.0:
            return [failed("a remote server returns raw log-probs: use temperature 1.0 for capture")] * len(
                conversations)
        try:
            if not self.is_vllm:
                raise BackendError(f"{self.base_url} is not a vLLM server: teacher-forced log-probs "
                                   "(prompt_logprobs) need vLLM, or use the transformers backend")
            model = self.model
        except BackendError as e:
            return [failed(str(e)) for _ in conversations]

        def one(conv: Conversation) -> ScoredResponse:
            self.usage.add(requests=1)
            try:
                if not conv or conv[-1].get("role") != "assistant":
                    raise RequestFailed("each conversation must end with the assistant response to score")
                pre = self._request("POST", f"{self.root_url}/tokenize", {
                    "model": model, "messages": list(conv[:-1]), "add_generation_prompt": True})
                start = int(pre["count"])
                body = {"model": model, "messages": list(conv), "add_generation_prompt": False, "max_tokens": 1,
                        "temperature": 0.0, "prompt_logprobs": k, "return_token_ids": True}
                data = self._request("POST", f"{self.base_url}/chat/completions", body)
                result = _scored_from_prompt_logprobs(data, start, k)
            except (RequestFailed, ProtocolError, KeyError, TypeError, ValueError) as e:
                self.usage.add(failed=1)
                return failed(f"{type(e).__name__}: {e}" if not isinstance(e, RequestFailed) else str(e))
            self.usage.add(ok=1, prompt_tokens=len(result.response_token_ids))
            return result

        return list(self._pool.map(one, conversations))

    def close(self) -> None:
        self._closed.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()
        if self._on_close is not None:
            self._on_close()
            self._on_close = None


def _error_message(r: httpx.Response) -> str:
    try:
        data = r.json()
        err = data.get("error", data) if isinstance(data, dict) else data
        return str(err.get("message", err) if isinstance(err, dict) else err)[:300]
    except ValueError:
        return r.text[:300]


def _sse_deltas(lines: Iterator[str]) -> Iterator[tuple[str, dict | None]]:
    """(text delta, usage or None) per server-sent event; stops at [DONE]."""
    for line in lines:
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            return
        try:
            obj = json.loads(payload)
        except ValueError as e:
            raise ProtocolError(f"malformed stream event: {payload[:120]!r}") from e
        if isinstance(obj, dict) and "error" in obj:
            raise ProtocolError(f"server error in stream: {obj['error']}")
        delta = ""
        for ch in obj.get("choices") or []:
            delta += (ch.get("delta") or {}).get("content") or ""
        yield delta, obj.get("usage")


def _scored_from_prompt_logprobs(data: dict, start: int, k: int) -> ScoredResponse:
    ids = data.get("prompt_token_ids")
    plp = data.get("prompt_logprobs")
    if not isinstance(ids, list) or not isinstance(plp, list) or len(ids) != len(plp):
        raise ProtocolError("the server returned no prompt_logprobs / prompt_token_ids (vLLM needed)")
    end = len(ids)
    # drop whitespace the template adds after the end-of-turn token (not part of the answer)
    while end > start and not str((plp[end - 1] or {}).get(str(ids[end - 1]), {}).get("decoded_token", "x")).strip():
        end -= 1
    positions, token_lps = [], []
    for j in range(start, end):
        entry = plp[j] or {}
        ranked = sorted(((int(t), v) for t, v in entry.items() if int(v.get("rank", k + 1)) <= k),
                        key=lambda tv: tv[1].get("rank", 0))[:k]
        lps = [float(v["logprob"]) for _, v in ranked]
        mass = sum(math.exp(v) for v in lps)
        positions.append(TokenTopK(ids=[t for t, _ in ranked], logprobs=lps, tail_mass=max(0.0, min(1.0, 1 - mass))))
        actual = entry.get(str(ids[j]))
        token_lps.append(float(actual["logprob"]) if actual else float("nan"))
    return ScoredResponse(positions=positions, response_token_ids=list(ids[start:end]), token_logprobs=token_lps)
