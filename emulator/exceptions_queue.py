"""The machine's exception reporting: a FIFO queue plus priority exceptions.

SAS §2.2.1 (reference §3.4): the machine keeps a FIFO of at least 20 exceptions in NVRAM
(25 here, like Monaco); when it is full the *oldest* entry is dropped and exception 70
("exception buffer overflow") is reported at the next opportunity. Priority exceptions are
not queued: they are flags, always reported before queued items, in a fixed order. Some of
them persist until the host services them: 51 (handpay pending) is re-issued every 15 s until
LP 1B is read (SAS §7.8.1), 3D/3E (cash-out ticket printed / handpay validated) until LP 4D
is read.

Reporting is two-phase because of implied ACK (SAS §3.1): ``peek`` says what the next
general-poll reply carries; only when the host implicitly acknowledges that reply does the
machine call ``acknowledge`` and the entry leave the queue (or a persistent priority flag wait
for its next re-issue). An implied NACK re-sends the same reply and changes nothing here.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

#: Monaco's priority order (reference §3.4), highest first.
PRIORITY_ORDER: tuple[int, ...] = (
    0x57, 0x67, 0x68, 0x3F, 0x6A, 0x6B, 0x6F, 0x56, 0x3D, 0x3E, 0x69, 0x6C, 0x6D, 0x52, 0x51,
    0x8F, 0x70,
)
OVERFLOW = 0x70
DEFAULT_CAPACITY = 25
REISSUE_INTERVAL = 15.0  # SAS §7.8.1: handpay pending is re-sent every 15 s until 1B is read


@dataclass(frozen=True, slots=True)
class PendingException:
    """One reportable event: its general-poll code and, for RTE mode, its RTE frame content."""

    code: int
    rte_code: int
    rte_data: bytes = b""

    @classmethod
    def simple(cls, code: int) -> PendingException:
        return cls(code, code, b"")


@dataclass(slots=True)
class _Priority:
    exception: PendingException
    persistent: bool
    due: float


class ExceptionQueue:
    def __init__(
        self, capacity: int = DEFAULT_CAPACITY, reissue_interval: float = REISSUE_INTERVAL
    ) -> None:
        if capacity < 1:
            raise ValueError("exception queue capacity must be at least 1")
        self.capacity = capacity
        self.reissue_interval = reissue_interval
        self._fifo: deque[PendingException] = deque()
        self._priority: dict[int, _Priority] = {}
        self.dropped = 0  # entries lost to overflow since creation

    def push(self, exception: PendingException, now: float) -> None:
        """Queue an exception; on overflow drop the oldest and flag 70 (SAS §2.2.1)."""
        if exception.code in PRIORITY_ORDER:
            self.raise_priority(exception, now)
            return
        if len(self._fifo) >= self.capacity:
            self._fifo.popleft()
            self.dropped += 1
            self.raise_priority(PendingException.simple(OVERFLOW), now)
        self._fifo.append(exception)

    def raise_priority(
        self, exception: PendingException, now: float, *, persistent: bool = False
    ) -> None:
        """Set a priority flag, reportable from ``now`` on (before any queued entry)."""
        if exception.code not in PRIORITY_ORDER:
            raise ValueError(f"exception {exception.code:02X} is not a priority exception")
        self._priority[exception.code] = _Priority(exception, persistent, now)

    def service(self, code: int) -> bool:
        """The host serviced a priority exception (e.g. read LP 1B for 51): stop re-issuing."""
        return self._priority.pop(code, None) is not None

    def is_flagged(self, code: int) -> bool:
        return code in self._priority

    def peek(self, now: float) -> PendingException | None:
        """The exception the next general-poll reply carries, or None (no activity)."""
        for code in PRIORITY_ORDER:
            entry = self._priority.get(code)
            if entry is not None and entry.due <= now:
                return entry.exception
        return self._fifo[0] if self._fifo else None

    def acknowledge(self, exception: PendingException, now: float) -> None:
        """The host implicitly ACKed a reply carrying ``exception`` (SAS §3.1)."""
        entry = self._priority.get(exception.code)
        if entry is not None and entry.exception == exception:
            if entry.persistent:
                entry.due = now + self.reissue_interval
            else:
                del self._priority[exception.code]
            return
        if self._fifo and self._fifo[0] == exception:
            self._fifo.popleft()

    def queued(self) -> list[PendingException]:
        return list(self._fifo)

    def flagged(self) -> list[int]:
        return [code for code in PRIORITY_ORDER if code in self._priority]

    def __len__(self) -> int:
        return len(self._fifo)
