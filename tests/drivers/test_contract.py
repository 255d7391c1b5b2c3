"""One contract, every transport: memory, pty, tcp, and a real UART when the environment
variable SLOT_AGENT_TEST_SERIAL names a port pair ("/dev/ttyUSB0,/dev/ttyUSB1", wired
null-modem) or one port with a loopback plug ("/dev/ttyUSB0")."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

import drivers
from drivers import Transport, TransportClosedError, Word
from drivers.memory import pair


@dataclass
class Line:
    host: Transport
    machine: Transport
    # A real UART delivers bytes one character time apart: how long the last byte of a
    # short frame may trail the first.
    settle_s: float = 0.0


def _memory() -> Iterator[Line]:
    host, machine = pair()
    yield Line(host, machine)


def _pty() -> Iterator[Line]:
    machine, path = drivers.open_pty()
    host = drivers.open_transport(f"pty:{path}")
    yield Line(host, machine)


def _tcp() -> Iterator[Line]:
    with drivers.tcp_listen("127.0.0.1", 0) as listener:
        host = drivers.open_transport(listener.url)
        machine = listener.accept(time.monotonic() + 5)
        assert machine is not None
        yield Line(host, machine)


def _serial() -> Iterator[Line]:
    spec = os.environ.get("SLOT_AGENT_TEST_SERIAL", "")
    if not spec:
        pytest.skip(
            "no real UART: set SLOT_AGENT_TEST_SERIAL=/dev/ttyA,/dev/ttyB (null-modem) "
            "or SLOT_AGENT_TEST_SERIAL=/dev/ttyA (loopback plug)"
        )
    ports = [p.strip() for p in spec.split(",") if p.strip()]
    host = drivers.open_transport(ports[0])
    machine = drivers.open_transport(ports[1]) if len(ports) > 1 else host
    yield Line(host, machine, settle_s=0.05)


MAKERS = {"memory": _memory, "pty": _pty, "tcp": _tcp, "serial": _serial}


@pytest.fixture(params=sorted(MAKERS))
def line(request: pytest.FixtureRequest) -> Iterator[Line]:
    gen = MAKERS[request.param]()
    made = next(gen)
    try:
        yield made
    finally:
        made.host.close()
        made.machine.close()
        for _ in gen:  # let the maker clean up
            pass


def read_words(end: Transport, count: int, timeout: float = 5.0) -> list[Word]:
    got: list[Word] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        run = end.read(deadline)
        if not run:
            break
        got += run
    return got


def test_host_frame_arrives_with_the_wakeup_bit_on_the_address(line: Line) -> None:
    line.host.write(bytes([0x01, 0x1F, 0xFF, 0x00]), wakeup=True)
    assert read_words(line.machine, 4) == [
        Word(0x01, True),
        Word(0x1F, False),
        Word(0xFF, False),
        Word(0x00, False),
    ]


def test_machine_chirp_and_reply_arrive(line: Line) -> None:
    line.machine.write(b"\x01", wakeup=True)  # chirp: own address with the wakeup bit
    line.machine.write(bytes([0x01, 0x11, 0x22]), wakeup=False)
    assert read_words(line.host, 4) == [
        Word(0x01, True),
        Word(0x01, False),
        Word(0x11, False),
        Word(0x22, False),
    ]


def test_every_byte_value_crosses_unchanged(line: Line) -> None:
    data = bytes(range(256))
    line.host.write(data, wakeup=False)
    assert read_words(line.machine, 256) == [Word(b, False) for b in data]


def test_read_returns_nothing_at_the_deadline(line: Line) -> None:
    assert line.host.read(time.monotonic() + 0.05) == []
    assert line.machine.read(time.monotonic() - 1.0) == []


def test_max_words_bounds_one_read(line: Line) -> None:
    line.host.write(bytes(range(1, 11)), wakeup=True)
    first = line.machine.read(time.monotonic() + 5, max_words=3)
    assert 1 <= len(first) <= 3
    rest = read_words(line.machine, 10 - len(first))
    assert [w.value for w in first + rest] == list(range(1, 11))


def test_discard_input_drops_what_arrived(line: Line) -> None:
    line.machine.write(bytes([0x10, 0x11, 0x12]), wakeup=False)
    assert line.host.read(time.monotonic() + 5, max_words=1) == [Word(0x10, False)]
    if line.settle_s:
        line.machine.read(time.monotonic() + line.settle_s)  # let the UART deliver the rest
    line.host.discard_input()
    line.machine.write(b"\x42", wakeup=True)
    assert read_words(line.host, 1) == [Word(0x42, True)]


def test_empty_frames(line: Line) -> None:
    line.host.write(b"", wakeup=False)  # nothing to send: no error
    with pytest.raises(ValueError, match="wakeup"):
        line.host.write(b"", wakeup=True)


def test_close_unblocks_a_reader_in_another_thread(line: Line) -> None:
    errors: list[BaseException] = []
    results: list[list[Word]] = []
    entered = threading.Event()

    def reader() -> None:
        entered.set()
        try:
            results.append(line.host.read(time.monotonic() + 60))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    assert entered.wait(5)
    line.host.close()
    thread.join(10)
    assert not thread.is_alive(), "close() left the reader blocked"
    assert results == [] and len(errors) == 1
    assert isinstance(errors[0], TransportClosedError)
    assert errors[0].device == line.host.name


def test_use_after_close_raises_naming_the_device(line: Line) -> None:
    line.host.close()
    line.host.close()  # idempotent
    for call in (
        lambda: line.host.write(b"\x01", wakeup=True),
        lambda: line.host.read(time.monotonic() + 1),
        line.host.discard_input,
    ):
        with pytest.raises(TransportClosedError) as info:
            call()
        assert line.host.name in str(info.value)
