"""The card reader's thread: reads insert/remove events, survives a lost reader.

The reader (``drivers.card_reader.CardReader``) is polled on a thread of its own, never the
line thread. When the reader is lost (a USB reader unplugged, a terminal server dropping the
TCP connection), the poller closes it and opens a new one with a backoff of 0.5 s doubling to
5 s (``agent.retry.doubling``, tenacity's schedule), so a reader that comes back is read again
within about 5 s of its return. A card that was in the lost reader is reported removed with
``reason: readerLost`` (docs/events.md): the agent can no longer tell that it is in, and a
player session must not keep collecting money for a card nobody may be holding. A reader
that opens again and still holds the card reports it again, which opens a new session.

Logging: one warning when the reader is lost (or does not open at start), one when the first
attempt to reopen it fails, then quiet (debug) until it opens: one info line with the number
of attempts. A reader lost again within ``STABLE_S`` of opening again (it accepts and drops)
is the same incident: the backoff goes on and its lines are debug ones. Never the same
warning every second.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Literal, Protocol

from agent.observations import CardInserted, CardRemoved, Observation
from agent.retry import doubling
from drivers.base import TransportClosedError, TransportError
from drivers.card_format import CardEvent, Holder

__all__ = ["BACKOFF_FIRST_S", "BACKOFF_MAX_S", "READER_LOST", "STABLE_S", "CardPoller", "Reader"]

log = logging.getLogger(__name__)

#: First wait before reopening a lost reader; doubled after each failed attempt.
BACKOFF_FIRST_S = 0.5
#: Longest wait between two attempts: a reader back on the line is read within this.
BACKOFF_MAX_S = 5.0
#: A reader up this long before it is lost was working: the backoff starts over.
STABLE_S = 10.0
#: ``reason`` of the ``cardRemoved`` reported for a card that was in a lost reader.
READER_LOST = "readerLost"


class Reader(Protocol):
    """What the poller needs of a reader (``drivers.card_reader.CardReader``)."""

    name: str

    @property
    def current(self) -> CardEvent | None: ...

    def poll(self, deadline: float) -> list[CardEvent]: ...

    def close(self) -> None: ...


class CardPoller:
    """Polls the reader ``open_reader()`` returns and reports ``CardInserted`` /
    ``CardRemoved`` observations through ``on_observation``; reopens a lost reader.

    The session is the terminal's, so observations carry ``address`` (the first machine)."""

    def __init__(self, open_reader: Callable[[], Reader],
                 on_observation: Callable[[Observation], None], *, address: int = 1,
                 clock: Callable[[], float] = time.time, slice_s: float = 0.25,
                 backoff_first_s: float = BACKOFF_FIRST_S,
                 backoff_max_s: float = BACKOFF_MAX_S) -> None:
        self._open = open_reader
        self._emit = on_observation
        self._address = address
        self._clock = clock
        self._slice = slice_s
        self._backoff_first = backoff_first_s
        self._backoff_max = backoff_max_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._reader: Reader | None = None
        self._thread: threading.Thread | None = None
        self._delays = doubling(backoff_first_s, backoff_max_s)
        #: An incident was reported and no reader has been stable since: log at debug level.
        self._quiet = False
        #: Readers opened so far (1 after the first open; each reconnection adds one).
        self.opened = 0
        #: Times the reader was lost while running.
        self.lost = 0

    @property
    def connected(self) -> bool:
        return self._reader is not None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="card-reader", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Ends a pending poll (closes the reader) and the thread."""
        self._stop.set()
        with self._lock:
            reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        failures = 0
        opened_at = 0.0
        while not self._stop.is_set():
            reader = self._reader
            if reader is None:
                reader = self._try_open(failures)
                if reader is None:
                    failures += 1
                    self._stop.wait(next(self._delays))
                    continue
                if failures or self.lost:
                    log.log(logging.DEBUG if self._quiet else logging.INFO,
                            "card reader %s: open again after %d attempt(s)", reader.name,
                            failures + 1)
                    self._quiet = True  # until this reader proves stable (_reader_lost)
                failures = 0
                opened_at = time.monotonic()
            try:
                events = reader.poll(time.monotonic() + self._slice)
            except TransportClosedError:
                if self._stop.is_set():
                    return
                self._reader_lost(reader, f"{reader.name}: closed", opened_at)
                continue
            except TransportError as exc:
                self._reader_lost(reader, str(exc), opened_at)
                continue
            for event in events:
                self._report(event.kind, event.card_id, event.holder, None)

    def _try_open(self, failures: int) -> Reader | None:
        try:
            reader = self._open()
        except TransportError as exc:
            if failures == 0 and not self._quiet:
                log.warning("card reader does not open: %s; trying again every %.1f s at "
                            "most (logged again when it opens)", exc, self._backoff_max)
            else:
                log.debug("card reader still does not open (attempt %d): %s",
                          failures + 1, exc)
            return None
        with self._lock:
            if self._stop.is_set():
                reader.close()
                return None
            self._reader = reader
        self.opened += 1
        return reader

    def _reader_lost(self, reader: Reader, why: str, opened_at: float) -> None:
        """Closes the lost reader, reports its card removed, waits before reopening.

        A reader that was up for ``STABLE_S`` was working: its loss is a new incident, logged
        as a warning, and the backoff starts from its first step. One lost sooner after it
        was opened again (a terminal server that accepts and drops at once) is the same
        incident going on: the backoff continues and the lines are debug ones, so a flapping
        reader costs one warning, not one per connection."""
        self.lost += 1
        if time.monotonic() - opened_at >= STABLE_S:
            self._delays = doubling(self._backoff_first, self._backoff_max)
            self._quiet = False
        card = reader.current
        held = f"; card {card.card_id} reported removed ({READER_LOST})" if card else ""
        log.log(logging.DEBUG if self._quiet else logging.WARNING,
                "card reader lost: %s; reopening it%s", why, held)
        with self._lock:
            if self._reader is reader:
                self._reader = None
        reader.close()
        if card is not None:
            self._report("removed", card.card_id, card.holder, READER_LOST)
        self._stop.wait(next(self._delays))

    def _report(self, kind: Literal["inserted", "removed"], card_id: str, holder: Holder,
                reason: str | None) -> None:
        at = self._clock()
        if kind == "inserted":
            self._emit(CardInserted(at=at, address=self._address, card_id=card_id, kind=holder))
        else:
            self._emit(CardRemoved(at=at, address=self._address, card_id=card_id, kind=holder,
                                   reason=reason))
