"""Typed configuration: one YAML file -> frozen dataclasses, every problem reported at once.

:func:`load_config` never stops at the first mistake: it walks the whole file and raises
:class:`ConfigError` carrying every :class:`Problem`, each naming its key path
(``uplink.window: must be an integer >= 1, got "abc"``). Unknown keys are errors too, with a
did-you-mean, because a misspelt key silently falling back to its default is how a vendor
quirk flag ends up ignored in the field.

Secrets never live in this file: the hub token comes from ``uplink.token_file`` or
``uplink.token_env`` (:func:`read_token`), the action-signing key from
``actions.hmac_key_file``. Relative paths are resolved against the config file's directory.
The example file ``config.example.yaml`` documents every key and its default.

Size: over 500 lines on purpose: each section's dataclass stands beside its parser, so that
one file says every key, default and bound that config.example.yaml and docs/operations.md
print (tests check the three agree).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from configkit import MISSING, ConfigError, Problem, Section, check_file, load_yaml, show
from drivers.card_format import DEFAULT_CARD_PATTERN, DEFAULT_REMOVAL_PATTERN

__all__ = [
    "ActionsConfig",
    "CardReaderConfig",
    "Config",
    "ConfigError",
    "LoggingConfig",
    "MachineConfig",
    "MetricsConfig",
    "OutboxConfig",
    "PollConfig",
    "Problem",
    "SerialConfig",
    "UplinkConfig",
    "config_hash",
    "load_config",
    "parse_config",
    "read_hmac_key",
    "read_token",
    "reloadable_diff",
]

TERMINAL_ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("json", "human", "auto")
#: Changes to these key paths (or under a prefix ending in ".") apply on SIGHUP.
RELOADABLE = ("logging.level", "poll.interval_ms", "uplink.")
#: Linux's ``sun_path`` holds 108 bytes with the terminating NUL (agent/ops/control.py): a
#: longer ``control_socket`` cannot be bound, and the daemon would run without it.
MAX_SOCKET_PATH_BYTES = 107


def _default_outbox_path() -> str:
    # systemd's StateDirectory= sets $STATE_DIRECTORY (possibly several, colon-separated).
    state_dir = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return str(Path(state_dir) / "outbox.db") if state_dir else "/var/lib/slot-agent/outbox.db"


def _default_control_socket() -> str:
    runtime_dir = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if runtime_dir:
        return str(Path(runtime_dir) / "control.sock")
    return "/run/slot-agent/control.sock"


@dataclass(frozen=True, slots=True)
class SerialConfig:
    port: str = "/dev/ttyUSB0"
    baudrate: int = 19200
    even_parity_after_address: bool = False
    parity_switch_delay_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class MachineConfig:
    address: int
    rte: bool = False


@dataclass(frozen=True, slots=True)
class PollConfig:
    interval_ms: int = 200  # per machine, from the last byte sent or received (SAS §3.6)
    #: the spacing of a machine whose LP A0 advertises the 40 ms rate (SAS §3.6); None: off
    fast_interval_ms: int | None = None
    reply_timeout_ms: int = 50
    link_down_after: int = 3  # failed sends at least, and ...
    link_down_after_s: float = 2.0  # ... spanning at least this long, before link-down
    sync_address: int = 0  # the general poll that acknowledges (SAS §3.5): 80 by default
    snapshot_interval_s: float = 900.0
    clock_check: bool = True
    clock_sync: bool = False
    clock_max_skew_s: float = 30.0
    #: While LP 74 reads a game lock (exception 6F, SAS §3.11), it is read again this often
    #: until the machine reads not locked: 6F has no "unlocked" counterpart exception.
    game_lock_recheck_s: float = 5.0
    #: The line process's scheduling (agent/line/child.py): ``realtime`` (SCHED_RR, falls
    #: back to ``nice`` where the unit does not allow it), ``nice`` (5 levels ahead of the
    #: daemon where allowed) or ``normal`` (as the daemon).
    line_priority: str = "nice"


LINE_PRIORITIES = ("realtime", "nice", "normal")


@dataclass(frozen=True, slots=True)
class CardReaderConfig:
    """The reader's line contract is ``drivers.card_format`` (docs/sas-serial.md); its
    defaults are that module's, so the driver, the config and the docs share one pattern."""

    port: str | None = None
    baudrate: int = 9600
    pattern: str = DEFAULT_CARD_PATTERN
    removal_pattern: str = DEFAULT_REMOVAL_PATTERN
    player_prefixes: tuple[str, ...] = ("P", "9")
    employee_prefixes: tuple[str, ...] = ("E", "1")


@dataclass(frozen=True, slots=True)
class OutboxConfig:
    path: str = field(default_factory=_default_outbox_path)
    max_events: int = 1_000_000
    retention_days: float = 30.0

    @property
    def retention_seconds(self) -> float:
        return self.retention_days * 86400.0


@dataclass(frozen=True, slots=True)
class UplinkConfig:
    url: str | None = None  # None: no uplink, events stay in the outbox; else the first URL
    #: Every hub URL in the order tried (``uplink.url`` as a list: hub instances serving one
    #: floor); empty when ``url`` is the only one.
    urls: tuple[str, ...] = ()
    allow_insecure: bool = False
    ca_file: str | None = None
    client_cert_file: str | None = None
    client_key_file: str | None = None
    token_file: str | None = None
    token_env: str | None = None
    window: int = 2000
    batch: int = 500
    reconnect_max_delay_s: float = 60.0
    heartbeat_interval_s: float = 10.0
    heartbeat_timeout_s: float = 10.0


def hub_urls(config: UplinkConfig) -> tuple[str, ...]:
    """The hub URLs to try, in order (``uplink.url``: one, or a list)."""
    if config.urls:
        return config.urls
    return () if config.url is None else (config.url,)


@dataclass(frozen=True, slots=True)
class ActionsConfig:
    hmac_key_file: str | None = None
    replay_window_s: float = 300.0
    default_ttl_s: float = 300.0


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    enabled: bool = True
    address: str = "127.0.0.1"
    port: int = 9464


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str = "info"
    format: str = "auto"


@dataclass(frozen=True, slots=True)
class Config:
    terminal_id: str
    machines: tuple[MachineConfig, ...]
    serial: SerialConfig = field(default_factory=SerialConfig)
    poll: PollConfig = field(default_factory=PollConfig)
    card_reader: CardReaderConfig = field(default_factory=CardReaderConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    uplink: UplinkConfig = field(default_factory=UplinkConfig)
    actions: ActionsConfig = field(default_factory=ActionsConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    control_socket: str | None = field(default_factory=_default_control_socket)
    #: The file this came from ("" when parsed from a mapping); not part of the config hash.
    source: str = field(default="", compare=False)
    #: Non-fatal problems (a token file readable by others...), shown by check-config and logged.
    warnings: tuple[Problem, ...] = field(default=(), compare=False)


# ---------------------------------------------------------------------------- parsing


def _resolve(path: str | None, base: Path | None) -> str | None:
    if path is None or base is None or path.startswith("/"):
        return path
    return str((base / path).resolve())


def _parse_port(sec: Section, name: str, value: str) -> None:
    """Serial port forms accepted by drivers.open_transport (docs/architecture.md)."""
    if value.startswith("tcp://"):
        host, _, port = value[len("tcp://"):].rpartition(":")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            sec.error(name, f"tcp:// needs host:port with a port from 1 to 65535, got "
                            f"{show(value)}")
    elif value.startswith("pty:"):
        if not value[len("pty:"):].startswith("/"):
            sec.error(name, f"pty: needs an absolute path (pty:/dev/pts/N), got {show(value)}")
    elif value.startswith("serial:"):
        if value[len("serial:"):] in ("", "//"):  # drivers.open_transport strips "//"
            sec.error(name, f"serial: needs a device path (serial:/dev/ttyUSB0), got "
                            f"{show(value)}")
    elif not (value.startswith(("/", "serial:")) or "://" in value):
        sec.error(name, "must be a device path (/dev/ttyUSB0), serial:PATH, tcp://host:port, "
                        f"pty:/dev/pts/N or a pyserial URL, got {show(value)}")


def _parse_serial(data: Any, problems: list[Problem]) -> SerialConfig:
    sec = Section(data, "serial", problems)
    d = SerialConfig()
    port = sec.string("port", d.port)
    _parse_port(sec, "port", port)
    baudrate = sec.integer("baudrate", d.baudrate, lo=300, hi=1_000_000)
    if baudrate != 19200:
        sec.warn("baudrate", f"SAS runs at 19200 baud; {baudrate} works only with a bridge "
                             "that converts it")
    cfg = SerialConfig(
        port=port,
        baudrate=baudrate,
        even_parity_after_address=sec.boolean("even_parity_after_address",
                                              d.even_parity_after_address),
        parity_switch_delay_ms=sec.number("parity_switch_delay_ms", d.parity_switch_delay_ms,
                                          lo=0, hi=100),
    )
    sec.finish()
    return cfg


def _parse_machines(data: Any, problems: list[Problem]) -> tuple[MachineConfig, ...]:
    if data is MISSING or data is None:
        problems.append(Problem("machines", "required: list at least one machine "
                                            "(- address: 1)"))
        return ()
    if not isinstance(data, list) or not data:
        problems.append(Problem("machines", f"must be a non-empty list, got {show(data)}"))
        return ()
    machines: list[MachineConfig] = []
    seen: dict[int, int] = {}
    for i, item in enumerate(data):
        sec = Section(item, f"machines[{i}]", problems)
        address = sec.integer("address", 0, lo=1, hi=127)
        if "address" not in sec.data:
            sec.error("address", "required: the machine's SAS address, 1 to 127")
        elif address in seen:
            sec.error("address", f"address {address} is already used by machines[{seen[address]}]")
        seen.setdefault(address, i)
        machines.append(MachineConfig(address=address, rte=sec.boolean("rte", False)))
        sec.finish()
    return tuple(machines)


def _parse_poll(data: Any, problems: list[Problem]) -> PollConfig:
    sec = Section(data, "poll", problems)
    d = PollConfig()
    cfg = PollConfig(
        interval_ms=sec.integer("interval_ms", d.interval_ms, lo=40, hi=5000),
        fast_interval_ms=sec.optional_integer("fast_interval_ms", d.fast_interval_ms, lo=40,
                                              hi=5000),
        reply_timeout_ms=sec.integer("reply_timeout_ms", d.reply_timeout_ms, lo=10, hi=1000),
        link_down_after=sec.integer("link_down_after", d.link_down_after, lo=1, hi=1000),
        link_down_after_s=sec.number("link_down_after_s", d.link_down_after_s, lo=0, hi=300),
        sync_address=sec.integer("sync_address", d.sync_address, lo=0, hi=127),
        snapshot_interval_s=sec.number("snapshot_interval_s", d.snapshot_interval_s, lo=10),
        clock_check=sec.boolean("clock_check", d.clock_check),
        clock_sync=sec.boolean("clock_sync", d.clock_sync),
        clock_max_skew_s=sec.number("clock_max_skew_s", d.clock_max_skew_s, lo=1),
        game_lock_recheck_s=sec.number("game_lock_recheck_s", d.game_lock_recheck_s, lo=0.1,
                                       hi=3600),
        line_priority=sec.choice("line_priority", d.line_priority, LINE_PRIORITIES),
    )
    if cfg.reply_timeout_ms >= cfg.interval_ms:
        sec.error("reply_timeout_ms", f"must be shorter than poll.interval_ms "
                                      f"({cfg.interval_ms}), got {cfg.reply_timeout_ms}")
    if cfg.fast_interval_ms is not None and cfg.fast_interval_ms > cfg.interval_ms:
        sec.error("fast_interval_ms", f"must not be longer than poll.interval_ms "
                                      f"({cfg.interval_ms}), got {cfg.fast_interval_ms}")
    if cfg.clock_sync and not cfg.clock_check:
        sec.error("clock_sync", "needs poll.clock_check: true (the skew is measured by it)")
    sec.finish()
    return cfg


def _parse_card_reader(data: Any, problems: list[Problem]) -> CardReaderConfig:
    sec = Section(data, "card_reader", problems)
    d = CardReaderConfig()
    port = sec.optional_string("port", d.port)
    if port is not None:
        _parse_port(sec, "port", port)
    baudrate = sec.integer("baudrate", d.baudrate, lo=300, hi=115200)
    pattern = sec.string("pattern", d.pattern)
    try:
        if "id" not in re.compile(pattern).groupindex:
            sec.error("pattern", "must have a named group (?P<id>...) for the card number")
    except re.error as exc:
        sec.error("pattern", f"is not a valid regular expression: {exc}")
        pattern = d.pattern
    removal_pattern = sec.string("removal_pattern", d.removal_pattern)
    try:
        re.compile(removal_pattern)
    except re.error as exc:
        sec.error("removal_pattern", f"is not a valid regular expression: {exc}")
        removal_pattern = d.removal_pattern
    cfg = CardReaderConfig(
        port=port,
        baudrate=baudrate,
        pattern=pattern,
        removal_pattern=removal_pattern,
        player_prefixes=sec.strings("player_prefixes", d.player_prefixes),
        employee_prefixes=sec.strings("employee_prefixes", d.employee_prefixes),
    )
    both = set(cfg.player_prefixes) & set(cfg.employee_prefixes)
    if both:
        sec.error("employee_prefixes", f"prefixes {sorted(both)} are also player prefixes")
    sec.finish()
    return cfg


def _parse_outbox(data: Any, problems: list[Problem], base: Path | None) -> OutboxConfig:
    sec = Section(data, "outbox", problems)
    d = OutboxConfig()
    cfg = OutboxConfig(
        path=_resolve(sec.string("path", d.path), base) or d.path,
        max_events=sec.integer("max_events", d.max_events, lo=100),
        retention_days=sec.number("retention_days", d.retention_days, lo=0),
    )
    sec.finish()
    return cfg


def _parse_uplink(data: Any, problems: list[Problem], base: Path | None) -> UplinkConfig:
    sec = Section(data, "uplink", problems)
    d = UplinkConfig()
    if isinstance(sec.data, Mapping) and "token" in sec.data:
        sec.raw("token")
        sec.error("token", "secrets are not accepted inline (config files are copied, "
                           "backed up and world-readable); put the token in a file named by "
                           "uplink.token_file (mode 0640, root:slot-agent) or in the "
                           "variable named by uplink.token_env")
    urls: tuple[str, ...] = ()
    if isinstance(sec.data.get("url"), list):
        # Several hub instances serving one floor (docs/operations.md): tried in order.
        urls = sec.strings("url", ())
        if sec.data["url"] == []:
            sec.error("url", "a list of hub URLs must name at least one")
        if len(set(urls)) != len(urls):
            sec.error("url", "the same hub URL is listed twice")
        url = urls[0] if urls else None
    else:
        url = sec.optional_string("url", d.url)
    allow_insecure = sec.boolean("allow_insecure", d.allow_insecure)
    for one in urls or ((url,) if url is not None else ()):
        if one.startswith("ws://"):
            if not allow_insecure:
                sec.error("url", "ws:// sends the token and events in clear text; use wss:// "
                                 "or set uplink.allow_insecure: true (test benches only)")
        elif not one.startswith("wss://"):
            sec.error("url", f"must start with wss:// (or ws://), got {show(one)}")
    files = {name: _resolve(sec.optional_string(name), base)
             for name in ("ca_file", "client_cert_file", "client_key_file", "token_file")}
    token_env = sec.optional_string("token_env", d.token_env)
    cfg = UplinkConfig(
        url=url,
        urls=urls if len(urls) > 1 else (),
        allow_insecure=allow_insecure,
        ca_file=files["ca_file"],
        client_cert_file=files["client_cert_file"],
        client_key_file=files["client_key_file"],
        token_file=files["token_file"],
        token_env=token_env,
        window=sec.integer("window", d.window, lo=1, hi=100_000),
        batch=sec.integer("batch", d.batch, lo=1, hi=100_000),
        reconnect_max_delay_s=sec.number("reconnect_max_delay_s", d.reconnect_max_delay_s,
                                         lo=1, hi=3600),
        heartbeat_interval_s=sec.number("heartbeat_interval_s", d.heartbeat_interval_s,
                                        lo=1, hi=600),
        heartbeat_timeout_s=sec.number("heartbeat_timeout_s", d.heartbeat_timeout_s,
                                       lo=1, hi=600),
    )
    if cfg.batch > cfg.window:
        sec.error("batch", f"must not exceed uplink.window ({cfg.window}), got {cfg.batch}")
    if (cfg.client_cert_file is None) != (cfg.client_key_file is None):
        sec.error("client_key_file" if cfg.client_key_file is None else "client_cert_file",
                  "client_cert_file and client_key_file go together")
    if cfg.token_file is not None and cfg.token_env is not None:
        sec.error("token_env", "set uplink.token_file or uplink.token_env, not both")
    if url is not None and cfg.token_file is None and cfg.token_env is None:
        sec.error("token_file", "the hub needs a token: set uplink.token_file or "
                                "uplink.token_env")
    if cfg.token_env is not None and cfg.token_env not in os.environ:
        sec.warn("token_env", f"environment variable {cfg.token_env} is not set here; the "
                              "daemon needs it at start")
    for name in ("ca_file", "client_cert_file"):
        check_file(sec, name, files[name])
    check_file(sec, "client_key_file", cfg.client_key_file, secret=True)
    check_file(sec, "token_file", cfg.token_file, secret=True)
    sec.finish()
    return cfg


def _parse_actions(data: Any, problems: list[Problem], base: Path | None) -> ActionsConfig:
    sec = Section(data, "actions", problems)
    d = ActionsConfig()
    cfg = ActionsConfig(
        hmac_key_file=_resolve(sec.optional_string("hmac_key_file"), base),
        replay_window_s=sec.number("replay_window_s", d.replay_window_s, lo=1, hi=86400),
        default_ttl_s=sec.number("default_ttl_s", d.default_ttl_s, lo=1, hi=86400),
    )
    check_file(sec, "hmac_key_file", cfg.hmac_key_file, secret=True)
    sec.finish()
    return cfg


def _parse_metrics(data: Any, problems: list[Problem]) -> MetricsConfig:
    sec = Section(data, "metrics", problems)
    d = MetricsConfig()
    cfg = MetricsConfig(
        enabled=sec.boolean("enabled", d.enabled),
        address=sec.string("address", d.address),
        port=sec.integer("port", d.port, lo=0, hi=65535),
    )
    sec.finish()
    return cfg


def _parse_logging(data: Any, problems: list[Problem]) -> LoggingConfig:
    sec = Section(data, "logging", problems)
    d = LoggingConfig()
    cfg = LoggingConfig(
        level=sec.choice("level", d.level, LOG_LEVELS),
        format=sec.choice("format", d.format, LOG_FORMATS),
    )
    sec.finish()
    return cfg


def parse_config(data: Any, *, base_dir: Path | None = None, source: str = "") -> Config:
    """Build a :class:`Config` from already-parsed YAML; raise :class:`ConfigError`."""
    problems: list[Problem] = []
    top = Section(data, "", problems)
    terminal_id = top.raw("terminal_id")
    if terminal_id is MISSING or terminal_id is None:
        problems.append(Problem("terminal_id", "required: this terminal's id on the hub, "
                                               "e.g. \"EGM-0001\""))
        terminal_id = ""
    elif not isinstance(terminal_id, str) or not TERMINAL_ID_RE.fullmatch(terminal_id):
        problems.append(Problem("terminal_id", "must be 1 to 64 characters from "
                                               f"A-Z a-z 0-9 _ . : -, got {show(terminal_id)}"))
        terminal_id = ""
    control_socket = _resolve(top.optional_string("control_socket", _default_control_socket()),
                              base_dir)
    if control_socket is not None and len(os.fsencode(control_socket)) > MAX_SOCKET_PATH_BYTES:
        problems.append(Problem("control_socket", f"{control_socket} is "
                                f"{len(os.fsencode(control_socket))} bytes; a Unix socket path "
                                f"holds at most {MAX_SOCKET_PATH_BYTES}: choose a shorter one"))
    cfg = Config(
        terminal_id=terminal_id,
        serial=_parse_serial(top.raw("serial"), problems),
        machines=_parse_machines(top.raw("machines"), problems),
        poll=_parse_poll(top.raw("poll"), problems),
        card_reader=_parse_card_reader(top.raw("card_reader"), problems),
        outbox=_parse_outbox(top.raw("outbox"), problems, base_dir),
        uplink=_parse_uplink(top.raw("uplink"), problems, base_dir),
        actions=_parse_actions(top.raw("actions"), problems, base_dir),
        metrics=_parse_metrics(top.raw("metrics"), problems),
        logging=_parse_logging(top.raw("logging"), problems),
        control_socket=control_socket,
        source=source,
    )
    top.finish()
    if cfg.poll.sync_address in {m.address for m in cfg.machines if m.address}:
        problems.append(Problem("poll.sync_address", f"{cfg.poll.sync_address} is a machine's "
                                "address: the sync poll must go to an address not on the line"))
    if cfg.uplink.url is None:
        problems.append(Problem("uplink.url", "not set: events are kept in the outbox only",
                                "warning"))
    if any(p.severity == "error" for p in problems):
        raise ConfigError(problems)
    return dataclasses.replace(cfg, warnings=tuple(problems))


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate a YAML config file; raise :class:`ConfigError` with every problem."""
    file = Path(path)
    return parse_config(load_yaml(file), base_dir=file.resolve().parent, source=str(file))


# ---------------------------------------------------------------------------- helpers


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            if f.name in ("source", "warnings"):
                continue
            sub = getattr(value, f.name)
            key = f"{prefix}{f.name}"
            if dataclasses.is_dataclass(sub):
                out.update(_flatten(sub, key + "."))
            elif isinstance(sub, tuple) and sub and dataclasses.is_dataclass(sub[0]):
                out[key] = [dataclasses.asdict(x) for x in sub]
            else:
                out[key] = list(sub) if isinstance(sub, tuple) else sub
    return out


def reloadable_diff(old: Config, new: Config) -> tuple[list[str], list[str]]:
    """Key paths that changed, split into (apply on SIGHUP, need a restart)."""
    a, b = _flatten(old), _flatten(new)
    changed = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    reloadable = [k for k in changed
                  if any(k == r or (r.endswith(".") and k.startswith(r)) for r in RELOADABLE)]
    restart = [k for k in changed if k not in reloadable]
    return reloadable, restart


def config_hash(config: Config) -> str:
    """Short sha256 of the normalised config (it holds no secrets, only where they are)."""
    import hashlib  # here: the line process imports this module and never hashes (OpenSSL)

    text = json.dumps(_flatten(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def read_token(config: Config) -> str:
    """The hub token from ``uplink.token_file`` or ``uplink.token_env``; never logged."""
    up = config.uplink
    if up.token_file is not None:
        try:
            token = Path(up.token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError([Problem("uplink.token_file",
                                       f"cannot read {up.token_file}: {exc.strerror}")]) from exc
        except UnicodeDecodeError:
            raise ConfigError([Problem("uplink.token_file", f"{up.token_file} is not UTF-8 "
                                       "text: a token is one line of text")]) from None
        if not token:
            raise ConfigError([Problem("uplink.token_file", f"{up.token_file} is empty")])
        return token
    if up.token_env is not None:
        token = os.environ.get(up.token_env, "").strip()
        if not token:
            raise ConfigError([Problem("uplink.token_env",
                                       f"environment variable {up.token_env} is not set "
                                       "or empty")])
        return token
    raise ConfigError([Problem("uplink.token_file", "no token configured: set "
                                                    "uplink.token_file or uplink.token_env")])


def read_hmac_key(config: Config) -> bytes | None:
    """The action-signing key (``actions.hmac_key_file``), or None when actions are unsigned."""
    path = config.actions.hmac_key_file
    if path is None:
        return None
    try:
        key = Path(path).read_bytes().strip()
    except OSError as exc:
        raise ConfigError([Problem("actions.hmac_key_file",
                                   f"cannot read {path}: {exc.strerror}")]) from exc
    if len(key) < 16:
        raise ConfigError([Problem("actions.hmac_key_file",
                                   f"{path} holds {len(key)} bytes; use at least 16")])
    return key
