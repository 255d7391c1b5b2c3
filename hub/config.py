"""hub.yaml: the hub's typed configuration (docs/protocol.md §11).

Every problem is reported at once, each with its key path, before anything starts: the one
validation mechanism of the project (configkit), shared with the agent's config.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from configkit import ConfigError, Problem, Section, load_yaml
from hub.gaming_day import load_zone


@dataclass(frozen=True, slots=True)
class HubConfig:
    tokens: Path
    database: Path | None  # the SQLite file; None when ``store`` names PostgreSQL
    host: str = "127.0.0.1"
    port: int = 8765
    tls_cert: Path | None = None
    tls_key: Path | None = None
    plain: bool = False  # explicit ws:// without TLS (localhost, tests, demo)
    action_key_file: Path | None = None
    action_queue_ttl: float = 300.0
    signature_window: float = 300.0
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    max_frame_bytes: int = 1 << 20
    max_message_bytes: int = 256 * 1024
    client_queue: int = 1000
    auth_timeout: float = 10.0
    recent_events: int = 50
    synchronous: str = "FULL"
    retention_days: float | None = 90.0  # None: stored events are kept for ever
    max_inflight_events: int = 20_000  # messages read from terminals, not yet answered
    max_inflight_per_terminal: int = 1000
    client_max_filters: int = 16
    client_max_filter_names: int = 1000  # channels + events + terminals of one filter
    get_state_burst: int = 5
    get_state_per_second: float = 1.0
    timezone: str = "UTC"  # IANA name: the casino's local time (hub.gaming_day)
    gaming_day_start: int = 0  # local hour the gaming day starts
    #: ``postgresql://…``: a PostgreSQL store shared by several hub instances (hub/store_pg.py)
    store: str | None = None


def parse_config(raw: Any, base: Path) -> HubConfig:
    """Build a :class:`HubConfig` from parsed YAML; relative paths are relative to ``base``.

    Raises :class:`configkit.ConfigError` with every problem, each at its key path (unknown
    keys with a did-you-mean), as the agent's config does."""
    cfg, problems = read_config(raw, base)
    if any(p.severity == "error" for p in problems):
        raise ConfigError(problems)
    return cfg


def read_config(raw: Any, base: Path) -> tuple[HubConfig, list[Problem]]:
    """:func:`parse_config` without raising: the config (a wrong value replaced by its
    default) and every problem, for ``slot-agent hub --check-config`` (hub/config_check.py),
    which goes on to check the files of the keys that have none."""
    problems: list[Problem] = []
    top = Section(raw, "", problems)
    d = HubConfig(tokens=Path(), database=Path())
    listen = top.section("listen")
    host = listen.string("host", d.host)
    port = listen.integer("port", d.port, lo=0, hi=65535)
    listen.finish()
    plain = top.boolean("plain", d.plain)
    cert = key = None
    if top.data.get("tls") is not None:
        tls = top.section("tls")
        cert = tls.file_path("cert", base, required=True)
        key = tls.file_path("key", base, required=True)
        tls.finish()
        if plain:
            top.error("plain", "cannot be true together with tls")
    else:
        top.raw("tls")
        if not plain:
            top.error("tls", "required (or set plain: true to serve ws:// without TLS)")
    tokens = top.file_path("tokens", base, required=True)
    store = top.optional_string("store")
    if store is not None and not store.startswith(("postgresql://", "postgres://")):
        top.error("store", "must be a postgresql:// URL (or leave it out for SQLite at "
                           "database)")
        store = None
    database = top.file_path("database", base, required=store is None
                             and top.data.get("store") is None)
    if database is not None and top.data.get("store") is not None:
        top.error("database", "cannot be set together with store (one store per hub)")
    timezone = top.string("timezone", d.timezone)
    try:
        load_zone(timezone)
    except ValueError:
        top.error("timezone", f"unknown IANA time zone {timezone[:60]!r}")
        timezone = d.timezone
    max_frame = top.integer("max_frame_bytes", d.max_frame_bytes, lo=1)
    max_message = top.integer("max_message_bytes", d.max_message_bytes, lo=1)
    if max_message > max_frame:
        top.error("max_message_bytes", "must not exceed max_frame_bytes")
    positive = 1e-9  # "a positive number": more than zero
    cfg = HubConfig(
        tokens=tokens or Path(), database=database if store is not None else database or Path(),
        store=store, host=host, port=port,
        tls_cert=cert, tls_key=key, plain=plain,
        action_key_file=top.file_path("action_key_file", base),
        action_queue_ttl=top.number("action_queue_ttl", d.action_queue_ttl, lo=positive),
        signature_window=top.number("signature_window", d.signature_window, lo=positive),
        ping_interval=top.optional_number("ping_interval", d.ping_interval, lo=positive),
        ping_timeout=top.optional_number("ping_timeout", d.ping_timeout, lo=positive),
        max_frame_bytes=max_frame, max_message_bytes=max_message,
        client_queue=top.integer("client_queue", d.client_queue, lo=1),
        auth_timeout=top.number("auth_timeout", d.auth_timeout, lo=positive),
        recent_events=top.integer("recent_events", d.recent_events, lo=1),
        synchronous=top.choice("synchronous", d.synchronous, ("FULL", "NORMAL")),
        retention_days=top.optional_number("retention_days", d.retention_days, lo=1),
        max_inflight_events=top.integer("max_inflight_events", d.max_inflight_events, lo=1),
        max_inflight_per_terminal=top.integer("max_inflight_per_terminal",
                                              d.max_inflight_per_terminal, lo=1),
        client_max_filters=top.integer("client_max_filters", d.client_max_filters, lo=1),
        client_max_filter_names=top.integer("client_max_filter_names",
                                            d.client_max_filter_names, lo=1),
        get_state_burst=top.integer("get_state_burst", d.get_state_burst, lo=1),
        get_state_per_second=top.number("get_state_per_second", d.get_state_per_second,
                                        lo=positive),
        timezone=timezone,
        gaming_day_start=top.integer("gaming_day_start", d.gaming_day_start, lo=0, hi=23),
    )
    top.finish()
    return cfg, problems


def load_config(path: Path) -> HubConfig:
    """Read and check ``hub.yaml``."""
    return parse_config(load_yaml(path), path.parent)


class TLSLoadError(OSError):
    """``tls.cert`` and ``tls.key`` do not load as a certificate and its private key. An
    :class:`OSError`, as a port in use is: ``slot-agent hub`` cannot start (exit 1), and says
    so naming the key and both files."""

    def __init__(self, cert: Path, key: Path, reason: str) -> None:
        self.reason = reason
        super().__init__(f"tls: {cert} and {key} do not load as a certificate and its private "
                         f"key ({reason})")


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """The hub's server TLS context (``hub --check-config`` loads it the same way). An
    encrypted key is refused rather than asked for: OpenSSL would prompt on the terminal, and
    the service has none to answer on."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key, password=_no_passphrase)
    except (ssl.SSLError, OSError, ValueError) as exc:
        reason = str(getattr(exc, "reason", None) or exc).strip() or type(exc).__name__
        raise TLSLoadError(cert, key, reason) from exc
    return context


def _no_passphrase() -> str:
    raise ValueError("the key is encrypted; the hub cannot be given its passphrase")
