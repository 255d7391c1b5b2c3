"""Transports over a byte stream with a file descriptor (pty, TCP), carrying the 9-bit
encoding of ``drivers.ninebit``.

Reads wait in ``select()`` on the stream and on a wake-up pipe, so ``close()`` from another
thread ends a pending read at once.
"""

from __future__ import annotations

import abc
import logging
import select

from drivers.base import (
    TransportEOFError,
    TransportIOError,
    Word,
    check_frame,
    frame_words,
)
from drivers.ninebit import NineBitDecoder, encode
from drivers.selectable import SelectableTransport

log = logging.getLogger(__name__)

_CHUNK = 4096


class StreamTransport(SelectableTransport):
    """Shared machinery; subclasses say how to read, write and close their stream."""

    def __init__(self, name: str, *, write_timeout: float = 2.0) -> None:
        self.name = name
        self.write_timeout = write_timeout
        self._decoder = NineBitDecoder(name)
        self._init_waiting()

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
        self._write_all(memoryview(encode(words)), self._send, self._fileno())

    def _wait_and_read(self, remaining: float) -> bytes:
        try:
            ready, _, _ = select.select([self._fileno(), self._wake_r], [], [], remaining)
        except (OSError, ValueError) as exc:
            self._check_open()
            raise TransportIOError(self.name, f"wait failed: {exc}") from exc
        self._check_open()
        if self._fileno() not in ready:
            return b""
        return self._recv_or_raise() or b""

    def _accept(self, data: bytes) -> None:
        self._pending.extend(self._decoder.feed(data))

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

    def _release_device(self) -> None:
        self._close_stream()

    # -- helpers ------------------------------------------------------------------------

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
