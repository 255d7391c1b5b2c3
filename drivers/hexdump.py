"""Hex rendering of bad bytes for log lines: long runs are elided, never dumped whole."""

from __future__ import annotations

from collections.abc import Iterable


def elided_hex(data: bytes | bytearray | memoryview | Iterable[int], limit: int = 32) -> str:
    """Render ``data`` as spaced hex, keeping at most ``limit`` bytes.

    Longer input keeps its head and tail around a count of what was left out, so a log line
    stays short while still showing where a bad frame starts and ends::

        >>> elided_hex(bytes(range(40)), limit=8)
        '00 01 02 03 … (32 bytes elided) … 24 25 26 27'
    """
    raw = bytes(data)
    if limit < 2:
        raise ValueError(f"limit must be at least 2, not {limit}")
    if len(raw) <= limit:
        return raw.hex(" ")
    head = limit // 2
    tail = limit - head
    elided = len(raw) - limit
    return f"{raw[:head].hex(' ')} … ({elided} bytes elided) … {raw[-tail:].hex(' ')}"
