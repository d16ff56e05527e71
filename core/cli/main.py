"""Entry of the `easydistill` command. Global options come before the command (as `git -C` does).

Each command lives in its own module exposing `register(subparsers)`; the handler it sets as `func(args) -> int`
returns the exit code. Exit 2 means: the input was wrong (message printed), 1: the job failed (or the disk is full,
or the job list cannot be used). An error a person can fix (`UserError`, a full disk) is printed as one message,
never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from core import __version__

COMMAND_MODULES = [
    "core.cli.validate",
    "core.cli.jobs",
    "core.cli.presets",
    "core.cli.models",
    "core.cli.data",
    "core.cli.eval",
]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="easydistill",
        description="EasyDistill Studio, headless: validate and run distillation jobs (EasyDistill 1.x configs too).",
    )
    p.add_argument("--version", action="version", version=f"easydistill-studio {__version__}")
    p.add_argument(
        "--workspace", default=os.environ.get("EDS_WORKSPACE", "workspace"),
        help="workspace folder (datasets/, models/, runs/, cache/); env EDS_WORKSPACE",
    )
    p.add_argument(
        "--ray-address", default=None, metavar="URL",
        help="run jobs on this Ray cluster (its Ray Jobs / dashboard URL, e.g. http://head:8265); the run folders must "
             "be on storage the cluster sees at the same path; '' = this machine (env EDS_RAY_ADDRESS)",
    )
    p.add_argument("--config", help="run the job(s) of this config file (studio YAML or EasyDistill 1.x JSON)")
    p.add_argument("--detach", action="store_true", help="with --config: print the job id and return")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.ray_address is not None:  # every JobManager of this command reads it (core.jobs.executor)
        os.environ["EDS_RAY_ADDRESS"] = args.ray_address
    try:
        return _dispatch(parser, args)
    except Exception as e:  # noqa: BLE001 - the CLI's edge: a UserError or a full disk is a message, not a traceback
        return _edge(e, args)


def _edge(e: Exception, args: argparse.Namespace) -> int:
    from pathlib import Path

    from core.errors import UserError
    from core.jobs.errors import StoreUnavailable
    from core.jobs.failure import disk_full_error

    if isinstance(e, OSError):
        full = disk_full_error(e, workspace_root=Path(args.workspace).expanduser().resolve())
        if full is not None:
            e = full
    if not isinstance(e, UserError):
        raise e
    print(f"error: {e.report()}", file=sys.stderr)
    return 1 if isinstance(e, StoreUnavailable) else 2


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.config and not args.command:
        try:
            from core.cli.jobs import run_config
        except ImportError:
            print("running jobs is not available yet in this build", file=sys.stderr)
            return 2
        return run_config(args)
    if not args.command:
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
