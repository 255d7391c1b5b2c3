"""The line owner on its own: link health, commands, counters, metrics, status, stop."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from agent.config import MachineConfig, PollConfig
from agent.line.commands import CommandKind, CommandRejectedError, MachineCommand
from agent.line.owner import LineOwner
from agent.observations import LinkDown
from agent.ops.metrics import AgentMetrics
from drivers.base import Transport, Word
from drivers.memory import Faults, pair
from tests.agent.e2e_helpers import FAST_POLL, Collected, Rig, served_over_tcp
from tests.support.waits import wait_until

pytestmark = pytest.mark.timeout(60)


def test_a_silent_line_is_reported_down_once_and_commands_fail() -> None:
    host, _device = pair()
    seen = Collected()
    line = LineOwner(host, [MachineConfig(1)], FAST_POLL, seen)
    line.start()
    try:
        down = wait_until(lambda: seen.of(LinkDown), what="LinkDown")
        assert down[0].reason == "no reply since start"
        result = line.submit(MachineCommand(CommandKind.LOCK, 1)).result(10)
        assert not result.ok and result.error == "the machine link is down"
        cycles = line.cycles
        wait_until(lambda: line.cycles > cycles + 3, what="more cycles")
        assert len(seen.of(LinkDown)) == 1
        status = line.status()["machines"]["1"]
        assert status["linkUp"] is False and status["polls"]["timeout"] >= 1
        assert line.links_up() == {1: False}
    finally:
        line.stop()
    assert not line.running


def test_unknown_address_queue_bound_and_stopped_owner() -> None:
    host, _device = pair()
    line = LineOwner(host, [MachineConfig(1)], FAST_POLL, lambda _obs: None,
                     max_pending_commands=1)
    result = line.submit(MachineCommand(CommandKind.LOCK, 9)).result(1)
    assert not result.ok and "address 9" in (result.error or "")
    first = line.submit(MachineCommand(CommandKind.LOCK, 1))
    with pytest.raises(CommandRejectedError):
        line.submit(MachineCommand(CommandKind.UNLOCK, 1))
    line.stop()
    assert first.result(1).ok is False  # never sent: it failed when the owner stopped
    with pytest.raises(CommandRejectedError):
        line.submit(MachineCommand(CommandKind.LOCK, 1))


def test_bad_frames_are_counted_and_the_link_survives(tmp_path: Path) -> None:
    metrics = AgentMetrics(CollectorRegistry())
    faults = Faults(seed=5)
    rig = Rig(tmp_path, faults=faults, metrics=metrics)
    try:
        rig.wait_ready()
        def bad_frames() -> int:
            return sum(rig.line.status()["machines"]["1"]["badFrames"].values())

        with faults.during(corrupt=0.01):
            # long replies carry a CRC: reading all meters makes damaged frames show
            for _ in range(100):
                if bad_frames() >= 3:
                    break
                rig.line.submit(MachineCommand(CommandKind.READ_METERS, 1)).result(20)
        assert bad_frames() >= 3
        with rig.act() as (m, now):
            m.insert_bill(now, 10)
            m.play_game(now, bet=7, win=3)
        rig.wait_total("betPlaced", 7)
        rig.wait_total("winPaid", 3)
        sample = metrics.registry.get_sample_value
        bad = sum(sample("slot_agent_bad_frames_total", {"address": "1", "kind": k}) or 0
                  for k in ("crc", "length", "address", "unexpected", "decode"))
        assert bad >= 3
        assert (sample("slot_agent_polls_total", {"address": "1", "result": "ok"}) or 0) > 10
        assert sample("slot_agent_link_up", {"address": "1"}) == 1.0
        assert rig.line.links_up() == {1: True}
        assert (sample("slot_agent_poll_interval_deviation_seconds_count") or 0) > 10
        assert (sample("slot_agent_poll_latency_seconds_count") or 0) > 10
    finally:
        rig.close()


def test_status_keeps_a_bounded_ring_of_frames(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    try:
        rig.wait_ready()
        status = rig.line.status()
        machine = status["machines"]["1"]
        assert 0 < len(machine["lastFrames"]) <= 64
        assert {f["dir"] for f in machine["lastFrames"]} == {"tx", "rx"}
        assert machine["lastMeters"]["00"] == 0
        assert status["transport"] == "memory:host"
        assert rig.line.idle()
    finally:
        rig.close()


def test_stop_returns_after_the_poll_in_flight(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.wait_ready()
    rig.line.stop(timeout=5.0)
    assert not rig.line.running
    rig.pipeline.stop()
    rig.emulator.stop()
    rig.outbox.close()


def test_commands_interleave_with_a_slow_line(tmp_path: Path) -> None:
    poll = PollConfig(interval_ms=10, reply_timeout_ms=60, link_down_after=3,
                      snapshot_interval_s=3600.0)
    rig = Rig(tmp_path, poll=poll)
    try:
        rig.wait_ready()
        futures = [rig.line.submit(MachineCommand(kind, 1))
                   for kind in (CommandKind.SOUND_OFF, CommandKind.DISABLE_BILL_ACCEPTOR,
                                CommandKind.ENABLE_BILL_ACCEPTOR, CommandKind.SOUND_ON)]
        assert all(f.result(20).ok for f in futures)
        assert rig.machine.sound_on and rig.machine.bill_acceptor_enabled
    finally:
        rig.close()


def test_a_lost_transport_is_reopened_and_the_link_comes_back() -> None:
    from drivers import open_transport

    with served_over_tcp() as served:
        url = served.url
        seen = Collected()
        line = LineOwner(open_transport(url), [MachineConfig(1)], FAST_POLL, seen,
                         reopen=lambda: open_transport(url))
        line.start()
        try:
            from agent.observations import LinkUp

            wait_until(lambda: seen.of(LinkUp), what="the first link-up")
            old = served.emulator.detach()  # the peer goes away: the agent reads EOF
            assert old is not None
            old.close()
            down = wait_until(lambda: seen.of(LinkDown), what="LinkDown after EOF")
            assert down[0].reason.startswith("transport error")
            wait_until(lambda: len(seen.of(LinkUp)) >= 2, timeout=30, what="the link back")
            assert served.accepted >= 2
        finally:
            line.stop()


class _DyingTransport(Transport):
    """Wraps a working transport; ``die()`` makes the next read fail like a lost TCP peer,
    and after ``close()`` every call raises ``TransportClosedError`` (as real drivers do)."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.name = "dying"
        self.dead = threading.Event()
        self.closed = False

    def _check(self) -> None:
        from drivers.base import TransportClosedError, TransportEOFError

        if self.closed:
            raise TransportClosedError(self.name, "transport is closed")
        if self.dead.is_set():
            raise TransportEOFError(self.name, "peer closed the connection")

    def write(self, frame: bytes, *, wakeup: bool) -> None:
        self._check()
        self.inner.write(frame, wakeup=wakeup)

    def read(self, deadline: float, max_words: int = 512) -> list[Word]:
        self._check()
        return self.inner.read(deadline, max_words)

    def discard_input(self) -> None:
        self._check()
        self.inner.discard_input()

    def close(self) -> None:
        self.closed = True


def test_reopen_is_retried_until_the_transport_opens_again() -> None:
    """A reopen that fails (adapter still unplugged) is tried again at the next cycle; the
    closed transport is never polled (that would stop the line owner for good)."""
    import time

    from agent.observations import LinkUp
    from drivers.base import TransportOpenError
    from emulator.model import Machine
    from emulator.server import Emulator

    host, device = pair()
    emulator = Emulator(Machine(now=time.monotonic()), device, address=1)
    emulator.start()
    first = _DyingTransport(host)
    attempts: list[str] = []

    def reopen() -> Transport:
        attempts.append("try")
        if len(attempts) == 1:
            raise TransportOpenError("/dev/ttyUSB0", "no such device")
        if len(attempts) == 2:
            raise OSError("permission denied")  # not a TransportError: retried as well
        return host

    seen = Collected()
    line = LineOwner(first, [MachineConfig(1)], FAST_POLL, seen, reopen=reopen)
    line.start()
    try:
        wait_until(lambda: seen.of(LinkUp), what="the first link-up")
        first.dead.set()
        wait_until(lambda: seen.of(LinkDown), what="LinkDown after the transport died")
        assert first.closed
        wait_until(lambda: len(seen.of(LinkUp)) >= 2, timeout=30, what="the link back")
        assert len(attempts) == 3
        assert line.running and line.status()["error"] is None
        assert line.status()["transport"] == host.name
    finally:
        line.stop()
        emulator.stop()


def test_a_new_poll_interval_applies_from_the_next_cycle() -> None:
    """set_poll_interval (SIGHUP) shows in status at once and ends the wait for a cycle
    due on the old cadence: five more cycles within 4.5 s cannot happen 5 s apart."""
    import time

    host, device = pair()
    slow = PollConfig(interval_ms=5000, reply_timeout_ms=20, link_down_after=3)
    line = LineOwner(host, [MachineConfig(1)], slow, lambda _obs: None)
    line.start()
    try:
        # The first poll is out; the silent machine's next send waits 5 s (one per interval).
        wait_until(lambda: bool(device.read(time.monotonic() + 0.05)), what="the first poll")
        assert line.status()["intervalMs"] == 5000
        line.set_poll_interval(30)
        assert line.status()["intervalMs"] == 30
        start = line.cycles
        wait_until(lambda: line.cycles >= start + 5, timeout=4.5, what="cycles at 30 ms")
        with pytest.raises(ValueError):
            line.set_poll_interval(0)
        assert line.status()["intervalMs"] == 30
    finally:
        line.stop()


def test_replies_that_are_not_frames_are_counted_as_framing_not_crc() -> None:
    """A device that answers general polls (00: nothing to report) but every long poll with
    bytes from another address: those polls fail by framing, and are counted as such."""
    import time

    from drivers.base import TransportClosedError

    host, device = pair()
    stop = threading.Event()

    def machine() -> None:
        while not stop.is_set():
            try:
                words = device.read(time.monotonic() + 0.05)
            except TransportClosedError:
                return
            for word in words:
                if word.wakeup and word.value == 0x81:  # general poll to address 1
                    device.write(b"\x00", wakeup=False)
                elif word.wakeup and word.value == 0x01:  # a long poll to address 1
                    device.write(b"\x05\x05", wakeup=False)  # SAS: a reply from address 5

    thread = threading.Thread(target=machine, daemon=True)
    thread.start()
    metrics = AgentMetrics(CollectorRegistry())
    line = LineOwner(host, [MachineConfig(1)], FAST_POLL, lambda _obs: None, metrics=metrics)
    line.start()
    try:
        def polls() -> dict[str, int]:
            return dict(line.status()["machines"]["1"]["polls"])

        wait_until(lambda: polls().get("framing", 0) >= 2, what=lambda: f"framing in {polls()}")
        assert "crc" not in polls()
        sample = metrics.registry.get_sample_value
        assert (sample("slot_agent_polls_total", {"address": "1", "result": "framing"})
                or 0) >= 2
        assert sample("slot_agent_polls_total", {"address": "1", "result": "crc"}) is None
    finally:
        line.stop()
        stop.set()
        device.close()
        thread.join(5)
