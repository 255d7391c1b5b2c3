"""Logging set-up: JSON lines for journald, a readable format on a terminal, secrets masked.

Under systemd the daemon writes one JSON object per line to stdout; journald stores it and
``journalctl -u slot-agent -o cat | jq`` reads it back. Each line is prefixed with the syslog
priority (``<6>``), which journald strips and stores as the entry's priority, so
``journalctl -p warning`` works too. On a terminal the same records read as plain text.

Secrets never reach the output: values registered with :func:`register_secret` (the hub
token), anything after ``Bearer`` and the value of an ``Authorization`` header are replaced
by ``***`` in the message, in ``extra`` fields and in tracebacks.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from sas_protocol.hexdump import elided_hex

__all__ = [
    "MASK",
    "HumanFormatter",
    "JsonFormatter",
    "RedactingFilter",
    "redact",
    "register_secret",
    "set_level",
    "setup_logging",
    "under_systemd",
]

LogFormat = Literal["json", "human", "auto"]

MASK = "***"

_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
) | {"message", "asctime", "taskName"}

# "Bearer <token>" anywhere, and the value of an Authorization header in any spelling
# (``Authorization: x``, ``'Authorization': 'x'``, ``authorization=x``).
_BEARER_RE = re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9\-._~+/]+=*")
_AUTH_HEADER_RE = re.compile(r"""(?i)(\bauthorization['"]?\s*[:=]\s*['"]?)([^'",\r\n}]+)""")

_secrets: set[str] = set()
_secrets_lock = threading.Lock()

# The handler installed by setup_logging, so a second call replaces it instead of doubling
# every line.
_installed: logging.Handler | None = None


def register_secret(value: str) -> None:
    """Mask ``value`` wherever it would appear in a log line from now on.

    Call it as soon as a secret is loaded (the hub token), before anything can log it.
    Surrounding whitespace is ignored; an empty value is refused because masking the empty
    string is meaningless.
    """
    value = value.strip()
    if not value:
        raise ValueError("register_secret: the secret value is empty")
    with _secrets_lock:
        _secrets.add(value)


def _clear_secrets() -> None:
    """Forget registered secrets (tests only)."""
    with _secrets_lock:
        _secrets.clear()


def redact(text: str) -> str:
    """Return ``text`` with registered secrets, bearer tokens and Authorization values masked."""
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)  # longest first: no partial leaks
    for secret in secrets:
        # Repeat while it shrinks the text: masking can join pieces into the secret again.
        while secret in text:
            shorter = text.replace(secret, MASK)
            if len(shorter) >= len(text):
                text = shorter
                break
            text = shorter
    text = _AUTH_HEADER_RE.sub(lambda m: m.group(1) + MASK, text)
    return _BEARER_RE.sub(lambda m: m.group(1) + MASK, text)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bytes | bytearray):
        return redact(elided_hex(bytes(value)))
    if isinstance(value, Mapping):
        return {str(k): _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))


class RedactingFilter(logging.Filter):
    """Masks secrets in the message and the ``extra`` fields of every record it passes.

    The message is rendered (``msg % args``) before masking, so a secret passed as an
    argument is caught too. Formatters mask tracebacks separately.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        for key, value in list(vars(record).items()):
            if key not in _RECORD_ATTRS:
                setattr(record, key, _redact_value(value))
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRS}


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# syslog priorities for journald's SyslogLevelPrefix= (on by default)
_SYSLOG_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


def _priority(levelno: int) -> int:
    for threshold in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO):
        if levelno >= threshold:
            return _SYSLOG_PRIORITY[threshold]
    return _SYSLOG_PRIORITY[logging.DEBUG]


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``msg``, the ``extra`` fields,
    and ``exc`` (the traceback) when there is one."""

    def __init__(self, *, syslog_prefix: bool = False) -> None:
        super().__init__()
        self.syslog_prefix = syslog_prefix

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key, value in _extras(record).items():
            if key not in entry:
                entry[key] = _redact_value(value)
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = redact(self.formatStack(record.stack_info))
        line = json.dumps(entry, ensure_ascii=False, default=str)
        return f"<{_priority(record.levelno)}>{line}" if self.syslog_prefix else line


class HumanFormatter(logging.Formatter):
    """``2026-11-25 21:45:44.123 INFO    agent.line: link up address=1`` for people."""

    def format(self, record: logging.LogRecord) -> str:
        ts = _timestamp(record).replace("T", " ").rstrip("Z")
        text = f"{ts} {record.levelname:<7} {record.name}: {record.getMessage()}"
        extras = _extras(record)
        if extras:
            text += " " + " ".join(f"{k}={_redact_value(v)}" for k, v in extras.items())
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            text += "\n" + self.formatStack(record.stack_info)
        return redact(text)


def under_systemd(environ: Mapping[str, str] | None = None) -> bool:
    """True when started by systemd (it sets ``INVOCATION_ID``; ``JOURNAL_STREAM`` when stdout
    or stderr is connected to the journal). The CLI then leaves out progress output."""
    env = os.environ if environ is None else environ
    return bool(env.get("INVOCATION_ID") or env.get("JOURNAL_STREAM"))


def _level_number(level: str) -> int:
    name = level.strip().upper()
    if name == "WARN":
        name = "WARNING"
    if name not in _LEVELS:
        raise ValueError(f"unknown log level {level!r}: expected one of {', '.join(_LEVELS)}")
    return logging.getLevelNamesMapping()[name]


def setup_logging(
    level: str = "INFO",
    fmt: LogFormat = "auto",
    stream: TextIO | None = None,
    *,
    syslog_prefix: bool | None = None,
) -> logging.Handler:
    """Configure the root logger: one handler on ``stream`` (stdout by default).

    ``fmt="auto"`` chooses the human format when ``stream`` is a terminal, JSON otherwise.
    ``syslog_prefix`` (default: :func:`under_systemd`) prefixes JSON lines with ``<N>`` so
    journald records the level. Calling it again replaces the previous handler. Raises
    ``ValueError`` on an unknown level or format. Returns the installed handler.
    """
    global _installed
    if stream is None:
        stream = sys.stdout
    if fmt not in ("json", "human", "auto"):
        raise ValueError(f"unknown log format {fmt!r}: expected json, human or auto")
    levelno = _level_number(level)
    if fmt == "auto":
        isatty = getattr(stream, "isatty", None)
        fmt = "human" if isatty is not None and isatty() else "json"
    if syslog_prefix is None:
        syslog_prefix = under_systemd()

    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(
        JsonFormatter(syslog_prefix=syslog_prefix) if fmt == "json" else HumanFormatter()
    )
    root = logging.getLogger()
    if _installed is not None:
        root.removeHandler(_installed)
    root.addHandler(handler)
    root.setLevel(levelno)
    _installed = handler
    return handler


def set_level(level: str) -> None:
    """Change the root level at runtime (SIGHUP reload). Raises ``ValueError`` if unknown."""
    logging.getLogger().setLevel(_level_number(level))
