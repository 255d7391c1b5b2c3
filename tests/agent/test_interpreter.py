"""The interpreter, rule by rule: observations in, events + state + read requests out."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from agent.derive.exceptions_map import REPEAT_WINDOW_S, REPEATED_UNTIL_SERVICED
from agent.derive.interpreter import Interpreter
from agent.derive.state import AgentState
from agent.observations import (
    CardInserted,
    ClockRead,
    ExceptionObserved,
    HandpayInfoRead,
    HostLockChanged,
    LinkDown,
    LinkUp,
    MachineIdentified,
    MetersRead,
    Observation,
    RealTimeEventObserved,
    TicketValidationRead,
)
from agent.reads import (
    TICKET_METERS,
    ReadHandpay,
    ReadIdentity,
    ReadMeters,
    ReadRequest,
    ReadTicket,
)
from api.events import CATALOG, Event

T0 = 1_700_000_000.0
DENOM = 5  # cents per credit


class Machine:
    """Drives an interpreter and keeps the state, like the line owner does."""

    def __init__(self, **options: Any) -> None:
        self.interp = Interpreter("T1", **options)
        self.state = self.interp.initial_state()
        self.at = T0
        self.reads: list[ReadRequest] = []

    def feed(self, obs: Observation) -> list[Event]:
        events, self.state, self.reads = self.interp.observe(self.state, obs)
        # every observation round-trips through JSON as the outbox would store it
        assert AgentState.from_json(self.state.to_json()) == self.state
        return events

    def tick(self, seconds: float = 1.0) -> float:
        self.at += seconds
        return self.at

    def exc(self, code: int, after: float = 1.0) -> list[Event]:
        return self.feed(ExceptionObserved(at=self.tick(after), code=code))

    def rte(self, code: int, **fields: Any) -> list[Event]:
        return self.feed(RealTimeEventObserved(at=self.tick(), code=code, fields=fields))

    def meters(self, reason: Any = "timer", **values: int) -> list[Event]:
        codes = {_CODES[name]: value for name, value in values.items()}
        widths = {code: 5 if code in (0x0D, 0x0E, 0xA0, 0xB8) else 4 for code in codes}
        return self.feed(MetersRead(at=self.tick(), meters=codes, widths=widths, reason=reason))

    def identify(self, denomination: int = DENOM) -> list[Event]:
        return self.feed(MachineIdentified(
            at=self.tick(), sas_version="602", serial_number="SN1", game_id="AB",
            denomination_cents=denomination, games=1))

    def started(self, **values: int) -> Machine:
        """Linked, identified, baselined at the given meters (default all zero), live."""
        self.feed(LinkUp(at=self.tick()))
        self.identify()
        base = dict.fromkeys(("coin_in", "coin_out", "jackpot", "cancelled", "games",
                              "bills", "credits", "ticket_in", "ticket_out", "aft_in",
                              "aft_out"), 0)
        self.meters("discovery", **{**base, **values})
        self.tick(60)  # past the backlog window of the link-up
        return self


_CODES = {
    "coin_in": 0x00, "coin_out": 0x01, "jackpot": 0x02, "handpaid_cancelled": 0x03,
    "cancelled": 0x04, "games": 0x05, "bills": 0x0B, "credits": 0x0C, "ticket_in": 0x0D,
    "ticket_out": 0x0E, "prog_machine": 0x1D, "bonus_machine": 0x1E, "prog_attendant": 0x20,
    "bills20": 0x44, "bills100": 0x47, "aft_in": 0xA0, "aft_out": 0xB8,
}


def names(events: Iterable[Event]) -> list[str]:
    return [e.name for e in events]


def only(events: Iterable[Event], name: str) -> Event:
    found = [e for e in events if e.name == name]
    assert len(found) == 1, names(events)
    return found[0]


# -- meters and money ----------------------------------------------------------------


def test_first_read_baselines_silently_with_a_snapshot() -> None:
    m = Machine()
    m.feed(LinkUp(at=m.tick()))
    m.identify()
    events = m.meters("discovery", coin_in=1000, coin_out=400, credits=20)
    assert names(events) == ["meterSnapshot"]
    assert events[0].data["first"] is True
    assert events[0].data["meters"] == {"coinIn": 1000, "coinOut": 400, "currentCredits": 20}
    assert m.state.machine(1).baseline == {0x00: 1000, 0x01: 400, 0x0C: 20}


def test_bet_from_coin_in_delta_after_game_start() -> None:
    m = Machine().started(coin_in=1000, games=10)
    events = m.exc(0x7E)
    assert names(events) == ["gameStarted"]
    assert m.reads == [ReadMeters(1, "game_start", (0x00, 0x05, 0x0C))]
    events = m.meters("game_start", coin_in=1003, games=11)
    bet = only(events, "betPlaced")
    assert bet.data["amount"] == 3 * DENOM
    assert bet.data["credits"] == 3
    assert bet.data["denomination"] == DENOM
    assert bet.data["games"] == 1
    assert bet.data["meters"] == {"coinIn": [1000, 1003], "gamesPlayed": [10, 11]}
    assert bet.data["playerId"] is None
    assert "reconciled" not in bet.data


def test_timer_read_without_game_start_still_emits_the_bet() -> None:
    m = Machine().started(coin_in=1000)
    events = m.meters("timer", coin_in=1010)
    assert only(events, "betPlaced").data["amount"] == 10 * DENOM


@pytest.mark.parametrize(
    ("moves", "kind"),
    [
        ({"coin_out": 20}, "machine"),
        ({"jackpot": 20}, "handpay"),
        ({"coin_out": 20, "prog_machine": 20}, "progressive"),
        ({"coin_out": 20, "bonus_machine": 20}, "bonus"),
        ({"coin_out": 20, "prog_machine": 5}, "machine"),  # only part progressive: machine
        ({"jackpot": 20, "prog_attendant": 20}, "progressive"),
    ],
)
def test_win_kind_from_the_meters(moves: dict[str, int], kind: str) -> None:
    m = Machine().started(prog_machine=0, bonus_machine=0, prog_attendant=0)
    m.exc(0x7F)
    events = m.meters("game_end", **moves)
    win = only(events, "winPaid")
    assert win.data["kind"] == kind
    assert win.data["amount"] == 20 * DENOM


def test_machine_and_hand_paid_parts_are_two_wins() -> None:
    m = Machine().started()
    events = m.meters("game_end", coin_out=7, jackpot=100)
    wins = [e for e in events if e.name == "winPaid"]
    assert [(w.data["kind"], w.data["amount"]) for w in wins] == [
        ("machine", 7 * DENOM), ("handpay", 100 * DENOM)]


def test_balance_changed_only_when_credits_changed() -> None:
    m = Machine().started(credits=100)
    assert "balanceChanged" not in names(m.meters(credits=100))
    event = only(m.meters(credits=80), "balanceChanged")
    assert event.data == {"credits": 80, "amount": 80 * DENOM, "denomination": DENOM,
                          "meters": {"currentCredits": [100, 80]}, "playerId": None}


def test_bill_from_bills_meter_with_counts() -> None:
    m = Machine().started(bills20=3, bills100=0)
    events = m.exc(0x4C)  # $100 accepted: only a trigger
    assert events == []
    assert m.reads[0].reason == "bill"  # type: ignore[union-attr]
    events = m.meters("bill", bills=2000 // DENOM * 6, bills20=4, bills100=1)
    bill = only(events, "billAccepted")
    assert bill.data["amount"] == 12000
    assert bill.data["count"] == 2
    assert bill.data["bills"] == {"2000": 1, "10000": 1}


def test_tickets_cashout_and_transfers() -> None:
    m = Machine().started()
    events = m.meters("ticket", cancelled=200, ticket_out=1000, ticket_in=500, aft_in=2500,
                      aft_out=0)
    cashout = only(events, "cashout")
    assert cashout.data["amount"] == 200 * DENOM
    assert cashout.data["method"] == "ticket"
    assert only(events, "ticketRedeemed").data["amount"] == 500
    assert only(events, "transferIn").data["amount"] == 2500
    events = m.meters("transfer", aft_out=300)
    assert only(events, "transferOut").data == {
        "amount": 300, "meters": {"aftCashableOut": [0, 300]}, "playerId": None}


def test_ticket_printed_from_validation_read_once() -> None:
    m = Machine().started()
    m.exc(0x3D)
    assert ReadTicket(1) in m.reads
    read = TicketValidationRead(at=m.tick(), validation_type=0, validation_number="0012345678",
                                amount_cents=2550, ticket_number=17)
    assert m.feed(read) == []  # the record waits for the ticket-out meter that pays it
    assert ReadMeters(1, "ticket", TICKET_METERS) in m.reads
    event = only(m.meters("ticket", ticket_out=2550), "ticketPrinted")
    assert event.data["amount"] == 2550
    assert event.data["validationNumber"] == "0012345678"
    assert event.data["ticketNumber"] == 17
    assert event.data["metered"] is True
    assert m.feed(read) == []  # 3D re-issued until serviced: the same ticket once


def test_rollover_is_unwrapped() -> None:
    m = Machine().started(coin_in=99_999_990)
    events = m.meters(coin_in=5)
    bet = only(events, "betPlaced")
    assert bet.data["credits"] == 15
    assert bet.data["meters"]["coinIn"] == [99_999_990, 5]
    assert "meterRollback" not in names(events)


def test_decrease_without_reset_is_a_rollback_alert_and_rebaselines() -> None:
    m = Machine().started(coin_in=5_000)
    events = m.meters(coin_in=4_000)
    assert names(events) == ["meterRollback"]
    assert events[0].data == {"meter": "coinIn", "code": "0x00", "before": 5_000, "after": 4_000}
    assert only(m.meters(coin_in=4_010), "betPlaced").data["credits"] == 10


@pytest.mark.parametrize("code", [0x7A, 0x3A, 0x31, 0x39, 0x3C])
def test_reset_exception_rebaselines_with_meters_reset(code: int) -> None:
    m = Machine().started(coin_in=5_000, coin_out=3_000)
    m.exc(code)
    assert ReadMeters(1, "reset") in m.reads
    events = m.meters("reset", coin_in=0, coin_out=0)
    assert "meterRollback" not in names(events)
    assert not {"betPlaced", "winPaid"} & set(names(events))
    reset = only(events, "metersReset")
    assert reset.data == {"before": {"coinIn": 5_000, "coinOut": 3_000},
                          "after": {"coinIn": 0, "coinOut": 0}}
    assert only(m.meters(coin_in=4), "betPlaced").data["credits"] == 4
    # the reset is over: a later drop is a rollback again
    assert "meterRollback" in names(m.meters(coin_in=1))


def test_reset_looking_like_rollover_is_a_reset() -> None:
    m = Machine().started(coin_in=99_999_000)
    m.exc(0x7A)
    events = m.meters("reset", coin_in=3)
    assert "betPlaced" not in names(events)
    assert "metersReset" in names(events)


def test_no_money_before_denomination_is_known_then_caught_up() -> None:
    m = Machine()
    m.meters("discovery", coin_in=100)
    events = m.meters(coin_in=110)
    assert "betPlaced" not in names(events)
    assert ReadIdentity(1) in m.reads
    m.identify()
    assert only(m.meters(coin_in=112), "betPlaced").data["credits"] == 12


# -- backlog and gaps ----------------------------------------------------------------


def test_link_up_backlog_is_one_reconciled_delta_and_no_game_storm() -> None:
    m = Machine().started(coin_in=1_000, coin_out=500, games=10)
    m.feed(LinkDown(at=m.tick(), reason="timeout"))
    events = m.feed(LinkUp(at=m.tick()))
    assert names(events) == ["machineLinkUp"]
    backlog: list[Event] = []
    for _ in range(12):  # drained at one per general poll
        backlog += m.exc(0x7E, after=0.2) + m.exc(0x7F, after=0.2)
    assert backlog == []  # queued 7E/7F: no gameStarted/gameEnded storm
    events = m.meters("gap", coin_in=1_050, coin_out=520, games=15)
    bet, win = only(events, "betPlaced"), only(events, "winPaid")
    assert bet.data["credits"] == 50 and bet.data["games"] == 5
    assert win.data["credits"] == 20
    assert bet.data["reconciled"] is True and win.data["reconciled"] is True
    # after the window, games are live again
    m.tick(60)
    assert names(m.exc(0x7E)) == ["gameStarted"]
    assert "reconciled" not in only(m.meters(coin_in=1_052), "betPlaced").data


def test_queue_overflow_is_a_data_gap_and_a_full_read() -> None:
    m = Machine().started(coin_in=10)
    events = m.exc(0x70)
    assert only(events, "dataGap").data["reason"] == "exceptionQueueOverflow"
    assert m.reads == [ReadMeters(1, "gap")]
    events = m.meters("gap", coin_in=30)
    assert only(events, "betPlaced").data["reconciled"] is True
    assert "meterSnapshot" in names(events)


def test_power_restored_opens_backlog_and_asks_for_a_read() -> None:
    m = Machine().started()
    assert names(m.exc(0x18)) == ["powerLost"]
    assert names(m.exc(0x17)) == ["powerRestored"]
    assert m.reads == [ReadMeters(1, "gap")]
    assert m.exc(0x7F) == []


def test_duplicated_game_end_gives_one_game_ended() -> None:
    m = Machine().started()
    m.exc(0x7E)
    assert names(m.exc(0x7F)) == ["gameEnded"]
    assert m.exc(0x7F) == []
    assert m.reads == [ReadMeters(1, "game_end", m.reads[0].codes)]  # type: ignore[union-attr]


def test_rte_game_start_uses_the_coin_in_meter_of_the_frame() -> None:
    m = Machine(rte=True).started(coin_in=1_000)
    m.tick(60)
    events = m.rte(0x7E, credits_wagered=5, coin_in_meter=1_005, wager_type=0,
                   progressive_group=0)
    assert names(events) == ["gameStarted", "betPlaced"]
    assert events[0].data == {"gameNumber": None, "wagerCredits": 5}
    assert events[1].data["credits"] == 5
    assert m.reads == []
    # a replayed (old) 7E frame: not a new game, no money
    events = m.rte(0x7E, credits_wagered=5, coin_in_meter=1_005, wager_type=0,
                   progressive_group=0)
    assert "betPlaced" not in names(events) and "gameStarted" not in names(events)
    events = m.rte(0x7F, game_win=40)
    assert only(events, "gameEnded").data["winCredits"] == 40


def test_rte_game_start_with_the_meter_before_its_wager_is_a_new_game() -> None:
    """Reference §3.12 leaves open whether 7E's coin-in meter includes the game's wager: a
    machine that sends it without has each new game's 7E at the baseline, after a 7F."""
    m = Machine(rte=True).started(coin_in=1_000)
    m.tick(60)
    for meter in (1_000, 1_005):
        events = m.rte(0x7E, credits_wagered=5, coin_in_meter=meter, wager_type=0,
                       progressive_group=0)
        assert names(events) == ["gameStarted"]  # the wager comes with the next read
        assert m.rte(0x7E, credits_wagered=5, coin_in_meter=meter, wager_type=0,
                     progressive_group=0) == []  # the same 7E again within the game
        assert names(m.rte(0x7F, game_win=0)) == ["gameEnded"]
        assert names(m.meters(coin_in=meter + 5)) == ["betPlaced"]


# -- handpay ---------------------------------------------------------------------------


def handpay(m: Machine, level: int = 0x40, amount: int = 120_000) -> HandpayInfoRead:
    return HandpayInfoRead(at=m.tick(), progressive_group=0, level=level, amount_cents=amount,
                           partial_pay_credits=0, reset_id=0)


def test_handpay_pending_once_despite_reissued_51() -> None:
    m = Machine().started()
    assert m.exc(0x51) == []
    assert m.reads == [ReadHandpay(1)]
    event = only(m.feed(handpay(m)), "handpayPending")
    assert event.data["amount"] == 120_000 and event.data["kind"] == "jackpot"
    m.exc(0x51)  # re-issued after 15 s
    assert m.feed(handpay(m)) == []
    reset = only(m.exc(0x52), "handpayReset")
    assert reset.data["amount"] == 120_000
    assert m.exc(0x52) == []  # duplicated 52
    assert only(m.feed(handpay(m, level=0x80, amount=500)), "handpayPending").data["kind"] == (
        "cancelledCredits")


def test_ticket_inserted_once_while_the_machine_repeats_67() -> None:
    """67 is a priority exception the machine reports again at every general poll until the
    ticket is serviced (reference §3.4, §4.3 pitfall 5): one ticket, one ticketInserted.
    The next ticket (after 68, or a returned ticket inserted again later) is a new event."""
    m = Machine().started()
    assert names(m.exc(0x67)) == ["ticketInserted"]
    for _ in range(20):
        assert m.exc(0x67, after=0.2) == []  # the same ticket, still being validated
    assert m.exc(0x68, after=0.2) == []  # serviced: the money comes from the meters
    assert names(m.exc(0x67, after=0.5)) == ["ticketInserted"]  # the next ticket
    m.tick(REPEAT_WINDOW_S)  # returned, taken out, inserted again later
    assert names(m.exc(0x67)) == ["ticketInserted"]
    m.feed(LinkUp(at=m.tick(0.1)))  # the machine's flag after a link-up: said again
    assert names(m.exc(0x67, after=0.1)) == ["ticketInserted"]


@pytest.mark.parametrize("code", sorted(REPEATED_UNTIL_SERVICED - {0x67}))
def test_an_exception_repeated_until_serviced_is_reported_once(code: int) -> None:
    """57, 6F, 6A, ... persist until their interaction is over (reference §3.4): a machine
    that re-reports one at every poll gives one event, not one per poll."""
    m = Machine().started()
    first = m.exc(code)
    assert len(first) == 1, names(first)
    reads = list(m.reads)
    for _ in range(20):
        assert m.exc(code, after=0.2) == []
    assert names(m.exc(code, after=REPEAT_WINDOW_S)) == names(first)  # a new interaction
    if code != 0x6F:  # 6F asks LP 74 while the lock is not known (the next test)
        assert m.reads == reads


def test_a_game_lock_again_within_the_repeat_window_is_read_and_reported() -> None:
    """6F's repeats yield no event, but a 6F while the machine is not known locked still
    asks LP 74: a lock, an unlock and a lock again within the window is two gameLocked."""
    from agent.observations import GameLockRead
    from agent.reads import ReadGameLock

    m = Machine().started()
    m.exc(0x6F)
    assert names(m.feed(GameLockRead(at=m.tick(0.5), lock_status=0x00))) == ["gameLocked"]
    m.reads.clear()
    assert m.exc(0x6F, after=0.5) == [] and m.reads == []  # locked, and known so
    assert names(m.feed(GameLockRead(at=m.tick(0.5), lock_status=0xFF))) == ["gameUnlocked"]
    assert m.exc(0x6F, after=0.5) == []  # within the window: no machineException again
    assert ReadGameLock(1) in m.reads
    assert names(m.feed(GameLockRead(at=m.tick(0.5), lock_status=0x00))) == ["gameLocked"]


def test_the_page_lists_exactly_the_exceptions_repeated_until_serviced() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "events.md").read_text()
    section = doc[doc.index("### Repeated exceptions"):]
    section = section[:section.index("Handpays (51")]
    assert {int(c, 16) for c in re.findall(r"\b([0-9A-F]{2})\b", section)} == (
        REPEATED_UNTIL_SERVICED | {0x68})
    assert f"{REPEAT_WINDOW_S:g} seconds" in section


# -- exceptions table ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "name", "data"),
    [
        (0x20, "tilt", {"kind": "general", "code": "0x20"}),
        (0x23, "tilt", {"kind": "hopperEmpty", "code": "0x23"}),
        (0x42, "tilt", {"kind": "reel", "reel": 2, "code": "0x42"}),
        (0x79, "tilt", {"kind": "coinInLockout", "code": "0x79"}),
        (0x28, "billAcceptorFault", {"kind": "jam", "code": "0x28"}),
        (0x2E, "billAcceptorFault", {"kind": "nearFull", "code": "0x2E"}),
        (0x61, "printerFault", {"kind": "paperOut", "code": "0x61"}),
        (0x78, "printerFault", {"kind": "carriageJam", "code": "0x78"}),
        (0x1B, "cashboxRemoved", {}),
        (0x1C, "cashboxInstalled", {}),
        (0x84, "operatorMenu", {"menu": "operator", "state": "entered"}),
        (0x83, "operatorMenu", {"menu": "attendant", "state": "exited"}),
        (0x32, "memoryError", {"kind": "ramNotRecovered", "code": "0x32"}),
        (0x56, "progressiveHit", {"source": "sas", "code": "0x56", "level": None,
                                  "amount": None}),
        (0x67, "ticketInserted", {"playerId": None}),
    ],
)
def test_exception_table(code: int, name: str, data: dict[str, Any]) -> None:
    m = Machine().started()
    assert only(m.exc(code), name).data == data


@pytest.mark.parametrize(
    ("code", "door", "opened", "power_off"),
    [(0x11, "slot", True, False), (0x14, "drop", False, False), (0x15, "cardCage", True, False),
     (0x1A, "cashbox", False, False), (0x1D, "belly", True, False),
     (0x99, "slot", True, True), (0x9B, "drop", True, True)],
)
def test_doors(code: int, door: str, opened: bool, power_off: bool) -> None:
    m = Machine().started()
    m.feed(CardInserted(at=m.tick(), card_id="E1", kind="employee"))
    if not opened:
        m.exc(code - 1)
    event = only(m.exc(code), "doorOpened" if opened else "doorClosed")
    assert event.data == {"door": door, "powerOff": power_off}


def test_door_duplicates_are_dropped() -> None:
    m = Machine().started()
    m.feed(CardInserted(at=m.tick(), card_id="E1", kind="employee"))
    assert names(m.exc(0x11)) == ["doorOpened"]
    assert m.exc(0x11) == []
    assert names(m.exc(0x12)) == ["doorClosed"]
    assert m.exc(0x12) == []


@pytest.mark.parametrize(
    ("employee", "locked", "reasons"),
    [(False, False, ["noEmployeeCard"]), (True, True, ["hostLocked"]),
     (False, True, ["noEmployeeCard", "hostLocked"]), (True, False, None)],
)
def test_bypass_attempt(employee: bool, locked: bool, reasons: list[str] | None) -> None:
    m = Machine(card_reader=True).started()
    if employee:
        m.feed(CardInserted(at=m.tick(), card_id="E1", kind="employee"))
    if locked:
        assert names(m.feed(HostLockChanged(at=m.tick(), locked=True, action_id="a1"))) == [
            "machineLocked"]
    events = m.exc(0x13)
    if reasons is None:
        assert names(events) == ["doorOpened"]
    else:
        assert only(events, "bypassAttempt").data == {"door": "drop", "powerOff": False,
                                                      "reasons": reasons}


@pytest.mark.parametrize("locked", [False, True])
def test_no_card_reader_no_employee_card_reason(locked: bool) -> None:
    """Without a configured card reader no employee card can ever be in it: an opened door
    is a bypass only when the host has locked the machine (docs/events.md)."""
    m = Machine().started()
    if locked:
        m.feed(HostLockChanged(at=m.tick(), locked=True, action_id="a1"))
    events = m.exc(0x13)
    if locked:
        assert only(events, "bypassAttempt").data["reasons"] == ["hostLocked"]
    else:
        assert names(events) == ["doorOpened"]


def test_lock_unlock_events_name_the_action() -> None:
    m = Machine().started()
    assert m.feed(HostLockChanged(at=m.tick(), locked=True, action_id="a1"))[0].data == {
        "by": "a1"}
    event = m.feed(HostLockChanged(at=m.tick(), locked=False, action_id="a2"))[0]
    assert (event.name, event.data) == ("machineUnlocked", {"by": "a2"})


def test_game_locked_exception_reads_lp_74_and_reports_each_change() -> None:
    """6F has no "unlocked" counterpart (SAS §3.11): LP 74's lock status is the truth."""
    from agent.observations import GameLockRead
    from agent.reads import ReadGameLock

    m = Machine().started()
    events = m.exc(0x6F)
    assert only(events, "machineException").data["name"] == "gameLocked"
    assert ReadGameLock(1) in m.reads
    locked = m.feed(GameLockRead(at=m.tick(), lock_status=0x00))
    assert [(e.name, e.data, e.channel.value) for e in locked] == [
        ("gameLocked", {"lockStatus": "0x00"}, "system")]
    assert m.state.machines[1].game_locked
    assert m.feed(GameLockRead(at=m.tick(), lock_status=0x00)) == []  # no change, no event
    assert names(m.exc(0x6F, after=REPEAT_WINDOW_S)) == ["machineException"]  # already locked
    # restarted (state from JSON) and linked again: still locked? ask
    m.state = AgentState.from_json(m.state.to_json())
    m.feed(LinkDown(at=m.tick(), reason="timeout"))
    m.feed(LinkUp(at=m.tick()))
    assert ReadGameLock(1) in m.reads
    unlocked = m.feed(GameLockRead(at=m.tick(), lock_status=0xFF))
    assert [(e.name, e.data) for e in unlocked] == [("gameUnlocked", {"lockStatus": "0xFF"})]
    assert not m.state.machines[1].game_locked
    m.feed(LinkDown(at=m.tick(), reason="timeout"))
    m.feed(LinkUp(at=m.tick()))
    assert not any(isinstance(r, ReadGameLock) for r in m.reads)  # not locked: no read


def test_a_pending_game_lock_is_not_a_lock() -> None:
    from agent.observations import GameLockRead

    m = Machine().started()
    m.exc(0x6F)
    assert m.feed(GameLockRead(at=m.tick(), lock_status=0x40)) == []
    assert not m.state.machines[1].game_locked


def test_game_selected_from_rte() -> None:
    m = Machine().started()
    assert only(m.rte(0x8C, game_number=3), "gameSelected").data == {"gameNumber": 3}
    m.tick(60)
    assert only(m.exc(0x7E), "gameStarted").data["gameNumber"] == 3


# -- link, identity, clock -------------------------------------------------------------


def test_link_events_are_edges() -> None:
    m = Machine()
    down = m.feed(LinkDown(at=m.tick(), reason="no reply"))
    assert only(down, "machineLinkDown").data["reason"] == "no reply"
    assert m.feed(LinkDown(at=m.tick(), reason="no reply")) == []
    up = only(m.feed(LinkUp(at=m.tick())), "machineLinkUp")
    assert up.data["address"] == 1 and up.data["since"].endswith("Z")


def test_options_changed_after_reidentification() -> None:
    m = Machine().started(coin_in=1_000)
    m.exc(0x3C)
    assert ReadIdentity(1) in m.reads
    events = m.identify(denomination=10)
    assert only(events, "optionsChanged").data == {"changed": {"denomination": [5, 10]}}
    assert m.state.machine(1).denomination_cents == 10
    events = m.meters("reset", coin_in=0)
    assert "metersReset" in names(events)
    assert only(m.meters(coin_in=2), "betPlaced").data["amount"] == 20


def test_identification_without_changes_is_not_options_changed() -> None:
    m = Machine().started()
    assert names(m.identify()) == ["machineIdentified"]


def test_fields_a_failed_poll_left_empty_keep_what_was_known() -> None:
    m = Machine().started()
    partial = MachineIdentified(at=m.tick(), sas_version="602", serial_number="",
                                game_id="", denomination_cents=DENOM, games=1)
    event = only(m.feed(partial), "machineIdentified")
    assert event.data["gameId"] == "AB" and event.data["serialNumber"] == "SN1"
    assert m.state.machine(1).identity == {"sasVersion": "602", "serialNumber": "SN1",
                                           "gameId": "AB", "denomination": DENOM, "games": 1}


def test_clock_skew_raised_once() -> None:
    m = Machine(clock_skew_threshold=30.0).started()
    ok = ClockRead(at=m.tick(), machine_epoch=m.at + 2, skew_seconds=2.0)
    assert m.feed(ok) == []
    bad = ClockRead(at=m.tick(), machine_epoch=m.at - 120, skew_seconds=-120.0)
    assert only(m.feed(bad), "clockSkew").data["skewSeconds"] == -120.0
    assert m.feed(bad) == []


def test_every_emitted_name_is_in_the_catalog() -> None:
    m = Machine().started()
    for code in range(0x100):
        for event in m.exc(code):
            assert event.name in CATALOG


def test_per_game_meters_are_not_money() -> None:
    m = Machine().started(coin_in=1_000)
    read = MetersRead(at=m.tick(), meters={0x00: 10}, widths={0x00: 4}, reason="timer", game=2)
    assert m.feed(read) == []
    assert m.state.machine(1).baseline[0x00] == 1_000


def test_first_link_up_backlog_is_not_replayed_as_games() -> None:
    m = Machine()
    m.feed(LinkUp(at=m.tick()))
    m.identify()
    assert m.exc(0x7E, after=0.2) == []
    assert m.exc(0x7F, after=0.2) == []
    events = m.meters("discovery", coin_in=500)
    assert names(events) == ["meterSnapshot"]  # nothing to reconcile against: a baseline
    m.tick(60)
    assert names(m.exc(0x7F)) == ["gameEnded"]  # game state unknown after the backlog


def test_selected_game_from_identification() -> None:
    m = Machine().started()
    m.feed(MachineIdentified(at=m.tick(), sas_version="602", serial_number="SN1", game_id="AB",
                             denomination_cents=DENOM, games=4, info={"selectedGame": 4}))
    m.tick(60)
    assert only(m.exc(0x7E), "gameStarted").data["gameNumber"] == 4


def test_a_pending_read_after_a_game_lock_is_the_unlock() -> None:
    """docs/events.md ``gameLocked``: the first LP 74 read that is not 00 yields
    ``gameUnlocked``, a pending 40 as well as FF (40 is read again, but is not a lock)."""
    from agent.observations import GameLockRead

    m = Machine().started()
    m.exc(0x6F)
    locked = m.feed(GameLockRead(at=m.tick(), lock_status=0x00))
    assert [(e.name, e.data) for e in locked] == [("gameLocked", {"lockStatus": "0x00"})]
    unlocked = m.feed(GameLockRead(at=m.tick(), lock_status=0x40))
    assert [(e.name, e.data) for e in unlocked] == [("gameUnlocked", {"lockStatus": "0x40"})]
    assert m.feed(GameLockRead(at=m.tick(), lock_status=0xFF)) == []
