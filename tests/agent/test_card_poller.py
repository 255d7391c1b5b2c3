"""The card reader's thread: events, a lost reader reopened with backoff, the card in it."""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

import pytest

from agent.card_poller import READER_LOST, CardPoller
from agent.observations import CardInserted, CardRemoved
from drivers.base import TransportClosedError, TransportIOError, TransportOpenError
from drivers.card_format import CardEvent
from drivers.card_reader import CardReader
from tests.agent.e2e_helpers import Collected
from tests.agent.own_sockets import accept_own
from tests.support.waits import wait_until


class FakeReader:
    """A card reader double: hands out scripted events, then blocks until closed or failed."""

    name = "fake"

    def __init__(self, events: list[CardEvent]) -> None:
        self.events = events
        self.closed = threading.Event()
        self.fail = threading.Event()
        self.current: CardEvent | None = None

    def poll(self, deadline: float) -> list[CardEvent]:
        if self.events:
            out, self.events = self.events, []
            for event in out:
                self.current = event if event.kind == "inserted" else None
            return out
        if self.fail.is_set():
            raise TransportIOError("fake", "read failed: socket disconnected")
        if self.closed.wait(0.01):
            raise TransportClosedError("fake", "closed")
        return []

    def close(self) -> None:
        self.closed.set()


def test_card_poller_reports_card_observations() -> None:
    seen = Collected()
    reader = FakeReader([CardEvent("inserted", "P0012345", "player", "P0012345"),
                         CardEvent("removed", "P0012345", "player", "")])
    poller = CardPoller(lambda: reader, seen, clock=lambda: 5.0)
    poller.start()
    try:
        wait_until(lambda: seen.of(CardRemoved), what="the card removal")
        inserted = seen.of(CardInserted)[0]
        assert inserted.card_id == "P0012345" and inserted.kind == "player"
        assert inserted.at == 5.0
        assert seen.of(CardRemoved)[0].reason is None
    finally:
        poller.stop()
    assert reader.closed.is_set()


def test_a_lost_reader_is_reopened_with_backoff_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Lost with a card in: the card is reported removed (readerLost); the reopen fails a few
    times (one warning for the loss, one for the first failed reopen, nothing per attempt),
    then works; attempts are spaced by a doubling backoff."""
    seen = Collected()
    first = FakeReader([CardEvent("inserted", "P0012345", "player", ";P0012345?")])
    second = FakeReader([CardEvent("inserted", "E0042", "employee", "E0042")])
    attempts: list[float] = []

    def open_reader() -> FakeReader:
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            return first
        if len(attempts) < 6:
            raise TransportOpenError("tcp://reader:4001", "cannot open: connection refused")
        return second

    poller = CardPoller(open_reader, seen, backoff_first_s=0.01, backoff_max_s=0.08)
    caplog.set_level(logging.DEBUG, logger="agent.card_poller")
    poller.start()
    try:
        wait_until(lambda: seen.of(CardInserted), what="the first card")
        first.fail.set()
        wait_until(lambda: len(seen.of(CardInserted)) == 2, what="the card of the new reader")
    finally:
        poller.stop()
    removed = seen.of(CardRemoved)
    assert [(r.card_id, r.kind, r.reason) for r in removed] == [
        ("P0012345", "player", READER_LOST)]
    assert first.closed.is_set() and second.closed.is_set()
    assert poller.opened == 2 and poller.lost == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "card reader lost: fake: read failed: socket disconnected; reopening it; "
        "card P0012345 reported removed (readerLost)",
        "card reader does not open: tcp://reader:4001: cannot open: connection refused; "
        "trying again every 0.1 s at most (logged again when it opens)",
    ], warnings
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert infos == ["card reader fake: open again after 5 attempt(s)"]
    assert len(attempts) == 6
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert len([m for m in debug if m.startswith("card reader still does not open")]) == 3


def test_a_flapping_reader_costs_one_warning_not_one_per_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A terminal server that accepts and drops at once: every reader opens, then fails on
    its first read. The first loss is a warning and the first reopening an info line; the
    losses that follow (within STABLE_S of opening) are debug lines, the backoff goes on."""
    seen = Collected()
    readers: list[FakeReader] = []
    good = FakeReader([CardEvent("inserted", "P0012345", "player", "P0012345")])

    def open_reader() -> FakeReader:
        if len(readers) == 6:
            return good
        reader = FakeReader([])
        reader.fail.set()
        readers.append(reader)
        return reader

    poller = CardPoller(open_reader, seen, backoff_first_s=0.01, backoff_max_s=0.04)
    caplog.set_level(logging.DEBUG, logger="agent.card_poller")
    poller.start()
    try:
        wait_until(lambda: seen.of(CardInserted), what=lambda: f"lost {poller.lost}")
    finally:
        poller.stop()
    assert poller.lost == 6 and poller.opened == 7
    assert all(r.closed.is_set() for r in readers)
    by_level = {level: [r.getMessage() for r in caplog.records if r.levelno == level]
                for level in (logging.WARNING, logging.INFO, logging.DEBUG)}
    assert by_level[logging.WARNING] == [
        "card reader lost: fake: read failed: socket disconnected; reopening it"]
    assert by_level[logging.INFO] == ["card reader fake: open again after 1 attempt(s)"]
    assert len([m for m in by_level[logging.DEBUG] if m.startswith("card reader lost")]) == 5
    assert seen.of(CardRemoved) == []  # no card was in any of them


def _serve(listener: socket.socket, conns: list[socket.socket], stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            conn = accept_own(listener, 0.05)
        except TimeoutError:
            continue
        except OSError:
            return
        conns.append(conn)


def test_a_tcp_reader_that_drops_ends_the_card_and_is_read_again() -> None:
    """A terminal-server reader (tcp://, opened as socket://) drops its connection with a
    player card in: the card is reported removed (readerLost), the agent connects again (the
    default backoff: within a second here) and reads the card the reader reports again."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    conns: list[socket.socket] = []
    stop = threading.Event()
    server = threading.Thread(target=_serve, args=(listener, conns, stop), daemon=True)
    server.start()
    seen = Collected()

    def open_reader() -> CardReader:
        return CardReader(f"socket://127.0.0.1:{port}", player_prefixes=("P",),
                          employee_prefixes=("E",))

    poller = CardPoller(open_reader, seen)

    def state() -> str:
        return (f"connections {len(conns)}, opened {poller.opened}, lost {poller.lost}, "
                f"observations {seen.items}")

    poller.start()
    try:
        wait_until(lambda: len(conns) == 1, what=state)
        conns[0].sendall(b"%P0099999?\r\n")
        wait_until(lambda: seen.of(CardInserted), what=state)
        assert seen.of(CardInserted)[0].card_id == "P0099999"
        conns[0].close()  # the terminal server drops the connection
        wait_until(lambda: seen.of(CardRemoved), what=state)
        gone = seen.of(CardRemoved)[0]
        assert (gone.card_id, gone.kind, gone.reason) == ("P0099999", "player", READER_LOST)
        wait_until(lambda: len(conns) == 2, timeout=8.0, what=state)
        conns[1].sendall(b"%P0099999?\r\n")
        wait_until(lambda: len(seen.of(CardInserted)) == 2, what=state)
    finally:
        poller.stop()
        stop.set()
        server.join(5)
        listener.close()
        for conn in conns:
            conn.close()


def test_stop_while_the_reader_does_not_open_returns() -> None:
    def never() -> Any:
        raise TransportOpenError("/dev/ttyUSB9", "cannot open: no such file")

    poller = CardPoller(never, Collected(), backoff_first_s=0.01, backoff_max_s=0.02)
    poller.start()
    wait_until(lambda: poller.opened == 0 and not poller.connected, what="a first attempt")
    poller.stop()
    assert poller._thread is not None and not poller._thread.is_alive()
