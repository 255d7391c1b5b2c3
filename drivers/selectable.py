"""What the transports that wait in ``select()`` share: the words decoded ahead of the
caller, the wake pipe that ends a wait when another thread closes the transport, the read
loop with its deadline rule, the write loop of a non-blocking descriptor, and the close that
waits for a read or a write in progress.

StreamTransport (TCP, pty), UartTransport and the emulator's parity pty differ only in how
they wait for bytes, decode them and release their device; each says that in three methods.
"""

from __future__ import annotations

import abc
import contextlib
import os
import select
import threading
import time
from collections import deque
from collections.abc import Callable

from drivers.base import Transport, TransportClosedError, TransportIOError, Word

__all__ = ["SelectableTransport", "WakePipe"]

#: How long close() waits for a read or write in progress to notice the wake pipe.
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
    #: how long a write may wait for the peer to read (seconds)
    write_timeout: float = 2.0

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
                if not data and remaining <= 0:
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

    def _write_all(self, data: memoryview, send: Callable[[memoryview], int],
                   fileno: int) -> None:
        """Write all of ``data`` with ``send`` (some of it, non-blocking: the count written),
        waiting in ``select()`` for ``fileno`` to take more, at most ``write_timeout`` in all;
        a close from another thread ends the wait.

        It holds ``_io_lock`` as a read does, so that such a close waits for the write to
        notice it (at once: the wake pipe ends the wait) before it releases the descriptor:
        a close that did not wait could release it between the look at ``_closed`` and
        ``send``, which then wrote to a closed descriptor, or to whatever file or socket
        had just been given the same number."""
        with self._io_lock:
            self._check_open()  # a close may have finished while this waited for the lock
            deadline = time.monotonic() + self.write_timeout
            while data:
                try:
                    sent = send(data)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError as exc:
                    self._check_open()
                    raise TransportIOError(self.name, f"write failed: {exc}") from exc
                data = data[sent:]
                if not data:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TransportIOError(
                        self.name,
                        f"write timed out after {self.write_timeout} s (peer not reading)")
                select.select([self._wake_r], [fileno], [], remaining)
                self._check_open()

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
