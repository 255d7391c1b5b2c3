"""pty and tcp specifics beyond the contract: the bytes on the link are the 9-bit encoding,
the far end going away, bad escapes, open errors that name the device."""

from __future__ import annotations

import os
import threading
import time

import pytest

import drivers
from drivers import TransportEOFError, TransportOpenError, Word, selectable
from drivers.base import TransportClosedError
from drivers.pseudo_tty import PtyTransport
from drivers.stream import StreamTransport
from tests.support.threads import close_during_write


def test_pty_link_carries_the_documented_encoding() -> None:
    machine, path = drivers.open_pty()
    # Read the raw bytes on the slave side, as a foreign program would.
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    try:
        machine.write(bytes([0x01]), wakeup=True)
        machine.write(bytes([0xFF, 0x05]), wakeup=False)
        data = b""
        while len(data) < 6:
            data += os.read(fd, 16)
        assert data == bytes.fromhex("ff 00 01 ff ff 05")
    finally:
        os.close(fd)
        machine.close()


def test_bytes_written_before_the_agent_opens_the_pty_wait_for_it() -> None:
    machine, path = drivers.open_pty()
    machine.write(b"\x01", wakeup=True)  # a chirp with nobody listening yet
    host = drivers.open_transport(f"pty:{path}")
    assert host.read(time.monotonic() + 5) == [Word(1, True)]
    host.close()
    machine.close()


def test_pty_master_gone_is_eof_for_the_agent() -> None:
    machine, path = drivers.open_pty()
    host = drivers.open_transport(f"pty:{path}")
    machine.close()
    with pytest.raises(TransportEOFError) as info:
        host.read(time.monotonic() + 5)
    assert info.value.device == f"pty:{path}"
    host.close()


def test_tcp_peer_closing_is_eof() -> None:
    with drivers.tcp_listen() as listener:
        host = drivers.open_transport(listener.url)
        machine = listener.accept(time.monotonic() + 5)
        assert machine is not None
        host.close()
        with pytest.raises(TransportEOFError, match="peer closed") as info:
            machine.read(time.monotonic() + 5)
        assert info.value.device.startswith("tcp://127.0.0.1:")
        machine.close()


def test_invalid_escape_on_the_link_is_counted_not_fatal() -> None:
    with drivers.tcp_listen() as listener:
        host = drivers.open_transport(listener.url)
        machine = listener.accept(time.monotonic() + 5)
        assert isinstance(machine, StreamTransport) and isinstance(host, StreamTransport)
        # 0x41 after FF is no escape: one error, the byte is kept.
        host._send(memoryview(b"\xff\x41\x07"))
        got: list[Word] = []
        deadline = time.monotonic() + 5
        while len(got) < 2:
            run = machine.read(deadline)
            assert run
            got += run
        assert got == [Word(0x41, False), Word(0x07, False)]
        assert machine.decode_errors == 1
        host.close()
        machine.close()


def test_accept_returns_none_at_the_deadline_and_close_ends_it() -> None:
    listener = drivers.tcp_listen("127.0.0.1", 0)
    assert listener.address[1] != 0
    assert listener.accept(time.monotonic() + 0.02) is None
    listener.close()
    with pytest.raises(drivers.TransportClosedError):
        listener.accept(time.monotonic() + 5)


def test_tcp_refused_names_the_url() -> None:
    listener = drivers.tcp_listen()
    url = listener.url
    listener.close()
    with pytest.raises(TransportOpenError, match="cannot connect") as info:
        drivers.open_transport(url, connect_timeout=2)
    assert info.value.device == url


@pytest.mark.parametrize("url", ["tcp://localhost", "tcp://:5000", "tcp://h:notaport"])
def test_bad_tcp_urls(url: str) -> None:
    with pytest.raises(TransportOpenError, match="tcp://"):
        drivers.open_transport(url)


def test_missing_pty_is_an_open_error() -> None:
    with pytest.raises(TransportOpenError, match="no such device") as info:
        drivers.open_transport("pty:/dev/pts/nosuch")
    assert info.value.device == "pty:/dev/pts/nosuch"
    with pytest.raises(TransportOpenError, match="expected"):
        drivers.open_transport("pty:")


def test_unknown_option_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="bogus"):
        drivers.open_transport("pty:/dev/null", bogus=1)


def test_a_peer_that_never_reads_makes_write_time_out() -> None:
    """The agent's end of a pty whose machine side reads nothing: its writes time out."""
    master, slave = os.openpty()
    host = PtyTransport("pty-host", slave, write_timeout=0.05)
    try:
        with pytest.raises(drivers.TransportIOError, match="timed out") as info:
            for _ in range(10_000):  # far more than the pty buffer holds
                host.write(bytes(range(1, 255)), wakeup=False)
        assert info.value.device == host.name
    finally:
        host.close()
        os.close(master)


def test_the_machine_end_loses_what_nobody_reads_instead_of_blocking() -> None:
    """A machine chirps while no host polls (SAS §4.2); with nobody reading the pty its
    writes used to fill the slave's queue, time out and end the link for good. They throw
    the unread bytes away, as a wire does, and a host that opens the pty later reads what
    was written after."""
    machine, path = drivers.open_pty(write_timeout=0.05)
    try:
        for _ in range(10_000):  # far more than the pty buffer holds
            machine.write(bytes(range(1, 255)), wakeup=False)
            if machine.dropped_unread == 3:  # filled, thrown away and filled again, twice
                break
        assert machine.dropped_unread == 3
        host = drivers.open_transport(f"pty:{path}")
        try:
            host.discard_input()
            machine.write(b"\x01", wakeup=True)
            assert host.read(time.monotonic() + 5) == [Word(1, True)]
        finally:
            host.close()
    finally:
        machine.close()


class _HeldSend(PtyTransport):
    """A pty end whose next send, once armed, stops until released: a writer caught between
    its look at ``_closed`` and the system call, where a close from another thread lands."""

    def __init__(self, fd: int, keep: int) -> None:
        super().__init__("pty-held", fd, keep_fds=(keep,))
        self.armed = True
        self.in_send = threading.Event()
        self.release = threading.Event()
        self.fd_open_at_send: bool | None = None

    def _send(self, data: memoryview) -> int:
        if self.armed:
            self.armed = False
            self.in_send.set()
            self.release.wait(30)
            try:
                os.fstat(self._fd)
                self.fd_open_at_send = True
            except OSError:
                self.fd_open_at_send = False
        return super()._send(data)


def test_close_from_another_thread_waits_for_a_write_in_progress(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The write holds the transport's I/O lock as a read does, so a close from another
    thread releases the descriptor only after the write has let go of it (else the write
    could go to a closed descriptor, or to a file that was given its number)."""
    monkeypatch.setattr(selectable, "CLOSE_GRACE_S", 60.0)  # the close waits, never gives up
    master, slave = os.openpty()
    end = _HeldSend(master, slave)
    failures = close_during_write(end, lambda: end.write(b"\x01\x1f", wakeup=True),
                                  end.in_send, end.release)
    assert end.fd_open_at_send is True
    # the write went out before the close, or the close ended it: never a stray error
    assert all(isinstance(exc, TransportClosedError) for exc in failures), failures


@pytest.mark.parametrize("kind", ["pty", "tcp"])
def test_a_reply_already_there_is_read_even_when_the_deadline_has_passed(kind: str) -> None:
    """A reader scheduled late must not turn a reply that arrived in its window into a
    timeout: the deadline only bounds the wait, it never hides what is there."""
    import select

    listener = drivers.tcp_listen() if kind == "tcp" else None
    if listener is None:
        machine, path = drivers.open_pty()
        host = drivers.open_transport(f"pty:{path}")
    else:
        host = drivers.open_transport(listener.url)
        accepted = listener.accept(time.monotonic() + 5)
        assert accepted is not None
        machine = accepted
    try:
        assert isinstance(host, StreamTransport)
        machine.write(b"\x00", wakeup=False)
        ready, _, _ = select.select([host._fileno()], [], [], 5)
        assert ready, "the byte never reached the host side"
        assert host.read(time.monotonic() - 1.0) == [Word(0x00, False)]
        assert host.read(time.monotonic() - 1.0) == []  # and nothing more is invented
    finally:
        host.close()
        machine.close()
        if listener is not None:
            listener.close()
