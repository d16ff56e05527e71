"""The architecture figures of issue 11, read from the code with `ast` (nothing is imported or run).

    python scripts/arch_report.py [ROOT] [--strict] [--max-fn N] [--max-broad N] [--max-io N]
                                  [--max-converters N] [--max-renderers N]

Prints each figure with where it comes from. Exit 1 on what must never happen — an import cycle between core rooms
or between files, core importing gradio or studio — and, with `--strict`, also when a figure is over its limit
(longest studio function, `except Exception` in studio, file IO in studio/tabs, picker → BackendSpec converters,
job-status renderers). `make test` and `make lint` run it with `--strict`: the figures hold, and stay held.

How each figure is read (heuristics, so every hit is listed for a person to judge):
- room: `core/<room>/` or `core/<file>.py`; an import (function-level ones included) is an edge to the longest
  module it names; cycles are strongly connected components of more than one node.
- converter: a function outside `core/endpoints.py` and `core/config/` that calls `BackendSpec(...)` with
  `model=` a variable (a picker's value), or that handles the pickers' `endpoint:` marker while building one.
- job-status renderer: a module (other than core/jobs/summary.py) with a function that puts a job's status,
  progress, ETA or queue position into text itself (an f-string or a translation call with `info.status`, ...,
  or `format_eta`; an HTML attribute such as `data-status` is not text); core/jobs/summary.py counts as one.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

JOB_FIELDS = {"status", "progress", "eta_s", "queue_position"}
JOB_NAMES = {"info", "i", "j", "job", "job_info"}  # what code calls a JobInfo it formats
IO_CALLS = {"write_text", "write_bytes", "read_text", "read_bytes"}
OS_IO = {"copy", "copyfile", "copy2", "copytree", "move", "rmtree", "run", "Popen", "remove", "unlink", "replace",
         "rename", "makedirs"}
SUMMARY = "core.jobs.summary"
PICKERS = "core.endpoints"


@dataclass
class Report:
    room_cycles: list[list[str]] = field(default_factory=list)
    file_cycles: list[list[str]] = field(default_factory=list)
    core_to_ui: list[str] = field(default_factory=list)
    longest: tuple[int, str] = (0, "")
    broad: list[str] = field(default_factory=list)
    io_in_tabs: list[str] = field(default_factory=list)
    converters: list[str] = field(default_factory=list)
    renderers: dict[str, list[str]] = field(default_factory=dict)


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(mod: str, node: ast.ImportFrom, is_pkg: bool) -> str:
    """The absolute module a (possibly relative) `from ... import` names."""
    if node.level == 0:
        return node.module or ""
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
    return ".".join(base + ([node.module] if node.module else []))


def room(m: str) -> str:
    parts = m.split(".")
    return ".".join(parts[:2]) if parts[0] == "core" and len(parts) > 1 else parts[0]


def functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def _call_name(node: ast.Call) -> tuple[str, str]:
    """(owner, name) of a call: ("shutil", "copy") for shutil.copy(...), ("", "open") for open(...)."""
    f = node.func
    if isinstance(f, ast.Name):
        return "", f.id
    if isinstance(f, ast.Attribute):
        return (f.value.id if isinstance(f.value, ast.Name) else ""), f.attr
    return "", ""


def _job_fields(node: ast.AST) -> bool:
    """Whether `node` reads a job's status / progress / ETA / queue position (`info.progress`, ...)."""
    return any(isinstance(n, ast.Attribute) and n.attr in JOB_FIELDS and isinstance(n.value, ast.Name)
               and n.value.id in JOB_NAMES for n in ast.walk(node))


def _read_values(node: ast.JoinedStr) -> Iterator[ast.FormattedValue]:
    """The f-string's fields a person reads: not those filling an HTML attribute (`data-status="{...}"`, for tests
    and CSS)."""
    prev = ""
    for part in node.values:
        if isinstance(part, ast.FormattedValue) and not prev.endswith('="'):
            yield part
        prev = part.value if isinstance(part, ast.Constant) and isinstance(part.value, str) else ""


def renders_job_status(fn: ast.AST) -> bool:
    """A job's fields put into text here: in an f-string, a translation call's arguments, or through format_eta."""
    for node in ast.walk(fn):
        if isinstance(node, ast.JoinedStr) and any(_job_fields(v.value) for v in _read_values(node)):
            return True
        if isinstance(node, ast.Call):
            owner, name = _call_name(node)
            if name == "format_eta":
                return True
            if name == "t" and any(_job_fields(k.value) for k in node.keywords):
                return True
    return False


def converts_picker(fn: ast.AST) -> bool:
    """A BackendSpec built from a picker's value (a variable as `model=`), or built while handling `endpoint:`."""
    builds, from_value, endpoint = False, False, False
    for node in ast.walk(fn):
        if isinstance(node, ast.Call) and _call_name(node)[1] == "BackendSpec":
            builds = True
            for k in node.keywords:
                if k.arg == "model" and isinstance(k.value, (ast.Name, ast.Attribute)):
                    from_value = True
        if isinstance(node, ast.Name) and node.id == "ENDPOINT_PREFIX":
            endpoint = True
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("endpoint:"):
            endpoint = True
    return builds and (from_value or endpoint)


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in list(g):
        if v not in index:
            visit(v)
    return sorted(out)


def _imports(m: str, tree: ast.AST, is_pkg: bool) -> Iterable[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = resolve(m, node, is_pkg)
            yield base
            yield from (f"{base}.{a.name}" for a in node.names)


def _studio_checks(m: str, tree: ast.AST, rep: Report) -> None:
    for fn in functions(tree):
        n = (fn.end_lineno or fn.lineno) - fn.lineno + 1
        if n > rep.longest[0]:
            rep.longest = (n, f"{m}.{fn.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.ExceptHandler):
            t = node.type
            names = ["<bare>"] if t is None else [e.id for e in (t.elts if isinstance(t, ast.Tuple) else [t])
                                                  if isinstance(e, ast.Name)]
            if any(x in ("Exception", "BaseException", "<bare>") for x in names):
                rep.broad.append(f"{m}:{node.lineno}")
        if m.startswith("studio.tabs") and isinstance(node, ast.Call):
            owner, name = _call_name(node)
            if (name == "open" and owner in ("", "io", "os") or name in IO_CALLS
                    or owner in ("shutil", "subprocess", "os") and name in OS_IO):
                rep.io_in_tabs.append(f"{m}:{node.lineno} {owner + '.' if owner else ''}{name}")


def measure(root: Path) -> Report:
    files = sorted(p for d in ("core", "studio") for p in (root / d).rglob("*.py"))
    mods = {module_name(root, p): p for p in files}
    edges: dict[str, set[str]] = {m: set() for m in mods}
    rep = Report()
    for m, p in mods.items():
        tree = ast.parse(p.read_text(encoding="utf-8"), filename=str(p))
        for target in _imports(m, tree, p.name == "__init__.py"):
            if m.startswith("core") and target.split(".")[0] in ("gradio", "studio"):
                rep.core_to_ui.append(f"{m} -> {target}")
            parts = target.split(".")
            for i in range(len(parts), 0, -1):  # the longest known module it names
                cand = ".".join(parts[:i])
                if cand in mods:
                    if cand != m:
                        edges[m].add(cand)
                    break
        if m.startswith("studio"):
            _studio_checks(m, tree, rep)
        for fn in functions(tree):
            if m != PICKERS and not m.startswith("core.config") and converts_picker(fn):
                rep.converters.append(f"{m}.{fn.name}")
            if m != SUMMARY and renders_job_status(fn):
                rep.renderers.setdefault(m, []).append(fn.name)
    room_edges: dict[str, set[str]] = {}
    for a, bs in edges.items():
        for b in bs:
            if room(a) != room(b) and a.startswith("core") and b.startswith("core"):
                room_edges.setdefault(room(a), set()).add(room(b))
    rep.room_cycles, rep.file_cycles = cycles(room_edges), cycles(edges)
    rep.core_to_ui = sorted(set(rep.core_to_ui))
    return rep


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", nargs="?", default=str(Path(__file__).resolve().parents[1]))
    ap.add_argument("--strict", action="store_true", help="also fail when a figure is over its limit")
    ap.add_argument("--max-fn", type=int, default=150)
    ap.add_argument("--max-broad", type=int, default=1)
    ap.add_argument("--max-io", type=int, default=0)
    ap.add_argument("--max-converters", type=int, default=1)
    ap.add_argument("--max-renderers", type=int, default=1)
    args = ap.parse_args(argv)
    rep = measure(Path(args.root).resolve())
    renderers = 1 + len(rep.renderers)  # core.jobs.summary, plus every module that renders a job itself
    converters = 1 + len(rep.converters)  # core.endpoints.spec_for, plus every other
    rows = [
        ("import cycles between core rooms", len(rep.room_cycles), rep.room_cycles, 0),
        ("import cycles between files", len(rep.file_cycles), rep.file_cycles, 0),
        ("core -> gradio/studio imports", len(rep.core_to_ui), rep.core_to_ui, 0),
        ("longest function in studio/ (lines)", rep.longest[0], rep.longest[1], args.max_fn),
        ("`except Exception` in studio/", len(rep.broad), rep.broad, args.max_broad),
        ("file IO / shutil in studio/tabs", len(rep.io_in_tabs), rep.io_in_tabs, args.max_io),
        ("model-picker -> BackendSpec converters", converters, [f"{PICKERS}.spec_for", *rep.converters],
         args.max_converters),
        ("job-status renderers (modules)", renderers,
         [SUMMARY, *(f"{m}: {', '.join(fns)}" for m, fns in sorted(rep.renderers.items()))], args.max_renderers),
    ]
    over = []
    for label, value, where, limit in rows:
        mark = "" if value <= limit else "  (over " + str(limit) + ")"
        print(f"{label:40} {value}{mark}")
        for w in where if isinstance(where, list) else [where]:
            if w:
                print(f"{'':42}{' - '.join(w) if isinstance(w, list) else w}")
        if value > limit:
            over.append(label)
    must = rep.room_cycles or rep.file_cycles or rep.core_to_ui
    if must:
        print("FAIL: import cycles or core importing the UI", file=sys.stderr)
        return 1
    if args.strict and over:
        print(f"FAIL (--strict): over the limit: {', '.join(over)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
