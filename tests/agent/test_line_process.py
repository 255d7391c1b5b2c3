"""The line owner in its own process (agent/line/process.py), polling an emulated machine
served in this process over a real pty: observations, commands, status, metrics, logs, a
killed child, an orderly stop. No sleeps: every wait is on a condition with a bound."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry

from agent.config import Config, PollConfig, parse_config
from agent.line.commands import CommandKind, CommandRejectedError, MachineCommand
from agent.line.process import LineProcess, LineProcessError
from agent.observations import ExceptionObserved, LinkDown, LinkUp
from agent.ops.metrics import AgentMetrics, BadFrameKind
from drivers import open_pty
from drivers.base import Transport, Word
from drivers.memory import pair
from emulator.model import Door, Machine
from emulator.server import Emulator
from tests.agent.e2e_helpers import Collected
from tests.support.waits import wait_until

pytestmark = pytest.mark.timeout(90)

#: A reply window long enough for a test to hold the machine's answer while it acts.
HOLD_POLL = PollConfig(interval_ms=20, reply_timeout_ms=1500, link_down_after=3,
                       snapshot_interval_s=3600.0, clock_check=False)
FAST = PollConfig(interval_ms=20, reply_timeout_ms=60, link_down_after=3,
                  snapshot_interval_s=3600.0, clock_check=False)


class HoldLongPoll(Transport):
    """The machine's end of the line. Once armed, it holds the words of one long poll to
    address 1 (LP 01, lock, by default) until ``release`` is set: that poll stays in flight on
    the agent's side for as long as the test needs."""

    def __init__(self, inner: Transport, command: int = 0x01) -> None:
        self.inner = inner
        self.name = inner.name
        self.command = command
        self.held = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self._previous: Word | None = None

    def arm(self) -> None:
        self.release.clear()

    def read(self, deadline: float, max_words: int = 512) -> list[Word]:
        words = self.inner.read(deadline, max_words)
        seen = ([self._previous] if self._previous is not None else []) + words
        if words:
            self._previous = words[-1]
        if not self.release.is_set() and any(
                a.wakeup and a.value == 0x01 and not b.wakeup and b.value == self.command
                for a, b in itertools.pairwise(seen)):
            self.held.set()
            assert self.release.wait(20), "the test never released the held poll"
        return words

    def write(self, frame: bytes, *, wakeup: bool) -> None:
        self.inner.write(frame, wakeup=wakeup)

    def discard_input(self) -> None:
        self.inner.discard_input()

    def close(self) -> None:
        self.release.set()
        self.inner.close()


@dataclass
class Bench:
    machine: Machine
    emulator: Emulator
    line_end: HoldLongPoll
    url: str

    def config(self, poll: PollConfig = FAST) -> Config:
        base = parse_config({"terminal_id": "T-LP", "machines": [{"address": 1}],
                             "serial": {"port": self.url}})
        return dataclasses.replace(base, poll=poll)  # faster than a site would configure


@pytest.fixture
def bench() -> Iterator[Bench]:
    master, path = open_pty()
    held = HoldLongPoll(master)
    machine = Machine(now=time.monotonic())
    emulator = Emulator(machine, held, address=1)
    emulator.start()
    try:
        yield Bench(machine, emulator, held, f"pty:{path}")
    finally:
        held.release.set()
        emulator.stop()
        held.close()


@pytest.fixture
def started(bench: Bench) -> Iterator[tuple[LineProcess, Collected, AgentMetrics]]:
    seen = Collected()
    metrics = AgentMetrics(CollectorRegistry())
    line = LineProcess(bench.config(), seen, metrics=metrics)
    line.start()
    try:
        wait_until(lambda: seen.of(LinkUp), what="the machine link up")
        yield line, seen, metrics
    finally:
        line.stop()


def test_observations_arrive_in_order_and_logs_reach_the_daemon(
        bench: Bench, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    seen = Collected()
    line = LineProcess(bench.config(), seen)
    line.start()
    try:
        assert line.pid is not None and line.pid != os.getpid()
        wait_until(lambda: seen.of(LinkUp), what="the machine link up")
        doors = [Door.SLOT, Door.BELLY, Door.CASHBOX]
        for door in doors:
            with bench.emulator.lock:
                bench.machine.open_door(time.monotonic(), door)
                bench.machine.close_door(time.monotonic(), door)
        expected = [code for door in doors for code in door.value]

        def door_codes() -> list[int]:
            return [o.code for o in seen.of(ExceptionObserved) if o.code in expected]

        wait_until(lambda: len(door_codes()) >= len(expected), what=lambda: f"{door_codes()}")
        assert door_codes() == expected  # in the order the machine reported them
        assert isinstance(seen.items[0], LinkUp)  # nothing before the link came up
        times = [o.at for o in seen.items]
        assert times == sorted(times)
    finally:
        line.stop()
    # the child's own log lines, written by this process's logging with their origin
    link_up = [r for r in caplog.records
               if r.name == "agent.line" and r.getMessage() == "machine 1: link up"]
    assert link_up and link_up[0].process == line.pid


def test_a_command_round_trips_with_its_result(
        bench: Bench, started: tuple[LineProcess, Collected, AgentMetrics]) -> None:
    line, _seen, _metrics = started
    locked = line.submit(MachineCommand(CommandKind.LOCK, 1, "act-1")).result(20)
    assert locked.ok, locked.error
    with bench.emulator.lock:
        assert bench.machine.locked
    meters = line.submit(MachineCommand(CommandKind.READ_METERS, 1)).result(20)
    assert meters.ok and meters.data["meters"]
    unknown = line.submit(MachineCommand(CommandKind.LOCK, 9)).result(1)
    assert not unknown.ok and "address 9" in (unknown.error or "")


def test_status_idle_and_a_new_cadence(
        started: tuple[LineProcess, Collected, AgentMetrics]) -> None:
    line, _seen, _metrics = started
    status = line.status()
    assert status["running"] is True and status["pid"] == line.pid
    assert status["machines"]["1"]["linkUp"] is True
    assert status["transport"].startswith("pty:")
    line.set_poll_interval(33)
    assert line.status()["intervalMs"] == 33  # at once: the query follows on the same socket
    cycles = line.cycles
    wait_until(lambda: line.cycles > cycles + 2, what="cycles counted in the daemon")
    wait_until(line.idle, what="the line idle after discovery")


def test_metrics_are_counted_in_the_daemon(
        bench: Bench, started: tuple[LineProcess, Collected, AgentMetrics]) -> None:
    line, _seen, metrics = started
    sample = metrics.registry.get_sample_value
    wait_until(lambda: (sample("slot_agent_polls_total", {"address": "1", "result": "ok"})
                      or 0) >= 5, what="ok polls in the daemon's registry")
    assert sample("slot_agent_link_up", {"address": "1"}) == 1
    assert (sample("slot_agent_poll_interval_deviation_seconds_count") or 0) > 0
    assert (sample("slot_agent_poll_latency_seconds_count") or 0) > 0
    # damaged replies: the daemon's counters end equal to the child's own
    def child_bad() -> dict[str, int]:
        return {k: int(v) for k, v in line.status()["machines"]["1"]["badFrames"].items()}

    def daemon_bad() -> dict[str, int]:
        counts = {kind.value: sample("slot_agent_bad_frames_total",
                                     {"address": "1", "kind": kind.value})
                  for kind in BadFrameKind}
        return {k: int(v) for k, v in counts.items() if v}

    bench.emulator.set_corruption(1.0)
    wait_until(lambda: sum(child_bad().values()) >= 3, what="bad frames on the line")
    bench.emulator.set_corruption(0.0)
    wait_until(lambda: line.status()["machines"]["1"]["linkUp"], what="the link back")
    wait_until(lambda: daemon_bad() == child_bad(),
               what=lambda: f"the daemon's {daemon_bad()} equal to the child's {child_bad()}")


def test_links_up_follows_the_link_without_a_query_to_the_child(
        bench: Bench, started: tuple[LineProcess, Collected, AgentMetrics],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """What the daemon's STATUS= line reads every 2 s comes from the link observations: no
    query crosses to the child (a status query there made the child build its whole diag
    snapshot under the line thread's lock, every 2 s)."""
    line, seen, _metrics = started
    asked: list[object] = []
    ask = line._ask

    def counting(query: object, *, only_running: bool) -> object:
        asked.append(query)
        return ask(query, only_running=only_running)  # type: ignore[arg-type]

    monkeypatch.setattr(line, "_ask", counting)
    assert line.links_up() == {1: True}
    with bench.emulator.lock:
        bench.emulator.silence(time.monotonic(), 3.0)  # a cut cable for 3 s
    wait_until(lambda: seen.of(LinkDown), what="the link down")
    assert line.links_up() == {1: False}  # set before the observation is passed on
    wait_until(lambda: line.links_up() == {1: True}, what="the link back")
    assert asked == []


def test_a_killed_child_is_reported_and_its_commands_fail(
        bench: Bench, caplog: pytest.LogCaptureFixture) -> None:
    seen = Collected()
    metrics = AgentMetrics(CollectorRegistry())
    exits: list[str] = []
    line = LineProcess(bench.config(HOLD_POLL), seen, metrics=metrics, on_exit=exits.append)
    line.start()
    try:
        wait_until(lambda: seen.of(LinkUp), what="the machine link up")
        bench.line_end.arm()
        in_flight = line.submit(MachineCommand(CommandKind.LOCK, 1, "act-k"))
        assert bench.line_end.held.wait(20), "the lock poll never reached the machine"
        wait_until(in_flight.running, what="the command reported started")
        assert line.pid is not None
        os.kill(line.pid, signal.SIGKILL)
        wait_until(lambda: exits, what="on_exit")
        assert exits == ["killed by SIGKILL"]
        result = in_flight.result(5)
        assert not result.ok and "killed by SIGKILL" in (result.error or "")
        down = seen.of(LinkDown)
        assert len(down) == 1 and "line process killed by SIGKILL" in down[0].reason
        assert metrics.registry.get_sample_value("slot_agent_link_up", {"address": "1"}) == 0
        assert not line.running
        with pytest.raises(CommandRejectedError):
            line.submit(MachineCommand(CommandKind.UNLOCK, 1))
        status = line.status()
        assert status["running"] is False and "killed by SIGKILL" in status["error"]
        assert status["machines"]["1"]["linkUp"] is False
        assert line.links_up() == {1: False}
        assert any(r.levelno == logging.ERROR and "killed by SIGKILL" in r.getMessage()
                   for r in caplog.records)
    finally:
        bench.line_end.release.set()
        line.stop()
    assert exits == ["killed by SIGKILL"]  # stop after a death reports nothing more


def test_stop_finishes_the_poll_in_flight(
        bench: Bench, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    seen = Collected()
    exits: list[str] = []
    line = LineProcess(bench.config(HOLD_POLL), seen, on_exit=exits.append)
    line.start()
    wait_until(lambda: seen.of(LinkUp), what="the machine link up")
    bench.line_end.arm()
    in_flight = line.submit(MachineCommand(CommandKind.LOCK, 1, "act-s"))
    assert bench.line_end.held.wait(20), "the lock poll never reached the machine"
    queued = line.submit(MachineCommand(CommandKind.UNLOCK, 1, "act-q"))
    stopper = threading.Thread(target=line.stop, name="stopper")
    stopper.start()
    wait_until(lambda: any(r.getMessage().startswith("stopping: the poll in flight")
                         for r in caplog.records), what="the child told to stop")
    bench.line_end.release.set()  # the machine answers the held poll now
    stopper.join(20)
    assert not stopper.is_alive()
    assert in_flight.result(1).ok  # finished, not cut: the machine got the lock
    with bench.emulator.lock:
        assert bench.machine.locked
    late = queued.result(1)
    assert not late.ok and late.error == "the line owner stopped"
    assert line.exit_description == "exited with status 0"
    assert exits == [] and not seen.of(LinkDown)  # an orderly stop is not a failure
    with pytest.raises(CommandRejectedError):
        line.submit(MachineCommand(CommandKind.LOCK, 1))


def test_a_command_cancelled_in_the_queue_never_starts(bench: Bench) -> None:
    seen = Collected()
    line = LineProcess(bench.config(HOLD_POLL), seen)
    line.start()
    try:
        wait_until(lambda: seen.of(LinkUp), what="the machine link up")
        bench.line_end.arm()
        running = line.submit(MachineCommand(CommandKind.LOCK, 1, "act-r"))
        assert bench.line_end.held.wait(20), "the lock poll never reached the machine"
        wait_until(running.running, what="the command reported started")
        waiting = line.submit(MachineCommand(CommandKind.SOUND_OFF, 1, "act-w"))
        assert running.cancel() is False  # on the line already: its effect will be known
        assert waiting.cancel() is True
        bench.line_end.release.set()
        assert running.result(20).ok
        assert waiting.cancelled()
        # the line goes on: a command after the cancelled one runs
        assert line.submit(MachineCommand(CommandKind.UNLOCK, 1)).result(20).ok
        with bench.emulator.lock:
            assert not bench.machine.locked and bench.machine.sound_on
    finally:
        line.stop()


def test_a_line_that_does_not_open_fails_the_start(bench: Bench) -> None:
    config = parse_config({"terminal_id": "T-LP", "machines": [{"address": 1}],
                           "serial": {"port": "pty:/dev/pts/no-such-pty"}})
    line = LineProcess(config, Collected())
    with pytest.raises(LineProcessError, match="no-such-pty"):
        line.start()
    assert not line.running
    with pytest.raises(CommandRejectedError):
        line.submit(MachineCommand(CommandKind.LOCK, 1))


def test_a_factory_that_cannot_cross_the_process_boundary_is_refused(bench: Bench) -> None:
    transport, _device = pair()
    line = LineProcess(bench.config(), Collected(), transport_factory=lambda _cfg: transport)
    with pytest.raises(LineProcessError, match="module-level callable"):
        line.start()
    assert line.pid is None  # refused before any process was started
