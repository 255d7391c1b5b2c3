"""A real UART through pyserial, with the SAS wakeup bit carried by the parity bit.

SAS §1.2.1: the host sets the 9th (wakeup) bit on the first byte of every message only. A
UART without 9-bit support fakes it with the parity bit: **mark** parity for the address
byte, **space** for the rest. ``tcsetattr`` applies a parity change at once, so bytes still
in the UART would go out with the new parity: every switch waits for the transmitter to
drain (``flush()`` = ``tcdrain``) first. The port is opened once and kept open; it is never
reopened to change parity (that breaks the 5 ms inter-byte limit of SAS §1.2.2).

Receiving stays in space parity. With ``detect_wakeup`` (the default on a local device) the
port also sets ``INPCK|PARMRK``, so a byte whose 9th bit is set (a parity error under space
parity: a machine's chirp, or a host's address byte when the emulator runs on real
hardware) arrives as ``FF 00 b`` and a literal ``FF`` as ``FF FF``; ``drivers.ninebit``
decodes both. See docs/sas-serial.md for the vendor quirk options.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import termios
import time
from typing import Any

import serial

from drivers.base import (
    TransportIOError,
    TransportOpenError,
    Word,
    check_frame,
)
from drivers.ninebit import NineBitDecoder
from drivers.selectable import SelectableTransport

__all__ = ["SAS_BAUDRATE", "UartTransport", "open_error_hint", "open_uart"]

log = logging.getLogger(__name__)

SAS_BAUDRATE = 19200
# Linux value; pyserial uses the same constant when termios does not export it.
CMSPAR: int = getattr(termios, "CMSPAR", 0o10000000000)
# Slice for ports without a file descriptor (rfc2217://, socket://): how often a read
# rechecks the deadline and close().
_SLICE_S = 0.05


class UartTransport(SelectableTransport):
    """A SAS line on an open pyserial port (which this transport then owns)."""

    def __init__(
        self,
        port: Any,
        *,
        name: str | None = None,
        even_parity_after_address: bool = False,
        parity_switch_delay_ms: float = 0.0,
        detect_wakeup: bool | None = None,
        write_timeout: float = 2.0,
    ) -> None:
        self._port = port
        self.name = name or str(port.port or "serial")
        if write_timeout <= 0:
            raise ValueError(f"{self.name}: write_timeout must be positive, not {write_timeout}")
        self.write_timeout = write_timeout
        if parity_switch_delay_ms < 0:
            raise ValueError(
                f"{self.name}: parity_switch_delay_ms must not be negative, "
                f"not {parity_switch_delay_ms}"
            )
        self.even_parity_after_address = even_parity_after_address
        self.parity_switch_delay_ms = parity_switch_delay_ms
        # Vendor quirk (Novomatic/Octavian, single source): EVEN parity after the address.
        self._rest_parity = serial.PARITY_EVEN if even_parity_after_address else serial.PARITY_SPACE
        self._fd: int | None = _fileno(port)
        if detect_wakeup is None:
            # Under even parity a parity error says nothing about the 9th bit.
            detect_wakeup = not even_parity_after_address
        self.detect_wakeup = bool(detect_wakeup and self._fd is not None)
        self._decoder = NineBitDecoder(self.name) if self.detect_wakeup else None
        self._init_waiting()
        # The port is open already (in space parity from open_uart()): setting the same parity
        # again is not a no-op for pyserial, and some pty drivers refuse it (EINVAL).
        self._parity = str(port.parity)
        try:
            if self._fd is not None:
                # pyserial opens it so; a port class that does not must not block a write
                # where the wake pipe cannot end it (``_send_all``)
                os.set_blocking(self._fd, False)
            else:
                # a network URL is written by pyserial: socket:// waits for the peer without
                # end unless given a write timeout (rfc2217:// bounds its socket itself)
                port.write_timeout = write_timeout
            if self._parity != self._rest_parity:
                self._set_parity(self._rest_parity)
            elif self.detect_wakeup and self._parity == serial.PARITY_SPACE:
                self._mark_parity_errors()
        except (serial.SerialException, OSError, termios.error) as exc:
            self._release()
            raise TransportOpenError(self.name, f"cannot set parity: {exc}") from exc

    # -- parity switching ---------------------------------------------------------------

    def _set_parity(self, parity: str) -> None:
        if parity == self._parity:
            return
        # Bytes still in the UART would go out with the new parity: drain first.
        self._port.flush()
        if self.parity_switch_delay_ms:
            # USB adapters have their own FIFO beyond what tcdrain sees.
            time.sleep(self.parity_switch_delay_ms / 1000.0)
        self._port.parity = parity
        self._parity = parity
        if self.detect_wakeup and parity == serial.PARITY_SPACE:
            self._mark_parity_errors()

    def _mark_parity_errors(self) -> None:
        """INPCK|PARMRK, re-applied after each switch (pyserial clears both on reconfigure)."""
        assert self._fd is not None
        attrs = termios.tcgetattr(self._fd)
        attrs[0] |= termios.INPCK | termios.PARMRK
        attrs[0] &= ~(termios.IGNPAR | termios.ISTRIP)
        termios.tcsetattr(self._fd, termios.TCSANOW, attrs)

    # -- the Transport contract -----------------------------------------------------------

    @property
    def decode_errors(self) -> int:
        """Invalid parity-mark sequences received so far."""
        return self._decoder.errors if self._decoder else 0

    def write(self, frame: bytes, *, wakeup: bool) -> None:
        """Send ``frame``, switching parity around the address byte.

        The whole write holds ``_io_lock`` as a read does: a close from another thread waits
        for it (the wake pipe ends a wait for the line at once) before it closes the port, so
        no byte, drain or parity switch goes to a closed descriptor or to one that was just
        given the same number."""
        check_frame(self.name, frame, wakeup)
        self._check_open()
        if not frame:
            return
        data = memoryview(frame)
        with self._io_lock:
            self._check_open()  # a close may have finished while this waited for the lock
            try:
                if wakeup:
                    self._set_parity(serial.PARITY_MARK)
                    self._send_all(data[:1])
                    # SAS §1.2.1 via parity: the address byte must leave with mark parity.
                    self._port.flush()
                    self._set_parity(self._rest_parity)
                    if len(data) > 1:
                        self._send_all(data[1:])
                else:
                    self._set_parity(self._rest_parity)
                    self._send_all(data)
            except (serial.SerialException, OSError, termios.error) as exc:
                self._check_open()
                raise TransportIOError(self.name, f"write failed: {exc}") from exc

    def _send_all(self, data: memoryview) -> None:
        """All of ``data`` to the port; the caller holds ``_io_lock``.

        A local device is written here, not by pyserial's ``write()``: that one retries a
        write the line does not take (EAGAIN, e.g. a pty whose output is held stopped, as
        the emulator's parity mode does between windows) in a busy loop without end, and a
        close from another thread cannot stop it. This loop waits in ``select()`` with the
        wake pipe, at most ``write_timeout``. A network URL has no descriptor: pyserial's
        ``write()`` it is, with the port's own ``write_timeout`` (set at open)."""
        if self._fd is None:
            self._port.write(bytes(data))
            return
        self._write_locked(data, self._send, self._fd)

    def _send(self, data: memoryview) -> int:
        """Some of ``data`` to the (non-blocking) descriptor; the count written."""
        assert self._fd is not None
        return os.write(self._fd, data)

    def _wait_and_read(self, remaining: float) -> bytes:
        try:
            if self._fd is not None:
                ready, _, _ = select.select([self._fd, self._wake_r], [], [], remaining)
                if self._fd not in ready:
                    return b""
                return os.read(self._fd, 4096)
            self._port.timeout = min(remaining, _SLICE_S)
            first = self._port.read(1)
            if not first:
                return b""
            waiting = self._port.in_waiting
            return bytes(first) + (bytes(self._port.read(waiting)) if waiting else b"")
        except (BlockingIOError, InterruptedError):
            return b""
        except (serial.SerialException, OSError, ValueError) as exc:
            self._check_open()
            raise TransportIOError(self.name, f"read failed: {exc}") from exc

    def _accept(self, data: bytes) -> None:
        if self._decoder is not None:
            self._pending.extend(self._decoder.feed(data))
        else:
            self._pending.extend(Word(b, False) for b in data)

    def discard_input(self) -> None:
        self._check_open()
        with self._io_lock:
            self._check_open()  # a close may have finished while this waited for the lock
            try:
                self._port.reset_input_buffer()
            except (serial.SerialException, OSError, termios.error) as exc:
                raise TransportIOError(self.name, f"discard failed: {exc}") from exc
            self._pending.clear()
            if self._decoder is not None:
                self._decoder.reset()

    def _release_device(self) -> None:
        self._port.close()


def _fileno(port: Any) -> int | None:
    """The OS descriptor of a local port; None for network URLs (rfc2217://, socket://)."""
    fd = getattr(port, "fd", None)
    if isinstance(fd, int) and fd >= 0:
        try:
            termios.tcgetattr(fd)
        except termios.error:
            return None
        return fd
    return None


_OPEN_HINTS = {
    errno.EACCES: "permission denied: add the user to group 'dialout' "
    "(sudo usermod -aG dialout $USER, then log in again)",
    errno.ENOENT: "no such device: check the cable/adapter and the path (ls -l /dev/serial/by-id/)",
    errno.EBUSY: "device busy: another program has the port open",
    errno.EAGAIN: "port locked: another program (or agent) holds it exclusively",
    errno.EWOULDBLOCK: "port locked: another program (or agent) holds it exclusively",
}


def open_error_hint(code: int | None) -> str:
    """What to do about an ``errno`` from opening a serial device ("" when nothing useful)."""
    return _OPEN_HINTS.get(code or 0, "")


def open_port(url: str, *, baudrate: int, parity: str, timeout: float | None = None,
              exclusive: bool = True) -> Any:
    """A pyserial port for ``url``, opened: 8 data bits, ``parity``, 1 stop bit, no flow
    control. :class:`TransportOpenError` says why it did not open, with a hint for the
    usual causes (permissions, a port in use)."""
    try:
        port = serial.serial_for_url(url, do_not_open=True)
    except (ValueError, serial.SerialException) as exc:
        raise TransportOpenError(url, f"not a usable serial URL: {exc}") from exc
    port.baudrate = baudrate
    port.bytesize = serial.EIGHTBITS
    port.parity = parity
    port.stopbits = serial.STOPBITS_ONE
    port.xonxoff = False
    port.rtscts = False
    port.timeout = timeout
    if exclusive and isinstance(port, serial.Serial):  # a local device, not a network URL
        port.exclusive = True
    try:
        port.open()
    except (serial.SerialException, OSError) as exc:
        hint = open_error_hint(getattr(exc, "errno", None))
        reason = str(exc) if not hint else f"{exc}; {hint}"
        raise TransportOpenError(url, f"cannot open: {reason}") from exc
    return port


def open_uart(
    url: str,
    *,
    baudrate: int = SAS_BAUDRATE,
    even_parity_after_address: bool = False,
    parity_switch_delay_ms: float = 0.0,
    detect_wakeup: bool | None = None,
    exclusive: bool = True,
    write_timeout: float = 2.0,
) -> UartTransport:
    """Open a device path or pyserial URL once, 8 data bits, space parity, 1 stop bit."""
    port = open_port(url, baudrate=baudrate, parity=serial.PARITY_SPACE, exclusive=exclusive)
    return UartTransport(
        port,
        name=url,
        even_parity_after_address=even_parity_after_address,
        parity_switch_delay_ms=parity_switch_delay_ms,
        detect_wakeup=detect_wakeup,
        write_timeout=write_timeout,
    )
