"""``slot-agent emulate``: serve a virtual slot machine over TCP or a pseudo-terminal.

The first line printed (flushed at once) is where to connect: ``HOST:PORT`` or the pty
slave path. It stops on SIGTERM / SIGINT, or when a scenario with ``end: stop`` finishes,
and then writes ``--report`` (see docs/emulator.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cli.commands.options import EXIT_INTERRUPTED, command_parser
from cli.stop_signals import StopSignals
from drivers.base import Transport, TransportError
from emulator.autoplay import AutoplaySettings
from emulator.model import Machine, MachineConfig
from emulator.profiles import (
    DEFAULT_BUSY_SECONDS,
    DEFAULT_BUSY_SHARE,
    DEFAULT_NOISE,
    PROFILES,
    ProfileError,
    link_options,
)
from emulator.report import build_report, write_report
from emulator.scenario import ScenarioError, ScenarioRunner, bundled_names, load_scenario
from emulator.server import Emulator, LinkOptions
from emulator.tcp_serving import TcpServing


def add_parser(subparsers: Any) -> None:
    parser = command_parser(
        subparsers, "emulate",
        help="run a virtual slot machine (SAS over TCP or a pty)",
        description="Run a virtual slot machine that speaks SAS over TCP or a pseudo-terminal. "
        "The first line printed is the address to connect to. See docs/emulator.md.",
        exit_codes={0: "stopped (SIGTERM, SIGINT or the scenario ended)",
                    1: "the report could not be written",
                    2: "bad usage, scenario or link (the reason is printed)",
                    EXIT_INTERRUPTED: "interrupted (Ctrl-C, SIGINT) while loading, before it "
                                      "prints its address or pty; after, SIGINT stops it (0)"},
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--tcp", metavar="HOST:PORT",
                       help="listen on TCP (port 0: any free port); prints HOST:PORT")
    where.add_argument("--pty", action="store_true",
                       help="create a pseudo-terminal; prints the slave device path")
    parser.add_argument("--scenario", default="autoplay", metavar="NAME|FILE",
                        help=f"scenario: {', '.join(bundled_names())}, or a YAML file "
                        "(default: autoplay)")
    parser.add_argument("--seed", type=int, help="random seed (default: scenario's, else 0)")
    parser.add_argument("--address", type=int, help="SAS address 1..127 (default 1)")
    parser.add_argument("--rte", action="store_true", default=None,
                        help="start with real-time event reporting on")
    parser.add_argument("--denomination", type=int, metavar="CENTS",
                        help="accounting denomination in cents per credit (default 1)")
    parser.add_argument("--games-per-minute", type=float, metavar="N",
                        help="pace of play (default 30)")
    parser.add_argument("--game-seconds", type=float, default=2.0, metavar="S",
                        help="how long autoplay's reels spin, 7E to 7F (default 2; at most "
                        "half the pace's interval; 0: a game ends as it starts)")
    parser.add_argument("--unsupported-polls", metavar="HEX,HEX",
                        help="long polls to ignore, e.g. 6F,AF")
    parser.add_argument("--profile", metavar="NAME[,NAME]",
                        help=f"machine profile(s): {', '.join(PROFILES)} (default: modern)")
    parser.add_argument("--busy-share", type=float, metavar="FRACTION",
                        help=f"share of long polls that start a busy period "
                        f"(busy profile: {DEFAULT_BUSY_SHARE})")
    parser.add_argument("--busy-seconds", type=float, metavar="S",
                        help=f"how long a busy period lasts (busy profile: "
                        f"{DEFAULT_BUSY_SECONDS})")
    parser.add_argument("--noise", type=float, metavar="FRACTION",
                        help=f"share of bytes corrupted each way (noisy profile: {DEFAULT_NOISE})")
    parser.add_argument("--pty-mode", choices=("ninebit", "parity"), default="ninebit",
                        help="with --pty: ninebit (the 9-bit encoding, default) or parity "
                        "(wakeup bit from the parity the host sets; replies unescaped)")
    parser.add_argument("--report", metavar="FILE", help="write the final meters as JSON")
    parser.add_argument("--verbose", "-v", action="store_true", help="log to stderr")
    parser.set_defaults(func=run)


def _fail(message: str) -> int:
    print(f"slot-agent emulate: {message}", file=sys.stderr)
    return 2


def _parse_polls(text: str) -> frozenset[int]:
    polls = set()
    for part in text.split(","):
        part = part.strip().lower().removeprefix("0x")
        if not part:
            continue
        value = int(part, 16)
        if not 0 <= value <= 0xFF:
            raise ValueError(part)
        polls.add(value)
    return frozenset(polls)


def run(args: argparse.Namespace) -> int:
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        return _fail(str(exc))
    except UnicodeDecodeError:  # exit 2 "bad usage, scenario or link", not a traceback
        return _fail(f"{args.scenario}: cannot read scenario: not UTF-8 text")
    opts = scenario.options
    seed = args.seed if args.seed is not None else (opts.seed or 0)
    address = args.address if args.address is not None else (opts.address or 1)
    if not 1 <= address <= 127:
        return _fail(f"--address must be 1..127, got {address}")
    denomination = (args.denomination if args.denomination is not None
                    else opts.denomination or 1)
    if denomination <= 0:
        return _fail(f"--denomination must be positive, got {denomination}")
    gpm = (args.games_per_minute if args.games_per_minute is not None
           else opts.games_per_minute or 30.0)
    if not 0 < gpm <= 60_000:
        return _fail(f"--games-per-minute must be in (0, 60000], got {gpm}")
    if not 0 <= args.game_seconds <= 3600:
        return _fail(f"--game-seconds must be in [0, 3600], got {args.game_seconds}")
    unsupported = frozenset(opts.unsupported_polls)
    if args.unsupported_polls:
        try:
            unsupported = _parse_polls(args.unsupported_polls)
        except ValueError:
            return _fail(f"--unsupported-polls: expected hex codes like 6F,AF, "
                         f"got {args.unsupported_polls!r}")
    rte = bool(args.rte) if args.rte is not None else bool(opts.rte)
    try:
        options = link_options(
            args.profile or opts.profile or "modern",
            LinkOptions(unsupported_polls=unsupported, rte=rte, seed=seed),
            busy_share=args.busy_share if args.busy_share is not None else opts.busy_share,
            busy_seconds=(args.busy_seconds if args.busy_seconds is not None
                          else opts.busy_seconds),
            noise=args.noise if args.noise is not None else opts.noise)
    except ProfileError as exc:
        return _fail(str(exc))

    def log(message: str) -> None:
        if args.verbose:
            print(f"emulator: {message}", file=sys.stderr, flush=True)

    now = time.monotonic()
    config = MachineConfig(denomination_cents=denomination)
    if opts.handpay_limit_cents:
        config = dataclasses.replace(config, handpay_limit_cents=opts.handpay_limit_cents)
    machine = Machine(config, now=now, wall_clock=datetime.now(UTC), seed=seed)
    emu = Emulator(machine, None, address=address, options=options, now=now, log=log)
    emu.runner = ScenarioRunner(scenario, machine, start=now, seed=seed, link=emu,
                                autoplay=AutoplaySettings(games_per_minute=gpm,
                                                          game_seconds=args.game_seconds),
                                log=log)
    # Handlers first: whoever reads the address may signal at once. They stay installed
    # until the report is written, so a second Ctrl-C cannot cut the shutdown in half.
    with StopSignals() as stops:
        return _serve(args, emu, stops, log)


def _serve(args: argparse.Namespace, emu: Emulator, stops: StopSignals,
           log: Callable[[str], None]) -> int:
    """Open the link, print where it is, serve until a stop signal (or the scenario's end),
    then stop the machine's thread, close the link and write the report."""
    runner = emu.runner
    assert runner is not None
    scenario = runner.scenario
    from drivers.pseudo_tty import open_pty

    served: TcpServing | None = None
    try:
        if args.tcp:
            host, sep, port_text = args.tcp.rpartition(":")
            if not sep or not port_text.isdigit() or int(port_text) > 65535:
                return _fail(f"--tcp: expected HOST:PORT with a port from 0 to 65535, got "
                             f"{args.tcp!r}")
            served = TcpServing(emu, host.strip("[]") or "127.0.0.1", int(port_text), log=log)
            bound_host, bound_port = served.address
            print(f"{bound_host}:{bound_port}", flush=True)
        else:
            if args.pty_mode == "parity":
                from emulator.parity_pty import open_parity_pty

                master_end: Transport
                master_end, path = open_parity_pty()
            else:
                master_end, path = open_pty()

            def disconnected(transport: Transport, exc: Exception) -> None:
                log(f"{transport.name}: disconnected ({exc})")
                transport.close()

            emu.on_disconnect = disconnected
            emu.attach(master_end)
            print(path, flush=True)
    except TransportError as exc:
        return _fail(str(exc))

    log(f"serving scenario {scenario.name!r} at address {emu.address}, "
        f"profile {emu.options.profile}")  # before any "connected" line
    if served is not None:
        served.start()
    else:
        emu.start()
    try:
        while not stops.wait(0.2):
            if scenario.end == "stop" and runner.finished:
                log("scenario finished")
                break
            if served is not None and not served.accepting:
                break  # the listener failed ("accept failed" is logged)
    finally:
        if served is not None:
            served.stop()
        else:
            emu.close()
        if args.report:
            with emu.lock:
                report = build_report(emu.machine, scenario=scenario.name,
                                      finished=runner.finished)
            try:
                write_report(args.report, report)
            except OSError as exc:
                print(f"slot-agent emulate: cannot write report {args.report}: {exc}",
                      file=sys.stderr)
                return 1
    return 0
