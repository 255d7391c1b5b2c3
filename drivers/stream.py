"""Transports over a byte stream with a file descriptor (pty, TCP), carrying the 9-bit
encoding of ``drivers.ninebit``.

Reads wait in ``select()`` on the stream and on a wake-up pipe, so ``close()`` from another
thread ends a pending read at once.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import os
import select
import threading
import time
from collections import deque

from drivers.base import (
    Transport,
    TransportClosedError,
    TransportEOFError,
    TransportIOError,
    Word,
    check_frame,
    frame_words,
)
from drivers.ninebit import NineBitDecoder, encode

log = logging.getLogger(__name__)

_CHUNK = 4096
# How long close() waits for a reader in another thread to leave select().
_CLOSE_GRACE_S = 2.0


class StreamTransport(Transport):
    """Shared machinery; subclasses say how to read, write and close their stream."""

    def __init__(self, name: str, *, write_timeout: float = 2.0) -> None:
        self.name = name
        self.write_timeout = write_timeout
        self._decoder = NineBitDecoder(name)
        self._pending: deque[Word] = deque()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._closed = False
        self._io_lock = threading.Lock()

    # -- what a subclass provides -------------------------------------------------------

    @abc.abstractmethod
    def _fileno(self) -> int: ...

    @abc.abstractmethod
    def _recv(self) -> bytes:
        """Up to _CHUNK bytes from a readable, non-blocking stream; b"" at end of stream."""

    @abc.abstractmethod
    def _send(self, data: memoryview) -> int:
        """Write some of ``data`` to a non-blocking stream; the count written."""

    @abc.abstractmethod
    def _close_stream(self) -> None: ...

    # -- the Transport contract -----------------------------------------------------------

    @property
    def decode_errors(self) -> int:
        """Invalid 9-bit escape sequences received so far."""
        return self._decoder.errors

    def write(self, frame: bytes, *, wakeup: bool) -> None:
        check_frame(self.name, frame, wakeup)
        self.write_words(frame_words(frame, wakeup=wakeup))

    def write_words(self, words: list[Word]) -> None:
        """Send arbitrary words (the 9-bit encoding can carry a wakeup bit anywhere)."""
        self._check_open()
        data = memoryview(encode(words))
        deadline = time.monotonic() + self.write_timeout
        while data:
            try:
                sent = self._send(data)
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
                    self.name, f"write timed out after {self.write_timeout} s (peer not reading)"
                )
            select.select([self._wake_r], [self._fileno()], [], remaining)
            self._check_open()

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
                try:
                    ready, _, _ = select.select([self._fileno(), self._wake_r], [], [], remaining)
                except (OSError, ValueError) as exc:
                    self._check_open()
                    raise TransportIOError(self.name, f"wait failed: {exc}") from exc
                self._check_open()
                if self._fileno() not in ready:
                    if remaining <= 0:
                        return []
                    continue
                data = self._recv_or_raise()
                if data is None:
                    continue
                self._pending.extend(self._decoder.feed(data))
                if self._pending:
                    return self._take(max_words)

    def discard_input(self) -> None:
        self._check_open()
        with self._io_lock:
            while True:
                ready, _, _ = select.select([self._fileno()], [], [], 0)
                if not ready:
                    break
                if self._recv_or_raise() is None:
                    break
            self._pending.clear()
            self._decoder.reset()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"\0")
        got = self._io_lock.acquire(timeout=_CLOSE_GRACE_S)
        try:
            self._close_stream()
            os.close(self._wake_r)
            os.close(self._wake_w)
        finally:
            if got:
                self._io_lock.release()

    # -- helpers ------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise TransportClosedError(self.name, "transport is closed")

    def _take(self, max_words: int) -> list[Word]:
        count = min(max_words, len(self._pending))
        return [self._pending.popleft() for _ in range(count)]

    def _recv_or_raise(self) -> bytes | None:
        try:
            data = self._recv()
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            self._check_open()
            # A pty whose other side has gone reads EIO; a reset TCP peer ECONNRESET.
            raise TransportEOFError(self.name, f"peer gone: {exc}") from exc
        if not data:
            raise TransportEOFError(self.name, "peer closed the connection")
        return data
