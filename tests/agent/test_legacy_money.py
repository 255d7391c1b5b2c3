"""Money on every meter profile: a machine that answers only the legacy polls (0F, 1A, 1C),
or LP 1E / 20 bill meters, reports its bills and tickets, and drop movement no event explains
is an alert (docs/events.md, "Bills on every meter profile")."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.derive.interpreter import Interpreter
from agent.derive.meters import Meter
from agent.derive.state import AgentState
from agent.observations import (
    ExceptionObserved,
    LastBillRead,
    LinkUp,
    MachineIdentified,
    MeterReason,
    MetersRead,
    Observation,
    RealTimeEventObserved,
    TicketValidationRead,
)
from agent.reads import BILL_METERS, ReadLastBill, ReadMeters
from api.events import Event

T0 = 1_700_000_000.0
DROP, CANCELLED, CREDITS = 0x24, 0x04, 0x0C
#: what LP 0F + 1A + 1C carry (sas_protocol LEGACY_METER_LAYOUTS)
LEGACY = (0x00, 0x01, 0x02, 0x04, 0x05, 0x06, 0x24, 0x0C)
SETTLE = 10.0


class Legacy:
    """A machine answering the legacy polls, and the interpreter watching it."""

    def __init__(self, denom: int = 1, extra: tuple[int, ...] = ()) -> None:
        self.interp = Interpreter("T1", ticket_settle=SETTLE)
        self.state = self.interp.initial_state()
        self.at = T0
        self.denom = denom
        self.codes = (*LEGACY, *extra)
        self.meters = dict.fromkeys(self.codes, 1000)
        self.events: list[Event] = []
        self.reads: list[Any] = []
        self.feed(LinkUp(at=self.tick()))
        self.feed(MachineIdentified(at=self.tick(), sas_version="500", serial_number="L1",
                                    game_id="LG", denomination_cents=denom, games=1))
        self.read("discovery")
        self.tick(60)
        self.events.clear()

    def tick(self, seconds: float = 1.0) -> float:
        self.at += seconds
        return self.at

    def feed(self, obs: Observation) -> list[Event]:
        events, self.state, self.reads = self.interp.observe(self.state, obs)
        assert AgentState.from_json(self.state.to_json()) == self.state
        self.events += events
        return events

    def read(self, reason: MeterReason = "timer", started: float | None = None) -> list[Event]:
        at = self.tick(0.3)
        return self.feed(MetersRead(at=at, meters=dict(self.meters), widths={}, reason=reason,
                                    started_at=started))

    def exc(self, code: int) -> list[Event]:
        return self.feed(ExceptionObserved(at=self.tick(0.1), code=code))

    def bill(self, dollars: int, code: int | None) -> None:
        """A bill goes in: the drop moves (in credits), then the exception (if not lost)."""
        self.meters[DROP] += dollars * 100 // self.denom
        self.meters[CREDITS] += dollars * 100 // self.denom
        if code is not None:
            self.exc(code)

    def named(self, name: str) -> list[Event]:
        return [e for e in self.events if e.name == name]


def test_bill_read_reaches_the_drop_on_a_legacy_machine() -> None:
    assert Meter.TOTAL_DROP in BILL_METERS


def test_three_bills_by_exception_and_drop() -> None:
    m = Legacy(denom=5)
    m.bill(1, 0x47)
    assert ReadMeters(1, "bill", BILL_METERS) in m.reads
    m.bill(20, 0x4A)
    m.bill(100, 0x4C)
    m.read("bill")
    (event,) = m.named("billAccepted")
    assert event.data["amount"] == 12_100
    assert event.data["credits"] == 12_100 // 5
    assert event.data["count"] == 3
    assert event.data["bills"] == {"100": 1, "2000": 1, "10000": 1}
    assert event.data["source"] == "exception"
    assert event.data["meters"] == {"totalDrop": [1000, 1000 + 12_100 // 5]}
    assert m.named("unexplainedMeterChange") == []
    m.tick(60)
    m.read()
    assert len(m.named("billAccepted")) == 1
    assert m.named("unexplainedMeterChange") == []


def test_bill_of_unknown_value_takes_the_drop_movement() -> None:
    m = Legacy()
    m.bill(2_000, 0x4F)  # RTE / other denomination: the reference gives no value
    m.read("bill")
    (event,) = m.named("billAccepted")
    assert event.data["amount"] == 200_000
    assert event.data["count"] == 1
    assert "bills" not in event.data


def last_bill(m: Legacy, code: int, count: int) -> None:
    m.feed(LastBillRead(at=m.tick(0.1), country_code=0, denomination_code=code,
                        bill_count=count))


def test_lp48_values_a_bill_of_unknown_value_not_the_drop() -> None:
    """Reference §3.9: LP 48 is the bill acceptor's own report. A 4F bill next to coins that
    went to the drop (0A is not read on this machine) takes its face value, and the rest of
    the drop movement is an alert, not part of the bill."""
    m = Legacy()
    m.bill(25, 0x4F)
    assert ReadLastBill(1) in m.reads  # asked for on a machine whose bill meter is the drop
    last_bill(m, 5, 7)  # code 05 = $25 (the order of the count meters 40-57)
    m.meters[DROP] += 300  # three dollars of coins to the drop
    m.read("bill")
    (event,) = m.named("billAccepted")
    assert event.data["amount"] == 2500
    assert event.data["bills"] == {"2500": 1}
    assert event.data["source"] == "lastBill"
    assert event.data["codes"] == ["0x4F"]
    m.tick(SETTLE)
    m.read()
    (alert,) = m.named("unexplainedMeterChange")
    assert alert.data["amount"] == 300


def test_lp48_repeated_report_values_no_second_bill() -> None:
    m = Legacy()
    m.bill(20, 0x4F)
    last_bill(m, 4, 10)
    m.read("bill")
    m.exc(0x4F)  # a 4F that is a garbled byte: no bill went in
    last_bill(m, 4, 10)  # the count did not move
    assert m.state.machines[1].bills_pending[-1]["cents"] is None
    m.read("bill")
    assert [e.data["amount"] for e in m.named("billAccepted")] == [2000]
    assert m.state.machines[1].bills_pending == ()
    assert m.state.machines[1].bill_counts == {4: 10}


def test_lp48_count_values_as_many_bills_as_it_moved() -> None:
    m = Legacy()
    last_bill(m, 7, 3)  # a report before any bill: a count, nothing pending
    m.bill(100, 0x4F)
    m.bill(100, 0x4F)
    last_bill(m, 7, 5)  # one LP 48 read for both (the queued reads merged)
    m.read("bill")
    (event,) = m.named("billAccepted")
    assert event.data["amount"] == 20_000 and event.data["bills"] == {"10000": 2}
    assert event.data["source"] == "lastBill"


def test_lp48_of_another_face_does_not_revalue_a_coded_bill() -> None:
    """A 4A ($20) bill and an LP 48 that says $5: the report is about another bill; the 4A
    keeps its own value and the source says so."""
    m = Legacy()
    m.bill(20, 0x4A)
    last_bill(m, 2, 1)
    m.read("bill")
    (event,) = m.named("billAccepted")
    assert event.data["amount"] == 2000 and event.data["source"] == "exception"


def test_lp48_is_not_asked_for_where_a_bill_meter_is_read() -> None:
    m = Legacy(extra=(0x0B,))
    m.meters[0x0B] += 2000
    m.bill(20, 0x4A)
    assert not any(isinstance(r, ReadLastBill) for r in m.reads)
    last_bill(m, 4, 1)
    assert m.state.machines[1].bills_pending == ()


def test_rte_4f_frame_carries_the_bill_value() -> None:
    m = Legacy()
    m.meters[DROP] += 5000
    m.feed(RealTimeEventObserved(at=m.tick(0.1), code=0x4F,
                                 fields={"country_code": 0, "denomination_code": 6,
                                         "bill_count": 12}))
    m.meters[DROP] += 100  # a coin
    m.read("bill")
    (event,) = m.named("billAccepted")
    assert event.data["amount"] == 5000 and event.data["bills"] == {"5000": 1}


def test_drop_movement_nobody_explains_is_an_alert_after_the_settle_time() -> None:
    m = Legacy()
    m.bill(50, None)  # the 4B exception was lost
    m.read("timer")
    assert m.named("unexplainedMeterChange") == []  # its exception may still come
    m.tick(SETTLE)
    m.read("timer")
    (alert,) = m.named("unexplainedMeterChange")
    assert alert.channel.value == "alerts"
    assert alert.data == {"meter": "totalDrop", "code": "0x24", "before": 1000,
                          "after": 6000, "amount": 5000}
    assert m.named("billAccepted") == []


def test_late_exception_claims_the_drop_before_the_alert() -> None:
    m = Legacy()
    m.bill(20, None)
    m.read("timer")  # the drop moved before the exception arrived
    m.exc(0x4A)
    m.read("bill")
    assert m.named("billAccepted")[0].data["amount"] == 2000
    m.tick(SETTLE)
    m.read()
    assert m.named("unexplainedMeterChange") == []


def test_bill_exception_no_drop_pays_for_is_not_money() -> None:
    m = Legacy()
    m.exc(0x4C)  # a garbled byte: nothing went in
    started = m.at
    m.read("bill", started=started)
    m.tick(SETTLE)
    m.read()
    assert m.named("billAccepted") == []
    assert m.state.machines[1].bills_pending == ()


def test_machine_with_a_bills_meter_counts_bills_by_the_meter() -> None:
    m = Legacy(extra=(0x0B,))
    m.meters[0x0B] += 2000
    m.bill(20, 0x4A)
    assert m.state.machines[1].bills_pending == ()
    m.read("bill")
    (event,) = m.named("billAccepted")
    assert event.data["amount"] == 2000 and "source" not in event.data


def test_lp20_dollars_value_the_bills() -> None:
    m = Legacy(denom=5, extra=(Meter.BILL_DOLLARS,))
    m.meters[Meter.BILL_DOLLARS] += 25
    m.bill(25, 0x4F)
    m.read("bill")
    (event,) = m.named("billAccepted")
    assert event.data["amount"] == 2500
    assert event.data["credits"] == 500
    assert event.data["meters"] == {"billDollars": [1000, 1025]}


def test_lp1e_counts_value_the_bills_at_face() -> None:
    m = Legacy(extra=(0x40, 0x42, 0x43, 0x44, 0x46, 0x47))  # LP 1E's six count meters
    m.meters[0x44] += 2
    m.meters[0x40] += 1
    m.bill(41, 0x4F)
    m.read("bill")
    (event,) = m.named("billAccepted")
    assert event.data["amount"] == 4100
    assert event.data["count"] == 3
    assert event.data["bills"] == {"100": 1, "2000": 2}
    m.tick(SETTLE)
    m.read()
    assert m.named("unexplainedMeterChange") == []  # the drop is not the bill meter here


def test_ticket_out_on_a_legacy_machine_matches_the_cash_out() -> None:
    m = Legacy(denom=5)
    m.meters[CANCELLED] += 2_030  # 101.50 cashed out
    m.meters[CREDITS] = 0
    m.exc(0x66)
    m.read("cashout")
    assert m.named("cashout")[0].data["amount"] == 10_150
    m.exc(0x3D)
    m.feed(TicketValidationRead(at=m.tick(), validation_type=0,
                                validation_number="0000001234567890", amount_cents=10_150,
                                ticket_number=9))
    (ticket,) = m.named("ticketPrinted")
    assert ticket.data["metered"] is True and ticket.data["amount"] == 10_150
    m.tick(SETTLE)
    m.read()
    assert len(m.named("ticketPrinted")) == 1  # no reconciled ticket on legacy


def test_handpay_receipt_or_unpaid_record_on_legacy_is_not_metered() -> None:
    m = Legacy()
    m.exc(0x3D)
    m.feed(TicketValidationRead(at=m.tick(), validation_type=0,
                                validation_number="0000001234567891", amount_cents=500,
                                ticket_number=10))
    m.read("ticket", started=m.at)
    (ticket,) = m.named("ticketPrinted")
    assert ticket.data["metered"] is False


# -- the money property over a legacy profile ---------------------------------------------

KNOWN = {1: 0x47, 5: 0x48, 10: 0x49, 20: 0x4A, 50: 0x4B, 100: 0x4C, 2: 0x4D, 500: 0x4E,
         200: 0x50}

step = st.one_of(
    st.tuples(st.just("bill"), st.sampled_from([*sorted(KNOWN), 1000]),
              st.sampled_from(["sent", "lost", "4F"])),
    st.tuples(st.just("read"), st.sampled_from(["bill", "timer", "game_end"]), st.none()),
    st.tuples(st.just("wait"), st.floats(0.1, 15.0), st.none()),
    st.tuples(st.just("phantom"), st.sampled_from(sorted(KNOWN.values())), st.none()),
)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([1, 5, 10]), st.lists(step, max_size=40))
def test_legacy_bills_add_up_to_the_drop(denom: int, steps: list[tuple[str, Any, Any]]) -> None:
    """Whatever exceptions are lost, garbled or of unknown value, every cent of drop
    movement is reported exactly once: as a bill, or as an unexplained-drop alert; never
    negative, never more than moved."""
    m = Legacy(denom=denom)
    start = m.meters[DROP]
    all_sent = True
    for kind, a, b in steps:
        if kind == "bill":
            code = {"sent": KNOWN.get(a, 0x4F), "lost": None, "4F": 0x4F}[b]
            all_sent = all_sent and code is not None
            m.bill(a, code)
        elif kind == "read":
            m.read(a)
        elif kind == "wait":
            m.tick(a)
        else:
            m.exc(a)  # a bill code no bill is behind
            all_sent = False
    m.read()
    m.tick(SETTLE)
    m.read()
    m.tick(SETTLE)
    m.read()
    moved = (m.meters[DROP] - start) * denom
    bills = sum(e.data["amount"] for e in m.named("billAccepted"))
    alerts = sum(e.data["amount"] for e in m.named("unexplainedMeterChange"))
    assert all(e.data["amount"] > 0 for e in m.named("billAccepted"))
    assert bills + alerts == moved
    assert m.state.machines[1].drop_credit == 0
    if all_sent and not any(kind == "phantom" for kind, _, _ in steps):
        assert alerts == 0 and bills == moved


# -- diag: which money the machine can meter, and from what --------------------------------


def test_money_sources_of_a_modern_and_a_legacy_machine() -> None:
    from agent.line.discovery import money_sources

    modern = money_sources(set())
    assert modern["bills"] == "billsAccepted (LP 6F)"
    assert modern["ticketsOut"].endswith("+ LP 4D records")
    legacy = money_sources({0x6F, 0xAF, 0x2F})
    assert legacy["bills"] == "billsAccepted (LP 46)"  # the bill meter polls (§3.9b)
    assert money_sources({0x6F, 0xAF, 0x2F, 0x46})["bills"] == "billDollars (LP 20)"
    old = money_sources({0x6F, 0xAF, 0x2F, 0x46, 0x20, 0x1E})
    assert old["bills"] == "totalDrop (LP 1C) + exceptions 47-4F + LP 48"
    no_48 = money_sources({0x6F, 0xAF, 0x2F, 0x46, 0x20, 0x1E, 0x48})
    assert no_48["bills"] == "totalDrop (LP 1C) + exceptions 47-4F"
    assert legacy["ticketsOut"] == "LP 4D records matched with cancelledCredits (LP 0F)"
    # standard validation (reference §3.9b): no LP 4D, LP 3D answered
    std = money_sources({0x6F, 0xAF, 0x2F, 0x4D})
    assert std["ticketsOut"] == "LP 3D records matched with cancelledCredits (LP 0F)"
    assert money_sources({0x6F, 0xAF, 0x2F, 0x4D, 0x3D})["ticketsOut"] == "not metered"
    assert money_sources({0x4D})["ticketsOut"].endswith("+ LP 3D records")
    assert legacy["ticketsIn"] == "not metered"
    assert legacy["bets"] == "coinIn (LP 1C)"
    only_singles = money_sources({0x6F, 0xAF, 0x2F, 0x1C, 0x0F, 0x19, 0x13, 0x46, 0x20, 0x1E})
    assert only_singles["bills"] == "not metered"
    assert only_singles["cashouts"] == "cancelledCredits (LP 10)"


def test_diag_reports_the_money_sources_in_text_and_json() -> None:
    from agent.ops.diagnostics import LineFacts, _meters_check

    facts = LineFacts(port="/dev/null", address=1, port_opened=True, credits=0,
                      meters={"coinIn": 1, "coinOut": 1, "jackpot": 0, "cancelledCredits": 0,
                              "gamesPlayed": 1},
                      ignored_polls=["LP 6F", "LP 2F", "LP 1E", "LP 20", "LP 46", "LP 48"])
    check = _meters_check(facts)
    assert check.data["moneySources"]["bills"] == "totalDrop (LP 1C) + exceptions 47-4F"
    assert "money from: bets: coinIn (LP 1C)" in check.detail


LP_1E_FACES = {1: 0x40, 5: 0x42, 10: 0x43, 20: 0x44, 50: 0x46, 100: 0x47}


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["dollars", "counts"]), st.sampled_from([1, 5]),
       st.lists(st.tuples(st.sampled_from(sorted(LP_1E_FACES)),
                          st.sampled_from(["sent", "lost"]),
                          st.sampled_from(["bill", "timer", "none"])), max_size=25))
def test_bills_by_lp_1e_or_20_are_the_meter_delta(profile: str, denom: int,
                                                  steps: list[tuple[int, str, str]]) -> None:
    """With LP 20 (dollars) or LP 1E (counts), the meter is the truth: every bill is reported
    once at face value, whatever exceptions were lost, and the drop raises no alert."""
    extra = (Meter.BILL_DOLLARS,) if profile == "dollars" else tuple(LP_1E_FACES.values())
    m = Legacy(denom=denom, extra=extra)
    total = 0
    for dollars, exception, read in steps:
        if profile == "dollars":
            m.meters[Meter.BILL_DOLLARS] += dollars
        else:
            m.meters[LP_1E_FACES[dollars]] += 1
        total += dollars * 100
        m.bill(dollars, 0x4F if exception == "sent" else None)
        if read != "none":
            m.read(read)  # type: ignore[arg-type]
    m.read()
    m.tick(SETTLE)
    m.read()
    assert sum(e.data["amount"] for e in m.named("billAccepted")) == total
    assert m.named("unexplainedMeterChange") == []
    if profile == "counts":
        assert sum(e.data["count"] for e in m.named("billAccepted")) == len(steps)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 50_000), st.sampled_from(["4D", "lost", "late"])),
                max_size=12),
       st.sampled_from([1, 5]))
def test_legacy_tickets_are_reported_once_and_never_beyond_the_cash_outs(
        cashouts: list[tuple[int, str]], denom: int) -> None:
    """Cash-outs by ticket on a legacy machine (no ticket-out meter): each LP 4D record is
    reported exactly once, and the metered ones never add up to more than the cancelled
    credits moved; with every record read right after its cash-out, all are metered."""
    m = Legacy(denom=denom)
    late: list[TicketValidationRead] = []
    for n, (credits, record) in enumerate(cashouts):
        m.meters[CANCELLED] += credits
        m.exc(0x66)
        m.read("cashout")
        read = TicketValidationRead(at=m.tick(), validation_type=0,
                                    validation_number=f"{n:016d}",
                                    amount_cents=credits * denom, ticket_number=n)
        if record == "4D":
            m.exc(0x3D)
            m.feed(read)
        elif record == "late":
            late.append(read)
        m.tick(2)
    for read in late:  # read much later: its cash-out credit has been let go
        m.tick(SETTLE)
        m.read()
        m.feed(replace_at(read, m.tick()))
        m.read("ticket", started=m.at)
    m.tick(SETTLE)
    m.read()
    printed = m.named("ticketPrinted")
    numbers = [e.data["validationNumber"] for e in printed]
    assert len(numbers) == len(set(numbers)) == sum(r != "lost" for _, r in cashouts)
    metered = sum(e.data["amount"] for e in printed if e.data["metered"])
    assert metered <= sum(c for c, _ in cashouts) * denom
    assert sum(e.data["amount"] for e in m.named("cashout")) == sum(c for c, _ in cashouts) * denom
    if all(r == "4D" for _, r in cashouts):
        assert all(e.data["metered"] for e in printed)


def replace_at(read: TicketValidationRead, at: float) -> TicketValidationRead:
    from dataclasses import replace

    return replace(read, at=at)
