"""The money invariant under crashes: whatever happens to the agent, the money events in the
outbox add up to exactly what the machine counted, and no event is stored twice.

Crashes here are abandoned agents (threads cut without a clean stop, nothing queued
committed) in process. Real SIGKILLs of an agent process, on every emulator profile, are in
tests/reliability/test_profiles.py. Each restart continues from the state committed with the
last stored events, so the first read after it emits exactly the missing delta.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from operator import attrgetter
from pathlib import Path

import pytest

from api.events import StoredEvent
from emulator.autoplay import AutoPlayer, AutoplaySettings
from emulator.model import LifetimeTotals, MachineConfig, Ticket
from tests.agent.e2e_helpers import FAST_POLL, Rig
from tests.support.waits import wait_until

pytestmark = pytest.mark.timeout(90)


#: Play is paced per poll cycle, not per second: a 3 ms spacing (the emulator on the memory
#: line answers at once) plays the same 240 decisions in a third of the time.
POLL = replace(FAST_POLL, interval_ms=3)

SETTINGS = AutoplaySettings(games_per_minute=60_000, jackpot_probability=0.01,
                            cashout_probability=0.03, door_probability=0.01,
                            tilt_probability=0.005, attendant_delay=0.0, door_open_for=0.0,
                            tilt_clears_after=0.0)

def _wins(t: LifetimeTotals) -> int:
    return t.coin_out + t.jackpot


#: (money event, the machine's lifetime total in cents its amounts must add up to)
MONEY: tuple[tuple[str, Callable[[LifetimeTotals], int]], ...] = (
    ("betPlaced", attrgetter("coin_in")),
    ("winPaid", _wins),
    ("billAccepted", attrgetter("bills")),
    ("ticketRedeemed", attrgetter("ticket_in")),
    ("cashout", attrgetter("cancelled_credits")),
    ("ticketPrinted", attrgetter("ticket_out")),
)


def sums(events: list[StoredEvent]) -> dict[str, int]:
    out = dict.fromkeys((name for name, _ in MONEY), 0)
    for e in events:
        if e.event.name in out and e.event.data.get("metered", True):
            out[e.event.name] += int(e.event.data["amount"])
    return out


def expected(totals: LifetimeTotals) -> dict[str, int]:
    return {name: total(totals) for name, total in MONEY}


def assert_unique(events: list[StoredEvent]) -> None:
    ids = [e.id for e in events]
    assert len(ids) == len(set(ids))
    assert [e.seq for e in events] == sorted(e.seq for e in events)


def wait_ticket(stored: Callable[[], list[StoredEvent]], ticket: Ticket) -> None:
    """The player takes the ticket and walks away: the next cash-out is not within a few
    polls. (The machine keeps unread records for LP 4D in order and repeats 3D until all are
    read; the wait paces play like a real player, so each ticket is checked by number.)"""
    number = f"{ticket.validation_number:016d}"
    wait_until(lambda: any(e.event.data["validationNumber"] == number for e in stored()),
               what=f"ticket {number} to be reported")


def wait_polled(rig: Rig) -> None:
    """Pace play to the agent: one decision per poll cycle."""
    cycles = rig.line.cycles
    wait_until(lambda: rig.line.cycles > cycles or not rig.line.running, what="a poll cycle")


@pytest.mark.parametrize("seed", [3, 11])
def test_abandoned_agents_neither_lose_nor_double_money(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    rig = Rig(tmp_path, machine=MachineConfig(denomination_cents=5), poll=POLL)
    try:
        player = AutoPlayer(rig.machine, random.Random(seed), SETTINGS)
        rig.wait_ready()
        crashes = 0
        for _ in range(240):
            with rig.act() as (machine, now):
                tickets = len(machine.tickets)
                player.tick(now)
                printed = machine.tickets[tickets:]
            wait_polled(rig)
            roll = rng.random()
            if roll < 0.03:
                rig.crash_agent()  # at whatever point the agent happens to be
                crashes += 1
            elif roll < 0.05:
                with rig.faults.during(cut=True):
                    rig.wait_event("machineLinkDown", len(rig.events("machineLinkDown")) + 1)
            for ticket in printed:
                wait_ticket(lambda: rig.events("ticketPrinted"), ticket)
        assert crashes >= 2
        assert rig.machine.totals().games_played > 50
        want = expected(rig.machine.totals())
        wait_until(lambda: sums(rig.events()) == want,
                   what=lambda: f"outbox sums {sums(rig.events())} == machine totals {want}")
        assert_unique(rig.events())
        assert want["betPlaced"] > 0 and want["winPaid"] > 0 and want["billAccepted"] > 0
    finally:
        rig.close()
