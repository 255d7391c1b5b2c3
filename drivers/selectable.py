"""What the transports that wait in ``select()`` share: the words decoded ahead of the
caller, the wake pipe that ends a wait when another thread closes the transport, the read
loop with its deadline rule, and the close that waits for a read in progress.

StreamTransport (TCP, pty) and UartTransport differ only in how they wait for bytes, decode
them and release their device; each says that in three methods.
"""

from __future__ import annotations

import abc
import contextlib
import os
import threading
import time
from collections import deque

from drivers.base import Transport, TransportClosedError, Word

__all__ = ["SelectableTransport", "WakePipe"]

#: How long close() waits for a read in progress to notice the wake pipe.
CLOSE_GRACE_S = 2.0


class WakePipe:
    """A pipe whose read end joins a ``select()``: :meth:`wake` ends the wait from another
    thread (closing a transport or a listener while a reader waits)."""

    def __init__(self) -> None:
        self.fileno, self._w = os.pipe()
        os.set_blocking(self.fileno, False)
        os.set_blocking(self._w, False)

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._w, b"\0")

    def close(self) -> None:
        for fd in (self.fileno, self._w):
            with contextlib.suppress(OSError):
                os.close(fd)


class SelectableTransport(Transport):
    """A transport whose reads block in ``select()`` on its descriptor and a wake pipe."""

    name: str

    def _init_waiting(self) -> None:
        """Call from ``__init__`` before anything can fail after it (``_release`` closes the
        pipe)."""
        self._pending: deque[Word] = deque()
        self._closed = False
        self._io_lock = threading.Lock()
        self._wake = WakePipe()
        self._wake_r = self._wake.fileno

    # -- what a subclass provides -------------------------------------------------------

    @abc.abstractmethod
    def _wait_and_read(self, remaining: float) -> bytes:
        """Wait at most ``remaining`` seconds (also on ``self._wake_r``); the bytes that
        came, or b"" when none did."""

    @abc.abstractmethod
    def _accept(self, data: bytes) -> None:
        """Decode ``data`` into ``self._pending``."""

    @abc.abstractmethod
    def _release_device(self) -> None:
        """Close the device itself (the wake pipe is closed here)."""

    # -- the shared parts of the Transport contract -------------------------------------

    def read(self, deadline: float, max_words: int = 512) -> list[Word]:
        if max_words < 1:
            raise ValueError(f"max_words must be at least 1, not {max_words}")
        self._check_open()
        if self._pending:
            return self._take(max_words)
        with self._io_lock:
            while True:
                self._check_open()
                # A deadline already passed still gets one look at the line: a reply that
                # arrived within its window must not become a timeout because the caller
                # was scheduled late.
                remaining = max(0.0, deadline - time.monotonic())
                data = self._wait_and_read(remaining)
                self._check_open()
                if data:
                    self._accept(data)
                    if self._pending:
                        return self._take(max_words)
                elif remaining <= 0:
                    return []

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake.wake()
        got = self._io_lock.acquire(timeout=CLOSE_GRACE_S)
        try:
            self._release()
        finally:
            if got:
                self._io_lock.release()

    # -- helpers ------------------------------------------------------------------------

    def _release(self) -> None:
        with contextlib.suppress(Exception):
            self._release_device()
        self._wake.close()

    def _check_open(self) -> None:
        if self._closed:
            raise TransportClosedError(self.name, "transport is closed")

    def _take(self, max_words: int) -> list[Word]:
        count = min(max_words, len(self._pending))
        return [self._pending.popleft() for _ in range(count)]
