"""An in-process agent on a memory line with fault injection: emulator (served on its thread)
<-> ``drivers.memory`` pair <-> line owner -> pipeline -> outbox. Play is driven by the test,
one autoplay decision per poll cycle; waits are bounded polls of a condition."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agent.assembly import LineSeam, Tuning, assemble
from agent.config import Config, MachineConfig, OutboxConfig, PollConfig
from agent.derive.meters import meter_name
from agent.line.interface import Line
from agent.store.outbox import Outbox
from api.events import StoredEvent
from drivers.memory import Faults, pair
from emulator.autoplay import AutoPlayer, AutoplaySettings
from emulator.model import Machine
from emulator.model import MachineConfig as EmulatedConfig
from emulator.server import Emulator
from tests.reliability.system_rig import MONEY
from tests.support.waits import wait_until

TERMINAL = "T-REL"
#: A short snapshot period: a meter whose exception was lost (a corrupted exception byte, a
#: full outbox) is caught up by the timer read, as in the field (default 900 s). The spacing
#: (3 ms after the last byte) is far below SAS's (§3.6) on purpose: these tests count poll
#: cycles, not seconds, and the emulator on the memory line answers at once; only the reply
#: window (60 ms) is generous, for a loaded machine.
POLL = PollConfig(interval_ms=3, reply_timeout_ms=60, link_down_after=3,
                  snapshot_interval_s=2.0, clock_check=False)
#: One player decision per this many poll cycles.
PLAY_EVERY = 8
#: No doors and no tilts: any door or tilt event would be a phantom.
QUIET_PLAY = AutoplaySettings(games_per_minute=60_000, jackpot_probability=0.01,
                              cashout_probability=0.03, door_probability=0.0,
                              tilt_probability=0.0, attendant_delay=0.0)


class AgentRig:
    def __init__(self, tmp_path: Path, *, seed: int = 1, outbox: Outbox | None = None) -> None:
        self.faults = Faults(seed=seed)
        self.machine = Machine(EmulatedConfig(denomination_cents=5), now=time.monotonic(),
                               seed=seed)
        host, device = pair(faults=self.faults)
        self.emulator = Emulator(self.machine, device, address=1)
        self.emulator.start()
        config = Config(TERMINAL, (MachineConfig(1),), poll=POLL,
                        outbox=OutboxConfig(path=str(tmp_path / "outbox.db")))
        self.agent = assemble(config, line=LineSeam.memory(host), outbox=outbox,
                              tuning=Tuning(backlog_window_s=0.0, ticket_settle_s=1.0))
        self.outbox = self.agent.outbox
        self.pipeline = self.agent.pipeline
        self.line: Line = self.agent.start()
        self.player = AutoPlayer(self.machine, random.Random(seed), QUIET_PLAY)
        self._cycles = 0
        self._baseline: dict[str, Any] | None = None

    def close(self) -> None:
        self.agent.close()
        self.emulator.stop()

    @classmethod
    @contextmanager
    def ready(cls, tmp_path: Path, *, seed: int = 1) -> Iterator[AgentRig]:
        """A rig past discovery (:meth:`wait_ready`), closed after the ``with`` block."""
        rig = cls(tmp_path, seed=seed)
        try:
            rig.wait_ready()
            yield rig
        finally:
            rig.close()

    # ------------------------------------------------------------------ driving

    def cycle(self, play: bool = False) -> None:
        """Wait for the line owner's next cycle; with ``play``, every PLAY_EVERY-th cycle
        starts with one autoplay decision (a sane pace: the exception queue never overflows,
        so every ticket's 3D is seen and its LP 4D read)."""
        self.cycles(1, play)

    def cycles(self, n: int, play: bool = False) -> None:
        """At least ``n`` more line-owner cycles, with one autoplay decision every
        PLAY_EVERY-th of them when ``play``. One bounded wait per decision (not per cycle):
        the rig's pace is the line's, not the test thread's polling."""
        while n > 0:
            step = n
            if play:  # the decision comes before each PLAY_EVERY-th cycle
                if (self._cycles + 1) % PLAY_EVERY == 0:
                    with self.emulator.lock:
                        self.player.tick(time.monotonic())
                    step = min(n, PLAY_EVERY)
                else:
                    step = min(n, PLAY_EVERY - 1 - self._cycles % PLAY_EVERY)
            self._cycles += step
            n -= step
            target = self.line.cycles + step
            wait_until(lambda t=target: self.line.cycles >= t or not self.line.running,
                       10 + step * 0.1, f"{step} poll cycles")

    def act(self, fn: Callable[[Machine, float], Any]) -> Any:
        with self.emulator.lock:
            return fn(self.machine, time.monotonic())

    # ------------------------------------------------------------------ the outbox

    def events(self, name: str | None = None) -> list[StoredEvent]:
        stored = self.outbox.pending(0, 10_000_000)
        return [e for e in stored if name is None or e.event.name == name]

    def names(self) -> list[str]:
        return [e.event.name for e in self.events()]

    def wait_ready(self) -> None:
        """Discovery done: the first meter snapshot (the money baseline) is stored."""
        self.wait_event("meterSnapshot")
        self.expected_money()

    def wait_event(self, name: str, count: int = 1, timeout: float = 20.0,
                   play: bool = False) -> None:
        """Cycle until the outbox holds ``count`` events called ``name``."""
        deadline = time.monotonic() + timeout
        while len(self.events(name)) < count:
            assert time.monotonic() < deadline, f"{count} x {name}; have {self.names()[-20:]}"
            self.cycle(play)

    def money(self) -> dict[str, int]:
        out = dict.fromkeys((name for name, _, _ in MONEY), 0)
        for e in self.events():
            if e.event.name in out and e.event.data.get("metered", True):
                out[e.event.name] += int(e.event.data["amount"])
        return out

    def expected_money(self) -> dict[str, int]:
        """Meter deltas in cents from the agent's first baseline to the machine's meters now."""
        if self._baseline is None:  # kept: the outbox may later drop the snapshot (cap)
            first = next(e for e in self.events("meterSnapshot") if e.event.data.get("first"))
            self._baseline = dict(first.event.data["meters"])
        baseline = self._baseline
        with self.emulator.lock:
            meters = self.machine.meters()
            denomination = self.machine.denomination_cents
        out = {}
        for name, codes, credits in MONEY:
            delta = sum(int(meters[c]) - int(baseline[meter_name(c)]) for c in codes)
            out[name] = delta * denomination if credits else delta
        return out

    def settle_money(self, timeout: float = 30.0) -> None:
        """Cycle (no play) until the outbox's money equals the machine's meter deltas."""
        deadline = time.monotonic() + timeout
        while self.money() != self.expected_money():
            assert time.monotonic() < deadline, (
                f"outbox money {self.money()} != machine deltas {self.expected_money()}")
            self.cycle()
