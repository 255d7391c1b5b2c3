"""The UART transport on a real pty: parity flags read back from the OS at the moment of
each write, and the order of writes, drains and parity switches.

A Linux pty keeps CMSPAR and PARODD but always reads PARENB back clear, so mark parity is
asserted as CMSPAR|PARODD and space as CMSPAR without PARODD.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import termios
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import serial

import drivers
from drivers import TransportClosedError, TransportIOError, TransportOpenError, Word, selectable
from drivers.base import TransportError
from drivers.uart import CMSPAR, UartTransport, open_error_hint, open_uart
from tests.support.threads import close_during_write, stopped_at
from tests.support.waits import wait_until

MARK = ("cmspar", "parodd")
SPACE = ("cmspar",)
EVEN: tuple[str, ...] = ()


class RecordingSerial(serial.Serial):  # type: ignore[misc]
    """A real pyserial port that logs each drain and parity change (and, through
    :class:`RecordingUart`, each write to its descriptor) together with the parity flags the
    OS reports for its descriptor at that moment."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.events: list[tuple[str, object, tuple[str, ...]]] = []
        super().__init__(*args, **kwargs)

    def _flags(self) -> tuple[str, ...]:
        fd = getattr(self, "fd", None)
        if fd is None:
            return ()
        cflag = termios.tcgetattr(fd)[2]
        return tuple(
            name for name, bit in (("cmspar", CMSPAR), ("parodd", termios.PARODD)) if cflag & bit
        )

    def flush(self) -> None:
        self.events.append(("drain", None, self._flags()))
        super().flush()

    @property
    def parity(self) -> str:
        return serial.Serial.parity.fget(self)  # type: ignore[no-any-return]

    @parity.setter
    def parity(self, value: str) -> None:
        serial.Serial.parity.fset(self, value)
        if hasattr(self, "events"):
            self.events.append(("parity", value, self._flags()))


class RecordingUart(UartTransport):
    """The transport writes a local port's descriptor itself: log each write in the port's
    events."""

    def _send(self, data: memoryview) -> int:
        port = self._port
        assert isinstance(port, RecordingSerial)
        port.events.append(("write", bytes(data), port._flags()))
        return super()._send(data)


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, str]]:
    master, slave = os.openpty()
    path = os.ttyname(slave)
    yield master, path
    for fd in (master, slave):
        with contextlib.suppress(OSError):
            os.close(fd)


def _open(path: str, **options: Any) -> tuple[UartTransport, RecordingSerial]:
    port = RecordingSerial(path, 19200, parity=serial.PARITY_SPACE)
    return RecordingUart(port, name=path, **options), port


def _read_master(master: int, count: int) -> bytes:
    data = b""
    deadline = time.monotonic() + 5
    while len(data) < count and time.monotonic() < deadline:
        data += os.read(master, count - len(data))
    return data


def test_address_byte_goes_out_in_mark_parity_after_a_drain_then_space(
    pty_pair: tuple[int, str],
) -> None:
    master, path = pty_pair
    transport, port = _open(path)
    port.events.clear()
    transport.write(bytes([0x01, 0x1F, 0x00]), wakeup=True)

    writes = [(data, flags) for kind, data, flags in port.events if kind == "write"]
    assert writes == [(b"\x01", MARK), (b"\x1f\x00", SPACE)]
    kinds = [kind for kind, _, _ in port.events]
    first_write = kinds.index("write")
    back_to_space = next(i for i, (k, v, _) in enumerate(port.events) if k == "parity" and v == "S")
    # SAS §1.2.1 by parity: the address byte leaves the UART before the switch to space.
    assert "drain" in kinds[first_write:back_to_space]
    assert back_to_space < kinds.index("write", first_write + 1)
    assert _read_master(master, 3) == b"\x01\x1f\x00"
    transport.close()


def test_each_parity_switch_waits_for_the_previous_bytes(pty_pair: tuple[int, str]) -> None:
    master, path = pty_pair
    transport, port = _open(path)
    transport.write(bytes([0x01, 0x1F]), wakeup=True)
    port.events.clear()
    transport.write(bytes([0x02, 0x1F]), wakeup=True)  # the body of the last one may be queued
    to_mark = next(i for i, (k, v, _) in enumerate(port.events) if k == "parity" and v == "M")
    assert port.events[to_mark - 1][0] == "drain"
    assert _read_master(master, 4) == b"\x01\x1f\x02\x1f"
    transport.close()


def test_a_frame_without_wakeup_changes_no_parity(pty_pair: tuple[int, str]) -> None:
    _, path = pty_pair
    transport, port = _open(path)
    port.events.clear()
    transport.write(b"\x01\x02", wakeup=False)
    assert port.events == [("write", b"\x01\x02", SPACE)]
    transport.close()


def test_receive_side_marks_parity_errors(pty_pair: tuple[int, str]) -> None:
    master, path = pty_pair
    transport, _ = _open(path)
    assert transport.detect_wakeup
    for _ in range(2):  # after open, and again after a mark/space round trip
        iflag = termios.tcgetattr(transport._fd)[0]  # type: ignore[arg-type]
        assert iflag & termios.INPCK and iflag & termios.PARMRK
        assert not iflag & (termios.ISTRIP | termios.IGNPAR)
        transport.write(b"\x01", wakeup=True)
    # The kernel doubles a literal FF under PARMRK; the decoder undoes it.
    os.write(master, b"\x01\xff\x02")
    got: list[Word] = []
    deadline = time.monotonic() + 5
    while len(got) < 3:
        run = transport.read(deadline)
        assert run
        got += run
    assert got == [Word(1, False), Word(0xFF, False), Word(2, False)]
    transport.close()


def test_even_parity_after_address_quirk(pty_pair: tuple[int, str]) -> None:
    _, path = pty_pair
    transport, port = _open(path, even_parity_after_address=True)
    assert not transport.detect_wakeup  # a parity error under even parity means nothing
    port.events.clear()
    transport.write(bytes([0x80, 0x81]), wakeup=True)
    writes = [(data, flags) for kind, data, flags in port.events if kind == "write"]
    assert writes == [(b"\x80", MARK), (b"\x81", EVEN)]
    iflag = termios.tcgetattr(transport._fd)[0]  # type: ignore[arg-type]
    assert not iflag & termios.PARMRK
    transport.close()


def test_negative_switch_delay_is_refused(pty_pair: tuple[int, str]) -> None:
    _, path = pty_pair
    with pytest.raises(ValueError, match="parity_switch_delay_ms"):
        _open(path, parity_switch_delay_ms=-1)


def test_open_transport_takes_serial_prefix_and_options(pty_pair: tuple[int, str]) -> None:
    master, path = pty_pair
    transport = drivers.open_transport(f"serial:{path}", parity_switch_delay_ms=0.5)
    assert isinstance(transport, UartTransport)
    assert transport.name == path and transport.parity_switch_delay_ms == 0.5
    transport.write(b"\x01\x02", wakeup=True)
    assert _read_master(master, 2) == b"\x01\x02"
    transport.close()


def test_the_port_is_held_exclusively(pty_pair: tuple[int, str]) -> None:
    _, path = pty_pair
    first = open_uart(path)
    with pytest.raises(TransportOpenError, match="another program") as info:
        open_uart(path)
    assert info.value.device == path
    first.close()


def test_missing_device_is_named_with_a_hint() -> None:
    with pytest.raises(TransportOpenError, match="no such device") as info:
        drivers.open_transport("/dev/ttyNOSUCH9")
    assert info.value.device == "/dev/ttyNOSUCH9"


def test_permission_hint_names_the_dialout_group() -> None:
    assert "dialout" in open_error_hint(errno.EACCES)
    assert open_error_hint(errno.EIO) == ""


def test_unknown_url_scheme_is_an_open_error() -> None:
    with pytest.raises(TransportOpenError, match="not a usable serial URL"):
        drivers.open_transport("nosuchscheme://x")


def test_pyserial_url_without_descriptor_loop() -> None:
    """loop:// has no file descriptor and no 9th bit: words come back plain."""
    transport = drivers.open_transport("loop://")
    assert isinstance(transport, UartTransport) and not transport.detect_wakeup
    assert transport.read(time.monotonic() + 0.02) == []
    transport.write(b"\x01\x02", wakeup=True)
    assert transport.read(time.monotonic() + 5) == [Word(1, False), Word(2, False)]

    errors: list[BaseException] = []
    entered = threading.Event()

    def reader() -> None:
        entered.set()
        try:
            transport.read(time.monotonic() + 60)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    assert entered.wait(5)
    transport.close()
    thread.join(10)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], TransportClosedError)


def test_a_socket_url_write_the_peer_does_not_take_times_out() -> None:
    """socket:// has no descriptor of its own: pyserial writes it, and without a write
    timeout its ``write()`` waited for a peer that never reads without end. open_transport's
    ``write_timeout`` reaches the port, so the write gives up as a local port's does."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    host, port = listener.getsockname()
    transport = drivers.open_transport(f"socket://{host}:{port}", write_timeout=0.05)
    peer, _ = listener.accept()  # connected, and never read: the buffers fill up
    failures: list[TransportError] = []
    frames = 0

    def write() -> None:
        nonlocal frames
        try:
            while frames < 1_000_000:
                transport.write(bytes(255), wakeup=False)
                frames += 1
        except TransportError as exc:
            failures.append(exc)

    try:
        assert isinstance(transport, UartTransport) and transport.write_timeout == 0.05
        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        writer.join(60)
        assert not writer.is_alive(), "the write never gave up"
        assert [type(exc) for exc in failures] == [TransportIOError], failures
        assert "timeout" in str(failures[0]).lower() and frames > 0
    finally:
        transport.close()
        peer.close()
        listener.close()


def test_a_write_timeout_that_is_not_positive_is_refused() -> None:
    with pytest.raises(ValueError, match="write_timeout"):
        drivers.open_transport("loop://", write_timeout=0)


class HeldDrainSerial(serial.Serial):  # type: ignore[misc]
    """A real pyserial port whose ``hold_at``-th drain from now stops until released: a
    write caught in the middle of a frame (tcdrain waits for the address byte to leave the
    wire), where a close from another thread lands."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.hold_at = 0
        self.in_drain = threading.Event()
        self.release = threading.Event()
        self.open_after_drain: bool | None = None
        super().__init__(*args, **kwargs)

    def flush(self) -> None:
        self.hold_at -= 1
        if self.hold_at == 0:
            fd = self.fd
            self.in_drain.set()
            self.release.wait(30)
            try:
                os.fstat(fd)
                self.open_after_drain = self.is_open and self.fd == fd
            except OSError:
                self.open_after_drain = False
        super().flush()


def test_a_close_from_another_thread_waits_for_a_write_in_progress(
    pty_pair: tuple[int, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The write holds the transport's I/O lock as a read does, so a close from another
    thread closes the port only after the write has let go of it (else the parity switch and
    the rest of the frame went to a closed descriptor, or to a file given its number); the
    write then stops at the close, and sends nothing more."""
    monkeypatch.setattr(selectable, "CLOSE_GRACE_S", 60.0)  # the close waits, never gives up
    master, path = pty_pair
    port = HeldDrainSerial(path, 19200, parity=serial.PARITY_SPACE)
    transport = UartTransport(port, name=path)
    port.hold_at = 2  # the drain before the switch to mark parity, then the one after 01
    failures = close_during_write(transport,
                                  lambda: transport.write(b"\x01\x1f\x00", wakeup=True),
                                  port.in_drain, port.release)
    assert port.open_after_drain is True
    assert [type(exc) for exc in failures] == [TransportClosedError], failures
    assert _read_master(master, 1) == b"\x01"  # the address byte went before the close
    assert select.select([master], [], [], 0)[0] == []  # and nothing after it


def test_a_write_the_line_does_not_take_waits_for_it_times_out_and_ends_at_a_close(
    pty_pair: tuple[int, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Output held stopped (as the emulator's parity mode holds a host's between windows):
    the write waits in ``select()`` with the wake pipe, not in pyserial's write, which retries
    in a busy loop without end and which no close stops. It gives up after
    ``write_timeout``, and a close from another thread ends the wait at once."""
    monkeypatch.setattr(selectable, "CLOSE_GRACE_S", 60.0)  # the close waits, never gives up
    _, path = pty_pair
    transport = open_uart(path)
    assert transport._fd is not None
    termios.tcflow(transport._fd, termios.TCOOFF)
    failures: list[TransportError] = []

    def write() -> None:
        try:
            transport.write(b"\x01\x1f\x00", wakeup=True)
        except TransportError as exc:
            failures.append(exc)

    try:
        transport.write_timeout = 0.05
        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        writer.join(20)
        assert not writer.is_alive(), "the write never gave up"
        assert [type(exc) for exc in failures] == [TransportIOError], failures
        assert "timed out" in str(failures[0]) and failures[0].device == path

        failures.clear()
        transport.write_timeout = 60.0
        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        wait_until(lambda: stopped_at(
            writer, selectable.SelectableTransport._write_locked, "select.select("))
        closer = threading.Thread(target=transport.close, daemon=True)
        closer.start()
        closer.join(20)
        writer.join(20)
        assert not closer.is_alive() and not writer.is_alive()
        assert [type(exc) for exc in failures] == [TransportClosedError], failures
    finally:
        transport.close()
