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
from cli.commands.options import add_config_option, command_parser

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
    parser.add_argument("--timeout", type=float, default=CONTROL_TIMEOUT_S, metavar="S",
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
    from agent.ops.control import ControlError, ControlUnavailableError, control_request
    from agent.ops.diagnostics import LineFacts, outbox_facts, probe_uplink
    from agent.ops.logs import register_secret

    daemon: dict[str, Any] | None = None
    daemon_error: str | None = None  # the daemon is (probably) running but did not answer
    if allow_daemon and config.control_socket:
        try:
            daemon = control_request(config.control_socket, "diag", timeout=timeout)
        except ControlUnavailableError as exc:
            if "permission" in str(exc):
                daemon_error = str(exc)
            # else: nothing listens, the daemon is stopped: poll the machine directly
        except ControlError as exc:
            daemon_error = f"the daemon answered with an error: {exc}"
        except TimeoutError:
            daemon_error = (f"the daemon did not answer on {config.control_socket} within "
                            f"{timeout:g} s (is it stuck? see journalctl -u slot-agent)")
    token: str | None = None
    if config.uplink.url is not None:
        try:
            token = read_token(config)
            register_secret(token)
        except ConfigError:
            token = None
    uplink = probe_uplink(config, token)
    if daemon is not None:
        lines = [LineFacts.from_json(item) for item in daemon.get("lines", [])]
        return _report(config, lines, daemon.get("outbox"), uplink, "daemon",
                       daemon.get("uplink"))
    if daemon_error is not None:
        # The daemon may well be running: opening the port would fight it for the line.
        line = LineFacts(port=config.serial.port, address=config.machines[0].address,
                         port_opened=False, port_error=daemon_error)
        return _report(config, [line], outbox_facts(config.outbox.path), uplink, "direct",
                       None)
    lines = probe_all(config)
    return _report(config, lines, outbox_facts(config.outbox.path), uplink, "direct", None)


def probe_all(config: Config) -> list[LineFacts]:
    """Open the serial port here and probe every configured machine on it."""
    from agent.ops.diagnostics import LineFacts, probe_line, transport_options
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
            uplink: dict[str, Any], source: str, daemon_uplink: dict[str, Any] | None) -> Report:
    from agent.ops.diagnostics import Check, Report, build_report

    first = build_report(line=lines[0] if lines else None, outbox=outbox, uplink=uplink,
                         source=source, terminal_id=config.terminal_id,
                         daemon_uplink=daemon_uplink,
                         max_skew_s=config.poll.clock_max_skew_s)
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
