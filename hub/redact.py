"""No secret in any log line, at any level, the libraries' own loggers included.

websockets logs every handshake header at DEBUG (``Authorization: Bearer <token>``) and
every frame's text (an ``auth`` message carries the token). docs/protocol.md §11 says
tokens are never logged: a filter on the loggers that can carry them rewrites the message
of every record, replacing what follows ``Authorization`` and the value of a ``token`` field
with ``[redacted]``. The hub's own code logs names, never tokens; the action key is never
logged at all (it is read once, hub/server.py).
"""

from __future__ import annotations

import logging
import re

REDACTED = "[redacted]"

_PATTERNS = (
    # An Authorization header, as a header line or a repr: the scheme is kept, the rest goes.
    re.compile(r"(?i)(authorization['\"]?\s*[:=,]\s*['\"]?(?:bearer\s+|basic\s+)?)"
               r"[^\s'\",)\]}]+"),
    # A "token" field of a JSON text, also inside a repr that escapes the quotes.
    re.compile(r"""(?i)(\\*["']?token\\*["']?\s*:\s*\\*["'])[^"'\\]+"""),
)

#: Loggers whose records may carry a token: websockets' own and the hub's.
LOGGERS = ("websockets", "websockets.server", "websockets.client", "hub", "hub.ingest",
           "hub.store")


def redact(text: str) -> str:
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites each record's message with :func:`redact` (never drops a record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True  # a broken record is logging's business, not ours
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_FILTER = RedactingFilter()


def install() -> None:
    """Attach the filter to :data:`LOGGERS` (idempotent). A filter on a logger applies to the
    records logged through that logger, whatever handler (file, journal, test capture)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
