"""hub.yaml: the hub's typed configuration (docs/protocol.md §11).

Every problem is reported at once, each with its key path, before anything starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hub.gaming_day import load_zone


class HubConfigError(Exception):
    """The configuration is unusable; ``problems`` lists each one with its key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


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
    #: ``postgresql://…``: a PostgreSQL store shared by several hub instances (hub/store_pg.py)
    store: str | None = None
    timezone: str = "UTC"  # IANA name: the casino's local time (hub.gaming_day)
    gaming_day_start: int = 0  # local hour the gaming day starts


_KNOWN = {
    "listen", "tls", "plain", "tokens", "database", "store", "action_key_file", "action_queue_ttl",
    "signature_window", "ping_interval", "ping_timeout", "max_frame_bytes", "max_message_bytes",
    "client_queue", "auth_timeout", "recent_events", "synchronous", "retention_days",
    "max_inflight_events", "max_inflight_per_terminal", "client_max_filters",
    "client_max_filter_names", "get_state_burst", "get_state_per_second",
    "timezone", "gaming_day_start",
}


def parse_config(raw: Any, base: Path) -> HubConfig:
    """Build a :class:`HubConfig` from parsed YAML; relative paths are relative to ``base``."""
    problems: list[str] = []
    if not isinstance(raw, dict):
        raise HubConfigError(["(top level): must be a mapping"])
    for key in sorted(set(raw) - _KNOWN):
        problems.append(f"{key}: unknown key")

    def path(key: str, value: Any, required: bool) -> Path | None:
        if value is None:
            if required:
                problems.append(f"{key}: required")
            return None
        if not isinstance(value, str) or not value:
            problems.append(f"{key}: must be a path string")
            return None
        p = Path(value)
        return p if p.is_absolute() else base / p

    def number(key: str, default: float, *, optional: bool = False) -> float | None:
        value = raw.get(key, default)
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0 \
                or not math.isfinite(value):
            problems.append(f"{key}: must be a positive number, got {value!r}")
            return default
        return float(value)

    def integer(key: str, default: int) -> int:
        value = raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            problems.append(f"{key}: must be a positive integer, got {value!r}")
            return default
        return value

    listen = raw.get("listen", {}) or {}
    host, port = "127.0.0.1", 8765
    if not isinstance(listen, dict):
        problems.append("listen: must be a mapping with host and port")
    else:
        host = listen.get("host", host)
        port = listen.get("port", port)
        if not isinstance(host, str) or not host:
            problems.append("listen.host: must be a host name or address")
            host = "127.0.0.1"
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            problems.append(f"listen.port: must be 0..65535, got {port!r}")
            port = 8765

    plain = raw.get("plain", False)
    if not isinstance(plain, bool):
        problems.append("plain: must be true or false")
        plain = False
    tls = raw.get("tls")
    cert = key = None
    if tls is not None:
        if not isinstance(tls, dict):
            problems.append("tls: must be a mapping with cert and key")
        else:
            cert = path("tls.cert", tls.get("cert"), True)
            key = path("tls.key", tls.get("key"), True)
    if tls is None and not plain:
        problems.append("tls: required (or set plain: true to serve ws:// without TLS)")
    if tls is not None and plain:
        problems.append("plain: cannot be true together with tls")

    synchronous = raw.get("synchronous", "FULL")
    if synchronous not in ("FULL", "NORMAL"):
        problems.append(f"synchronous: must be FULL or NORMAL, got {synchronous!r}")
        synchronous = "FULL"

    tokens = path("tokens", raw.get("tokens"), True)
    store = raw.get("store")
    if store is not None and (not isinstance(store, str)
                              or not store.startswith(("postgresql://", "postgres://"))):
        problems.append("store: must be a postgresql:// URL (or leave it out for SQLite at "
                        "database)")
        store = None
    if store is not None and raw.get("database") is not None:
        problems.append("database: cannot be set together with store (one store per hub)")
    database = path("database", raw.get("database"), store is None and "store" not in raw)
    action_key = path("action_key_file", raw.get("action_key_file"), False)
    cfg_values = {
        "action_queue_ttl": number("action_queue_ttl", 300.0),
        "signature_window": number("signature_window", 300.0),
        "ping_interval": number("ping_interval", 20.0, optional=True),
        "ping_timeout": number("ping_timeout", 20.0, optional=True),
        "auth_timeout": number("auth_timeout", 10.0),
        "retention_days": number("retention_days", 90.0, optional=True),
        "get_state_per_second": number("get_state_per_second", 1.0),
    }
    retention = cfg_values["retention_days"]
    if retention is not None and retention < 1:
        problems.append(f"retention_days: must be at least 1 (day), got {retention!r}")
    max_frame = integer("max_frame_bytes", 1 << 20)
    max_message = integer("max_message_bytes", 256 * 1024)
    if max_message > max_frame:
        problems.append("max_message_bytes: must not exceed max_frame_bytes")
    client_queue = integer("client_queue", 1000)
    recent = integer("recent_events", 50)
    limits = {key: integer(key, default) for key, default in (
        ("max_inflight_events", 20_000), ("max_inflight_per_terminal", 1000),
        ("client_max_filters", 16), ("client_max_filter_names", 1000), ("get_state_burst", 5))}
    timezone = raw.get("timezone", "UTC")
    if not isinstance(timezone, str) or not timezone:
        problems.append(f"timezone: must be an IANA time zone name, got {timezone!r}")
        timezone = "UTC"
    else:
        try:
            load_zone(timezone)
        except ValueError:
            problems.append(f"timezone: unknown IANA time zone {timezone[:60]!r}")
            timezone = "UTC"
    day_start = raw.get("gaming_day_start", 0)
    if isinstance(day_start, bool) or not isinstance(day_start, int) or not 0 <= day_start <= 23:
        problems.append(f"gaming_day_start: must be an hour 0..23, got {day_start!r}")
        day_start = 0
    if problems:
        raise HubConfigError(problems)
    assert tokens is not None and (database is not None or store is not None)
    return HubConfig(
        tokens=tokens, database=database, host=host, port=port, tls_cert=cert, tls_key=key,
        plain=plain, action_key_file=action_key,
        action_queue_ttl=cfg_values["action_queue_ttl"] or 300.0,
        signature_window=cfg_values["signature_window"] or 300.0,
        ping_interval=cfg_values["ping_interval"], ping_timeout=cfg_values["ping_timeout"],
        max_frame_bytes=max_frame, max_message_bytes=max_message, client_queue=client_queue,
        auth_timeout=cfg_values["auth_timeout"] or 10.0, recent_events=recent,
        synchronous=str(synchronous), retention_days=retention, timezone=timezone,
        gaming_day_start=day_start, store=store,
        get_state_per_second=cfg_values["get_state_per_second"] or 1.0, **limits,
    )


def load_config(path: Path) -> HubConfig:
    """Read and check ``hub.yaml``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise HubConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise HubConfigError([f"{path}: not valid YAML: {exc}"]) from None
    return parse_config(raw, path.parent)
