"""The ``slot-agent`` command line.

Each subcommand lives in ``cli/commands/<name>.py`` and exposes ``add_parser(subparsers)``
(which must set ``func`` with ``set_defaults``). Only the module of the command being run is
imported: ``slot-agent run`` never loads the emulator or the hub, and ``slot-agent decode``
not even the agent (tests/test_layering.py). The other commands appear in ``--help`` from the
one-line summaries below, which must match each module's own ``help=``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from agent import __version__
from cli.commands.options import EXIT_INTERRUPTED

#: subcommand -> (module under cli.commands, one-line summary for ``slot-agent --help``)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "run the agent daemon"),
    "check-config": ("check_config", "validate a configuration file"),
    "diag": ("diag", "check the serial line, the machine, the outbox and the uplink"),
    "outbox": ("outbox", "inspect the event outbox (works while the daemon runs)"),
    "capture": ("capture", "record the live SAS line from the running daemon to a file"),
    "decode": ("decode", "decode one captured SAS frame, or a capture file frame by frame"),
    "replay": ("replay", "print the events a capture file would produce (JSON lines)"),
    "emulate": ("emulate", "run a virtual slot machine (SAS over TCP or a pty)"),
    "hub": ("hub", "run the reference hub (WebSocket API and dashboard)"),
    "demo": ("demo", "emulator + agent + hub with its dashboard, on localhost, no configuration"),
}


def _chosen(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line: its first word that is not an option."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for ``argv``: the chosen command's module is imported, no other.

    With ``argv`` None every command's module is imported (for tools that list all options).
    """
    parser = argparse.ArgumentParser(
        prog="slot-agent",
        description="Poll a slot machine over SAS and stream its events to a central hub.",
    )
    parser.add_argument("--version", action="version", version=f"slot-agent {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = _chosen(argv) if argv is not None else None
    for name, (module_name, summary) in COMMANDS.items():
        if argv is None or name == chosen:
            importlib.import_module(f"cli.commands.{module_name}").add_parser(sub)
        else:
            sub.add_parser(name, help=summary, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        # The command's module is imported here, inside the try: Ctrl-C while a slow machine
        # loads it is an interruption like any other, not a KeyboardInterrupt traceback.
        parser = build_parser(words)
        args = parser.parse_args(words)
        func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
        if func is None:
            parser.print_help()
            return 2
        return func(args)
    except KeyboardInterrupt:
        # Ctrl-C (SIGINT) in a one-shot command, or in a service before it handles signals
        # itself (run, hub, emulate and demo stop cleanly with 0 once running): 130, the
        # shell's 128 + SIGINT, one line instead of a traceback (docs/operations.md).
        with contextlib.suppress(OSError):
            print(f"slot-agent{' ' + c if (c := _chosen(words)) else ''}: interrupted",
                  file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader went away (``slot-agent decode --file x | head``): stop quietly, and keep
        # Python's exit-time flush from raising again on the closed pipe
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
