"""Launch options of `distill-studio` (flags, with env-var fallbacks) and the safety rules around them."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

from core.workspace import ENV_ALLOW_ROOTS
from studio.serving import DEFAULT_MAX_UPLOAD, parse_size

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class UnsafeLaunch(SystemExit):
    pass


@dataclass
class StudioOptions:
    host: str = "127.0.0.1"
    port: int = 7860
    workspace: str = "workspace"
    root_path: str = ""
    auth: list[tuple[str, str]] = field(default_factory=list)
    lang: str = "en"
    insecure: bool = False
    allow_roots: list[str] = field(default_factory=list)
    max_upload: int | None = None  # bytes; None = no limit of our own
    ray_address: str = ""  # the Ray cluster jobs run on ('' = this machine); exported as EDS_RAY_ADDRESS


def parse_args(argv: list[str] | None = None) -> StudioOptions:
    env = os.environ
    p = argparse.ArgumentParser(prog="distill-studio", description="EasyDistill Studio: the web studio.")
    p.add_argument("--host", default=env.get("EDS_HOST", "127.0.0.1"), help="address to bind (env EDS_HOST)")
    p.add_argument("--port", type=int, default=int(env.get("EDS_PORT", "7860")), help="port (env EDS_PORT)")
    p.add_argument("--workspace", default=env.get("EDS_WORKSPACE", "workspace"), help="workspace folder")
    p.add_argument(
        "--root-path", default=env.get("GRADIO_ROOT_PATH", ""),
        help="URL prefix when served behind a proxy, e.g. /dsw-12345/proxy/7860 (env GRADIO_ROOT_PATH)",
    )
    p.add_argument("--auth", help="USER:PASS (env EDS_AUTH)", default=env.get("EDS_AUTH"))
    p.add_argument("--auth-file", help="file with one USER:PASS per line", default=env.get("EDS_AUTH_FILE"))
    p.add_argument("--lang", choices=["en", "zh"], default=env.get("EDS_LANG", "en"), help="initial UI language")
    p.add_argument("--allow-root", action="append", default=[],
                   help="extra folder users may read (repeatable; env EDS_ALLOW_ROOTS, os.pathsep-separated)")
    p.add_argument("--max-upload-size", default=env.get("EDS_MAX_UPLOAD_SIZE", DEFAULT_MAX_UPLOAD),
                   help=f"largest file a browser may upload, e.g. 200mb, 1gb; 0 = no limit (default "
                        f"{DEFAULT_MAX_UPLOAD}, env EDS_MAX_UPLOAD_SIZE); behind a proxy, at most its own limit")
    p.add_argument("--ray-address", default=env.get("EDS_RAY_ADDRESS", ""), metavar="URL",
                   help="run jobs on this Ray cluster: its Ray Jobs / dashboard URL, e.g. http://head:8265; the "
                        "workspace must be on storage the cluster sees at the same path (env EDS_RAY_ADDRESS)")
    p.add_argument(
        "--insecure", action="store_true", help="allow binding a non-loopback host without auth (not recommended)"
    )
    a = p.parse_args(argv)
    auth: list[tuple[str, str]] = []
    if a.auth:
        auth.append(_pair(a.auth, "--auth"))
    if a.auth_file:
        for i, line in enumerate(Path(a.auth_file).read_text(encoding="utf-8").splitlines(), 1):
            if line.strip() and not line.startswith("#"):
                auth.append(_pair(line.strip(), f"{a.auth_file} line {i}"))
    opts = StudioOptions(
        host=a.host, port=a.port, workspace=a.workspace, root_path=a.root_path.rstrip("/"), auth=auth,
        lang=a.lang, insecure=a.insecure, allow_roots=[*env_allow_roots(), *a.allow_root],
        max_upload=_upload_limit(a.max_upload_size), ray_address=a.ray_address.strip(),
    )
    check_safe(opts)
    # The studio's JobManager (and the CLI commands it runs) read the cluster from the environment.
    os.environ["EDS_RAY_ADDRESS"] = opts.ray_address
    return opts


def env_allow_roots() -> list[str]:
    return [r for r in os.environ.get(ENV_ALLOW_ROOTS, "").split(os.pathsep) if r.strip()]


def _upload_limit(text: str) -> int | None:
    if str(text).strip().lower() in ("0", "none", "off", ""):
        return None
    try:
        return parse_size(text)
    except ValueError as e:
        raise SystemExit(f"--max-upload-size: {e}") from None


def _pair(text: str, where: str) -> tuple[str, str]:
    user, sep, pw = text.partition(":")
    if not sep or not user or not pw:
        raise SystemExit(f"{where}: expected USER:PASS")
    return user, pw


def check_safe(opts: StudioOptions) -> None:
    """Refuse to expose the studio (which runs jobs and reads workspace files) to a network without a password."""
    if opts.host not in LOOPBACK and not opts.auth and not opts.insecure:
        raise UnsafeLaunch(
            f"refusing to listen on {opts.host} without a password: add --auth USER:PASS (or --auth-file), "
            "or --insecure if the network is trusted"
        )
