"""``slot-agent replay --file CAPTURE``: the events a captured conversation produces.

Feeds a capture file (``slot-agent capture``) through the SAS host role and the agent's
interpreter (agent/ops/replay.py) and prints each event as one JSON line, as the daemon would
have stored it, then a summary on standard error. Nothing is sent anywhere.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from cli.commands.options import command_parser

EXIT_REPLAYED = 0
EXIT_BAD_FILE = 2


def add_parser(subparsers: Any) -> None:
    parser = command_parser(
        subparsers, "replay",
        help="print the events a capture file would produce (JSON lines)",
        description="Replay a capture file (slot-agent capture) through the SAS host role "
        "and the agent's interpreter; print every event it produces as a JSON line.",
        exit_codes={EXIT_REPLAYED: "replayed (the events are printed)",
                    EXIT_BAD_FILE: "bad usage, or the file is not a readable capture"},
    )
    parser.add_argument("--file", required=True, metavar="CAPTURE",
                        help="the capture file to replay")
    parser.add_argument("--terminal-id", metavar="ID",
                        help="the terminal id to stamp events with (default: the capture's)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from agent.ops.replay import Replay
    from api.capture import CaptureFileError, parse_capture

    try:
        with open(args.file, encoding="utf-8") as f:
            capture = parse_capture(f, args.file)
    except OSError as exc:
        print(f"slot-agent replay: {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_FILE
    except CaptureFileError as exc:
        print(f"slot-agent replay: {exc}", file=sys.stderr)
        return EXIT_BAD_FILE
    runner = Replay(capture, terminal_id=args.terminal_id)
    count = 0
    for event in runner.run():
        print(json.dumps({"name": event.name, "timestamp": event.timestamp,
                          "data": dict(event.data)}))
        count += 1
    counters = ", ".join(f"{k} {v}" for k, v in sorted(runner.result.counters.items()))
    print(f"{count} events from {len(capture.frames)} frames"
          + (f" ({counters})" if counters else ""), file=sys.stderr)
    return EXIT_REPLAYED
