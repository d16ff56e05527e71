"""The workspace: one root folder holding datasets, models, runs and caches — and the one place that decides which
files a path may reach.

Two rules, both checked on the fully resolved path (every symlink followed):

- A remote visitor (web UI, API) names paths through `Workspace.resolve`: the file must lie inside the workspace or
  a root the operator allowed (`--allow-root` / EDS_ALLOW_ROOTS). `..` escapes, absolute paths elsewhere and
  symlinks that lead out are refused.
- A local user (CLI, a config file) is trusted and may name any path explicitly (`Workspace.local`): an absolute
  path, or one relative to the current folder / the config file's folder, is taken as written. But a path that
  reaches into the workspace stays in it: a link inside the workspace that leads out is refused, so nobody is
  tricked into reading or writing elsewhere by a link planted among the workspace's files.

Names (a dataset, model, cache or template name) always mean a file the studio builds under the workspace;
`Workspace.inside` checks such a file before it is read or written, for web visitors and the CLI alike.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import UserError

SUBDIRS = ("datasets", "models", "runs", "cache", "templates", "presets")
ENV_ALLOW_ROOTS = "EDS_ALLOW_ROOTS"  # extra allowed roots, os.pathsep-separated; the studio passes its own to jobs


class PathOutsideWorkspace(UserError, ValueError):
    """A path that would escape the workspace (or the allowed roots). `path` is the path as the person wrote it
    (or relative to the workspace), never the server's absolute path."""

    def __init__(self, message: str, path: str | None = None, *, code: str | None = None):
        super().__init__(message, code=code)
        if path is not None:
            self.code = "path_outside"
            self.params = {"path": path}


class LinkOutsideWorkspace(PathOutsideWorkspace):
    """A file or folder inside the workspace that is a symlink (or lies under one) leading outside the allowed
    roots. The studio never follows it; the message does not say where it points."""

    def __init__(self, path: str):
        super().__init__(
            f"'{path}' is a link that leads outside the workspace, which the studio does not follow: copy the file "
            "into the workspace, or ask the operator to allow the folder it points to (--allow-root, EDS_ALLOW_ROOTS)")
        self.code = "link_outside"
        self.params = {"path": path}


def env_roots() -> list[Path]:
    """The allowed roots named in EDS_ALLOW_ROOTS (how the studio's --allow-root reaches job processes and the CLI)."""
    return [Path(p) for p in os.environ.get(ENV_ALLOW_ROOTS, "").split(os.pathsep) if p.strip()]


@dataclass
class Workspace:
    root: Path
    extra_roots: list[Path] = field(default_factory=env_roots)

    def __post_init__(self) -> None:
        self.root = Path(self.root).expanduser().resolve()
        self.extra_roots = [Path(r).expanduser().resolve() for r in self.extra_roots]

    @classmethod
    def open(cls, root: str | os.PathLike, extra_roots: Iterable[str | os.PathLike] | None = None) -> Workspace:
        """Open (and create on first use) a workspace folder with its standard sub-folders. `extra_roots`: folders
        outside it that may be reached too (default: EDS_ALLOW_ROOTS)."""
        ws = cls(Path(root), env_roots() if extra_roots is None else [Path(r) for r in extra_roots])
        ws.ensure()
        return ws

    def ensure(self) -> None:
        """Create the standard sub-folders; refuse one that is a link leading outside the allowed roots (everything
        stored there would be read and written elsewhere)."""
        for name in SUBDIRS:
            (self.root / name).mkdir(parents=True, exist_ok=True)
            self.inside(self.root / name)

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

    def contains(self, path: str | os.PathLike) -> bool:
        """Whether `path`, every link on the way followed, lies inside the workspace or an allowed root."""
        resolved = Path(path).resolve()
        return any(resolved == r or resolved.is_relative_to(r) for r in self.allowed_roots())

    def shown(self, path: str | os.PathLike) -> str:
        """How a path is named in a message: relative to the workspace when it is written inside it (links not
        followed, so a link's own name is shown, not its target)."""
        p = Path(os.path.abspath(path))
        return str(p.relative_to(self.root)) if p.is_relative_to(self.root) else str(path)

    def inside(self, path: str | os.PathLike) -> Path:
        """A file or folder the studio builds from a name (`datasets/<name>.jsonl`, `models/<name>`, ...), returned
        as given when it stays inside the allowed roots once its links are followed; LinkOutsideWorkspace when a
        symlink (the file itself, a dangling one, or a folder above it) leads out. Call it before reading or
        writing a workspace file picked by name."""
        p = Path(path)
        if not p.is_absolute():
            p = self.root / p
        if self.contains(p):
            return p
        if Path(os.path.abspath(p)).is_relative_to(self.root):
            raise self._link_error(p)
        raise PathOutsideWorkspace(self._outside_message(str(path)), str(path))

    def resolve(self, user_path: str | os.PathLike, base: str | None = None) -> Path:
        """Resolve a path from an untrusted source to an absolute path inside an allowed root.

        Relative paths are taken against `root/base` (e.g. base="datasets"). The check runs on the fully resolved
        path, so a symlink inside the workspace that points elsewhere is refused as well.
        """
        raw = self._raw(user_path)
        p = Path(raw).expanduser()
        if not p.is_absolute():
            p = (self.root / base / p) if base else (self.root / p)
        resolved = p.resolve()
        if self.contains(resolved):
            return resolved
        if Path(os.path.abspath(p)).is_relative_to(self.root):  # written inside, lands outside: a link
            raise self._link_error(p)
        raise PathOutsideWorkspace(self._outside_message(raw), raw)

    def local(self, user_path: str | os.PathLike, anchor: str | os.PathLike | None = None) -> Path:
        """Resolve a path a trusted local user wrote (a CLI argument, a config file's value): any place on the
        machine, relative paths taken against `anchor` (the config file's folder, the workspace) or the current
        folder. A path that reaches into the workspace stays in it: when any folder on its way lies inside the
        workspace, the file it leads to must too (or lie in an allowed root), else LinkOutsideWorkspace."""
        raw = self._raw(user_path)
        p = Path(raw).expanduser()
        if not p.is_absolute():
            p = Path(anchor if anchor is not None else os.getcwd()) / p
        p = Path(os.path.abspath(p))  # `..` taken as written, as a shell does
        resolved = p.resolve()
        if self.contains(resolved):
            return resolved
        if any(self._in_workspace(q.resolve()) for q in p.parents):
            raise self._link_error(p)
        return resolved

    def relative(self, path: str | os.PathLike) -> str:
        """A path shown to users: relative to the workspace root when inside it."""
        p = Path(path).resolve()
        return str(p.relative_to(self.root)) if p.is_relative_to(self.root) else str(p)

    def _link_error(self, path: Path) -> LinkOutsideWorkspace:
        """The error naming the link itself: the first step of `path` (from the top) that leads out."""
        p = Path(os.path.abspath(path))
        steps = [*reversed(p.parents), p]
        inside_from = next((i for i, q in enumerate(steps) if self._in_workspace(q.resolve())), 0)
        culprit = next((q for q in steps[inside_from:] if not self.contains(q)), p)
        return LinkOutsideWorkspace(self.shown(culprit))

    def _in_workspace(self, resolved: Path) -> bool:
        return resolved == self.root or resolved.is_relative_to(self.root)

    @staticmethod
    def _raw(user_path: str | os.PathLike) -> str:
        raw = os.fspath(user_path).strip()
        if not raw:
            raise PathOutsideWorkspace("empty path", code="path_empty")
        if "\x00" in raw:
            raise PathOutsideWorkspace("path contains a NUL byte", code="path_nul")
        return raw

    @staticmethod
    def _outside_message(raw: str) -> str:
        return (f"'{raw}' is outside the workspace: put the file under the workspace folder, or ask the operator to "
                "allow its folder (--allow-root, EDS_ALLOW_ROOTS)")
