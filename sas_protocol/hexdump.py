"""The one hex rendering of bytes for messages and log lines: bounded, never dumped whole.

Every package prints bad bytes this way (protocol errors, driver faults, the agent's log
lines), so a technician reads one format everywhere. It lives at the bottom of the import
floors (docs/architecture.md) so that drivers and the agent can share it.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["elided_hex"]


def elided_hex(data: bytes | bytearray | memoryview | Iterable[int], limit: int = 32) -> str:
    """Render ``data`` as spaced lowercase hex, keeping at most ``limit`` bytes.

    Longer input keeps its head and tail around a count of what was left out, so a log line
    stays short while still showing where a bad frame starts and ends::

        >>> elided_hex(bytes(range(40)), limit=8)
        '00 01 02 03 … (32 bytes elided) … 24 25 26 27'

    Nothing at all reads ``(empty)``, so an empty frame is visible in a log line.
    """
    raw = bytes(data)
    if limit < 2:
        raise ValueError(f"limit must be at least 2, not {limit}")
    if not raw:
        return "(empty)"
    if len(raw) <= limit:
        return raw.hex(" ")
    head = limit // 2
    tail = limit - head
    elided = len(raw) - limit
    return f"{raw[:head].hex(' ')} … ({elided} bytes elided) … {raw[-tail:].hex(' ')}"
