"""The parser helpers every command uses: the exit codes each ``--help`` lists, the
``--config`` option (before or after a subcommand), ``--log-level`` in any case. Imports
nothing beyond argparse, so ``slot-agent decode`` stays light."""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from typing import Any

#: Log levels, in the case the logs print them; the options take any case.
LOG_LEVELS = ("debug", "info", "warning", "error")

#: Exit code of a command stopped by Ctrl-C (SIGINT) before it finished, or a service before
#: it handles signals: 128 + SIGINT, what a shell reports for a program that signal ended
#: (cli/main.py). Every ``--help`` lists it; a service says what SIGINT does once it runs.
EXIT_INTERRUPTED = 130
INTERRUPTED = "interrupted (Ctrl-C, SIGINT): stopped at once, no traceback"


def command_parser(subparsers: Any, name: str, *, help: str, description: str,
                   exit_codes: Mapping[int, str]) -> argparse.ArgumentParser:
    """A subcommand's parser whose ``--help`` ends with its exit codes
    (:data:`EXIT_INTERRUPTED` among them, unless ``exit_codes`` gives its own meaning)."""
    codes = {EXIT_INTERRUPTED: INTERRUPTED, **exit_codes}
    epilog = "exit codes:\n" + "\n".join(f"  {code}  {meaning}"
                                         for code, meaning in sorted(codes.items()))
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help, description=description, epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    return parser


def add_config_option(parser: argparse.ArgumentParser, *, optional: bool = False,
                      help: str = "the agent's config (YAML)") -> None:
    """``--config PATH``. ``optional``: absent from the namespace unless given, for a parser
    whose subcommands repeat it, so it may stand before or after the subcommand (``outbox
    --config x status`` and ``outbox status --config x``); :func:`config_path` then checks
    that it was given somewhere."""
    if optional:
        parser.add_argument("--config", metavar="PATH", help=help, default=argparse.SUPPRESS)
    else:
        parser.add_argument("--config", required=True, metavar="PATH", help=help)


def config_path(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """The ``--config`` given before or after a subcommand (a usage error, exit 2, if none)."""
    path: str | None = getattr(args, "config", None)
    if path is None:
        parser.error("the following arguments are required: --config")
    return path


def positive_seconds(text: str) -> float:
    """A duration option (``--timeout S``): a finite number of seconds above 0, else a usage
    error (exit 2) rather than a traceback where it is used."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {text!r}")
    return value


def log_level(text: str) -> str:
    """``--log-level`` in any case: ``INFO`` and ``info`` are the same level."""
    level = text.lower()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(
            f"invalid level {text!r} (choose from {', '.join(LOG_LEVELS)}, any case)")
    return level
