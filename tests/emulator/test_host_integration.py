"""The agent-side HostProtocol against the served emulator over memory, pty and TCP lines.

A small host loop lives here (the daemon's line owner is not part of this package): it
drives ``HostProtocol`` with real reads and reply windows, the emulator runs on its own
thread on ``time.monotonic()``. Includes fault injection, RTE mode, the 6F -> 2F stepdown,
handpay and power-cycle flows, and the money invariant across a meter rollover.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import yaml

from drivers.base import Transport
from drivers.memory import Faults, pair
from drivers.pseudo_tty import open_pty, open_pty_path
from drivers.tcp import connect, tcp_listen
from emulator.autoplay import AutoplaySettings
from emulator.model import Machine, MachineConfig
from emulator.scenario import ScenarioRunner, load_scenario, parse_scenario
from emulator.server import Emulator, LinkOptions
from sas_protocol.host import (
    ExceptionReported,
    FrameRejected,
    HostEvent,
    HostProtocol,
    LinkUp,
    NoActivity,
    NotSupported,
    PollFailed,
    RealTimeEventReceived,
    ReplyReceived,
)
from sas_protocol.messages.meters import MeterReply
from sas_protocol.messages.requests import (
    ExtendedMetersRequest,
    GeneralPoll,
    HandpayInfoRequest,
    MachineInfoRequest,
    MetersRequest,
    Poll,
    RealTimeReportingRequest,
    RemoteHandpayResetRequest,
    SasVersionRequest,
    SelectedMetersRequest,
)
from sas_protocol.messages.responses import HandpayInfoReply, HandpayResetReply
from tests.support.waits import wait_until

WINDOW = 0.3  # reply window of the test host (a real one uses ~20 ms + frame time)


class HostLoop:
    """A minimal line owner: one poll at a time, reply windows on the real clock."""

    def __init__(self, transport: Transport, address: int = 1, **options: object) -> None:
        self.transport = transport
        self.host = HostProtocol(address, **options)  # type: ignore[arg-type]
        self.events: list[HostEvent] = []

    def poll(self, poll: Poll) -> list[HostEvent]:
        h = self.host
        h.send(poll)
        give_up = time.monotonic() + 30
        window_end = 0.0
        while h.awaiting_reply:
            now = time.monotonic()
            assert now < give_up, f"no outcome for {poll} in 30 s"
            out = h.data_to_send()
            for item in out:
                self.transport.write(item.data, wakeup=item.wakeup)
            if out:
                window_end = time.monotonic() + WINDOW
            words = self.transport.read(window_end)
            data = bytes(w.value for w in words if not w.wakeup)  # drop chirps
            if data:
                h.receive_data(data)
            elif time.monotonic() >= window_end:
                h.receive_timeout()
                window_end = time.monotonic() + WINDOW
        events = h.events_received()
        self.events += events
        return events

    def reply(self, poll: Poll) -> object:
        for _ in range(10):
            for event in self.poll(poll):
                if isinstance(event, ReplyReceived) and event.poll == poll:
                    return event.reply
        raise AssertionError(f"no reply to {poll}")

    def meters(self, codes: tuple[int, ...], game: int = 0) -> MeterReply:
        reply = self.reply(ExtendedMetersRequest(game, codes))
        assert isinstance(reply, MeterReply)
        return reply

    def drain_exceptions(self, limit: int = 500) -> list[int]:
        codes: list[int] = []
        for _ in range(limit):
            events = self.poll(GeneralPoll())
            got = [e.code for e in events if isinstance(e, ExceptionReported)]
            got += [e.event.event_code for e in events if isinstance(e, RealTimeEventReceived)]
            codes += got
            if any(isinstance(e, NoActivity) for e in events):
                return codes
        raise AssertionError("exceptions never drained")


@contextmanager
def served(machine: Machine, transport: Transport, *, runner: ScenarioRunner | None = None,
           **options: object) -> Iterator[Emulator]:
    emu = Emulator(machine, transport, options=LinkOptions(**options),  # type: ignore[arg-type]
                   now=time.monotonic(), runner=runner)
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()
        transport.close()


def fast(name_or_text: str, machine: Machine, *, gpm: float = 6000.0) -> ScenarioRunner:
    scenario = (load_scenario(name_or_text) if "\n" not in name_or_text
                else parse_scenario(yaml.safe_load(name_or_text), "test"))
    # an attendant who is quick about doors, tilts and handpays, so tests stay short
    settings = AutoplaySettings(games_per_minute=gpm, attendant_delay=0.2, door_open_for=0.1,
                                tilt_clears_after=0.1)
    return ScenarioRunner(scenario, machine, start=time.monotonic(), autoplay=settings)


def session_checks(loop: HostLoop, emu: Emulator) -> None:
    """Discovery and meters over any line while the smoke scenario plays: every exception
    arrives once, and what the host reads is what the machine has."""
    version = loop.reply(SasVersionRequest())
    assert getattr(version, "version") == "602"  # noqa: B009
    info = loop.reply(MachineInfoRequest())
    assert getattr(info, "denomination") == 0x01  # noqa: B009 - $0.01 (table C-4)
    codes: list[int] = []
    runner = emu.runner
    assert runner is not None
    while not runner.finished:
        codes += loop.drain_exceptions()
    codes += loop.drain_exceptions()
    assert 0x70 not in codes
    assert codes.count(0x7E) == codes.count(0x7F) == 13  # smoke: 10 + 3 games
    assert 0x3D in codes and 0x66 in codes and 0x68 in codes
    reply = loop.meters((0x00, 0x01, 0x05, 0x0B, 0x0D, 0x0E, 0x0C))
    with emu.lock:
        expected = {c: emu.machine.reported_meter(c) for c in reply.meters}
    assert reply.meters == expected
    assert expected[0x05] == 13 and expected[0x0B] == 2000


def test_memory_line_full_session() -> None:
    host_end, machine_end = pair()
    machine = Machine()
    runner = fast("smoke", machine, gpm=600)
    with served(machine, machine_end, runner=runner) as emu:
        loop = HostLoop(host_end)
        session_checks(loop, emu)
        assert any(isinstance(e, LinkUp) for e in loop.events)


def test_pty_line_full_session() -> None:
    master, path = open_pty()
    machine = Machine()
    runner = fast("smoke", machine, gpm=600)
    with served(machine, master, runner=runner) as emu:
        host_end = open_pty_path(path)
        try:
            session_checks(HostLoop(host_end), emu)
        finally:
            host_end.close()


def test_tcp_line_full_session() -> None:
    listener = tcp_listen("127.0.0.1", 0)
    machine = Machine()
    runner = fast("smoke", machine, gpm=600)
    emu = Emulator(machine, None, now=time.monotonic(), runner=runner)
    emu.start()
    try:
        host_end = connect(listener.url)
        conn = listener.accept(time.monotonic() + 5)
        assert conn is not None
        emu.attach(conn)
        session_checks(HostLoop(host_end), emu)
        host_end.close()
    finally:
        emu.stop()
        listener.close()


def test_stepdown_when_the_machine_ignores_6f_and_af() -> None:
    host_end, machine_end = pair()
    machine = Machine()
    machine.insert_bill(0.0, 5)
    with served(machine, machine_end, unsupported_polls=frozenset({0x6F, 0xAF})):
        loop = HostLoop(host_end)
        loop.drain_exceptions()
        for alternate in (False, True):
            events = loop.poll(ExtendedMetersRequest(0, (0x0B,), alternate=alternate))
            assert any(isinstance(e, NotSupported) for e in events)
        reply = loop.reply(SelectedMetersRequest(0, (0x0B, 0x0C)))
        assert isinstance(reply, MeterReply) and reply.meters == {0x0B: 500, 0x0C: 500}


def test_rte_mode_events_replace_long_poll_replies() -> None:
    host_end, machine_end = pair()
    machine = Machine()
    with served(machine, machine_end) as emu:
        loop = HostLoop(host_end)
        loop.drain_exceptions()
        loop.reply(RealTimeReportingRequest(True))
        assert loop.host.rte_mode and machine.rte_enabled
        with emu.lock:
            machine.insert_bill(time.monotonic(), 20)
            machine.play_game(time.monotonic(), bet=5, win=10)
            machine.play_game(time.monotonic(), bet=5, win=0)
        credits = loop.reply(MetersRequest(0x1A))  # answered after the events
        assert isinstance(credits, MeterReply) and credits.meters == {0x0C: 2000}
        rte = [e for e in loop.events if isinstance(e, RealTimeEventReceived)]
        assert [e.event.event_code for e in rte] == [0x4F, 0x7E, 0x7F, 0x7E, 0x7F]
        assert all(e.substituted for e in rte)
        assert rte[1].event.fields()["credits_wagered"] == 5
        assert rte[2].event.fields()["game_win"] == 10
        assert emu.stats.rte_substituted == 5
        assert loop.drain_exceptions() == []  # idle general poll in RTE mode: nothing


def test_rte_from_start_option() -> None:
    host_end, machine_end = pair()
    machine = Machine()
    machine.insert_bill(0.0, 1)
    with served(machine, machine_end, rte=True):
        loop = HostLoop(host_end, rte_mode=True)
        assert loop.drain_exceptions() == [0x4F]


def test_handpay_flow_51_1b_94_52() -> None:
    host_end, machine_end = pair()
    machine = Machine(MachineConfig(handpay_limit_cents=120_000))
    runner = fast("- handpay: 1500.00\n", machine)
    with served(machine, machine_end, runner=runner):
        wait_until(lambda: runner.finished)
        loop = HostLoop(host_end)
        codes = loop.drain_exceptions()
        assert codes[0] == 0x51
        info = loop.reply(HandpayInfoRequest())
        assert isinstance(info, HandpayInfoReply)
        assert info.level == 0x40 and info.amount == 150_000 and not info.amount_in_cents
        reset = loop.reply(RemoteHandpayResetRequest())
        assert isinstance(reset, HandpayResetReply) and reset.code == 0x00
        assert 0x52 in loop.drain_exceptions()
        assert loop.meters((0x02,)).meters == {0x02: 150_000}


def test_faults_on_the_line_lose_no_money_across_rollover() -> None:
    """Corrupted bytes both ways: the host retries, never accepts a bad value, and the
    coin-in delta it reads equals the machine's lifetime coin in, across a BCD rollover."""
    faults = Faults(corrupt=0.01, seed=11)
    host_end, machine_end = pair(faults=faults)
    machine = Machine(MachineConfig(denomination_cents=5))
    machine.set_meters_near_rollover(margin=100)
    runner = fast("- autoplay: forever\n", machine, gpm=1200)
    with served(machine, machine_end, runner=runner, corrupt=0.01, seed=4) as emu:
        loop = HostLoop(host_end)
        baseline = loop.meters((0x00,)).meters[0x00]
        seen = [baseline]
        for i in range(3000):
            if i >= 60 and machine.meter(0x00) > 10**8 + 50:
                break
            if i % 3 == 0:
                events = loop.poll(ExtendedMetersRequest(0, (0x00,), alternate=i % 2 == 1))
                seen += [e.reply.meters[0x00] for e in events  # type: ignore[union-attr]
                         if isinstance(e, ReplyReceived)]
            else:
                loop.poll(GeneralPoll())
        emu.runner = None  # stop play
        faults.corrupt = 0.0
        emu.set_corruption(0.0)
        final = loop.meters((0x00,)).meters[0x00]
        with emu.lock:
            coin_in_cents = machine.totals().coin_in
            true_coin_in = machine.meter(0x00)
        assert any(isinstance(e, FrameRejected | PollFailed) for e in loop.events)
        assert faults.corrupted > 0 and emu.stats.corrupted_bytes > 0
    unwrapped = [(v - baseline) % 10**8 for v in [*seen, final]]
    assert unwrapped == sorted(unwrapped)  # never a garbage or backwards value
    assert true_coin_in > 10**8  # it really rolled over
    assert unwrapped[-1] * 5 == coin_in_cents > 0


def test_power_cycle_link_down_and_recovery() -> None:
    host_end, machine_end = pair()
    machine = Machine()
    runner = fast("- wait: 0.5\n- power_cycle: 1.5\n", machine)
    with served(machine, machine_end, runner=runner):
        loop = HostLoop(host_end, link_down_after=2)
        loop.drain_exceptions()
        wait_until(lambda: not machine.powered)
        failed = loop.poll(GeneralPoll())
        assert any(isinstance(e, PollFailed) for e in failed)
        wait_until(lambda: runner.finished)
        codes = loop.drain_exceptions()
        assert codes[:2] == [0x18, 0x17]
        assert sum(isinstance(e, LinkUp) for e in loop.events) == 2


@pytest.mark.parametrize("seed", [1, 2])
def test_autoplay_money_invariant_through_the_host(seed: int) -> None:
    host_end, machine_end = pair()
    machine = Machine(MachineConfig(denomination_cents=25))
    start: dict[int, int] = {}
    codes = (0x00, 0x01, 0x02, 0x04, 0x0B, 0x0D, 0x0E, 0x05)
    with served(machine, machine_end) as emu:
        loop = HostLoop(host_end)
        # the first read before anybody plays: the lifetime totals count from the start
        start = loop.meters(codes).meters
        runner = fast("- autoplay: forever\n", machine, gpm=3000)
        runner.rng.seed(seed)
        with emu.lock:
            emu.runner = runner
        wait_until(lambda: machine.meter(0x05) >= 40)
        emu.runner = None
        end = loop.meters(codes).meters
        with emu.lock:
            t = machine.totals()
    d = {c: end[c] - start[c] for c in codes}
    assert d[0x00] * 25 == t.coin_in and d[0x01] * 25 == t.coin_out
    assert d[0x02] * 25 == t.jackpot and d[0x0B] * 25 == t.bills
    assert d[0x0D] == t.ticket_in and d[0x0E] == t.ticket_out
    assert d[0x04] * 25 == t.cancelled_credits and d[0x05] == t.games_played
