"""The pty parity mode (emulator.parity_pty), driven by hosts written here, independently of
our drivers: one with plain termios calls, one with pyserial, each switching parity the
way hosts written for a real UART do (mark for the address byte, space for the rest)."""

from __future__ import annotations

import errno
import os
import select
import termios
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import serial
from hypothesis import given
from hypothesis import strategies as st

import drivers
from drivers import selectable
from drivers.base import TransportClosedError, TransportIOError, Word
from emulator.model import Door, Machine
from emulator.parity_pty import (
    CMSPAR,
    HostFramer,
    ParityPtyTransport,
    host_parity,
    open_parity_pty,
)
from emulator.server import Emulator, LinkOptions
from sas_protocol.crc import append_crc, crc_ok
from sas_protocol.messages.requests import (
    DateTimeRequest,
    LockRequest,
    MetersRequest,
    SelectedMetersRequest,
    SetDateTimeRequest,
)
from tests.support.threads import close_during_write


def broadcast(request: SetDateTimeRequest) -> bytes:
    """The global broadcast (address 00, SAS §2.2.2.4) of a type G long poll."""
    return append_crc(b"\x00" + request.encode(1)[1:-2])


REPLY_WINDOW = 2.0  # generous: the machine is shared; a real host waits ~20 ms


class TermiosHost:
    """A host with nothing but os and termios calls, as a C host would be written."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        attrs = termios.tcgetattr(self.fd)
        attrs[0] = 0  # iflag: no translation, no parity checking
        attrs[1] = 0  # oflag: raw output
        attrs[2] = (attrs[2] & ~termios.CSIZE) | termios.CS8 | termios.CREAD | termios.CLOCAL
        attrs[3] &= ~(termios.ECHO | termios.ICANON | termios.ISIG | termios.IEXTEN)
        attrs[4] = attrs[5] = termios.B19200
        attrs[6][termios.VMIN] = 0
        attrs[6][termios.VTIME] = 0
        termios.tcsetattr(self.fd, termios.TCSANOW, attrs)
        self.mark: bool | None = None
        self.parity(mark=False)

    def parity(self, *, mark: bool) -> None:
        if mark == self.mark:
            # on a pty, glibc reports EINVAL for a parity request that changes nothing the
            # pty keeps (PARENB reads back clear); a host tracks its parity instead
            return
        self.mark = mark
        attrs = termios.tcgetattr(self.fd)
        attrs[2] |= termios.PARENB | CMSPAR
        if mark:
            attrs[2] |= termios.PARODD
        else:
            attrs[2] &= ~termios.PARODD
        termios.tcsetattr(self.fd, termios.TCSANOW, attrs)

    def send(self, frame: bytes) -> None:
        """Mark parity for the address byte, drain, space for the rest (SAS §1.2.1)."""
        self.parity(mark=True)
        os.write(self.fd, frame[:1])
        termios.tcdrain(self.fd)
        self.parity(mark=False)
        if frame[1:]:
            os.write(self.fd, frame[1:])

    def receive(self, count: int, window: float = REPLY_WINDOW) -> bytes:
        out = b""
        deadline = time.monotonic() + window
        while len(out) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if ready:
                out += os.read(self.fd, 256)
        return out

    def quiet(self, window: float = 0.3) -> bytes:
        """What arrives within ``window`` (expected: nothing)."""
        return self.receive(1, window)

    def close(self) -> None:
        os.close(self.fd)


class PyserialHost:
    """A host on pyserial, switching ``ser.parity`` as pyserial-based hosts do."""

    def __init__(self, path: str) -> None:
        self.ser = serial.Serial(path, 19200, bytesize=8, parity=serial.PARITY_SPACE,
                                 stopbits=1, timeout=REPLY_WINDOW)

    def send(self, frame: bytes) -> None:
        self.ser.parity = serial.PARITY_MARK
        self.ser.write(frame[:1])
        self.ser.flush()
        self.ser.parity = serial.PARITY_SPACE
        if frame[1:]:
            self.ser.write(frame[1:])

    def receive(self, count: int) -> bytes:
        return bytes(self.ser.read(count))

    def close(self) -> None:
        self.ser.close()


@contextmanager
def served(machine: Machine, **options: object) -> Iterator[tuple[Emulator, str]]:
    master, path = open_parity_pty()
    # now: the machine has just heard from a host, so it does not chirp for 5 s (SAS §4.2)
    emu = Emulator(machine, master, address=1, now=time.monotonic(),
                   options=LinkOptions(**options))  # type: ignore[arg-type]
    emu.start()
    try:
        yield emu, path
    finally:
        emu.stop()
        master.close()


def _exchange(host: TermiosHost | PyserialHost) -> None:
    host.send(b"\x80")  # a general poll to address 0: the machine syncs, nobody answers
    host.send(b"\x81")
    assert host.receive(1) == b"\x11"  # the slot door opened (exception 11)
    host.send(MetersRequest(0x1A).encode(1))  # a type R long poll: acknowledges 11
    reply = host.receive(8)
    assert reply[:2] == b"\x01\x1a" and crc_ok(reply)
    host.send(SelectedMetersRequest(0, (0x00, 0x0C)).encode(1))  # type M, with a CRC
    reply = host.receive(2 + 1 + 2 + 2 * (1 + 4) + 2)
    assert reply[:2] == b"\x01\x2f" and crc_ok(reply)
    host.send(b"\x81")
    assert host.receive(1) == b"\x00"


def test_a_termios_host_gets_general_and_long_poll_replies() -> None:
    machine = Machine()
    machine.open_door(0.0, Door.SLOT)
    with served(machine) as (emu, path):
        host = TermiosHost(path)
        try:
            _exchange(host)
            host.send(LockRequest().encode(1))  # type S: ACKed with the address
            assert host.receive(1) == b"\x01"
        finally:
            host.close()
        with emu.lock:
            assert machine.locked
            assert emu.stats.rejected == 0 and emu.stats.syncs == 1


def test_a_pyserial_host_gets_general_and_long_poll_replies() -> None:
    machine = Machine()
    machine.open_door(0.0, Door.SLOT)
    with served(machine) as (emu, path):
        host = PyserialHost(path)
        try:
            _exchange(host)
        finally:
            host.close()
        assert emu.stats.rejected == 0


def test_the_agents_uart_driver_is_a_host_too() -> None:
    """drivers' UartTransport (``serial:`` on the pty) switches parity as pyserial hosts do;
    each of its writes meets a stopped output until a window opens, which it waits for in
    ``select()`` (pyserial's own write retried in a busy loop)."""
    machine = Machine()
    machine.open_door(0.0, Door.SLOT)
    with served(machine) as (emu, path):
        host = drivers.open_transport(f"serial:{path}")
        try:
            host.write(b"\x80", wakeup=True)
            host.write(b"\x81", wakeup=True)
            assert host.read(time.monotonic() + REPLY_WINDOW) == [Word(0x11, False)]
            host.write(MetersRequest(0x1A).encode(1), wakeup=True)  # acknowledges 11
            reply: list[Word] = []
            deadline = time.monotonic() + REPLY_WINDOW
            while len(reply) < 8 and (words := host.read(deadline)):
                reply += words
            data = bytes(word.value for word in reply)
            assert data[:2] == b"\x01\x1a" and crc_ok(data)
        finally:
            host.close()
        assert emu.stats.rejected == 0


def test_a_second_host_session_opens_with_space_parity_again() -> None:
    """The pty keeps the parity the last host left; asking for it again fails with EINVAL.
    When a host closes the device, the emulator clears it."""
    with served(Machine()) as (emu, path):
        transport = emu.transport
        assert isinstance(transport, ParityPtyTransport)
        for session in range(1, 3):
            host = PyserialHost(path)  # opens with space parity
            try:
                host.send(b"\x80")
                host.send(b"\x81")
                assert host.receive(1) == b"\x00"
            finally:
                host.close()
            wait_for(lambda done=session: transport.sessions == done)  # type: ignore[misc]


def test_replies_are_unescaped_an_idle_rte_reply_is_five_bytes() -> None:
    with served(Machine(), rte=True) as (_, path):
        host = TermiosHost(path)
        try:
            host.send(b"\x80")
            host.send(b"\x81")
            reply = host.receive(5)
            assert reply == append_crc(b"\x01\xff\x00")  # FF not doubled (9-bit encoding)
            assert host.quiet() == b""
        finally:
            host.close()


def test_polls_to_other_machines_and_broadcasts_are_framed_apart() -> None:
    """A host on a multidrop line: long polls to address 2 and a broadcast between ours,
    written back to back without waiting (nobody answers them)."""
    with served(Machine()) as (emu, path):
        host = TermiosHost(path)
        try:
            for _ in range(3):
                host.send(MetersRequest(0x1A).encode(2))
                host.send(DateTimeRequest().encode(2))
                host.send(broadcast(SetDateTimeRequest(3, 4, 2031, 5, 6, 7)))
                host.send(b"\x81")
                assert host.receive(1) == b"\x00"
        finally:
            host.close()
        with emu.lock:
            assert emu.stats.broadcasts == 3  # LP 7F applied each time (SAS §2.2.2.4)
            assert emu.stats.rejected == 0
            assert emu.machine.clock(time.monotonic()).year == 2031


def test_parity_decides_where_framing_would_not() -> None:
    """Bytes framing alone would misplace: a stray body byte with no message in progress,
    and a long poll with data that sas_protocol does not know (framing would take its
    third byte for an address). Host and machine side take turns on this thread, so each
    parity switch is seen before the host writes: the wakeup bit comes from parity alone."""
    master, path = open_parity_pty(window=10.0, blind_interval=3600.0)
    host = TermiosHost(path)
    os.set_blocking(host.fd, False)  # writes go through only while a window is open

    def turn() -> list[Word]:
        return master.read(time.monotonic() + 0.05)

    try:
        assert turn() == []  # the host's setup announced; a window opened
        received = []
        for mark, data in [(True, None), (False, b"\x1a"), (True, b"\x01"),
                           (False, b"\xf0\x00\x00\x55\xaa")]:
            host.parity(mark=mark)
            assert turn() == []  # the switch seen, a window opened with the new parity
            if data is not None:
                assert os.write(host.fd, data) == len(data)
                received += read_words(master, len(data))
        assert received == [Word(0x1A, False), Word(0x01, True),
                            *(Word(b, False) for b in b"\xf0\x00\x00\x55\xaa")]
        assert master.framed == 0
    finally:
        host.close()
        master.close()


def test_a_host_that_writes_twice_without_a_parity_switch_is_released() -> None:
    """Two general polls under one mark setting: the second write waits for a blind
    window, which reads the parity while the write is blocked."""
    master, path = open_parity_pty()
    host = TermiosHost(path)
    def two_polls() -> None:
        host.parity(mark=True)
        os.write(host.fd, b"\x81")
        os.write(host.fd, b"\x82")

    try:
        with in_thread(two_polls):
            assert read_words(master, 2) == [Word(0x81, True), Word(0x82, True)]
    finally:
        host.close()
        master.close()


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


@contextmanager
def in_thread(host_actions: Callable[[], None]) -> Iterator[None]:
    """The host's writes block while this side holds them: run them on their own thread."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            host_actions()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield
    thread.join(10)
    assert not thread.is_alive(), "the host is still blocked"
    if errors:
        raise errors[0]


def read_words(transport: ParityPtyTransport, count: int) -> list[Word]:
    words: list[Word] = []
    deadline = time.monotonic() + 10
    while len(words) < count and time.monotonic() < deadline:
        words += transport.read(time.monotonic() + 0.1)
    return words


def test_a_parity_request_that_changes_nothing_on_a_pty_is_refused() -> None:
    """glibc checks PARENB and CSIZE after tcsetattr on a pty and reports EINVAL when the
    pty dropped them and nothing else changed: space parity twice, or even from none."""
    master, slave = os.openpty()
    try:
        attrs = termios.tcgetattr(slave)
        attrs[2] |= termios.PARENB | CMSPAR
        termios.tcsetattr(slave, termios.TCSANOW, attrs)  # none -> space: CMSPAR changed
        with pytest.raises(termios.error) as refused:
            termios.tcsetattr(slave, termios.TCSANOW, attrs)  # space -> space
        assert refused.value.args[0] == errno.EINVAL
        attrs[2] &= ~CMSPAR
        termios.tcsetattr(slave, termios.TCSANOW, attrs)  # space -> even: CMSPAR cleared
        with pytest.raises(termios.error):
            termios.tcsetattr(slave, termios.TCSANOW, attrs)  # even -> even
        attrs[2] = (attrs[2] & ~termios.CSIZE & ~termios.PARENB) | termios.CS7
        with pytest.raises(termios.error):
            termios.tcsetattr(slave, termios.TCSANOW, attrs)  # 7 data bits: stays 8
    finally:
        os.close(master)
        os.close(slave)


def test_linux_drops_parenb_on_a_pty_but_keeps_mark_and_space() -> None:
    """The limits docs/sas-serial.md states, as measured: CMSPAR and PARODD read back,
    PARENB does not (so even parity reads as no parity)."""
    master, slave = os.openpty()
    try:
        for bits, expected in [
            (termios.PARENB | CMSPAR | termios.PARODD, "mark"),
            (termios.PARENB | CMSPAR, "space"),
            (termios.PARENB | termios.PARODD, "odd"),
            (termios.PARENB, "even/none"),
            (0, "even/none"),
        ]:
            attrs = termios.tcgetattr(slave)
            attrs[2] = (attrs[2] & ~(termios.PARENB | termios.PARODD | CMSPAR)) | bits
            termios.tcsetattr(slave, termios.TCSANOW, attrs)
            cflag = termios.tcgetattr(master)[2]  # the master reads the slave's settings
            assert not cflag & termios.PARENB
            assert host_parity(cflag) == expected
    finally:
        os.close(master)
        os.close(slave)


# -- HostFramer: every address byte found from the bytes alone ----------------------------

def _messages() -> st.SearchStrategy[bytes]:
    address = st.integers(1, 127)
    return st.one_of(
        address.map(lambda a: bytes((0x80 | a,))),  # general poll
        address.map(lambda a: MetersRequest(0x1A).encode(a)),
        address.map(lambda a: LockRequest().encode(a)),
        st.builds(lambda a, codes: SelectedMetersRequest(0, tuple(codes)).encode(a),
                  address, st.lists(st.integers(0, 0x7F), min_size=1, max_size=10)),
        st.integers(0, 59).map(lambda s: broadcast(SetDateTimeRequest(1, 2, 2026, 3, 4, s))),
    )


@given(st.lists(_messages(), min_size=1, max_size=20),
       st.lists(st.booleans(), min_size=200, max_size=200))
def test_framing_recovers_the_address_bytes_of_any_host_traffic(
        messages: list[bytes], known: list[bool]) -> None:
    framer = HostFramer()
    expected = [i == 0 for m in messages for i in range(len(m))]
    data = b"".join(messages)
    got = [framer.feed(b, want if k else None)
           for b, want, k in zip(data, expected, known, strict=False)]
    assert got == expected[: len(got)]


def test_closing_ends_a_pending_read() -> None:
    master, _ = open_parity_pty()
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            master.read(time.monotonic() + 30)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    master.close()
    thread.join(5)
    assert not thread.is_alive()
    assert errors and type(errors[0]).__name__ == "TransportClosedError"


@pytest.mark.parametrize("cflag, name", [(termios.PARENB | CMSPAR | termios.PARODD, "mark"),
                                         (termios.PARENB | CMSPAR, "space")])
def test_host_parity_names(cflag: int, name: str) -> None:
    assert host_parity(cflag) == name


# -- the link itself: a close racing a write, a host that does not read --------------------

class _HeldGate(ParityPtyTransport):
    """A parity pty whose next gate close, once armed, stops until released: a write
    caught before its flow-control call and its bytes, where a close from another thread
    lands. It notes whether the slave descriptor was still the pty's when it went on."""

    def __init__(self) -> None:
        master, slave = os.openpty()
        super().__init__("pty-parity-held", master, slave)
        self.armed = False
        self.in_gate = threading.Event()
        self.release = threading.Event()
        self.slave_kept: bool | None = None

    def _close_gate(self) -> None:
        if self.armed:
            self.armed = False
            before = os.fstat(self._slave)
            self.in_gate.set()
            self.release.wait(30)
            try:
                after = os.fstat(self._slave)
                self.slave_kept = (after.st_ino, after.st_rdev) == (before.st_ino,
                                                                      before.st_rdev)
            except OSError:
                self.slave_kept = False
        super()._close_gate()


def test_a_close_from_another_thread_waits_for_a_write_and_its_gate(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A write closes the gate (``tcflow`` on the slave) and writes under the transport's
    I/O lock, so a close from another thread releases the descriptors only after both (the
    gate used to be closed outside the lock: ``tcflow`` on a closed descriptor, or on
    whatever terminal was given its number); the write then stops at the close."""
    monkeypatch.setattr(selectable, "CLOSE_GRACE_S", 60.0)  # the close waits, never gives up
    end = _HeldGate()
    end.armed = True
    failures = close_during_write(end, lambda: end.write(b"\x00", wakeup=False),
                                  end.in_gate, end.release)
    assert end.slave_kept is True
    assert [type(exc) for exc in failures] == [TransportClosedError], failures


def test_the_machine_loses_what_no_host_reads_instead_of_blocking() -> None:
    """A machine chirps while no host polls (SAS §4.2). With no host reading the pty its
    writes filled the host's input queue, timed out and ended the link for good; they throw
    the unread bytes away, as a wire does, and a host that opens the pty later reads what
    was written after."""
    master, path = open_parity_pty(write_timeout=0.05)
    try:
        for _ in range(10_000):  # far more than the pty buffer holds
            master.write(bytes(range(1, 255)), wakeup=False)
            if master.dropped_unread == 3:  # filled, thrown away and filled again, twice
                break
        assert master.dropped_unread == 3
        host = TermiosHost(path)
        try:
            termios.tcflush(host.fd, termios.TCIFLUSH)  # what was queued before it came
            master.write(b"\x01", wakeup=True)  # a chirp: its plain address byte
            assert host.receive(1) == b"\x01"
            assert host.quiet() == b""
        finally:
            host.close()
    finally:
        master.close()


def test_a_link_that_cannot_be_set_up_leaves_no_descriptor_open() -> None:
    """Not a pty (no packet mode): the error names the link, and the wake pipe made before
    the set-up failed is closed (the caller closes the two descriptors it passed)."""
    read_end, write_end = os.pipe()
    try:
        before = set(os.listdir("/proc/self/fd"))
        with pytest.raises(TransportIOError, match="cannot set up parity mode") as info:
            ParityPtyTransport("pty-parity:not-a-pty", read_end, write_end)
        assert info.value.device == "pty-parity:not-a-pty"
        assert set(os.listdir("/proc/self/fd")) == before
    finally:
        os.close(read_end)
        os.close(write_end)
