"""``slot-agent demo``: a virtual slot machine, the agent and the hub, on localhost, at once.

No configuration: databases and tokens live in a temporary directory removed at the end;
the emulator plays by itself (seeded autoplay) and listens on a free TCP port of 127.0.0.1
(the same 9-bit encoding over TCP a bench rig uses); the hub serves plain ws:// and its
dashboard on 127.0.0.1 (``--port``, default 8765; 0 picks a free port); the agent polls the
emulator and streams to the hub (``uplink.allow_insecure``: localhost only).

It prints the dashboard URL and the operator token to log in with, then a running summary
(link, games and their rate, coin in, events, outbox, uplink). Ctrl-C (SIGINT) or SIGTERM
stops it cleanly; ``--duration S`` stops it after S seconds. This module is the only place
that composes emulator, agent and hub (docs/architecture.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.commands.options import EXIT_INTERRUPTED, command_parser

if TYPE_CHECKING:
    from emulator.tcp_serving import TcpServing

DEFAULT_PORT = 8765
TERMINAL_ID = "DEMO-0001"


def add_parser(subparsers: Any) -> None:
    parser = command_parser(
        subparsers, "demo",
        help="emulator + agent + hub with its dashboard, on localhost, no configuration",
        description="Run a virtual slot machine, the agent and the reference hub in one "
        "process on 127.0.0.1. Prints the dashboard URL and the token to log in with. "
        "Stop with Ctrl-C.",
        exit_codes={0: "stopped (Ctrl-C or --duration elapsed)",
                    1: "a part did not start (the reason is printed)", 2: "bad usage",
                    EXIT_INTERRUPTED: "interrupted (Ctrl-C) while starting, before it prints "
                                      "'Running'; after, Ctrl-C stops it cleanly (0)"},
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"the hub's port on 127.0.0.1 (default {DEFAULT_PORT}; 0: any "
                             "free port)")
    parser.add_argument("--seed", type=int, default=0,
                        help="the emulator's random seed (default 0)")
    parser.add_argument("--games-per-minute", type=float, default=60.0, metavar="N",
                        help="pace of play (default 60)")
    parser.add_argument("--rte", action="store_true",
                        help="real-time event reporting (SAS RTE mode) on both sides")
    parser.add_argument("--duration", type=float, metavar="S",
                        help="stop after S seconds (default: run until Ctrl-C)")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="log the agent and the hub at info level on stderr")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        print(f"slot-agent demo: --port must be 0..65535, got {args.port}", file=sys.stderr)
        return 2
    if not 0 < args.games_per_minute <= 60_000:
        print("slot-agent demo: --games-per-minute must be in (0, 60000]", file=sys.stderr)
        return 2
    if args.duration is not None and not (args.duration > 0 and math.isfinite(args.duration)):
        print(f"slot-agent demo: --duration must be a number of seconds above 0, got "
              f"{args.duration:g}", file=sys.stderr)
        return 2
    from agent.ops.logs import setup_logging

    setup_logging("info" if args.verbose else "warning", "human", stream=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="slot-agent-demo-") as tmp:
        try:
            return asyncio.run(_demo(args, Path(tmp)))
        except BrokenPipeError:
            # stdout was closed (``| head``): nobody is reading; stop without a traceback.
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the interpreter closes it
            return 1


def _emulated_machine(args: argparse.Namespace) -> TcpServing:
    """The emulator playing autoplay, served on a free TCP port of 127.0.0.1 (not started)."""
    from emulator.autoplay import AutoplaySettings
    from emulator.model import Machine
    from emulator.scenario import ScenarioRunner, load_scenario
    from emulator.server import Emulator, LinkOptions
    from emulator.tcp_serving import TcpServing

    now = time.monotonic()
    machine = Machine(now=now, wall_clock=datetime.now(UTC), seed=args.seed)
    emulator = Emulator(machine, None, address=1,
                        options=LinkOptions(rte=args.rte, seed=args.seed), now=now)
    emulator.runner = ScenarioRunner(
        load_scenario("autoplay"), machine, start=now, seed=args.seed, link=emulator,
        autoplay=AutoplaySettings(games_per_minute=args.games_per_minute))
    return TcpServing(emulator, "127.0.0.1", 0)


def _write_secret(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


async def _demo(args: argparse.Namespace, tmp: Path) -> int:
    from agent.config import parse_config
    from agent.daemon import Daemon
    from agent.ops.logs import register_secret, under_systemd
    from agent.ops.progress import Progress, format_line
    from hub.config import HubConfig
    from hub.server import Hub
    from servicekit.sdnotify import Notifier

    terminal_token = secrets.token_urlsafe(24)
    operator_token = secrets.token_urlsafe(18)
    viewer_token = secrets.token_urlsafe(18)
    register_secret(terminal_token)
    tokens = _write_secret(tmp / "hub-tokens", f"{terminal_token} terminal {TERMINAL_ID}\n"
                                                f"{operator_token} operator demo-operator\n"
                                                f"{viewer_token} viewer demo-viewer\n")
    hub = Hub(HubConfig(tokens=tokens, database=tmp / "hub.db", host="127.0.0.1",
                        port=args.port, plain=True, synchronous="NORMAL"))
    try:
        await hub.start()
    except OSError as exc:
        hub.store.close()
        print(f"slot-agent demo: the hub cannot listen on 127.0.0.1:{args.port}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        if args.port != 0:
            print(f"  (is port {args.port} in use? try --port 0 for any free port)",
                  file=sys.stderr)
        return 1
    machine = _emulated_machine(args)
    machine.start()
    run_task: asyncio.Task[int] | None = None
    daemon: Daemon | None = None

    def say(text: str) -> None:
        """Print for the person; when nobody reads any more (``| head``), stop the demo."""
        try:
            print(text, flush=True)
        except BrokenPipeError:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives until exit
            if daemon is not None:
                daemon.request_stop()

    try:
        config = parse_config({
            "terminal_id": TERMINAL_ID,
            "serial": {"port": machine.url},
            "machines": [{"address": 1, "rte": bool(args.rte)}],
            "outbox": {"path": str(tmp / "outbox.db")},
            "uplink": {"url": f"{hub.ws_url}/ws/terminal", "allow_insecure": True,
                       "token_file": str(_write_secret(tmp / "terminal-token",
                                                       terminal_token + "\n")),
                       "reconnect_max_delay_s": 5},
            "metrics": {"enabled": True, "port": 0},
            "logging": {"level": "info" if args.verbose else "warning"},
            "control_socket": None,
        }, base_dir=tmp, source="")
        # Enabled once the header below is out, so the summary lines follow it.
        progress = Progress(sys.stdout, enabled=False)
        # The demo is not a systemd service: never talk to a NOTIFY_SOCKET it may inherit.
        daemon = Daemon(config, progress=progress, notifier=Notifier(None))
        say(f"slot-agent demo: a virtual slot machine at {machine.url}, the agent, and the hub")
        say(f"Dashboard: {hub.url}")
        say(f"  log in with the operator token: {operator_token}")
        say(f"  (viewer token: {viewer_token})")
        run_task = asyncio.create_task(daemon.run())
        while not daemon.ready.is_set() and not run_task.done():
            await asyncio.sleep(0.05)
        if daemon.metrics_port is not None:
            say(f"Metrics: http://127.0.0.1:{daemon.metrics_port}/metrics")
        stop_note = (f"stops after {args.duration:g} s" if args.duration is not None
                     else "press Ctrl-C to stop")
        say(f"Running ({stop_note}).")
        progress.enabled = not under_systemd()
        if args.duration is not None:
            asyncio.get_running_loop().call_later(args.duration, daemon.request_stop)
        code = await run_task
        snap = daemon.final_snapshot or daemon.snapshot()
        stored = len(hub.store.events(TERMINAL_ID))
        say(f"slot-agent demo stopped: {format_line(snap)}; the hub stored {stored} events "
            "from the terminal")
        return code
    finally:
        if run_task is not None and not run_task.done() and daemon is not None:
            daemon.request_stop()  # the agent stops first, so agentStopping reaches the hub
            with contextlib.suppress(Exception):
                await asyncio.wait_for(run_task, 30)
        logging.getLogger("agent.demo").debug("stopping the hub and the emulator")
        await hub.stop()
        machine.stop()
