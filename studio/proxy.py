"""Links that work behind a reverse proxy: the public host keeps its port.

Gradio builds the absolute links it hands out — a file's download link (Data → Export, the chat and evaluation
exports), `config.root` — from `X-Forwarded-Host` (else the `Host` header), `X-Forwarded-Proto` and `--root-path`.
Proxies commonly forward the host name without its port (nginx's `$host`; a PAI-DSW-like gateway on port 8080): the
page still works, since Gradio's client re-bases its own API calls on the page's address, but a download link leads
to port 80 and fails.

`ForwardedHostMiddleware` completes a forwarded host that has no port, before Gradio reads it, with the first of:
1. `X-Forwarded-Port`;
2. the `Origin` the browser sent (with every POST, such as the queue call whose outputs carry the file links), when it
   names the same host: the address the browser really used;
3. the `Host` header, when it names the same host with a port (`proxy_set_header Host $host:$server_port`).
A port that is the scheme's default is not written. When no proxy header says https but the browser's `Origin` for
the same host does, `X-Forwarded-Proto: https` is added, so links are not downgraded to http. A forwarded host with a
port, and a request without any of these, pass unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from starlette.middleware import Middleware

DEFAULT_PORTS = {"http": 80, "https": 443}


def split_host(host: str) -> tuple[str, int | None]:
    """'gw.example.com:8080' -> ('gw.example.com', 8080); '[::1]:80' -> ('::1', 80); no or bad port -> None."""
    host = host.strip()
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        name, _, port = host.partition(":") if host.count(":") == 1 else (host, "", "")
    return name.lower(), int(port) if port.isdigit() else None


def _first(value: str | None) -> str | None:
    value = (value or "").split(",")[0].strip()
    return value or None


def public_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The X-Forwarded-Host / X-Forwarded-Proto values Gradio should see (only those that change); `headers` are
    the request's, by lower-case name."""
    forwarded = _first(headers.get("x-forwarded-host"))
    claimed = forwarded or _first(headers.get("host"))
    if not claimed:
        return {}
    name, port = split_host(claimed)
    proto = _first(headers.get("x-forwarded-proto"))
    origin = urlsplit(headers.get("origin") or "")
    browser = origin.scheme in DEFAULT_PORTS and (origin.hostname or "").lower() == name
    out: dict[str, str] = {}
    if not proto and browser and origin.scheme == "https":
        proto = out["x-forwarded-proto"] = "https"
    if port is not None:
        return out
    if (given := _first(headers.get("x-forwarded-port"))) and given.isdigit():
        port = int(given)
    elif browser:
        port = origin.port or DEFAULT_PORTS[origin.scheme]
    elif forwarded:
        host_name, port = split_host(headers.get("host") or "")
        port = port if host_name == name else None
    if port is not None and port != DEFAULT_PORTS.get(proto or "http"):
        out["x-forwarded-host"] = f"[{name}]:{port}" if ":" in name else f"{name}:{port}"
    return out


class ForwardedHostMiddleware:
    """ASGI middleware: rewrites the request's X-Forwarded-Host / -Proto by `public_headers` (http and websocket)."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] in ("http", "websocket"):
            raw = scope.get("headers") or []
            change = public_headers({k.decode("latin-1").lower(): v.decode("latin-1") for k, v in reversed(raw)})
            if change:
                keep = [(k, v) for k, v in raw if k.decode("latin-1").lower() not in change]
                scope = {**scope, "headers": keep + [(k.encode(), v.encode("latin-1")) for k, v in change.items()]}
        await self.app(scope, receive, send)


def proxy_app_kwargs() -> dict[str, Any]:
    """`Blocks.launch(app_kwargs=...)`: the studio's FastAPI app runs every request through ForwardedHostMiddleware."""
    return {"middleware": [Middleware(ForwardedHostMiddleware)]}
