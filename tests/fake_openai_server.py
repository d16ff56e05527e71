"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests: the remote API we cannot reach here.

It speaks /v1/models and /v1/chat/completions (JSON and SSE streaming) and can misbehave on purpose: latency, 429 with
Retry-After, 500, hanging past the client's timeout (until the client hangs up), malformed JSON, dropped connections —
scripted per request or drawn at a seeded fault rate. Every request is recorded (body, fault, status, timing) and the
peak number in flight is tracked, so tests can check that nothing was lost or duplicated and that a concurrency limit
held.

    with FakeOpenAIServer(answer=lambda msgs: "42", latency=0.05) as srv:
        backend = OpenAIBackend(EndpointSpec(base_url=srv.base_url))

Answers are configurable: `answer(messages) -> str` (default: echo the last user message).
"""

from __future__ import annotations

import json
import random
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from core.llm.base import Completion, TokenTopK
from core.llm.openai_protocol import (
    ProtocolError,
    chat_response,
    error_body,
    models_response,
    new_id,
    parse_chat_request,
    sse,
    stream_chunk,
    usage_chunk,
)

FAULTS = ("429", "500", "timeout", "malformed", "disconnect")


@dataclass
class Record:
    """One request as the server saw it."""

    path: str
    body: Any
    fault: str | None
    status: int
    started: float
    finished: float = 0.0
    headers: dict = field(default_factory=dict)

    @property
    def messages(self) -> list[dict]:
        return self.body.get("messages", []) if isinstance(self.body, dict) else []

    @property
    def last_user(self) -> str:
        users = [m.get("content", "") for m in self.messages if m.get("role") == "user"]
        return users[-1] if users else ""


def echo_answer(messages: list[dict]) -> str:
    users = [m.get("content", "") for m in messages if m.get("role") == "user"]
    return f"echo: {users[-1] if users else ''}"


class FakeOpenAIServer:
    """Threaded HTTP server; start()/stop() or use as a context manager."""

    def __init__(
        self,
        answer: Callable[[list[dict]], str] = echo_answer,
        model: str = "fake-model",
        latency: float = 0.0,
        fault_rate: float = 0.0,
        fault_kinds: tuple[str, ...] = ("429", "500", "timeout", "malformed"),
        script: list[str | None] | None = None,
        retry_after: float | str | None = 0.05,
        hang_s: float = 5.0,
        seed: int = 0,
        owned_by: str = "fake",
        api_key: str | None = None,
    ) -> None:
        self.answer = answer
        self.model = model
        self.latency = latency
        self.fault_rate = fault_rate
        self.fault_kinds = fault_kinds
        self.script = list(script or [])  # faults for the first chat requests, in order (None = answer normally)
        self.retry_after = retry_after
        self.hang_s = hang_s
        self.owned_by = owned_by
        self.api_key = api_key
        self.records: list[Record] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- lifecycle

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeOpenAIServer:
        server = self

        class Handler(_Handler):
            fake = server

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- inspection

    def chat_records(self) -> list[Record]:
        with self._lock:
            return [r for r in self.records if r.path.endswith("/chat/completions")]

    def answered(self) -> list[Record]:
        """Chat requests that got a good (200, well-formed) answer."""
        return [r for r in self.chat_records() if r.status == 200 and r.fault is None]

    # ---------------------------------------------------------------- internals used by the handler

    def _draw_fault(self) -> str | None:
        with self._lock:
            n_chat = sum(1 for r in self.records if r.path.endswith("/chat/completions"))
            if n_chat < len(self.script):
                return self.script[n_chat]
            if self.fault_rate > 0 and self._rng.random() < self.fault_rate:
                return self._rng.choice(self.fault_kinds)
            return None

    def _enter(self, rec: Record) -> None:
        with self._lock:
            self.records.append(rec)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self, rec: Record, status: int) -> None:
        with self._lock:
            self.in_flight -= 1
            rec.status = status
            rec.finished = time.time()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default backlog of 5 drops bursts of new connections (a 1 s SYN retry each)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOpenAIServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stall

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json", headers: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: Any, headers: dict | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers=headers)

    def _authorized(self) -> bool:
        if self.fake.api_key is None:
            return True
        if self.headers.get("Authorization") == f"Bearer {self.fake.api_key}":
            return True
        self._json(401, error_body("invalid API key", "authentication_error", 401))
        return False

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        if self.path.rstrip("/") in ("/health", "/v1/health"):
            self._send(200, b"")
        elif self.path.rstrip("/") == "/v1/models":
            if self._authorized():
                self._json(200, models_response([self.fake.model], owned_by=self.fake.owned_by))
        else:
            self._json(404, error_body(f"no route {self.path}", code=404))

    def do_POST(self) -> None:  # noqa: N802
        fake = self.fake
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._json(404, error_body(f"no route {self.path}", code=404))
            return
        fault = fake._draw_fault()
        rec = Record(self.path, body, fault, 0, time.time(),
                     headers={k.lower(): v for k, v in self.headers.items() if k.lower() != "authorization"})
        fake._enter(rec)
        status = 200
        try:
            if not self._authorized():
                status = 401
                return
            if fake.latency:
                time.sleep(fake.latency)
            if fault == "429":
                status = 429
                hdr = {"Retry-After": str(fake.retry_after)} if fake.retry_after is not None else {}
                self._json(429, error_body("rate limited", "rate_limit_error", 429), headers=hdr)
                return
            if fault == "500":
                status = 500
                self._json(500, error_body("internal error", "server_error", 500))
                return
            if fault == "timeout":
                # longer than the client's timeout: it gives up first and closes the connection, which the server
                # notices (as vLLM aborts a request whose client went away)
                if self._wait_or_client_gone(fake.hang_s):
                    status = 499
                    self.close_connection = True
                    return
                status = 504
                self._json(504, error_body("too slow", "server_error", 504))
                return
            if fault == "malformed":
                self._send(200, b'{"choices": [ this is not json')
                return
            if fault == "disconnect":
                status = 0
                self.close_connection = True
                self.connection.shutdown(2)
                return
            try:
                messages, params, top_k, stream = parse_chat_request(body)
            except ProtocolError as e:
                status = 400
                self._json(400, error_body(str(e)))
                return
            text = fake.answer(messages)
            words = text.split(" ")
            if params.max_new_tokens < len(words):
                text, finish = " ".join(words[:params.max_new_tokens]), "length"
            else:
                finish = "stop"
            for s in params.stop:
                if s and s in text:
                    text, finish = text[:text.index(s)], "stop"
            n_prompt = sum(len(m["content"].split()) for m in messages)
            n_out = len(text.split())
            if stream:
                self._stream(text, finish, n_prompt, n_out)
                return
            top = None
            if top_k:
                top = [TokenTopK(ids=[], logprobs=[-0.1 * (i + 1) for i in range(top_k)],
                                 tokens=[w] + [f"alt{i}" for i in range(1, top_k)]) for w in text.split(" ")]
            c = Completion(text=text, prompt_tokens=n_prompt, completion_tokens=n_out, finish_reason=finish,
                           top_logprobs=top)
            self._json(200, chat_response(fake.model, c))
        except (BrokenPipeError, ConnectionResetError):
            status = 0
        finally:
            fake._leave(rec, status)

    def _wait_or_client_gone(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True as soon as the client has closed its end of the connection."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.fake._stopping.is_set():
            readable, _, _ = select.select([self.connection], [], [], 0.01)
            if readable:
                try:
                    if self.connection.recv(1, socket.MSG_PEEK) == b"":
                        return True
                except OSError:
                    return True
        return False

    def _stream(self, text: str, finish: str, n_prompt: int, n_out: int) -> None:
        rid = new_id()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        model = self.fake.model
        self.wfile.write(sse(stream_chunk(model, rid, {"role": "assistant", "content": ""})))
        pieces = [w + " " for w in text.split(" ")]
        if pieces:
            pieces[-1] = pieces[-1][:-1]
        for p in pieces:
            self.wfile.write(sse(stream_chunk(model, rid, {"content": p})))
            self.wfile.flush()
        self.wfile.write(sse(stream_chunk(model, rid, {}, finish)))
        self.wfile.write(sse(usage_chunk(model, rid, n_prompt, n_out)))
        self.wfile.write(sse("[DONE]"))
        self.wfile.flush()
