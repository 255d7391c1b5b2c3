"""The ``slot-agent`` command line.

Each subcommand lives in ``agent/commands/<name>.py`` and exposes ``add_parser(subparsers)``
(which must set ``func`` with ``set_defaults``); the module is imported only when its command
is listed here, so ``slot-agent decode`` does not pay for the hub or the emulator.
This module is the only place that composes emulator, agent and hub (through ``demo``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from agent import __version__

#: subcommand -> module under agent.commands
COMMANDS: dict[str, str] = {
    "run": "run",
    "check-config": "check_config",
    "diag": "diag",
    "outbox": "outbox",
    "decode": "decode",
    "emulate": "emulate",
    "hub": "hub",
    "demo": "demo",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slot-agent",
        description="Poll a slot machine over SAS and stream its events to a central hub.",
    )
    parser.add_argument("--version", action="version", version=f"slot-agent {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMANDS.values():
        try:
            module = importlib.import_module(f"agent.commands.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"agent.commands.{module_name}":
                raise
            continue  # command not built yet
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
