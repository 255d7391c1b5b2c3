"""``slot-agent run --config PATH``: the daemon (systemd runs this; see docs/operations.md).

Exit codes: 0 after a clean stop (SIGTERM, SIGINT), 1 when it cannot start (serial port,
outbox, token, action key, TLS files), 2 when the configuration is invalid, 3 when the line
process died (the daemon stopped in order so that systemd restarts the service), 130 when
Ctrl-C (SIGINT) comes while it still loads, before the daemon handles signals (cli/main.py).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any, cast

from cli.commands.common import EXIT_INVALID_CONFIG, load_config_or_report
from cli.commands.options import EXIT_INTERRUPTED, add_config_option, command_parser, log_level

EXIT_CANNOT_START = 1


def add_parser(subparsers: Any) -> None:
    parser = command_parser(
        subparsers, "run",
        help="run the agent daemon",
        description="Poll the machines, store their events and stream them to the hub until "
        "SIGTERM. SIGHUP reloads the configuration (log level, poll cadence, uplink).",
        exit_codes={0: "stopped cleanly (SIGTERM or SIGINT)",
                    EXIT_CANNOT_START: "cannot start (the serial line does not open, the "
                                       "outbox is not usable or belongs to another terminal, "
                                       "the hub token, the action key or the TLS files "
                                       "cannot be read)",
                    EXIT_INVALID_CONFIG: "invalid configuration, or bad usage",
                    3: "the line process died (systemd restarts the service)",
                    EXIT_INTERRUPTED: "interrupted (Ctrl-C, SIGINT) while loading, before it "
                                      "handles signals; once it logs 'slot-agent running', "
                                      "SIGINT stops it cleanly (0)"},
    )
    add_config_option(parser)
    parser.add_argument("--log-level", type=log_level, metavar="LEVEL",
                        help="override logging.level for this run: debug, info, warning or "
                             "error, any case (a reload re-reads the file)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from agent.config import ConfigError
    from agent.ops.logs import LogFormat, setup_logging, under_systemd

    config = load_config_or_report(args.config)
    if config is None:
        return EXIT_INVALID_CONFIG
    # "auto": human on a terminal, JSON otherwise (the journal, a pipe).
    setup_logging(args.log_level or config.logging.level,
                  cast(LogFormat, config.logging.format))
    log = logging.getLogger("agent.run")
    for problem in config.warnings:
        log.warning("configuration: %s", problem, extra={"key": problem.path})

    from agent.daemon import Daemon, DaemonError
    from agent.ops.heap import HeapSweeper
    from agent.ops.progress import Progress
    from agent.store.outbox import OutboxError

    progress = None
    if not under_systemd() and sys.stderr.isatty():
        # Logs go to stdout: when both share the terminal, plain summary lines instead of
        # a line rewritten in place.
        progress = Progress(sys.stderr, in_place=not sys.stdout.isatty())
    # The heap sweeper (agent/ops/heap.py) freezes this interpreter's start-up objects: here,
    # in the agent's own process, and not in Daemon's default (tests run daemons in-process).
    daemon = Daemon(config, config_path=args.config, progress=progress, heap=HeapSweeper())
    try:
        return asyncio.run(daemon.run())
    except (DaemonError, OutboxError, ConfigError) as exc:
        log.error("cannot start: %s", exc)
        return EXIT_CANNOT_START
