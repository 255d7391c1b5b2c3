"""An in-process transport pair with seeded, run-time adjustable fault injection.

Used by protocol, emulator and agent tests, and by demos that need no hardware::

    host, machine = pair(faults=Faults(corrupt=0.01, seed=7))
    with host.faults.during(cut=True):   # "stop delivering for a while"
        ...

Each direction applies the ``Faults`` object of the end that writes (``end.faults``). Passing
``faults=`` shares one object between both directions, so a run-time change affects the whole
line; ``to_machine=`` / ``to_host=`` give each direction its own. Faults are drawn from the
object's own seeded ``random.Random``: the same seed and the same sequence of writes give the
same faults.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields

from drivers.base import (
    Transport,
    TransportClosedError,
    Word,
    check_frame,
    frame_words,
)
from sas_protocol.hexdump import elided_hex

__all__ = ["Faults", "LeakError", "MemoryTransport", "assert_drained", "pair"]


@dataclass(eq=False)
class Faults:
    """What goes wrong on one direction of a memory line. Mutable on purpose: tests change it
    while the line runs ("corrupt 1 % for a stretch", "cut the cable for a while").

    Probabilities are per word. ``corrupt`` flips one of the nine bits (the wakeup bit too: a
    real line fault can hit it). ``split`` makes each read return a random short run of the
    words available, as a UART with a small FIFO does. ``delay_s`` holds each word back from
    the reader for that long after it was written. ``cut`` drops everything written.
    """

    drop: float = 0.0
    corrupt: float = 0.0
    duplicate: float = 0.0
    split: bool = False
    delay_s: float = 0.0
    cut: bool = False
    seed: int = 0
    # What was applied so far (tests assert that a fault really happened).
    dropped: int = field(default=0, init=False)
    corrupted: int = field(default=0, init=False)
    duplicated: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._validate()
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def _validate(self) -> None:
        for name in ("drop", "corrupt", "duplicate"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"Faults.{name} is a probability 0..1, not {p}")
        if self.delay_s < 0:
            raise ValueError(f"Faults.delay_s must not be negative, not {self.delay_s}")

    @contextmanager
    def during(self, **changes: float | bool) -> Iterator[Faults]:
        """Apply ``changes`` for the duration of a ``with`` block, then restore the old values."""
        settable = {f.name for f in fields(self) if f.init and f.name != "seed"}
        unknown = set(changes) - settable
        if unknown:
            raise TypeError(f"unknown fault settings: {sorted(unknown)}")
        saved = {name: getattr(self, name) for name in changes}
        for name, value in changes.items():
            setattr(self, name, value)
        self._validate()
        try:
            yield self
        finally:
            for name, value in saved.items():
                setattr(self, name, value)

    def apply(self, words: Sequence[Word]) -> list[Word]:
        """The words that reach the other end when ``words`` are written."""
        with self._lock:
            if self.cut:
                self.dropped += len(words)
                return []
            out: list[Word] = []
            rng = self._rng
            for word in words:
                if self.drop and rng.random() < self.drop:
                    self.dropped += 1
                    continue
                if self.corrupt and rng.random() < self.corrupt:
                    bit = rng.randrange(9)
                    if bit == 8:
                        word = Word(word.value, not word.wakeup)
                    else:
                        word = Word(word.value ^ (1 << bit), word.wakeup)
                    self.corrupted += 1
                out.append(word)
                if self.duplicate and rng.random() < self.duplicate:
                    out.append(word)
                    self.duplicated += 1
            return out

    def run_length(self, available: int) -> int:
        """How many of ``available`` words one read returns."""
        if not self.split or available <= 1:
            return available
        with self._lock:
            return self._rng.randint(1, available)


class _Channel:
    """One direction: a queue of (readable_at, word) guarded by a condition."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.cond = threading.Condition()
        self.queue: deque[tuple[float, Word]] = deque()
        self.receiver_closed = False
        self.lost_to_closed = 0

    def put(self, words: Sequence[Word]) -> None:
        delivered = self.faults.apply(words)
        with self.cond:
            if self.receiver_closed:
                self.lost_to_closed += len(delivered)
                return
            at = time.monotonic() + self.faults.delay_s
            self.queue.extend((at, w) for w in delivered)
            self.cond.notify_all()


class MemoryTransport(Transport):
    """One end of a memory line. Made by ``pair()``."""

    def __init__(self, name: str, rx: _Channel, tx: _Channel) -> None:
        self.name = name
        self._rx = rx
        self._tx = tx
        self._closed = False

    @property
    def faults(self) -> Faults:
        """The faults applied to what this end writes."""
        return self._tx.faults

    def write(self, frame: bytes, *, wakeup: bool) -> None:
        check_frame(self.name, frame, wakeup)
        self.write_words(frame_words(frame, wakeup=wakeup))

    def write_words(self, words: Sequence[Word]) -> None:
        """Send arbitrary words (e.g. a wakeup bit in mid-frame) through the fault model."""
        if self._closed:
            raise TransportClosedError(self.name, "write on a closed transport")
        self._tx.put(words)

    def read(self, deadline: float, max_words: int = 512) -> list[Word]:
        if max_words < 1:
            raise ValueError(f"max_words must be at least 1, not {max_words}")
        rx = self._rx
        with rx.cond:
            while True:
                if rx.receiver_closed:
                    raise TransportClosedError(self.name, "read on a closed transport")
                now = time.monotonic()
                ready = 0
                for at, _ in rx.queue:
                    if at > now or ready == max_words:
                        break
                    ready += 1
                if ready:
                    count = rx.faults.run_length(ready)
                    return [rx.queue.popleft()[1] for _ in range(count)]
                if now >= deadline:
                    return []
                wake = min(deadline, rx.queue[0][0]) if rx.queue else deadline
                rx.cond.wait(wake - now)

    def discard_input(self) -> None:
        """Drop the words that have arrived; words still "on the wire" (delayed) stay."""
        if self._closed:
            raise TransportClosedError(self.name, "discard on a closed transport")
        rx = self._rx
        with rx.cond:
            now = time.monotonic()
            while rx.queue and rx.queue[0][0] <= now:
                rx.queue.popleft()

    def unread(self) -> list[Word]:
        """Words sent to this end and not read yet (delayed ones included)."""
        with self._rx.cond:
            return [w for _, w in self._rx.queue]

    def close(self) -> None:
        rx = self._rx
        with rx.cond:
            self._closed = True
            rx.receiver_closed = True
            rx.cond.notify_all()


def pair(
    *,
    faults: Faults | None = None,
    to_machine: Faults | None = None,
    to_host: Faults | None = None,
    name: str = "memory",
) -> tuple[MemoryTransport, MemoryTransport]:
    """A connected ``(host_end, machine_end)``. See the module docstring for ``faults``."""
    if faults is not None and (to_machine is not None or to_host is not None):
        raise TypeError("give either faults= (both directions) or to_machine=/to_host=")
    shared = faults
    down = _Channel(to_machine or shared or Faults())
    up = _Channel(to_host or shared or Faults())
    host = MemoryTransport(f"{name}:host", rx=up, tx=down)
    machine = MemoryTransport(f"{name}:machine", rx=down, tx=up)
    return host, machine


class LeakError(AssertionError):
    """Words were left unread at the end of a test."""


def assert_drained(*ends: MemoryTransport) -> None:
    """Leak check: raise ``LeakError`` naming each end that still holds unread words."""
    leaks = []
    for end in ends:
        words = end.unread()
        if words:
            marks = "".join("w" if w.wakeup else "." for w in words[:32])
            data = elided_hex(bytes(w.value for w in words))
            leaks.append(f"{end.name}: {len(words)} unread words [{data}] wakeup map {marks}")
    if leaks:
        raise LeakError("; ".join(leaks))
