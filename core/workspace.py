"""The workspace: one root folder holding datasets, models, runs and caches.

Every path a remote visitor supplies (web UI, API) goes through `Workspace.resolve`, which refuses anything that
would land outside the workspace or an operator-allowed root: `..` escapes, absolute paths elsewhere, and symlinks
that point out. The CLI run by a local user uses `resolve_local` instead, which only anchors relative paths.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import UserError

SUBDIRS = ("datasets", "models", "runs", "cache", "templates", "presets")


class PathOutsideWorkspace(UserError, ValueError):
    """A user-supplied path that would escape the workspace (or the allowed roots)."""


@dataclass
class Workspace:
    root: Path
    extra_roots: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root = Path(self.root).expanduser().resolve()
        self.extra_roots = [Path(r).expanduser().resolve() for r in self.extra_roots]

    @classmethod
    def open(cls, root: str | os.PathLike, extra_roots: Iterable[str | os.PathLike] = ()) -> Workspace:
        """Open (and create on first use) a workspace folder with its standard sub-folders."""
        ws = cls(Path(root), [Path(r) for r in extra_roots])
        ws.ensure()
        return ws

    def ensure(self) -> None:
        for name in SUBDIRS:
            (self.root / name).mkdir(parents=True, exist_ok=True)

    @property
    def datasets(self) -> Path:
        return self.root / "datasets"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def templates(self) -> Path:
        return self.root / "templates"

    @property
    def presets(self) -> Path:
        return self.root / "presets"

    @property
    def db_path(self) -> Path:
        return self.root / "studio.sqlite"

    def allowed_roots(self) -> list[Path]:
        return [self.root, *self.extra_roots]

    def resolve(self, user_path: str | os.PathLike, base: str | None = None) -> Path:
        """Resolve a path from an untrusted source to an absolute path inside an allowed root.

        Relative paths are taken against `root/base` (e.g. base="datasets"). The check runs on the fully resolved
        path, so a symlink inside the workspace that points elsewhere is refused as well.
        """
        raw = os.fspath(user_path).strip()
        if not raw:
            raise PathOutsideWorkspace("empty path")
        if "\x00" in raw:
            raise PathOutsideWorkspace("path contains a NUL byte")
        p = Path(raw).expanduser()
        if not p.is_absolute():
            p = (self.root / base / p) if base else (self.root / p)
        resolved = p.resolve()
        for allowed in self.allowed_roots():
            if resolved == allowed or resolved.is_relative_to(allowed):
                return resolved
        raise PathOutsideWorkspace(
            f"'{raw}' is outside the workspace ({self.root}); put the file under the workspace "
            "or ask the operator to allow its folder with --allow-root"
        )

    def relative(self, path: str | os.PathLike) -> str:
        """A path shown to users: relative to the workspace root when inside it."""
        p = Path(path).resolve()
        return str(p.relative_to(self.root)) if p.is_relative_to(self.root) else str(p)


def resolve_local(user_path: str | os.PathLike, anchor: str | os.PathLike | None = None) -> Path:
    """Resolve a path from a trusted local user (CLI config): relative paths anchor at the config file's folder."""
    p = Path(os.fspath(user_path)).expanduser()
    if not p.is_absolute() and anchor is not None:
        p = Path(anchor) / p
    return p.resolve()
