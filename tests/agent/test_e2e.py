"""End to end, in process: emulator -> memory line -> line owner -> interpreter -> outbox.

Money is checked against the emulator's own lifetime totals (the ground truth that never
resets or wraps): the events must add up to exactly what the machine counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.line.commands import CommandKind, MachineCommand
from agent.observations import CardInserted, CardRemoved
from emulator.model import Door
from emulator.server import LinkOptions
from tests.agent.e2e_helpers import ADDRESS, Rig
from tests.support.event_data import assert_documented
from tests.support.waits import wait_until

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    r.wait_ready()
    yield r
    try:
        # every event of the test, from the real line and discovery, is what the docs say
        assert_documented(e.to_wire() for e in r.events())
    finally:
        r.close()


def play(r: Rig, games: list[tuple[int, int]]) -> None:
    with r.act() as (m, now):
        if m.credits < sum(bet for bet, _ in games):
            m.insert_bill(now, 100)
        for bet, win in games:
            m.play_game(now, bet=bet, win=win)


def test_discovery_identifies_the_machine_and_takes_a_snapshot(rig: Rig) -> None:
    names = rig.names()
    assert names[0] == "machineLinkUp"
    identified = rig.events("machineIdentified")[0].event.data
    assert identified["serialNumber"] == "EMU0000001"
    assert identified["sasVersion"] == "602"
    assert identified["denomination"] == 1
    assert identified["games"] == 3
    snapshot = rig.events("meterSnapshot")[0].event.data
    assert snapshot["reason"] == "discovery" and snapshot["first"] is True
    # the emulator's clock starts in 2026-01-01: far from ours, so the skew is reported
    assert rig.events("clockSkew")
    status = rig.line.status()["machines"][str(ADDRESS)]
    assert status["linkUp"] is True
    assert status["machine"]["serialNumber"] == "EMU0000001"
    assert status["ignoredPolls"] == []
    assert any(f["dir"] == "tx" for f in status["lastFrames"])


def test_play_bets_and_wins_equal_the_meter_deltas(rig: Rig) -> None:
    play(rig, [(5, 0), (10, 20), (3, 0), (7, 70)])
    totals = rig.machine.totals()
    rig.wait_total("betPlaced", totals.coin_in)
    rig.wait_total("winPaid", totals.coin_out)
    assert totals.coin_in == 25 and totals.coin_out == 90
    rig.wait_event("gameEnded", 1)
    assert rig.total("billAccepted") == totals.bills == 10_000


def test_bills_tickets_and_cashout(rig: Rig) -> None:
    with rig.act() as (m, now):
        m.insert_bill(now, 20)
        m.insert_bill(now, 5)
    rig.wait_total("billAccepted", 2500)
    with rig.act() as (m, now):
        assert m.insert_ticket(now, 1000)
    rig.wait_total("ticketRedeemed", 1000)
    with rig.act() as (m, now):
        m.cash_out(now)
    printed = rig.wait_event("ticketPrinted")[0].event.data
    assert printed["amount"] == 3500
    rig.wait_total("cashout", 3500)
    assert rig.events("cashout")[0].event.data["method"] == "ticket"
    assert rig.machine.totals().ticket_out == 3500


def test_handpay_and_remote_reset(rig: Rig) -> None:
    limit = rig.machine.config.handpay_limit_cents
    play(rig, [(10, limit)])
    pending = rig.wait_event("handpayPending")[0].event.data
    assert pending["amount"] == limit and pending["kind"] == "jackpot"
    result = rig.line.submit(MachineCommand(CommandKind.HANDPAY_RESET, ADDRESS, "hp-1")).result(20)
    assert result.ok, result.error
    rig.wait_event("handpayReset")
    rig.wait_total("winPaid", rig.machine.totals().jackpot + rig.machine.totals().coin_out)
    assert any(e.event.data["kind"] == "handpay" for e in rig.events("winPaid"))
    assert rig.machine.handpay is None


def test_doors_and_tilts(rig: Rig) -> None:
    with rig.act() as (m, now):
        m.open_door(now, Door.SLOT)
    opened = rig.wait_event("doorOpened")[0].event.data
    assert opened["door"] == "slot"
    with rig.act() as (m, now):
        m.close_door(now, Door.SLOT)
        m.tilt(now, 0x20)
    rig.wait_event("doorClosed")
    assert rig.wait_event("tilt")[0].event.data["kind"] == "general"


def test_power_cycle_reconciles_by_meters(rig: Rig) -> None:
    with rig.act() as (m, now):
        m.power_off(now)
    rig.wait_event("machineLinkDown")
    with rig.act() as (m, now):
        m.power_on(now)
    rig.wait_event("machineLinkUp", 2)
    rig.wait_event("powerRestored")
    play(rig, [(4, 8)])
    totals = rig.machine.totals()
    rig.wait_total("betPlaced", totals.coin_in)
    rig.wait_total("winPaid", totals.coin_out)


def test_link_loss_reports_down_and_up_and_reconciles_play(rig: Rig) -> None:
    with rig.faults.during(cut=True):
        down = rig.wait_event("machineLinkDown")[0].event.data
        assert down["address"] == ADDRESS
        play(rig, [(5, 0), (5, 15)])
    rig.wait_event("machineLinkUp", 2)
    totals = rig.machine.totals()
    rig.wait_total("betPlaced", totals.coin_in)
    rig.wait_total("winPaid", totals.coin_out)
    assert all(e.event.data.get("reconciled") for e in rig.events("betPlaced"))


def test_queue_overflow_gives_a_data_gap_and_a_snapshot(rig: Rig) -> None:
    capacity = rig.machine.config.queue_capacity
    with rig.faults.during(cut=True):
        rig.wait_event("machineLinkDown")
        with rig.act() as (m, now):
            for _ in range(capacity):
                m.open_door(now, Door.BELLY)
                m.close_door(now, Door.BELLY)
            m.insert_bill(now, 10)
    gap = rig.wait_event("dataGap")[0]
    assert gap.event.data["reason"] == "exceptionQueueOverflow"
    rig.wait_total("billAccepted", 1000)
    # the full read after the gap (merged with the link-up snapshot when both are pending)
    assert any(e.seq > gap.seq for e in rig.events("meterSnapshot"))


def test_soft_meter_reset_emits_meters_reset_and_no_negative_money(rig: Rig) -> None:
    play(rig, [(10, 5)])
    rig.wait_total("betPlaced", 10)
    with rig.act() as (m, now):
        m.reset_soft_meters(now)
    rig.wait_event("metersReset")
    play(rig, [(3, 0)])
    rig.wait_total("betPlaced", 13)
    for name in ("betPlaced", "winPaid", "billAccepted"):
        assert all(e.event.data["amount"] > 0 for e in rig.events(name))
    assert not rig.events("meterRollback")


def test_meters_rolling_over_past_ten_to_the_eighth(tmp_path: Path) -> None:
    r = Rig(tmp_path)
    try:
        with r.act() as (m, _):
            m.set_meters_near_rollover(margin=5)
        r.wait_ready()
        base = r.machine.totals()
        play(r, [(3, 0), (4, 0), (2, 9)])
        totals = r.machine.totals()
        assert r.machine.reported_meter(0x00) < 100  # the coin-in meter wrapped
        r.wait_total("betPlaced", totals.coin_in - base.coin_in)
        r.wait_total("winPaid", totals.coin_out - base.coin_out)
        assert not r.events("meterRollback")
    finally:
        r.close()


def test_rte_mode(tmp_path: Path) -> None:
    r = Rig(tmp_path, rte=True)
    try:
        r.wait_ready()
        wait_until(lambda: r.machine.rte_enabled, what="LP 0E 01 to reach the machine")
        assert r.line.status()["machines"]["1"]["rte"] is True
        play(r, [(5, 10), (2, 0)])
        totals = r.machine.totals()
        r.wait_total("betPlaced", totals.coin_in)
        r.wait_total("winPaid", totals.coin_out)
        r.wait_event("gameEnded", 2)
    finally:
        r.close()


def test_card_session_accounts_play(rig: Rig) -> None:
    at = rig.events()[-1].seq
    rig.pipeline.put(CardInserted(at=1e9, address=ADDRESS, card_id="P123", kind="player"))
    rig.wait_event("playerSessionStarted")
    play(rig, [(5, 10)])
    rig.wait_total("betPlaced", 5)
    rig.wait_total("winPaid", 10)
    rig.pipeline.put(CardRemoved(at=2e9, address=ADDRESS, card_id="P123", kind="player"))
    ended = rig.wait_event("playerSessionEnded")[0].event.data
    assert ended["playerId"] == "P123"
    assert all(e.event.data["playerId"] == "P123" for e in rig.events("betPlaced")
               if e.seq > at)


@pytest.mark.parametrize(("ignored", "expect_ignored"), [
    (frozenset({0x6F, 0xAF}), {"6F"}),
    (frozenset({0x6F, 0xAF, 0x2F}), {"6F", "2F"}),
])
def test_stepdown_when_the_machine_ignores_meter_polls(
        tmp_path: Path, ignored: frozenset[int], expect_ignored: set[str]) -> None:
    r = Rig(tmp_path, link=LinkOptions(unsupported_polls=ignored))
    try:
        r.wait_ready()
        status = r.line.status()["machines"]["1"]
        assert expect_ignored <= set(status["ignoredPolls"])
        assert "00" in status["lastMeters"]
        play(r, [(5, 10), (6, 0)])
        totals = r.machine.totals()
        r.wait_total("betPlaced", totals.coin_in)
        r.wait_total("winPaid", totals.coin_out)
        served = r.emulator.stats.unsupported
        assert served.get(0x6F, 0) >= 1
        if 0x2F in ignored:
            assert served.get(0x2F, 0) >= 1
    finally:
        r.close()


def test_lock_command_stops_play_on_the_machine(rig: Rig) -> None:
    result = rig.line.submit(MachineCommand(CommandKind.LOCK, ADDRESS, "act-1")).result(20)
    assert result.ok, result.error
    assert rig.machine.locked
    assert rig.machine.play_refusal(1) is not None
    locked = rig.wait_event("machineLocked")[0].event.data
    assert locked["by"] == "act-1"
    assert rig.line.submit(MachineCommand(CommandKind.UNLOCK, ADDRESS)).result(20).ok
    assert not rig.machine.locked
    rig.wait_event("machineUnlocked")


def test_read_meters_and_machine_info_commands(rig: Rig) -> None:
    play(rig, [(5, 0)])
    meters = rig.line.submit(MachineCommand(CommandKind.READ_METERS, ADDRESS)).result(20)
    assert meters.ok, meters.error
    assert meters.data["meters"]["00"] == rig.machine.meter(0x00) == 5
    info = rig.line.submit(MachineCommand(CommandKind.MACHINE_INFO, ADDRESS)).result(20)
    assert info.ok and info.data["serialNumber"] == "EMU0000001"
    assert info.data["denomination"] == 1
    clock = rig.line.submit(MachineCommand(CommandKind.SYNC_CLOCK, ADDRESS)).result(20)
    assert clock.ok and "machineTime" in clock.data


def test_discovery_sets_a_skewed_clock_when_allowed(tmp_path: Path) -> None:
    import dataclasses
    import time
    from datetime import datetime

    from tests.agent.e2e_helpers import FAST_POLL

    poll = dataclasses.replace(FAST_POLL, clock_sync=True, clock_max_skew_s=30.0)
    r = Rig(tmp_path, poll=poll)
    try:
        r.wait_ready()
        assert r.events("clockSkew")  # the emulator starts on 2026-01-01
        # machines keep local time: LP 7F carries the host's local time
        wait_until(lambda: abs((r.machine.clock(time.monotonic()).replace(tzinfo=None)
                              - datetime.now()).total_seconds()) < 5,
            what="LP 7F to set the machine's clock to ours")
    finally:
        r.close()


def test_rte_off_turns_off_a_machine_left_in_rte_mode(tmp_path: Path) -> None:
    r = Rig(tmp_path, link=LinkOptions(rte=True), rte=False)
    try:
        r.wait_ready()
        wait_until(lambda: not r.machine.rte_enabled, what="LP 0E 00 to reach the machine")
        play(r, [(4, 4)])
        r.wait_total("betPlaced", 4)
        r.wait_total("winPaid", 4)
        assert r.line.status()["machines"]["1"]["rte"] is False
    finally:
        r.close()
