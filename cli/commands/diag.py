"""``slot-agent diag --config PATH [--json]``: checks for technicians at the machine.

One process owns the serial line. When the daemon runs, diag asks it over the control socket
(``control_socket`` in the config) for what it knows of the line and the outbox; when nothing
answers there, diag opens the port itself and polls the machine directly. The uplink steps
(DNS, TCP, TLS, token) and the clock are always checked from this process. Exit 0 when no
check failed, 1 otherwise, 2 when the configuration itself is invalid.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from cli.commands.common import EXIT_INVALID_CONFIG, load_config_or_report
from cli.commands.options import add_config_option, command_parser, positive_seconds

if TYPE_CHECKING:
    from agent.config import Config
    from agent.ops.diagnostics import LineFacts, Report

#: How long the daemon may take to answer (it polls the machine for identity and meters).
CONTROL_TIMEOUT_S = 15.0


def add_parser(subparsers: Any) -> None:
    parser = command_parser(
        subparsers, "diag",
        help="check the serial line, the machine, the outbox and the uplink",
        description="Run the diagnostics checks and print each with ok/warn/fail and a hint. "
        "Asks the running daemon over its control socket; polls the machine directly when "
        "the daemon is not running.",
        exit_codes={0: "no check failed (warnings allowed)", 1: "at least one check failed",
                    EXIT_INVALID_CONFIG: "invalid configuration, or bad usage"},
    )
    add_config_option(parser)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--timeout", type=positive_seconds, default=CONTROL_TIMEOUT_S,
                        metavar="S",
                        help=f"how long the daemon may take to answer (default "
                             f"{CONTROL_TIMEOUT_S:g} s)")
    parser.add_argument("--direct", action="store_true",
                        help="never ask the daemon; open the serial port here (only when the "
                             "daemon is stopped: one owner per serial line)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_config_or_report(args.config)
    if config is None:
        return EXIT_INVALID_CONFIG
    report = diagnose(config, allow_daemon=not args.direct, timeout=args.timeout)
    if args.json:
        json.dump(report.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        from agent.ops.diagnostics import render_table

        print(render_table(report))
    return report.exit_code


def diagnose(config: Config, *, allow_daemon: bool = True,
             timeout: float = CONTROL_TIMEOUT_S) -> Report:
    """Build the :class:`agent.ops.diagnostics.Report` for ``config``."""
    from agent.config import ConfigError, read_token
    from agent.ops.control import ControlError, control_request
    from agent.ops.diagnostics import LineFacts, daemon_state, outbox_facts, probe_uplink
    from agent.ops.logs import register_secret

    daemon: dict[str, Any] | None = None
    state: dict[str, Any] = {"state": "not asked", "detail": "not asked (--direct)"}
    if allow_daemon:
        error: BaseException | None = None
        if config.control_socket:
            try:
                daemon = control_request(config.control_socket, "diag", timeout=timeout)
            except (ControlError, TimeoutError) as exc:
                error = exc
        state = daemon_state(error, socket_path=config.control_socket, timeout=timeout)
    token: str | None = None
    if config.uplink.url is not None:
        try:
            token = read_token(config)
            register_secret(token)
        except ConfigError:
            token = None
    outbox = (daemon.get("outbox") if daemon is not None
              else outbox_facts(config.outbox.path, terminal_id=config.terminal_id))
    daemon_uplink = daemon.get("uplink") if daemon is not None else None
    # The hub's verdict on this terminal id: a hello, unless the daemon's own session is up
    # (its welcome is the verdict, and a second hello would replace that session: 4002).
    session_up = bool(daemon_uplink and daemon_uplink.get("connected"))
    last_seq = int((outbox or {}).get("lastSeq") or 0)
    uplink = probe_uplink(config, token, hello_last_seq=None if session_up else last_seq)
    if session_up:
        assert daemon_uplink is not None
        for result in uplink["urls"]:
            if result["auth"].get("ok") is not True:
                continue
            if result["url"] == daemon_uplink.get("url", result["url"]):
                result["auth"]["detail"] = ("the hub accepted the token; the daemon's session "
                                            f"is welcomed as {config.terminal_id}")
            else:
                result["auth"]["detail"] = ("the hub accepted the token (no hello: the "
                                            "daemon's session is up on "
                                            f"{daemon_uplink.get('url')})")
    if daemon is not None:
        lines = [LineFacts.from_json(item) for item in daemon.get("lines", [])]
        return _report(config, lines, outbox, uplink, "daemon", daemon_uplink, state)
    if state["state"] in ("hung", "unreachable", "error"):
        # The daemon may well be running: opening the port would fight it for the line.
        line = LineFacts(port=config.serial.port, address=config.machines[0].address,
                         port_opened=False,
                         port_error=f"not opened: the daemon did not answer ({state['detail']})"
                                    ", and it may own the line")
        return _report(config, [line], outbox, uplink, "direct", None, state)
    lines = probe_all(config)
    return _report(config, lines, outbox, uplink, "direct", None, state)


def probe_all(config: Config) -> list[LineFacts]:
    """Open the serial port here and probe every configured machine on it."""
    from agent.line.port import transport_options
    from agent.ops.diagnostics import LineFacts, probe_line
    from drivers import TransportError, open_transport

    port = config.serial.port
    try:
        transport = open_transport(port, **transport_options(port, config.serial))
    except (TransportError, OSError) as exc:
        return [LineFacts(port=port, address=m.address, port_opened=False, port_error=str(exc))
                for m in config.machines]
    try:
        return [probe_line(transport, m.address, port=port,
                           reply_timeout=config.poll.reply_timeout_ms / 1000,
                           rte_configured=m.rte)
                for m in config.machines]
    finally:
        transport.close()


def _report(config: Config, lines: list[LineFacts], outbox: dict[str, Any] | None,
            uplink: dict[str, Any], source: str, daemon_uplink: dict[str, Any] | None,
            daemon: dict[str, Any]) -> Report:
    from agent.ops.diagnostics import Check, Report, build_report

    first = build_report(line=lines[0] if lines else None, outbox=outbox, uplink=uplink,
                         source=source, terminal_id=config.terminal_id,
                         daemon_uplink=daemon_uplink,
                         max_skew_s=config.poll.clock_max_skew_s, daemon=daemon)
    if len(lines) <= 1:
        return first
    # More machines on the line: their line checks follow, named by address.
    extra: list[Check] = []
    for line in lines[1:]:
        sub = build_report(line=line, outbox=None, uplink=None, source=source,
                           terminal_id=config.terminal_id)
        for check in sub.checks[:7]:
            extra.append(Check(f"{check.id}@{line.address}",
                               f"address {line.address}: {check.title}", check.status,
                               check.detail, check.hint, check.data))
    return Report((*first.checks[:7], *extra, *first.checks[7:]), first.source,
                  first.terminal_id, first.generated_at)
