"""The card reader on a real pty (8N1) and on loop://."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest

from drivers import TransportClosedError, TransportOpenError
from drivers.card_format import CardEvent
from drivers.card_reader import CardReader


@pytest.fixture
def reader_pty() -> Iterator[tuple[int, CardReader]]:
    master, slave = os.openpty()
    reader = CardReader(os.ttyname(slave), player_prefixes=("P",), employee_prefixes=("E",))
    yield master, reader
    reader.close()
    os.close(master)
    os.close(slave)


def test_insert_and_remove_over_a_pty(reader_pty: tuple[int, CardReader]) -> None:
    master, reader = reader_pty
    assert reader.poll(time.monotonic() + 0.02) == []
    os.write(master, b";P0012345?\r\n")
    assert reader.poll(time.monotonic() + 5) == [
        CardEvent("inserted", "P0012345", "player", ";P0012345?")
    ]
    os.write(master, b"garbage!!\r\nREMOVED\r\n")
    assert reader.poll(time.monotonic() + 5) == [
        CardEvent("removed", "P0012345", "player", "REMOVED")
    ]
    assert reader.garbage_lines == 1 and reader.current is None


def test_close_ends_a_pending_poll(reader_pty: tuple[int, CardReader]) -> None:
    _, reader = reader_pty
    errors: list[BaseException] = []
    entered = threading.Event()

    def poller() -> None:
        entered.set()
        try:
            reader.poll(time.monotonic() + 60)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=poller, daemon=True)
    thread.start()
    assert entered.wait(5)
    reader.close()
    thread.join(10)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], TransportClosedError)


def test_loop_url() -> None:
    with CardReader("loop://", employee_prefixes=("9",)) as reader:
        reader._port.write(b"90001\n")
        events = reader.poll(time.monotonic() + 5)
        assert [(e.kind, e.card_id, e.holder) for e in events] == [
            ("inserted", "90001", "employee")
        ]


def test_missing_device_names_it() -> None:
    with pytest.raises(TransportOpenError, match="no such device") as info:
        CardReader("/dev/ttyNOSUCHCARD")
    assert info.value.device == "/dev/ttyNOSUCHCARD"
