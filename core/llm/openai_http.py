"""Any OpenAI-compatible chat server (vLLM, PAI-EAS, DashScope, Ollama, our own transformers server).

The `openai` SDK does the talking: connections, per-request timeouts, the Authorization header, HTTP statuses mapped to
typed errors (each carrying its response, so Retry-After is read from it), SSE stream decoding. Calls go through
`with_raw_response`, which hands back the body before the SDK parses it: a 200 whose body is not JSON is then a
retryable failure of ours rather than an exception after the SDK's retries. On top of it this module keeps our policy:

- `concurrency` requests in flight: a thread pool of that size (the SDK's pool keeps up to 100 connections alive);
- retries with exponential backoff + jitter on 429 / 5xx / timeouts / dropped connections / malformed bodies,
  honouring Retry-After (capped at 120 s), one budget of `max_retries` per request, each retry logged with its
  reason; other errors (401, 400, ...) fail the row at once. The SDK's own retry loop is off (max_retries=0): it
  cannot retry a malformed 200, its sleeps cannot be cut short when the backend closes, its delays are module
  constants (0.5 s to 8 s, which tests cannot shorten) and a failure does not say how many attempts it took;
- failures are per row (Completion.error / ScoredResponse.error), never an exception out of `chat` / `score`;
- the API key comes from an environment variable (or a literal in a config) and never reaches a log line or an
  error message. The SDK would also take the user's OPENAI_API_KEY, OPENAI_ORG_ID, OPENAI_PROJECT_ID and
  OPENAI_CUSTOM_HEADERS from the environment and send them to whatever server an endpoint names: every call sets
  Authorization itself (the endpoint's key, or none) and omits those headers.

`import openai` takes ~0.6 s (more on a busy machine): this module is imported only where a backend is built
(core.llm.factory, core.models.registry.probe_endpoint), never when the studio starts.
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
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import openai

from core.config.base import EndpointSpec
from core.llm.base import BackendError, Completion, Conversation, SamplingParams, ScoredResponse, TokenTopK
from core.llm.openai_protocol import ProtocolError, chat_request, parse_chat_response
from core.secrets import scrub

log = logging.getLogger(__name__)
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524}
_OMIT = openai.Omit()  # a header given as this is not sent
_NO_KEY = "no-key"  # the SDK insists on a key; with none configured the Authorization header is omitted instead


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


def _sent_headers(key: str | None) -> dict[str, Any]:
    """Per-call headers: the endpoint's key (or no Authorization at all), and nothing the SDK would otherwise take from
    the environment (OPENAI_ORG_ID, OPENAI_PROJECT_ID, OPENAI_CUSTOM_HEADERS) and send to any server."""
    headers: dict[str, Any] = {"OpenAI-Organization": _OMIT, "OpenAI-Project": _OMIT}
    for line in (os.environ.get("OPENAI_CUSTOM_HEADERS") or "").splitlines():
        name = line.partition(":")[0].strip()
        if name and name.lower() != "authorization":
            headers[name] = _OMIT
    headers["Authorization"] = f"Bearer {key}" if key else _OMIT
    return headers


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
        self._headers = _sent_headers(self._key)
        t = endpoint.timeout_s
        # the SDK's own connection pool (up to 100 kept alive) serves `concurrency` worker threads
        self._sdk = openai.OpenAI(api_key=self._key or _NO_KEY, base_url=self.base_url,
                                  max_retries=0, timeout=openai.Timeout(t, connect=min(t, 10.0)))
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

    def _failure(self, e: openai.OpenAIError) -> tuple[str, bool, float | None]:
        """(reason without the key, worth retrying, server-requested wait) for one failed SDK call."""
        if isinstance(e, openai.APIStatusError):
            headers = e.response.headers
            hint = headers.get("x-should-retry")
            retry = hint == "true" or (hint != "false" and e.status_code in RETRY_STATUS)
            body = e.body
            detail = body.get("message", body) if isinstance(body, dict) else (body or e.response.text)
            wait = retry_after_seconds(headers.get("retry-after")) if retry else None
            return f"HTTP {e.status_code}: {self._clean(str(detail)[:300])}", retry, wait
        if isinstance(e, openai.APITimeoutError):
            return f"timed out after {self.endpoint.timeout_s:g} s", True, None
        if isinstance(e, openai.APIConnectionError):
            cause = e.__cause__ or e
            return f"connection error: {self._clean(str(cause) or type(cause).__name__)}", True, None
        # an error event inside a stream is the server's failure (retried like a 5xx); a bare OpenAIError is ours
        return self._clean(str(e) or type(e).__name__), isinstance(e, openai.APIError), None

    def _call(self, send: Callable[[], str], what: str) -> Any:
        """JSON from one SDK call (`send` returns the raw body), with our retries. Raises RequestFailed with the reason
        (never containing the key)."""
        last = "no attempt made"
        for attempt in range(self.max_retries + 1):
            if self._closed.is_set():
                raise RequestFailed("backend closed")
            wait: float | None = None
            try:
                self.usage.add(in_flight=1)
                try:
                    text = send()
                finally:
                    self.usage.add(in_flight=-1)
                try:
                    return json.loads(text)
                except ValueError:
                    last = f"malformed JSON from server: {self._clean(text[:200])!r}"
            except openai.OpenAIError as e:
                last, retry, wait = self._failure(e)
                if not retry:
                    raise RequestFailed(f"{last} ({what})") from None
                if wait is not None:
                    wait = min(wait, self.max_retry_after)
            if attempt == self.max_retries:
                break
            self.usage.add(retries=1)
            delay = wait if wait is not None else self._backoff(attempt)
            log.info("retry %d/%d in %.2fs after: %s", attempt + 1, self.max_retries, delay, last)
            if self._closed.wait(delay):
                raise RequestFailed("backend closed")
        raise RequestFailed(f"{last} (gave up after {self.max_retries + 1} attempts)")

    def _chat_json(self, kwargs: dict) -> Any:
        return self._call(lambda: self._sdk.chat.completions.with_raw_response.create(
            **kwargs, extra_headers=self._headers).text, f"POST {self.base_url}/chat/completions")

    def _list_models(self) -> list[dict]:
        try:
            data = self._call(lambda: self._sdk.models.with_raw_response.list(extra_headers=self._headers).text,
                              f"GET {self.base_url}/models")
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
            try:
                c = parse_chat_response(self._chat_json(chat_request(model, list(conv), params, top_logprobs,
                                                                     extra=extra)))
            except (RequestFailed, ProtocolError) as e:
                self.usage.add(failed=1)
                return Completion(text="", finish_reason="error", error=str(e))
            self.usage.add(ok=1, prompt_tokens=c.prompt_tokens, completion_tokens=c.completion_tokens)
            return c

        return list(self._pool.map(one, conversations))

    def stream(self, conversation: Conversation, params: SamplingParams,
               on_usage: Callable[[int, int], None] | None = None) -> Iterator[str]:
        """Text deltas; `on_usage(prompt_tokens, completion_tokens)` is called with the count the server reports at the
        end of the stream (`stream_options.include_usage`), for this request alone (`self.usage` sums all)."""
        kwargs = chat_request(self.model, list(conversation), params, stream=True, extra=self.extra_body)
        url = f"{self.base_url}/chat/completions"
        last = ""
        self.usage.add(requests=1)
        for attempt in range(self.max_retries + 1):
            sent_any = got_any = False
            wait = None
            try:
                with self._sdk.chat.completions.create(**kwargs, extra_headers=self._headers) as events:
                    for chunk in events:
                        got_any = True
                        if chunk.usage is not None:  # chunks are not validated: a missing field reads None
                            self.usage.add(prompt_tokens=chunk.usage.prompt_tokens or 0,
                                           completion_tokens=chunk.usage.completion_tokens or 0)
                            if on_usage is not None:
                                on_usage(chunk.usage.prompt_tokens or 0, chunk.usage.completion_tokens or 0)
                        delta = "".join(ch.delta.content or "" for ch in chunk.choices or [] if ch.delta)
                        if delta:
                            sent_any = True
                            yield delta
                if got_any:
                    self.usage.add(ok=1)
                    return
                last = "the server answered without any stream event (not an OpenAI-compatible stream)"
            except openai.OpenAIError as e:
                last, retry, wait = self._failure(e)
                if not retry:
                    self.usage.add(failed=1)
                    raise BackendError(f"streaming from {url} failed: {last}") from None
            except ValueError as e:  # an event whose data is not JSON
                last = f"malformed stream event: {self._clean(str(e))}"
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
        tokenize = f"{self.root_url}/tokenize"  # vLLM's, at the server root: no SDK resource for it

        def one(conv: Conversation) -> ScoredResponse:
            self.usage.add(requests=1)
            try:
                if not conv or conv[-1].get("role") != "assistant":
                    raise RequestFailed("each conversation must end with the assistant response to score")
                body = {"model": model, "messages": list(conv[:-1]), "add_generation_prompt": True}
                pre = self._call(lambda: self._sdk.post(tokenize, body=body, cast_to=str,
                                                        options={"headers": self._headers}), f"POST {tokenize}")
                start = int(pre["count"])
                data = self._chat_json({"model": model, "messages": list(conv), "max_tokens": 1, "temperature": 0.0,
                                        "extra_body": {"add_generation_prompt": False, "prompt_logprobs": k,
                                                       "return_token_ids": True}})
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
        self._sdk.close()
        if self._on_close is not None:
            self._on_close()
            self._on_close = None


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
