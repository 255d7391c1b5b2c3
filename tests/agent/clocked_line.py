"""A line owner on a fake clock: an emulated machine answers at once, time passes only when
the line owner waits (for a slot, or for a reply window to close) or reads a reply (its wire
time). Everything on the line is logged with its virtual time, so tests assert the protocol's
timing rules on the log, never on wall-clock time.

Scripted actions (``at(t, action)``) run on the line thread when the clock passes ``t``: a
machine going silent, busy, or a reply filter that damages frames for a while.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agent.config import MachineConfig, PollConfig
from agent.line.owner import LineOwner
from drivers.base import Transport, Word, frame_words
from emulator.model import Machine
from emulator.server import Emulator, LinkOptions
from tests.agent.e2e_helpers import Collected
from tests.support.waits import wait_until

#: SAS §3.6: 11 bits at 19200 baud
WIRE_S_PER_BYTE = 11 / 19200
#: how long the emulated machine takes to start its answer
TURNAROUND_S = 0.002
START = 1000.0


class FakeClock:
    """Virtual seconds; only the line thread moves it."""

    def __init__(self) -> None:
        self.now = START

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return 1_700_000_000.0 + self.now

    def wait(self, seconds: float) -> bool:
        self.now += max(0.0, seconds)
        return False


@dataclass(frozen=True, slots=True)
class Record:
    at: float  # when the first byte went out (tx) or the last byte came in (rx)
    direction: str  # "tx" or "rx"
    data: bytes


class _MachineEnd(Transport):
    """What the emulator writes into: the host end's receive queue."""

    name = "machine-end"

    def __init__(self, line: ClockedLine) -> None:
        self._line = line

    def write(self, frame: bytes, *, wakeup: bool) -> None:
        line = self._line
        if line.reply_delay:
            line.late.append((line.clock.now + line.reply_delay, frame))
        else:
            line.pending.extend(frame)

    def read(self, deadline: float, max_words: int = 512) -> list[Word]:
        return []

    def discard_input(self) -> None:
        pass

    def close(self) -> None:
        pass


class ClockedLine(Transport):
    """The host end of a line to an emulated machine, on ``clock``."""

    name = "clocked"

    def __init__(self, clock: FakeClock, *, options: LinkOptions | None = None) -> None:
        self.clock = clock
        self.machine = Machine(now=clock.now)
        self.emulator = Emulator(self.machine, _MachineEnd(self), options=options,
                                 now=clock.now)
        self.pending: bytearray = bytearray()
        self.log: list[Record] = []
        #: changes the machine's answer on the way (None: deliver as is)
        self.reply_filter: Callable[[bytes], bytes] | None = None
        #: the machine starts its answers this long after the poll (0: at once); a delay
        #: beyond the host's reply window is a machine later than SAS §2.3.1's 20 ms
        self.reply_delay = 0.0
        #: answers on their way: (when they start to arrive, bytes)
        self.late: deque[tuple[float, bytes]] = deque()
        self._actions: deque[tuple[float, Callable[[ClockedLine], None]]] = deque()
        self._closed = False

    def at(self, t: float, action: Callable[[ClockedLine], None]) -> None:
        """Run ``action(self)`` on the line thread once the clock reaches START + ``t``."""
        self._actions.append((START + t, action))
        self._actions = deque(sorted(self._actions, key=lambda a: a[0]))

    def _run_actions(self) -> None:
        while self._actions and self._actions[0][0] <= self.clock.now:
            _, action = self._actions.popleft()
            action(self)

    def write(self, frame: bytes, *, wakeup: bool) -> None:
        self._run_actions()
        self.log.append(Record(self.clock.now, "tx", frame))
        self.emulator.receive(frame_words(frame, wakeup=wakeup), self.clock.now)
        self.clock.now += len(frame) * WIRE_S_PER_BYTE

    def _arrive(self, until: float) -> None:
        """Answers that started to arrive by ``until`` join ``pending``."""
        while self.late and self.late[0][0] <= until:
            at, frame = self.late.popleft()
            self.clock.now = max(self.clock.now, at)
            self.pending.extend(frame)

    def read(self, deadline: float, max_words: int = 512) -> list[Word]:
        self._run_actions()
        if not self.pending:
            self._arrive(deadline)
        if self.pending:
            data = bytes(self.pending)
            self.pending.clear()
            if self.reply_filter is not None:
                data = self.reply_filter(data)
            self.clock.now += TURNAROUND_S + len(data) * WIRE_S_PER_BYTE
            self.log.append(Record(self.clock.now, "rx", data))
            return [Word(b, False) for b in data]
        self.clock.now = max(self.clock.now, deadline)
        self.emulator.tick(self.clock.now)
        return []

    def discard_input(self) -> None:
        self._arrive(self.clock.now)  # what has arrived by now; answers on the way stay
        self.pending.clear()

    def close(self) -> None:
        self._closed = True


class ClockedRig:
    """A line owner polling one emulated machine (address 1) on a fake clock."""

    def __init__(self, poll: PollConfig, *, rte: bool = False,
                 options: LinkOptions | None = None) -> None:
        self.clock = FakeClock()
        self.line = ClockedLine(self.clock, options=options or LinkOptions(rte=rte))
        self.seen = Collected()
        self.owner = LineOwner(self.line, [MachineConfig(1, rte=rte)], poll, self.seen,
                               clock=self.clock.wall, monotonic=self.clock.monotonic,
                               wait=self.clock.wait)

    def run_until(self, t: float) -> None:
        """Run the line owner until the virtual clock passes START + ``t``, then stop it."""
        done = threading.Event()

        def end(_line: ClockedLine) -> None:
            self.owner.request_stop()  # no virtual time passes after this but the poll's
            done.set()

        self.line.at(t, end)
        self.owner.start()
        try:
            wait_until(done.is_set, what=lambda: f"virtual time {self.clock.now - START:.1f} s")
        finally:
            self.owner.stop()
        assert not self.owner.running

    def virtual(self, wall: float) -> float:
        """An observation's time as seconds since START."""
        return wall - self.clock.wall() + self.clock.now - START

    def sends(self, since: float = 0.0) -> list[Record]:
        """Writes to the machine (the sync poll and its poll are one send)."""
        out: list[Record] = []
        for rec in self.line.log:
            if rec.direction != "tx" or rec.at < START + since:
                continue
            if out and rec.at - out[-1].at < 0.001 and out[-1].data == b"\x80":
                out[-1] = Record(out[-1].at, "tx", out[-1].data + rec.data)
                continue
            out.append(rec)
        return out


def gaps_from_last_byte(log: Sequence[Record]) -> list[tuple[float, Record]]:
    """For each send after the first, the time since the previous byte on the line ended (a
    write's last byte, or a reply's). A write right behind another (the poll behind its
    sync poll) belongs to the same send."""
    gaps: list[tuple[float, Record]] = []
    last_end: float | None = None
    previous: Record | None = None
    for rec in log:
        if rec.direction == "tx":
            same_send = (previous is not None and previous.direction == "tx"
                         and last_end is not None and rec.at - last_end < 0.001)
            if last_end is not None and not same_send:
                gaps.append((rec.at - last_end, rec))
            last_end = rec.at + len(rec.data) * WIRE_S_PER_BYTE
        else:
            last_end = rec.at
        previous = rec
    return gaps
