"""``slot-agent check-config PATH``: validate a config file and print every problem at once."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from agent.config import ConfigError, load_config
from cli.commands.common import EXIT_INVALID_CONFIG


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check-config",
        help="validate a configuration file",
        description="Validate a configuration file and list every problem, each with its key "
        "path. Exit 0 when valid (warnings are printed), 2 when not.",
    )
    parser.add_argument("path", metavar="PATH", help="the YAML configuration file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.path)
    except ConfigError as exc:
        errors = [p for p in exc.problems if p.severity == "error"]
        warnings = [p for p in exc.problems if p.severity == "warning"]
        print(f"{args.path}: {len(errors)} error(s)", file=sys.stderr)
        for problem in errors:
            print(f"  error: {problem}", file=sys.stderr)
        for problem in warnings:
            print(f"  warning: {problem}", file=sys.stderr)
        return EXIT_INVALID_CONFIG
    for problem in config.warnings:
        print(f"warning: {problem}", file=sys.stderr)
    print(f"OK: {args.path}")
    return 0
