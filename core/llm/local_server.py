"""A small OpenAI-compatible server around any Backend (in practice: a transformers model in a serve job).

With it, the Chat tab and every job talk to a transformers model exactly as to vLLM: one protocol. Requests are served
by threads; the backend's own lock serializes model calls. Endpoints: /health, /v1/models, /v1/chat/completions
(JSON and SSE streaming, top_logprobs). Standard library only.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from core.llm.base import Backend
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

log = logging.getLogger(__name__)


class LocalOpenAIServer:
    def __init__(self, backend: Backend, model_name: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.backend = backend
        self.model_name = model_name
        server = self

        class Handler(_Handler):
            owner = server

        self._httpd = _Server((host, port), Handler)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def host(self) -> str:
        return self._httpd.server_address[0]

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}/v1"

    def start(self) -> LocalOpenAIServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread:
            self._thread.join(timeout=10)

    def __enter__(self) -> LocalOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default backlog of 5 drops bursts of new connections (a 1 s SYN retry each)


class _Handler(BaseHTTPRequestHandler):
    owner: LocalOpenAIServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stall

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _json(self, status: int, obj: Any) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        path = self.path.rstrip("/")
        if path in ("/health", "/v1/health"):
            self._json(200, {"status": "ok"})
        elif path == "/v1/models":
            self._json(200, models_response([self.owner.model_name]))
        else:
            self._json(404, error_body(f"no route {self.path}", code=404))

    def do_POST(self) -> None:  # noqa: N802
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._json(404, error_body(f"no route {self.path}", code=404))
            return
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            messages, params, top_k, stream = parse_chat_request(body)
        except (ValueError, ProtocolError) as e:
            self._json(400, error_body(str(e)))
            return
        backend = self.owner.backend
        try:
            if stream:
                self._stream(backend.stream(messages, params))
                return
            c = backend.chat([messages], params, top_logprobs=top_k)[0]
            if c.error:
                self._json(500, error_body(c.error, "server_error", 500))
                return
            if c.top_logprobs and body.get("return_tokens_as_token_ids"):
                for t in c.top_logprobs:
                    t.tokens = [f"token_id:{i}" for i in t.ids]
            elif c.top_logprobs and hasattr(backend, "tokenizer"):
                for t in c.top_logprobs:
                    t.tokens = [backend.tokenizer.decode([i]) for i in t.ids]
            self._json(200, chat_response(self.owner.model_name, c))
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as e:  # a bad request must not kill the server; the client sees why
            log.exception("chat request failed")
            self._json(500, error_body(f"{type(e).__name__}: {e}", "server_error", 500))

    def _count_tokens(self, text: str) -> int:
        """Usage in tokens, not in streamed chunks (the streamer yields word-sized pieces)."""
        tokenizer = getattr(self.owner.backend, "tokenizer", None)
        if tokenizer is None:
            return len(text.split())
        return len(tokenizer.encode(text, add_special_tokens=False))

    def _stream(self, deltas) -> None:
        rid, model = new_id(), self.owner.model_name
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        self.wfile.write(sse(stream_chunk(model, rid, {"role": "assistant", "content": ""})))
        text = ""
        try:
            for d in deltas:
                text += d
                self.wfile.write(sse(stream_chunk(model, rid, {"content": d})))
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return
        except Exception as e:
            self.wfile.write(sse({"error": {"message": f"{type(e).__name__}: {e}"}}))
            return
        self.wfile.write(sse(stream_chunk(model, rid, {}, "stop")))
        self.wfile.write(sse(usage_chunk(model, rid, 0, self._count_tokens(text))))
        self.wfile.write(sse("[DONE]"))
        self.wfile.flush()
