"""The machine side of a pty for third-party hosts that carry the wakeup bit in parity.

A host written for a real UART (pyserial, termios) sets **mark** parity, writes the address
byte, sets **space** (or even) parity and writes the rest (docs/sas-serial.md). A pty
carries no parity bit, but the host's termios settings can be read from the master side:
``open_parity_pty()`` takes each host byte's wakeup bit from the parity the host had set
when it wrote the byte, and writes replies unescaped (no 9-bit encoding).

The hard part is *when*: a parity switch (``tcsetattr``) takes effect at once, while the
bytes written before it reach the master later, so reading the settings after the bytes
arrive would often see the next parity. The host's output is therefore held stopped
(``tcflow(TCOOFF)`` on a slave descriptor this side keeps), so a host ``write()`` blocks,
and released in short *windows*: read the host's parity, let the pending write through,
close the window at the first byte. While its write is blocked the host cannot switch
parity, so every byte of the window has the parity read at its start: mark gives the
wakeup bit, anything else (space, even, odd, none) does not.

A window opens when the host changes its settings (the master is in packet mode and the
slave has ``EXTPROC`` set, so every ``tcsetattr`` is announced as ``TIOCPKT_IOCTL``) and,
for hosts that write twice without touching termios, every ``blind_interval`` seconds.
Every reply closes the window first: a host that waits for the answer meets a closed
window with its next address byte.

A host that switches parity and writes again before this side has closed the window (it
does not wait for a reply; this process is slow to be scheduled) gets bytes through under
a parity nobody read. The change is still announced, but packet mode reports a pending
change before any data, so the order of the change and the data is lost. Those bytes are
placed by framing the host's messages instead (``HostFramer``: a byte after a complete
message is an address byte) and counted in ``framed``.

Limits (measured on Linux, see docs/sas-serial.md): the pty driver drops ``PARENB``, so even
parity cannot be told from no parity (both mean "no wakeup"), and hosts that carry the 9th
bit by choosing even or odd parity per byte are not supported.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import select
import struct
import termios
import time
from typing import Any

from drivers.base import TransportEOFError, TransportIOError, Word, check_frame
from drivers.pseudo_tty import make_raw, write_dropping_unread
from drivers.selectable import SelectableTransport
from sas_protocol.messages.requests import request_length

__all__ = ["HostFramer", "ParityPtyTransport", "host_parity", "open_parity_pty"]

# Linux values (asm-generic/ioctls.h, termbits.h); Python's termios lacks some of them
TIOCPKT = getattr(termios, "TIOCPKT", 0x5420)
TIOCPKT_DATA = 0x00
TIOCPKT_IOCTL = 0x40
EXTPROC = getattr(termios, "EXTPROC", 0o200000)
CMSPAR = getattr(termios, "CMSPAR", 0o10000000000)
_CHUNK = 4096
# inotify(7): the host opening and closing the slave device
_IN_OPEN, _IN_CLOSE_WRITE, _IN_CLOSE_NOWRITE = 0x20, 0x08, 0x10
_INOTIFY_EVENT = struct.Struct("iIII")  # wd, mask, cookie, name length


def host_parity(cflag: int) -> str:
    """The parity a termios ``c_cflag`` read back from a pty means: ``mark``, ``space``,
    ``odd`` or ``even/none`` (a pty reads ``PARENB`` back clear, so even looks like none)."""
    if cflag & CMSPAR:
        return "mark" if cflag & termios.PARODD else "space"
    return "odd" if cflag & termios.PARODD else "even/none"


class HostFramer:
    """Follows the host's messages byte by byte, to place the address bytes whose parity
    nobody read: after a general poll (``80|addr``) or a complete long poll (its length from
    ``sas_protocol.messages.requests.request_length``) the next byte starts a message
    (SAS §2.3.2: the host sets the wakeup bit on the first byte of every message)."""

    def __init__(self) -> None:
        self._prefix: bytearray | None = None  # the message in progress
        self.framed = 0

    def feed(self, value: int, wakeup: bool | None) -> bool:
        """The wakeup bit of ``value``: ``wakeup`` if known, else decided by framing."""
        if wakeup is None:
            wakeup = self._prefix is None
            self.framed += 1
        if wakeup:
            # 80|addr is a whole general poll; an address (or 00, a broadcast) starts one
            self._prefix = None if value & 0x80 else bytearray((value,))
        elif self._prefix is not None:
            self._prefix.append(value)
            length = request_length(bytes(self._prefix))
            if length is not None and len(self._prefix) >= length:
                self._prefix = None
        return wakeup


class ParityPtyTransport(SelectableTransport):
    """The master end of a pty whose host signals the wakeup bit with mark/space parity.

    ``slave`` is a descriptor of the same pty kept open by this transport (for the flow
    control, and so that the master never reads EIO while no host has the slave open).
    Counters: ``releases`` (windows opened), ``framed`` (bytes placed by framing),
    ``extproc_restored`` (times the host had cleared ``EXTPROC`` and it was set again),
    ``sessions`` (hosts that closed the device), ``dropped_unread`` (below).

    A write that finds the host's input queue full throws away what is queued there instead
    of waiting, as a serial wire loses what nobody reads (``drivers.pseudo_tty.open_pty``'s
    master does the same): a machine's chirps (SAS §4.2: every 200 ms while no host polls)
    otherwise filled the queue of a pty nobody had opened, and the write timed out and ended
    the link for good.

    With ``path`` (the slave's), the device is watched with inotify: when the last host
    descriptor closes, the parity is set back to none, so that the next host can open it with
    space parity (a request for the parity a pty already has fails, see docs/sas-serial.md).
    """

    def __init__(
        self,
        name: str,
        master: int,
        slave: int,
        *,
        path: str | None = None,
        write_timeout: float = 2.0,
        window: float = 0.002,
        blind_interval: float = 0.05,
    ) -> None:
        self.name = name
        self.write_timeout = write_timeout
        self.window = window
        self.blind_interval = blind_interval
        self._master = master
        self._slave = slave
        self._framer = HostFramer()
        self._init_waiting()
        os.set_blocking(self._master, False)
        self.releases = 0
        self.extproc_restored = 0
        #: host sessions ended (the last host descriptor closed; its parity was cleared)
        self.sessions = 0
        #: times the host's unread input was thrown away (class docstring)
        self.dropped_unread = 0
        self._host_opens = 0
        self._watch: int | None = None
        # the gate: host output is stopped except while a window is open
        self._gate_open = False
        self._window_end = 0.0
        self._window_mark = False
        # no termios change announced since the window opened: its bytes have its parity
        self._window_certain = False
        self._first_pending = False  # the window's first byte has not arrived yet
        self._changed = False  # a termios change not yet answered by a window
        self._next_blind = time.monotonic() + blind_interval
        try:
            fcntl.ioctl(master, TIOCPKT, struct.pack("i", 1))
            self._ensure_extproc()
            termios.tcflow(slave, termios.TCOOFF)
        except (OSError, termios.error) as exc:
            self._wake.close()  # the caller closes master and slave
            raise TransportIOError(name, f"cannot set up parity mode: {exc}") from exc
        if path:
            self._watch = _watch_opens(path)

    @property
    def framed(self) -> int:
        """Bytes whose wakeup bit came from framing, not from a parity read."""
        return self._framer.framed

    # -- the Transport contract -----------------------------------------------------------

    def write(self, frame: bytes, *, wakeup: bool) -> None:
        """Write ``frame`` unescaped. The wakeup bit (a chirp) cannot be carried: a host
        with parity checking off sees a plain byte, as on a real line.

        The gate is closed under ``_io_lock``, as the write is: a close from another thread
        waits for both, so that neither the flow control nor the bytes go to a descriptor it
        has closed (or one given the same number since)."""
        check_frame(self.name, frame, wakeup)
        self._check_open()
        with self._io_lock:
            self._check_open()  # a close may have finished while this waited for the lock
            # the host speaks next: its next address byte must meet a closed window
            self._close_gate()
            self._write_locked(memoryview(frame), self._send, self._master)

    def _send(self, data: memoryview) -> int:
        """Some of ``data`` to the host; when its input queue is full, what is queued there
        is thrown away first (class docstring: ``dropped_unread``)."""
        sent, dropped = write_dropping_unread(self._master, self._slave, data)
        self.dropped_unread += dropped
        return sent

    def discard_input(self) -> None:
        self._check_open()
        with self._io_lock:
            self._check_open()  # a close may have finished while this waited for the lock
            self._drain()
            self._pending.clear()

    def _wait_and_read(self, remaining: float) -> bytes:
        """Move the gate, then wait for the host at most ``remaining`` seconds and no later
        than the gate's next move; the data of the packet that came (through the gate into
        ``_pending`` by :meth:`_accept`), b"" when none did."""
        now = time.monotonic()
        self._run_gate(now)  # may read what the last window let through
        if self._pending:
            return b""
        wake_at = self._window_end if self._gate_open else self._next_blind
        watched = [self._master, self._wake_r]
        if self._watch is not None:
            watched.append(self._watch)
        try:
            ready, _, _ = select.select(watched, [], [],
                                        max(0.0, min(remaining, wake_at - now)))
        except (OSError, ValueError) as exc:
            self._check_open()
            raise TransportIOError(self.name, f"wait failed: {exc}") from exc
        self._check_open()
        if self._watch is not None and self._watch in ready:
            self._host_opened_or_closed()
        if self._master in ready:
            return self._read_packet() or b""
        return b""

    def _accept(self, data: bytes) -> None:
        self._received(data)

    def _release_device(self) -> None:
        for fd in (self._master, self._slave, self._watch):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)

    # -- the gate -------------------------------------------------------------------------

    def _run_gate(self, now: float) -> None:
        if self._gate_open and now >= self._window_end:
            self._close_gate()
        if not self._gate_open and (self._changed or now >= self._next_blind):
            self._open_gate(now)

    def _open_gate(self, now: float) -> None:
        # what the last window let through belongs to it: take it before the next one
        self._drain()
        self._changed = False
        # the host's settings, read through the master (a pty master reads its slave's)
        attrs = self._termios(self._master)
        if not attrs[3] & EXTPROC:
            # the host replaced its local modes: without EXTPROC its parity switches are
            # not announced; set it again (only that bit changes)
            with contextlib.suppress(termios.error):
                self._ensure_extproc()
                self.extproc_restored += 1
        self._window_mark = host_parity(attrs[2]) == "mark"
        self._window_certain = True
        self._first_pending = True
        self._tcflow(termios.TCOON)
        self._gate_open = True
        self._window_end = now + self.window
        self.releases += 1

    def _close_gate(self) -> None:
        if self._gate_open:
            self._tcflow(termios.TCOOFF)
            self._gate_open = False
            self._next_blind = time.monotonic() + self.blind_interval

    def _host_changed_termios(self) -> None:
        # Data read after this status may have been written after the change (packet mode
        # reports a change before the data written after it): not this window's parity.
        self._window_certain = False
        self._changed = True
        if self._gate_open and self._first_pending:
            self._close_gate()

    def _ensure_extproc(self) -> None:
        attrs = termios.tcgetattr(self._slave)
        if not attrs[3] & EXTPROC:
            attrs[3] |= EXTPROC
            termios.tcsetattr(self._slave, termios.TCSANOW, attrs)

    def _host_opened_or_closed(self) -> None:
        try:
            events = os.read(self._watch, 4096) if self._watch is not None else b""
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._check_open()
            raise TransportIOError(self.name, f"device watch failed: {exc}") from exc
        offset = 0
        while offset + _INOTIFY_EVENT.size <= len(events):
            _, mask, _, length = _INOTIFY_EVENT.unpack_from(events, offset)
            offset += _INOTIFY_EVENT.size + length
            if mask & _IN_OPEN:
                self._host_opens += 1
            elif mask & (_IN_CLOSE_WRITE | _IN_CLOSE_NOWRITE) and self._host_opens > 0:
                self._host_opens -= 1
                if self._host_opens == 0:
                    self._session_ended()

    def _session_ended(self) -> None:
        """No host has the device open: clear the parity it left (space, mark, even)."""
        self.sessions += 1
        attrs = self._termios(self._slave)
        attrs[2] &= ~(termios.PARENB | termios.PARODD | CMSPAR)
        with contextlib.suppress(termios.error):
            termios.tcsetattr(self._slave, termios.TCSANOW, attrs)

    # -- reading --------------------------------------------------------------------------

    def _read_packet(self) -> bytes | None:
        """One packet-mode read: the host's data (b"" for a status packet; a termios change
        is noted at once); None when nothing was there."""
        try:
            packet = os.read(self._master, _CHUNK + 1)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            self._check_open()
            raise TransportEOFError(self.name, f"peer gone: {exc}") from exc
        if not packet:
            raise TransportEOFError(self.name, "pty closed")
        if packet[0] != TIOCPKT_DATA:
            if packet[0] & TIOCPKT_IOCTL:
                self._host_changed_termios()
            return b""
        return packet[1:]

    def _drain(self) -> None:
        while (data := self._read_packet()) is not None:
            self._received(data)

    def _received(self, data: bytes) -> None:
        if not data:
            return
        if self._first_pending:
            self._first_pending = False
            self._close_gate()
        known = self._window_mark if self._window_certain else None
        self._pending.extend(Word(b, self._framer.feed(b, known)) for b in data)

    # -- helpers --------------------------------------------------------------------------

    def _termios(self, fd: int) -> list[Any]:
        try:
            return termios.tcgetattr(fd)
        except termios.error as exc:
            self._check_open()
            raise TransportIOError(self.name, f"cannot read the host's settings: {exc}") from exc

    def _tcflow(self, action: int) -> None:
        try:
            termios.tcflow(self._slave, action)
        except termios.error as exc:
            self._check_open()
            raise TransportIOError(self.name, f"flow control failed: {exc}") from exc

def open_parity_pty(
    *, write_timeout: float = 2.0, window: float = 0.002, blind_interval: float = 0.05
) -> tuple[ParityPtyTransport, str]:
    """A new pty in parity mode: ``(transport on the master side, slave path)``."""
    master, slave = os.openpty()
    try:
        make_raw(slave)
        path = os.ttyname(slave)
        return ParityPtyTransport(f"pty-parity:{path}", master, slave, path=path,
                                  write_timeout=write_timeout, window=window,
                                  blind_interval=blind_interval), path
    except BaseException:
        os.close(master)
        os.close(slave)
        raise


def _watch_opens(path: str) -> int | None:
    """An inotify descriptor reporting opens and closes of ``path``; None where inotify is
    not available (the parity a host leaves then stays until the emulator restarts)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = int(libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC))
    except (OSError, AttributeError):
        return None
    if fd < 0:
        return None
    mask = _IN_OPEN | _IN_CLOSE_WRITE | _IN_CLOSE_NOWRITE
    if int(libc.inotify_add_watch(fd, os.fsencode(path), mask)) < 0:
        os.close(fd)
        return None
    return fd
