"""``slot-agent hub``: run the reference central server (docs/protocol.md)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from cli.commands.checks import EXIT_INVALID_CONFIG, report_check
from cli.commands.options import (
    EXIT_INTERRUPTED,
    add_config_option,
    command_parser,
    log_level,
)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = command_parser(
        subparsers, "hub", help="run the reference hub (WebSocket API and dashboard)",
        description="Run the reference hub. The first line printed is the dashboard URL, "
                    "with the bound port when listen.port is 0.",
        exit_codes={0: "stopped cleanly (SIGTERM or SIGINT); with --check-config: valid "
                       "(warnings, if any, are printed)",
                    1: "cannot start (the address is in use, a TLS file does not load, "
                       "the store cannot be opened)",
                    EXIT_INVALID_CONFIG: "invalid hub.yaml or token file (with "
                                         "--check-config also: a file it names), or bad usage",
                    EXIT_INTERRUPTED: "interrupted (Ctrl-C, SIGINT) while starting, before "
                                      "it prints its URL (opening the store, loading); "
                                      "after, SIGINT stops it cleanly (0)"},
    )
    add_config_option(parser, help="the hub's config (hub.yaml)")
    parser.add_argument("--log-level", type=log_level, default="info", metavar="LEVEL",
                        help="debug, info, warning or error, any case (default info)")
    parser.add_argument("--check-config", action="store_true",
                        help="check hub.yaml and the files it names (token file, TLS files, "
                             "action key, the store's directory or URL), print every problem "
                             "with its key, and exit without starting")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.check_config:
        from hub.config_check import check_config

        return report_check(args.config, check_config(Path(args.config)))
    from configkit import ConfigError
    from hub.config import load_config
    from hub.gc_tuning import tune_gc
    from hub.server import Hub
    from hub.store_api import StoreError
    from hub.switch_interval import tune_switch_interval
    from hub.tokens import token_file_problems
    from servicekit.sdnotify import Notifier

    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(Path(args.config))
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"hub config: {problem.severity}: {problem}", file=sys.stderr)
        return EXIT_INVALID_CONFIG

    async def main() -> int:
        try:
            hub = Hub(config)
        except ConfigError as exc:
            for problem in token_file_problems(config.tokens, exc.problems):
                print(f"hub config: {problem.severity}: {problem}", file=sys.stderr)
            return EXIT_INVALID_CONFIG
        except StoreError as exc:
            print(f"hub: cannot start: {exc}", file=sys.stderr)
            return 1
        await hub.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal(_signum: int, _frame: object) -> None:
            # A plain handler, not loop.add_signal_handler: it runs at once, also in the
            # middle of a long event-loop turn of an overloaded hub (whose turn can take
            # seconds), and only sets flags (Hub.request_stop) and wakes the loop.
            hub.request_stop()
            loop.call_soon_threadsafe(stop.set)

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, on_signal)
        # Both after the handlers: whoever reads the URL or the readiness may stop it at once.
        print(hub.url, flush=True)
        # Under systemd (Type=notify, systemd/slot-hub.service): ready once it listens, so
        # `systemctl start` returns then, and fails when the store or the address does not
        # open. Outside systemd (no $NOTIFY_SOCKET) the notifier does nothing.
        notifier.ready(f"listening on {hub.url} (instance {hub.instance_id})")
        await stop.wait()
        notifier.stopping("stopping: closing connections")
        await hub.stop()
        return 0

    notifier = Notifier.from_env()
    tune_gc()  # this process is the hub's (hub/gc_tuning.py)
    tune_switch_interval()  # and its writer thread's (hub/switch_interval.py)
    try:
        return asyncio.run(main())
    except OSError as exc:
        print(f"hub: cannot start: {exc}", file=sys.stderr)
        return 1
    finally:
        notifier.close()
