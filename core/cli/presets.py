"""`easydistill presets list|show NAME`: the bundled and saved presets, and whether this machine can run them."""

from __future__ import annotations

import argparse
import json
import sys

from core.config import ConfigError, dump_yaml
from core.devices import discover_gpus
from core.presets import check_machine, find_preset, list_presets
from core.workspace import Workspace


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("presets", help="list or show ready job configs")
    s = p.add_subparsers(dest="presets_cmd", required=True)
    ls = s.add_parser("list", help="every preset, with what it needs")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)
    sh = s.add_parser("show", help="print a preset's job as YAML")
    sh.add_argument("name")
    sh.set_defaults(func=cmd_show)


def cmd_list(args: argparse.Namespace) -> int:
    ws = Workspace.open(args.workspace)
    gpus = discover_gpus()
    rows = []
    for p in list_presets(ws):
        problems = check_machine(p, gpus, ws)
        rows.append({"name": p.name, "title": p.title(), "path": str(p.path), "kind": p.config.kind,
                     "runs_here": not problems, "problems": problems})
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    for r in rows:
        mark = "ok " if r["runs_here"] else "-- "
        print(f"{mark}{r['name']:<20} {r['title']}")
        for prob in r["problems"]:
            print(f"      {prob}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    try:
        p = find_preset(args.name, Workspace.open(args.workspace))
    except ConfigError as e:
        print(e.report(), file=sys.stderr)
        return 2
    print(f"# {p.title()}\n# {p.description()}")
    sys.stdout.write(dump_yaml(p.config))
    return 0
