"""``slot-agent check-config --config PATH``: validate a config file and print every problem
at once (``check-config PATH`` is kept as an alias). Beyond the file itself it checks what
``run`` would refuse at start: an empty token file, an action key shorter than 16 bytes, TLS
files that do not load, an existing outbox that belongs to another terminal."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from agent.config import Config, ConfigError, load_config, read_hmac_key, read_token
from cli.commands.checks import EXIT_INVALID_CONFIG, report_check
from cli.commands.options import add_config_option, command_parser
from configkit import Problem, load_yaml


def add_parser(subparsers: Any) -> None:
    parser = command_parser(
        subparsers, "check-config",
        help="validate a configuration file",
        description="Validate a configuration file and list every problem, each with its key "
        "path (warnings are printed too).",
        exit_codes={0: "valid (warnings, if any, are printed)",
                    EXIT_INVALID_CONFIG: "invalid configuration (also what run would refuse "
                                         "at start: an empty token file, an action key under "
                                         "16 bytes, TLS files that do not load, an outbox of "
                                         "another terminal), or bad usage"},
    )
    add_config_option(parser, optional=True, help="the YAML configuration file")
    parser.add_argument("path", metavar="PATH", nargs="?",
                        help="the same, as a positional argument (kept for older scripts)")
    parser.set_defaults(func=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    config_arg: str | None = getattr(args, "config", None)
    if config_arg is not None and args.path is not None and config_arg != args.path:
        args.parser.error("give the file once: --config PATH or PATH")
    path = config_arg or args.path
    if path is None:
        args.parser.error("the following arguments are required: --config")
    args.path = path
    try:
        config = load_config(args.path)
    except ConfigError as exc:
        code = report_check(args.path, exc.problems)
        if _looks_like_hub_yaml(args.path):
            print(f"  hint: this looks like the hub's configuration: slot-agent hub "
                  f"--check-config --config {args.path}", file=sys.stderr)
        return code
    owner = outbox_owner_problem(config.outbox.path, config.terminal_id)
    problems = [*config.warnings, *start_problems(config)]
    if owner is not None:
        problems.append(Problem("outbox.path", owner))
    return report_check(args.path, problems)


def start_problems(config: Config) -> list[Problem]:
    """What ``run`` refuses in the files the configuration names (it exits 1, "cannot
    start"): an empty token file, an action key shorter than 16 bytes, a CA bundle or client
    certificate that does not load (the uplink's TLS context, built at start for a wss://
    URL). Read here by whoever runs the check, as the loader already proved they can
    (``token_env`` is not read: the daemon's environment is not the check's)."""
    from agent.config import hub_urls
    from agent.uplink.tls import client_ssl_context

    problems: list[Problem] = []
    if config.uplink.url is not None and config.uplink.token_file is not None:
        try:
            read_token(config)
        except ConfigError as exc:
            problems += exc.problems
    try:
        read_hmac_key(config)
    except ConfigError as exc:
        problems += exc.problems
    if any(url.startswith("wss://") for url in hub_urls(config.uplink)):
        try:
            client_ssl_context(config.uplink)
        except ConfigError as exc:
            problems += exc.problems
    return problems


def _looks_like_hub_yaml(path: str) -> bool:
    """No ``terminal_id`` but a key only hub.yaml has: the operator meant the hub's check."""
    try:
        raw = load_yaml(path)
    except ConfigError:
        return False
    return isinstance(raw, dict) and "terminal_id" not in raw and bool(
        {"tokens", "listen", "database", "store", "tls"} & set(raw))


def outbox_owner_problem(path: str, terminal_id: str) -> str | None:
    """What ``run`` would refuse: an existing outbox that belongs to another terminal (read
    only, safe beside a running daemon). None when the file is absent, unreadable (the
    daemon deals with a damaged file at start) or this terminal's."""
    from agent.store.outbox import Outbox, OutboxError

    try:
        reader = Outbox.open_reader(path)
    except OutboxError:
        return None
    try:
        owner = reader.stats().terminal_id
    except Exception:  # a damaged file is run's and diag's business, not a config error
        return None
    finally:
        reader.close()
    if owner and owner != terminal_id:
        return (f"{path} belongs to terminal {owner!r}, not terminal_id {terminal_id!r}: "
                "slot-agent run would refuse to start (use the right terminal_id, or a new "
                "outbox.path)")
    return None
