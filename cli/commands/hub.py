"""``slot-agent hub``: run the reference central server (docs/protocol.md)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "hub", help="run the reference hub (WebSocket API and dashboard)",
        description="Run the reference hub. The first line printed is the dashboard URL, "
                    "with the bound port when listen.port is 0.",
    )
    parser.add_argument("--config", type=Path, required=True, help="hub.yaml")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hub.config import HubConfigError, load_config
    from hub.server import Hub
    from hub.tokens import TokenFileError

    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config)
    except HubConfigError as exc:
        for problem in exc.problems:
            print(f"hub config: {problem}", file=sys.stderr)
        return 2

    async def main() -> int:
        try:
            hub = Hub(config)
        except TokenFileError as exc:
            for problem in exc.problems:
                print(f"token file: {problem}", file=sys.stderr)
            return 2
        await hub.start()
        print(hub.url, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await hub.stop()
        return 0

    try:
        return asyncio.run(main())
    except OSError as exc:
        print(f"hub: cannot start: {exc}", file=sys.stderr)
        return 1
