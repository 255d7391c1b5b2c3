"""An in-process rig for end-to-end tests: emulator <-> memory line <-> line owner ->
pipeline (interpreter) -> outbox. No sleeps: tests wait on conditions with a bound."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agent.assembly import Agent, LineSeam, Tuning, assemble
from agent.config import Config, MachineConfig, OutboxConfig, PollConfig
from agent.line.interface import Line
from agent.observations import Observation
from agent.ops.metrics import AgentMetrics
from agent.store.outbox import Outbox
from agent.store.pipeline import Pipeline
from api.events import StoredEvent
from drivers.base import Transport
from drivers.memory import Faults, pair
from emulator.model import Machine
from emulator.model import MachineConfig as EmulatedConfig
from emulator.server import Emulator, LinkOptions
from emulator.tcp_serving import TcpServing
from tests.support.waits import wait_until

TERMINAL = "T-E2E"
ADDRESS = 1

#: fast enough for tests, slow enough for two busy cores (the reply window is generous).
FAST_POLL = PollConfig(interval_ms=10, reply_timeout_ms=60, link_down_after=3,
                       link_down_after_s=0.5, snapshot_interval_s=3600.0, clock_check=True)

WAIT_S = 20.0


def agent_config(db: str | Path, *, rte: bool = False, poll: PollConfig = FAST_POLL) -> Config:
    """The configuration of the rigs' agent: one machine at ADDRESS writing to ``db``."""
    return Config(TERMINAL, (MachineConfig(ADDRESS, rte=rte),), poll=poll,
                  outbox=OutboxConfig(path=str(db)))


class Collected:
    """An ``on_observation`` sink for a line owner: what it was handed, in order (any
    thread)."""

    def __init__(self) -> None:
        self.items: list[Observation] = []
        self.lock = threading.Lock()

    def __call__(self, obs: Observation) -> None:
        with self.lock:
            self.items.append(obs)

    def of(self, kind: type[Any]) -> list[Any]:
        with self.lock:
            return [o for o in self.items if isinstance(o, kind)]


class Rig:
    """One emulated machine served on a thread and one agent (line owner + pipeline)."""

    def __init__(self, tmp_path: Path, *, machine: EmulatedConfig | None = None,
                 link: LinkOptions | None = None, rte: bool = False,
                 poll: PollConfig = FAST_POLL, faults: Faults | None = None,
                 backlog_window: float = 0.0, metrics: AgentMetrics | None = None) -> None:
        self.tmp_path = tmp_path
        self.rte = rte
        self.poll = poll
        self.backlog_window = backlog_window
        self.metrics = metrics
        self.faults = faults or Faults()
        self.machine = Machine(machine, now=time.monotonic())
        host, device = pair(faults=self.faults)
        self.emulator = Emulator(self.machine, device, address=ADDRESS, options=link)
        self.emulator.start()
        self.db = tmp_path / "outbox.db"
        self.agent: Agent
        self.start_agent(host)

    def start_agent(self, transport: Transport) -> None:
        self.agent = assemble(agent_config(self.db, rte=self.rte, poll=self.poll),
                              line=LineSeam.memory(transport), metrics=self.metrics,
                              tuning=Tuning(backlog_window_s=self.backlog_window))
        self.agent.start()

    @property
    def outbox(self) -> Outbox:
        return self.agent.outbox

    @property
    def pipeline(self) -> Pipeline:
        return self.agent.pipeline

    @property
    def line(self) -> Line:
        assert self.agent.line is not None
        return self.agent.line

    def crash_agent(self) -> None:
        """Abandon the agent as kill -9 would: nothing queued is committed, the old line
        is cut, and a new agent starts on the same outbox and the same running machine."""
        self.pipeline.abandon()
        host, device = pair(faults=self.faults)
        old = self.emulator.detach()
        self.emulator.attach(device)
        if old is not None:
            old.close()
        self.agent.close_line()  # the old line thread ends on its closed transport
        wait_until(lambda: not self.line.running and not self.pipeline.running,
                   what="the abandoned agent threads to end")
        self.outbox.close()
        self.start_agent(host)

    def close(self) -> None:
        self.agent.close()
        self.emulator.stop()

    # -- the machine ---------------------------------------------------------------------

    @contextmanager
    def act(self) -> Iterator[tuple[Machine, float]]:
        """Hold the emulator's lock and give (machine, now) to act on the model."""
        with self.emulator.lock:
            yield self.machine, time.monotonic()

    # -- the outbox ----------------------------------------------------------------------

    def events(self, name: str | None = None) -> list[StoredEvent]:
        stored = self.outbox.pending(0, 1_000_000)
        return [e for e in stored if name is None or e.event.name == name]

    def names(self) -> list[str]:
        return [e.event.name for e in self.events()]

    def total(self, name: str, key: str = "amount") -> int:
        return sum(int(e.event.data[key]) for e in self.events(name))

    def wait_event(self, name: str, count: int = 1, timeout: float = WAIT_S) -> list[StoredEvent]:
        found: list[StoredEvent] = []

        def enough() -> bool:
            found[:] = self.events(name)
            return len(found) >= count

        wait_until(enough, timeout, lambda: f"{count} x {name}; have {self.names()}")
        return found

    def wait_total(self, name: str, cents: int, timeout: float = WAIT_S) -> None:
        wait_until(lambda: self.total(name) == cents, timeout,
                   lambda: f"sum of {name} == {cents}; have {self.total(name)}")

    def wait_ready(self) -> None:
        """Link up, machine identified and the discovery snapshot stored."""
        wait_until(lambda: any(e.event.data.get("reason") in ("discovery", "gap")
                             for e in self.events("meterSnapshot")),
                 what=lambda: f"the discovery snapshot; have {self.names()}")

    def wait_quiet(self) -> None:
        """The machine's exception queue empty, no work left on the line, all committed."""
        def quiet() -> bool:
            with self.emulator.lock:
                if self.machine.next_exception(time.monotonic()) is not None:
                    return False
            return self.line.idle() and self.pipeline.wait_idle(0.0)
        wait_until(quiet, what="the line to go quiet")


@contextmanager
def served_over_tcp() -> Iterator[TcpServing]:
    """An emulator served at ``tcp://127.0.0.1:PORT`` (``url``), attaching each new
    connection as a terminal server lets a reconnecting agent back in; ``accepted`` counts
    them, ``emulator.detach()`` drops the current one (the agent reads EOF)."""
    with TcpServing(Emulator(Machine(now=time.monotonic()), None, address=ADDRESS)) as served:
        yield served


def agent_main(url: str, db: str, rte: bool = False, ticket_settle: float = 10.0) -> None:
    """A bare agent (line owner + pipeline, no uplink) on ``url`` writing to ``db``; runs
    until SIGTERM (clean stop) or SIGKILL (the money-invariant test's crash). Started by
    ``python -c "from tests.agent.e2e_helpers import agent_main; agent_main(URL, DB)"``.
    ``rte``: the line runs in real-time event mode (the ``rte`` emulator profile)."""
    import signal
    import threading

    from drivers import open_transport

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    agent = assemble(agent_config(db, rte=rte),
                     line=LineSeam(lambda _config: open_transport(url), process=False),
                     tuning=Tuning(backlog_window_s=0.0, ticket_settle_s=ticket_settle))
    agent.start()
    print("running", flush=True)
    stop.wait()
    agent.close()
