"""``slot-agent capture --config PATH --seconds N --out FILE``: record the live line.

The running daemon owns the serial line; capture asks it over its control socket (command
``capture``) to keep every frame it writes and reads for N seconds, then writes them to FILE
in the capture format (api/capture.py, docs/operations.md). The port is never opened a second
time, so a capture is safe on a terminal in service. ``slot-agent decode --file FILE`` prints
the conversation; ``slot-agent replay --file FILE`` the events it produces.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from cli.commands.common import EXIT_INVALID_CONFIG, load_config_or_report
from cli.commands.options import add_config_option, command_parser
from cli.commands.out_file import written_whole

EXIT_WRITTEN = 0
EXIT_NO_DAEMON = 1
#: The daemon may take this long beyond the capture to send the frames.
ANSWER_MARGIN_S = 15.0


def add_parser(subparsers: Any) -> None:
    parser = command_parser(
        subparsers, "capture",
        help="record the live SAS line from the running daemon to a file",
        description="Record every frame the running daemon writes to and reads from the SAS "
        "line, with times, directions and wakeup bits, for N seconds, into a capture file "
        "(JSON lines) to decode, replay or mail. Uses the daemon's control socket: the "
        "serial port is never opened twice.",
        exit_codes={EXIT_WRITTEN: "the capture was written",
                    EXIT_NO_DAEMON: "the daemon did not run, refused or did not answer (the "
                                    "reason is printed); nothing written",
                    EXIT_INVALID_CONFIG: "invalid configuration, no control_socket, or bad "
                                         "usage (also: an --out that cannot be written)"},
    )
    add_config_option(parser)
    parser.add_argument("--seconds", type=float, required=True, metavar="N",
                        help="how long to record (at most 600)")
    parser.add_argument("--out", required=True, metavar="FILE",
                        help="the capture file to write ('-' for standard output)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from agent.ops.control import ControlError, control_request
    from api.capture import Capture, capture_lines, frames_from_line

    config = load_config_or_report(args.config)
    if config is None:
        return EXIT_INVALID_CONFIG
    if not config.control_socket:
        print(f"{args.config}: control_socket is not set: capture asks the running daemon "
              "through it", file=sys.stderr)
        return EXIT_INVALID_CONFIG
    if not 0 < args.seconds <= 600:
        print("slot-agent capture: --seconds must be above 0 and at most 600", file=sys.stderr)
        return EXIT_INVALID_CONFIG
    if args.out != "-" and (problem := _unwritable(args.out)) is not None:
        # before the capture, not after N seconds of it
        print(f"slot-agent capture: cannot write {args.out}: {problem}", file=sys.stderr)
        return EXIT_INVALID_CONFIG
    try:
        answer = control_request(config.control_socket, "capture", {"seconds": args.seconds},
                                 timeout=args.seconds + ANSWER_MARGIN_S)
    except ControlError as exc:
        print(f"slot-agent capture: {exc}", file=sys.stderr)
        return EXIT_NO_DAEMON
    except TimeoutError:
        print(f"slot-agent capture: the daemon did not answer on {config.control_socket} "
              f"within {args.seconds + ANSWER_MARGIN_S:g} s", file=sys.stderr)
        return EXIT_NO_DAEMON
    header = answer["header"]
    started = Capture(header, ()).started_at
    frames = frames_from_line(answer.get("frames", []), started)
    lines = capture_lines(header, frames)
    if args.out == "-":
        sys.stdout.writelines(lines)
    else:
        try:
            with written_whole(args.out) as f:
                f.writelines(lines)
        except OSError as exc:  # the disk filled up meanwhile...
            print(f"slot-agent capture: cannot write {args.out}: {exc.strerror or exc}",
                  file=sys.stderr)
            return EXIT_INVALID_CONFIG
    tx = sum(1 for f in frames if f.direction == "tx")
    print(f"captured {len(frames)} frames ({tx} written, {len(frames) - tx} read) in "
          f"{args.seconds:g} s from {header.get('port')}"
          + (f"; {header['dropped']} frames over the limit were dropped"
             if header.get("dropped") else "")
          + (f"; the line said: {header['error']}" if header.get("error") else "")
          + ("" if args.out == "-" else f" -> {args.out}"), file=sys.stderr)
    return EXIT_WRITTEN


def _unwritable(out: str) -> str | None:
    """Why ``out`` cannot be written (a missing or read-only directory, a directory in its
    place), or None."""
    directory = os.path.dirname(out) or "."
    if os.path.isdir(out):
        return "it is a directory"
    if not os.path.isdir(directory):
        return f"no directory {directory}"
    if not os.access(directory, os.W_OK):
        return f"directory {directory} is not writable by this user"
    return None
