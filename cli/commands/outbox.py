"""``slot-agent outbox``: inspect the outbox (status, recent events, export) read-only.

It opens its own read-only connection (WAL lets it read while the daemon writes), so it is
safe to run beside a live daemon. Run it as the service user so any ``-wal``/``-shm`` file
it has to create keeps the daemon's ownership.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from typing import Any

from agent.store.outbox import Outbox, OutboxError, OutboxReader
from api.events import utc_timestamp
from cli.commands.common import EXIT_INVALID_CONFIG, load_config_or_report
from cli.commands.options import add_config_option, command_parser, config_path
from cli.commands.out_file import written_whole

EXIT_UNHEALTHY = 1


class OutFileError(Exception):
    """``export --out FILE`` could not be written (bad usage, exit 2; the outbox is fine)."""


def add_parser(subparsers: Any) -> None:
    codes = {0: "done (status: the outbox is healthy)",
             EXIT_UNHEALTHY: "the outbox is missing, unreadable or damaged",
             EXIT_INVALID_CONFIG: "invalid configuration, or bad usage (also: an export "
                                  "--out that cannot be written)"}
    parser = command_parser(
        subparsers, "outbox",
        help="inspect the event outbox (works while the daemon runs)",
        description="Inspect the durable event outbox through a read-only connection. "
        "--config may stand before or after the action.",
        exit_codes=codes,
    )
    config_help = "the daemon's configuration file (gives outbox.path)"
    add_config_option(parser, optional=True, help=config_help)
    sub = parser.add_subparsers(dest="outbox_command", metavar="ACTION", required=True)
    status = command_parser(sub, "status", help="depth, seqs, oldest unacked age, size, health",
                            description="Depth, seqs, oldest unacked age, size and health.",
                            exit_codes=codes)
    status.add_argument("--json", action="store_true", help="print one JSON object")
    tail = command_parser(sub, "tail", help="the most recent events, as JSON lines",
                          description="The most recent events, as JSON lines.",
                          exit_codes=codes)
    tail.add_argument("-n", type=int, default=20, metavar="N", help="how many (default 20)")
    export = command_parser(sub, "export", help="every stored event as JSON lines (wire form)",
                            description="Every stored event as JSON lines (wire form).",
                            exit_codes=codes)
    export.add_argument("--out", metavar="FILE", help="write to FILE instead of stdout")
    export.add_argument("--after", type=int, default=0, metavar="SEQ",
                        help="only events with seq > SEQ (default 0)")
    for action in (status, tail, export):
        add_config_option(action, optional=True, help=config_help)
    parser.set_defaults(func=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    config = load_config_or_report(config_path(args.parser, args))
    if config is None:
        return EXIT_INVALID_CONFIG
    try:
        reader = Outbox.open_reader(config.outbox.path)
    except OutboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNHEALTHY
    with reader:
        try:
            if args.outbox_command == "status":
                return _status(reader, as_json=args.json)
            if args.outbox_command == "tail":
                for stored in reader.tail(max(0, args.n)):
                    print(json.dumps(stored.to_wire()))
                return 0
            return _export(reader, args.out, args.after)
        except OutFileError as exc:
            print(f"error: cannot write {args.out}: {exc}", file=sys.stderr)
            return EXIT_INVALID_CONFIG
        except OutboxError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_UNHEALTHY
        except sqlite3.DatabaseError as exc:
            print(f"error: outbox {reader.path} is damaged: {exc}", file=sys.stderr)
            return EXIT_UNHEALTHY


def _status(reader: OutboxReader, *, as_json: bool) -> int:
    stats = reader.stats()
    health = reader.quick_check()
    now = time.time()
    age = (None if stats.oldest_unacked_created_at is None
           else max(0.0, now - stats.oldest_unacked_created_at))
    report = {
        "path": str(reader.path),
        "terminalId": stats.terminal_id,
        "depth": stats.depth,
        "lastSeq": stats.last_seq,
        "ackedSeq": stats.acked_seq,
        "storedEvents": stats.rows,
        "oldestUnacked": (None if stats.oldest_unacked_created_at is None
                          else utc_timestamp(stats.oldest_unacked_created_at)),
        "oldestUnackedAgeSeconds": None if age is None else round(age, 3),
        "dbBytes": stats.db_bytes,
        "walBytes": stats.wal_bytes,
        "health": health,
    }
    if as_json:
        print(json.dumps(report))
    else:
        print(f"outbox:           {report['path']}")
        print(f"terminal:         {stats.terminal_id}")
        print(f"depth (unacked):  {stats.depth}")
        print(f"last seq:         {stats.last_seq}")
        print(f"last acked seq:   {stats.acked_seq}")
        print(f"stored events:    {stats.rows}")
        oldest = ("-" if age is None
                  else f"{_duration(age)} ago ({report['oldestUnacked']})")
        print(f"oldest unacked:   {oldest}")
        print(f"size:             {stats.db_bytes} bytes + {stats.wal_bytes} bytes WAL")
        print(f"health:           {health}")
    return 0 if health == "ok" else EXIT_UNHEALTHY


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _export(reader: OutboxReader, out: str | None, after: int) -> int:
    """Every event after ``after`` as JSON lines, to stdout or to ``out`` (written whole or
    not at all: :func:`written_whole`)."""
    if out is None:
        count = reader.export(sys.stdout, after_seq=after)
    else:
        try:
            with written_whole(out) as fileobj:
                count = reader.export(fileobj, after_seq=after)
        except OSError as exc:  # the file's: a missing directory, a full disk
            raise OutFileError(exc.strerror or str(exc)) from exc
    print(f"exported {count} event(s)", file=sys.stderr)
    return 0
