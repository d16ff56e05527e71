"""`easydistill validate --config FILE`: print the normalised config (secrets redacted) or every problem."""

from __future__ import annotations

import argparse
import sys

from core.config import ConfigError, JobBase, dump_yaml, load_config_file


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check a config file and print it normalised as YAML")
    p.add_argument("--config", required=True, dest="validate_config", help="studio YAML or EasyDistill 1.x JSON")
    p.set_defaults(func=cmd_validate)


def load_or_report(path: str) -> JobBase | None:
    """Load a config file for a CLI command; problems and import notes go to stderr (None = exit 2)."""
    try:
        config, notes = load_config_file(path)
    except ConfigError as e:
        print(e.report(), file=sys.stderr)
        return None
    for note in notes:
        print(f"# note: {note}", file=sys.stderr)
    return config


def cmd_validate(args: argparse.Namespace) -> int:
    config = load_or_report(args.validate_config)
    if config is None:
        return 2
    sys.stdout.write(dump_yaml(config))
    return 0
