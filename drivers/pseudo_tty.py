"""Pseudo-terminal transports carrying the 9-bit encoding (a pty has no 9th bit).

``open_pty()`` makes a pair for the emulator: it keeps the master end and hands out the
slave path, which the agent opens as ``pty:/dev/pts/N``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import termios

from drivers.base import TransportOpenError
from drivers.stream import StreamTransport

__all__ = ["PtyTransport", "make_raw", "open_pty", "write_dropping_unread"]


def make_raw(fd: int) -> None:
    """8-bit clean, no echo, no line editing, no signals: bytes pass untouched."""
    attrs = termios.tcgetattr(fd)
    attrs[0] &= ~(
        termios.IGNBRK
        | termios.BRKINT
        | termios.PARMRK
        | termios.ISTRIP
        | termios.INLCR
        | termios.IGNCR
        | termios.ICRNL
        | termios.IXON
        | termios.IXOFF
        | termios.INPCK
    )
    attrs[1] &= ~termios.OPOST
    attrs[2] &= ~(termios.CSIZE | termios.PARENB)
    attrs[2] |= termios.CS8
    attrs[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
    attrs[6][termios.VMIN] = 1
    attrs[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


class PtyTransport(StreamTransport):
    """A pty end (either side). ``keep_fds`` are held open and closed with the transport.

    ``drop_unread`` (the master of :func:`open_pty`, whose first kept descriptor is the
    slave): a write that finds the other side's input queue full throws away what is queued
    there instead of waiting, as a serial wire loses what nobody reads. A machine's chirps
    (SAS §4.2: every 200 ms while no host polls) otherwise filled the queue of a pty nobody
    had opened in about 15 minutes, and the write timed out and ended the link for good.
    """

    def __init__(
        self, name: str, fd: int, *, keep_fds: tuple[int, ...] = (), write_timeout: float = 2.0,
        drop_unread: bool = False,
    ) -> None:
        super().__init__(name, write_timeout=write_timeout)
        self._fd = fd
        self._keep_fds = keep_fds
        self._drop_unread = drop_unread and bool(keep_fds)
        #: times the other side's unread input was thrown away (``drop_unread``)
        self.dropped_unread = 0
        os.set_blocking(fd, False)

    def _fileno(self) -> int:
        return self._fd

    def _recv(self) -> bytes:
        return os.read(self._fd, 4096)

    def _send(self, data: memoryview) -> int:
        if not self._drop_unread:
            return os.write(self._fd, data)
        sent, dropped = write_dropping_unread(self._fd, self._keep_fds[0], data)
        self.dropped_unread += dropped
        return sent

    def _close_stream(self) -> None:
        for fd in (self._fd, *self._keep_fds):
            with contextlib.suppress(OSError):
                os.close(fd)


def write_dropping_unread(master: int, slave: int, data: memoryview) -> tuple[int, bool]:
    """Some of ``data`` to a pty's non-blocking ``master``; when the input queue of its
    ``slave`` is full (nobody reads it), what is queued there is thrown away first, as a
    serial wire loses what nobody reads (``PtyTransport``'s ``drop_unread``). The count
    written, and whether the queue was thrown away."""
    try:
        return os.write(master, data), False
    except BlockingIOError:
        pass
    termios.tcflush(slave, termios.TCIFLUSH)
    return os.write(master, data), True


def open_pty_path(path: str, *, write_timeout: float = 2.0) -> PtyTransport:
    """Open an existing pty slave (or any tty) by path, in raw mode."""
    name = f"pty:{path}"
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:
        hint = {
            errno.ENOENT: "no such device; is the emulator running and is the path current?",
            errno.EACCES: "permission denied; the user needs read/write access to the device",
        }.get(exc.errno or 0, "")
        raise TransportOpenError(name, f"cannot open: {exc.strerror}. {hint}".strip()) from exc
    try:
        make_raw(fd)
    except termios.error as exc:
        os.close(fd)
        raise TransportOpenError(name, f"not a terminal: {exc}") from exc
    return PtyTransport(name, fd, write_timeout=write_timeout)


def open_pty(*, write_timeout: float = 2.0) -> tuple[PtyTransport, str]:
    """A new pty: ``(transport on the master side, slave path for the other program)``.

    The master side keeps a slave descriptor open so that it never reads EIO while no
    program has the slave open; bytes written before the agent connects wait in the slave's
    input queue, and when that is full, a write throws them away rather than wait
    (``PtyTransport``'s ``drop_unread``): what nobody reads is lost, as on a wire.
    """
    master, slave = os.openpty()
    make_raw(slave)
    path = os.ttyname(slave)
    master_end = PtyTransport(
        f"pty-master:{path}", master, keep_fds=(slave,), write_timeout=write_timeout,
        drop_unread=True,
    )
    return master_end, path
