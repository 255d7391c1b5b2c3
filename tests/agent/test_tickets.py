"""The ticket ledger (agent/derive/tickets.py) and stale coin-in in RTE mode, via the interpreter.

The property: whatever is lost between the machine and the agent (a 3D, an LP 4D answer), and
whatever order records and meter reads arrive in, the ``ticketPrinted`` amounts with
``metered: true`` add up to the ticket-out meter delta since the first baseline, and every
record read is reported exactly once.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.derive.interpreter import Interpreter
from agent.derive.state import AgentState
from agent.observations import (
    ExceptionObserved,
    LinkDown,
    LinkUp,
    MachineIdentified,
    MeterReason,
    MetersRead,
    Observation,
    RealTimeEventObserved,
    TicketValidationRead,
)
from agent.reads import TICKET_METERS, ReadMeters
from api.events import Event

TICKET_OUT, TICKET_OUT_RESTRICTED, COIN_IN, CANCELLED = 0x0E, 0x10, 0x00, 0x04
SETTLE = 10.0


class Rig:
    """An interpreter fed like the line owner feeds it, with the state round-tripped through
    JSON after every observation (as the outbox stores it)."""

    def __init__(self, *, rte: bool = False) -> None:
        self.interp = Interpreter("T1", rte=rte, backlog_window=2.0, ticket_settle=SETTLE)
        self.state = self.interp.initial_state()
        self.at = 1_700_000_000.0
        self.events: list[Event] = []
        self.reads: list[Any] = []

    def feed(self, obs: Observation) -> list[Event]:
        events, state, self.reads = self.interp.observe(self.state, obs)
        self.state = AgentState.from_json(state.to_json())
        assert self.state == state
        self.events += events
        return events

    def tick(self, seconds: float = 0.5) -> float:
        self.at += seconds
        return self.at

    def link_up(self) -> None:
        self.feed(LinkUp(at=self.tick()))
        self.feed(MachineIdentified(at=self.tick(), sas_version="602", serial_number="S",
                                    game_id="AB", denomination_cents=1, games=1))

    def meters(self, values: dict[int, int], reason: MeterReason = "ticket",
               started_at: float | None = None) -> list[Event]:
        return self.feed(MetersRead(at=self.tick(), meters=dict(values),
                                    widths={c: 5 if c in (0x0E, 0x10) else 4 for c in values},
                                    reason=reason, started_at=started_at))

    def record(self, number: str, cents: int, kind: int = 0) -> list[Event]:
        return self.feed(TicketValidationRead(at=self.tick(), validation_type=kind,
                                              validation_number=number, amount_cents=cents,
                                              ticket_number=int(number) % 0x10000))

    def printed(self, **match: Any) -> list[dict[str, Any]]:
        return [dict(e.data) for e in self.events if e.name == "ticketPrinted"
                and all(e.data.get(k) == v for k, v in match.items())]


def started(out: int = 0) -> Rig:
    rig = Rig()
    rig.link_up()
    rig.meters({TICKET_OUT: out, TICKET_OUT_RESTRICTED: 0, CANCELLED: 0}, "discovery")
    rig.tick(30)
    return rig


def test_record_then_meter_is_one_metered_ticket() -> None:
    rig = started(out=1_000)
    rig.feed(ExceptionObserved(at=rig.tick(), code=0x3D))
    assert rig.record("1001", 2_550) == []
    assert ReadMeters(1, "ticket", TICKET_METERS) in rig.reads
    rig.meters({TICKET_OUT: 3_550})
    assert rig.printed() == [{"amount": 2_550, "validationNumber": "1001", "ticketNumber": 1001,
                              "validationType": 0, "playerId": None, "metered": True}]
    assert rig.record("1001", 2_550) == []  # 3D repeated until serviced: once


def test_meter_then_record_reports_at_the_record() -> None:
    rig = started()
    rig.meters({TICKET_OUT: 500, CANCELLED: 500}, "cashout")
    assert rig.printed() == []
    rig.feed(ExceptionObserved(at=rig.tick(), code=0x3D))
    assert [e.name for e in rig.record("77", 500)] == ["ticketPrinted"]
    assert rig.printed(metered=True, validationNumber="77")


def test_movement_without_a_record_is_reconciled_after_the_settle_time() -> None:
    rig = started(out=40)
    rig.meters({TICKET_OUT: 1_040})
    assert rig.printed() == []  # its 3D may still come
    rig.tick(SETTLE)
    rig.meters({TICKET_OUT: 1_040, TICKET_OUT_RESTRICTED: 0}, "snapshot")
    assert rig.printed() == [{"amount": 1_000, "validationNumber": None, "ticketNumber": None,
                              "validationType": None, "playerId": None, "metered": True,
                              "reconciled": True,
                              "meters": {"ticketOutCashable": [40, 1_040]}}]


def test_an_awaited_record_holds_the_credit_back_until_settle() -> None:
    rig = started()
    rig.feed(ExceptionObserved(at=rig.tick(), code=0x3D))
    rig.meters({TICKET_OUT: 700})
    rig.tick(SETTLE - 2)
    rig.feed(ExceptionObserved(at=rig.tick(), code=0x3D))  # repeated: the wait is not renewed
    rig.meters({TICKET_OUT: 700})
    assert rig.printed() == []
    rig.tick(SETTLE)
    rig.meters({TICKET_OUT: 700})  # no LP 4D answer within the settle time: reconciled
    assert rig.printed(reconciled=True)[0]["amount"] == 700


def test_a_record_from_before_the_first_baseline_is_not_metered() -> None:
    rig = Rig()
    rig.link_up()
    rig.record("9", 1_200)  # discovery reads LP 4D before the first meter read
    rig.meters({TICKET_OUT: 88_000}, "discovery")
    assert rig.printed() == [{"amount": 1_200, "validationNumber": "9", "ticketNumber": 9,
                              "validationType": 0, "playerId": None, "metered": False}]


def test_a_read_begun_before_the_record_does_not_settle_it() -> None:
    rig = started()
    begun = rig.tick()
    rig.record("5", 300)
    rig.meters({TICKET_OUT: 0}, started_at=begun)  # in flight when 4D answered
    assert rig.printed() == []
    rig.meters({TICKET_OUT: 300})
    assert rig.printed(metered=True)[0]["validationNumber"] == "5"


def test_a_handpay_receipt_is_reported_at_once_and_not_metered() -> None:
    rig = started()
    rig.feed(ExceptionObserved(at=rig.tick(), code=0x3E))
    events = rig.record("31", 150_000, kind=0x20)
    assert [e.data["metered"] for e in events] == [False]


def test_link_up_restarts_the_settle_wait() -> None:
    rig = started()
    rig.meters({TICKET_OUT: 900})
    rig.feed(LinkDown(at=rig.tick(), reason="timeout"))
    rig.tick(3 * SETTLE)
    rig.link_up()
    rig.meters({TICKET_OUT: 900}, "discovery")  # the unread record's 3D comes after this
    assert rig.printed() == []
    rig.record("12", 900)
    assert rig.printed(metered=True)[0]["validationNumber"] == "12"


# -- the property ------------------------------------------------------------------------

ticket = st.tuples(st.just("ticket"), st.integers(1, 50_000),
                   st.sampled_from(["both", "both", "no3d", "no4d", "meter_first"]))
step = st.one_of(ticket,
                 st.tuples(st.just("read"), st.sampled_from(["ticket", "snapshot", "timer"])),
                 st.tuples(st.just("wait"), st.floats(0.1, 3 * SETTLE)),
                 st.tuples(st.just("outage"), st.booleans()))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**9), st.lists(st.integers(1, 9_999), max_size=3),
       st.lists(step, max_size=30))
def test_metered_tickets_add_up_to_the_ticket_out_meter(
        start: int, unread_at_start: list[int], steps: list[tuple[Any, ...]]) -> None:
    rig = Rig()
    out = start
    serial = 0
    unread: list[tuple[str, int]] = []  # records in the machine not yet read by LP 4D
    for cents in unread_at_start:  # printed before the agent ever ran
        serial += 1
        out += cents
        unread.append((str(serial), cents))
    recorded: set[str] = set()
    first_out = out

    def read(reason: MeterReason) -> None:
        rig.meters({TICKET_OUT: out % 10**10, CANCELLED: 0}, reason)

    def service() -> None:  # 3D seen: LP 4D answers the oldest unread record
        if unread:
            number, cents = unread.pop(0)
            rig.record(number, cents)
            recorded.add(number)

    rig.link_up()
    service()
    read("discovery")
    first_out = out  # the baseline
    for kind, *args in steps:
        if kind == "ticket":
            cents, how = args
            serial += 1
            out += cents
            if how == "meter_first":
                read("cashout")
            if how != "no3d":
                unread.append((str(serial), cents))
            if how in ("both", "meter_first"):
                rig.feed(ExceptionObserved(at=rig.tick(), code=0x3D))
                service()
            elif how == "no4d":
                rig.feed(ExceptionObserved(at=rig.tick(), code=0x3D))
                unread.pop()  # the answer died with a crashed agent: the record is gone
            read("ticket")
        elif kind == "read":
            read(args[0])
        elif kind == "wait":
            rig.tick(args[0])
        else:
            rig.feed(LinkDown(at=rig.tick(), reason="timeout"))
            rig.link_up()
            service()
            read("discovery")
    rig.tick(SETTLE)
    service()
    read("snapshot")
    rig.tick(SETTLE)
    read("snapshot")

    metered = sum(t["amount"] for t in rig.printed(metered=True))
    assert metered == out - first_out
    numbers = [t["validationNumber"] for t in rig.printed() if t["validationNumber"]]
    assert sorted(numbers) == sorted(recorded)  # every record read, reported once
    assert rig.state.machine(1).ticket_credit == 0


# -- RTE: a read that began before a 7E carries a stale coin-in ---------------------------

@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 500), st.integers(0, 3)), min_size=1, max_size=25))
def test_rte_coin_in_and_overlapping_reads_count_each_bet_once(
        games: list[tuple[int, int]]) -> None:
    """Each read takes its coin-in at its first poll and completes after ``lag`` more games
    (7E frames with the coin-in meter arrive meanwhile, SAS §3.12)."""
    rig = Rig(rte=True)
    rig.link_up()
    coin_in = 1_000
    rig.meters({COIN_IN: coin_in}, "discovery")
    rig.tick(30)
    in_flight: list[tuple[float, int, int]] = []  # (started_at, coin-in taken, games left)
    for bet, lag in games:
        in_flight.append((rig.tick(0.01), coin_in, lag))
        coin_in += bet
        rig.feed(RealTimeEventObserved(at=rig.tick(), code=0x7E, fields={
            "credits_wagered": bet, "coin_in_meter": coin_in, "wager_type": 0,
            "progressive_group": 0}))
        done = [r for r in in_flight if r[2] == 0]
        in_flight = [(s, v, n - 1) for s, v, n in in_flight if n > 0]
        for started_at, value, _ in done:
            rig.meters({COIN_IN: value}, "game_start", started_at=started_at)
    rig.meters({COIN_IN: coin_in}, "snapshot", started_at=rig.tick())
    names = [e.name for e in rig.events]
    assert "meterRollback" not in names
    bets = sum(e.data["amount"] for e in rig.events if e.name == "betPlaced")
    assert bets == coin_in - 1_000
