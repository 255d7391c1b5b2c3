"""``emulator.tcp_serving.TcpServing``: a machine on a TCP listener, one host at a time, with
plain sockets as the host (the bytes of the 9-bit encoding, drivers/ninebit.py)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from drivers.base import Transport, TransportOpenError
from drivers.ninebit import NineBitDecoder
from emulator import tcp_serving
from emulator.model import Door, Machine
from emulator.server import Emulator
from emulator.tcp_serving import TcpServing
from tests.support.waits import wait_until

#: a general poll to address 0 (the sync poll: an out-of-sync machine hears its own address
#: only after a poll to another address, SAS §3.5), then a general poll to address 1; each
#: address byte with the wakeup bit, ``FF 00 b`` in the 9-bit encoding
SYNC_THEN_GENERAL_POLL = b"\xff\x00\x80\xff\x00\x81"

SLOT_DOOR_OPENED, SLOT_DOOR_CLOSED = 0x11, 0x12


def general_poll(sock: socket.socket) -> int:
    """The one-byte answer to a general poll (a chirp, a wakeup word, is passed over)."""
    sock.sendall(SYNC_THEN_GENERAL_POLL)
    decoder = NineBitDecoder()
    while True:
        data = sock.recv(64)
        assert data, "the emulator closed the connection instead of answering"
        for word in decoder.feed(data):
            if not word.wakeup:
                return word.value


def connect(served: TcpServing) -> socket.socket:
    return socket.create_connection(served.address, timeout=20)


def door_machine() -> Emulator:
    """A machine with two exceptions queued: 11 (slot door opened), then 12 (closed)."""
    now = time.monotonic()
    machine = Machine(now=now)
    machine.open_door(now, Door.SLOT)
    machine.close_door(now, Door.SLOT)
    return Emulator(machine, None, address=1, now=now)


@pytest.fixture
def logged() -> list[str]:
    return []


@pytest.fixture
def served(logged: list[str]) -> Iterator[TcpServing]:
    with TcpServing(door_machine(), "127.0.0.1", 0, log=logged.append) as serving:
        yield serving


def test_a_client_on_port_0_gets_the_answer_to_a_general_poll(
        served: TcpServing, logged: list[str]) -> None:
    host, port = served.address
    assert host == "127.0.0.1" and port > 0
    assert served.url == f"tcp://127.0.0.1:{port}"
    with connect(served) as sock:
        assert general_poll(sock) == SLOT_DOOR_OPENED
        wait_until(lambda: served.accepted == 1, what="the connection counted")
        assert logged[0].endswith(": connected")


def test_a_client_that_drops_is_closed_and_the_next_one_is_served(
        served: TcpServing, logged: list[str]) -> None:
    with connect(served) as sock:
        assert general_poll(sock) == SLOT_DOOR_OPENED
    # the emulator reads EOF: it lets the connection go and the helper closes it
    wait_until(lambda: served.emulator.transport is None and len(logged) == 2,
               what=lambda: f"the drop noticed; log {logged}")
    name = logged[0].removesuffix(": connected")
    assert logged[1].startswith(f"{name}: disconnected (")
    assert "peer closed the connection" in logged[1]
    with connect(served) as sock:
        # the machine ran on: its sync poll acknowledged 11 (an implied ACK, SAS §3.5), the
        # next exception answers
        assert general_poll(sock) == SLOT_DOOR_CLOSED
        assert served.accepted == 2
        assert served.accepting


def test_a_new_client_replaces_one_still_connected(served: TcpServing) -> None:
    with connect(served) as first:
        assert general_poll(first) == SLOT_DOOR_OPENED
        with connect(served) as second:
            assert general_poll(second) == SLOT_DOOR_CLOSED
            assert first.recv(64) == b""  # the older connection was closed


def test_stop_wakes_the_accept_closes_the_listener_and_the_connection(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # one accept would wait an hour: only stop() closing the listener can end it in time
    monkeypatch.setattr(tcp_serving, "_ACCEPT_SLICE_S", 3600.0)
    served = TcpServing(door_machine())
    served.start()
    sock = connect(served)
    try:
        assert general_poll(sock) == SLOT_DOOR_OPENED
        served.stop(timeout=20)
        assert not served.accepting and not served.emulator.running
        assert served.emulator.transport is None
        assert sock.recv(64) == b""  # the host's connection was closed
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(served.address, timeout=20).close()
        served.stop()  # again: a no-op
    finally:
        sock.close()
    with pytest.raises(RuntimeError):
        served.start()  # a stopped TcpServing does not start again


def test_an_address_in_use_is_a_clear_error(served: TcpServing) -> None:
    other = door_machine()
    host, port = served.address
    with pytest.raises(TransportOpenError) as caught:
        TcpServing(other, host, port)
    text = str(caught.value)
    assert text.startswith(f"tcp-listen://127.0.0.1:{port}: cannot listen: ")
    assert "Address already in use" in text
    assert other.on_disconnect is None  # nothing of the failed one stayed on the emulator
    with connect(served) as sock:  # the first one serves on
        assert general_poll(sock) == SLOT_DOOR_OPENED


def test_each_connection_is_served_through_the_wrap_when_given() -> None:
    wrapped: list[Transport] = []

    def tap(conn: Transport) -> Transport:
        wrapped.append(conn)
        return conn

    with TcpServing(door_machine(), wrap=tap) as served:
        for expected in (SLOT_DOOR_OPENED, SLOT_DOOR_CLOSED):
            with connect(served) as sock:
                assert general_poll(sock) == expected
            wait_until(lambda: served.emulator.transport is None, what="the drop noticed")
        assert len(wrapped) == 2 and wrapped[0] is not wrapped[1]
