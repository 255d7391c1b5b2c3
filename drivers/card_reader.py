"""A serial player/employee card reader (ASCII lines, 8N1), reporting insert and remove.

The line format and its options are in ``drivers.card_format``; this module only owns the
port. Any pyserial URL works (a device path, ``rfc2217://``, ``socket://``, ``loop://``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

import serial

from drivers.base import TransportClosedError, TransportIOError
from drivers.card_format import (
    DEFAULT_CARD_PATTERN,
    DEFAULT_REMOVAL_PATTERN,
    CardEvent,
    CardLineParser,
)
from drivers.uart import open_port

__all__ = ["CardEvent", "CardReader"]

# How often a waiting poll rechecks its deadline and close().
_SLICE_S = 0.1


class CardReader:
    """Owns the reader's port. ``poll(deadline)`` blocks until at least one event or the
    deadline (then ``[]``); ``close()`` from another thread ends a pending poll."""

    def __init__(
        self,
        url: str,
        *,
        pattern: str = DEFAULT_CARD_PATTERN,
        player_prefixes: Iterable[str] = (),
        employee_prefixes: Iterable[str] = (),
        removal_pattern: str = DEFAULT_REMOVAL_PATTERN,
        baudrate: int = 9600,
    ) -> None:
        self.name = url
        self._parser = CardLineParser(
            pattern=pattern,
            player_prefixes=player_prefixes,
            employee_prefixes=employee_prefixes,
            removal_pattern=removal_pattern,
            device=url,
        )
        self._events: deque[CardEvent] = deque()
        self._closed = False
        self._lock = threading.Lock()
        self._port: Any = _open(url, baudrate)

    @property
    def garbage_lines(self) -> int:
        """Lines ignored so far (no pattern matched, not ASCII, too long, unknown prefix)."""
        return self._parser.garbage_lines

    @property
    def current(self) -> CardEvent | None:
        """The ``inserted`` event of the card in the reader, if any."""
        return self._parser.current

    def poll(self, deadline: float) -> list[CardEvent]:
        if self._closed:
            raise TransportClosedError(self.name, "card reader is closed")
        with self._lock:
            while not self._events:
                if self._closed:
                    raise TransportClosedError(self.name, "card reader is closed")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._events.extend(self._parser.feed(self._read(remaining)))
            events = list(self._events)
            self._events.clear()
            return events

    def _read(self, remaining: float) -> bytes:
        port = self._port
        try:
            wait = min(remaining, _SLICE_S)
            if port.timeout != wait:
                port.timeout = wait
            first = port.read(1)
            if not first:
                return b""
            waiting = port.in_waiting
            return bytes(first) + (bytes(port.read(waiting)) if waiting else b"")
        except (serial.SerialException, OSError, TypeError, ValueError) as exc:
            if self._closed:
                raise TransportClosedError(self.name, "card reader is closed") from exc
            raise TransportIOError(self.name, f"read failed: {exc}") from exc

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._port.cancel_read()
        got = self._lock.acquire(timeout=2 * _SLICE_S + 1.0)
        try:
            with contextlib.suppress(Exception):
                self._port.close()
        finally:
            if got:
                self._lock.release()

    def __enter__(self) -> CardReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _open(url: str, baudrate: int) -> Any:
    # a card reader is an ordinary 8N1 serial device, not opened exclusively
    return open_port(url, baudrate=baudrate, parity=serial.PARITY_NONE, timeout=_SLICE_S,
                     exclusive=False)
