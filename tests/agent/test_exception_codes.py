"""Every exception code of the SAS reference yields an event, and docs/events.md says which.

The code table is parsed twice: from sas_protocol.codes.ExceptionCode (what the agent knows)
and from the reference's §3.11 markdown table (tests/vectors/sas_exception_codes.md, a
verbatim copy); the two must agree. Then each code is walked through the interpreter on a
live, identified, baselined machine, with the reads it asks for answered the way a machine
that really saw that exception would answer them, and the documented events must come out
on the documented channel.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from agent.derive.exceptions_map import (
    DEFINED_CODES,
    EXCEPTION_EVENTS,
    GENERIC_CODES,
    exception_channel,
)
from agent.derive.interpreter import Interpreter
from agent.derive.state import AgentState
from agent.observations import (
    ExceptionObserved,
    HandpayInfoRead,
    LinkUp,
    MachineIdentified,
    MetersRead,
    Observation,
    RealTimeEventObserved,
    TicketValidationRead,
)
from agent.reads import ReadHandpay, ReadIdentity, ReadMeters, ReadRequest, ReadTicket
from api.events import CATALOG, Channel, Event
from sas_protocol.codes import IDLE_EXCEPTIONS, ExceptionCode, category_of
from tests.support import ROOT

REFERENCE = (ROOT / "tests" / "vectors" / "sas_exception_codes.md").read_text()
DOC = (ROOT / "docs" / "events.md").read_text()
T0 = 1_700_000_000.0
DENOM = 1

#: meters of the walked machine (Table C-7 codes), all at 1000 before each code
BASE = {0x00: 1000, 0x01: 1000, 0x02: 1000, 0x03: 1000, 0x04: 1000, 0x05: 1000, 0x0B: 1000,
        0x0C: 1000, 0x0D: 1000, 0x0E: 1000, 0x0F: 1000, 0x10: 1000, 0xA0: 1000, 0xB8: 1000}

#: what a machine that raised the code did to its meters (the money the read must find)
MOVES: dict[int, dict[int, int]] = {
    **{code: {0x0B: 500, 0x0C: 500} for code in range(0x47, 0x51)},  # a bill
    0x3D: {0x04: 250, 0x0E: 250, 0x0C: -250},  # cash-out by ticket
    0x66: {0x04: 100, 0x0C: -100},  # cash-out
    0x68: {0x0D: 700},  # ticket in
    0x69: {0xA0: 300, 0xB8: 200},  # AFT in and out
    0x7A: dict.fromkeys(BASE, -1000),  # soft meters reset to zero
}


def reference_codes(text: str) -> set[int]:
    """The codes of the reference's §3.11 table: cells like ``11 / 12``, ``31-33`` and
    ``47-4E, 50`` (with an en dash), ``3D†``, ``**7E**``."""
    codes: set[int] = set()
    for line in text.splitlines():
        if not re.match(r"\| *\**[0-9A-F]{2}", line):
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        for cell in cells[0::2]:
            for part in re.split(r"[,/]", cell.replace("*", "").replace("†", "")):
                bounds = [int(b, 16) for b in part.strip().split("\N{EN DASH}")]
                codes.update(range(bounds[0], bounds[-1] + 1))
    return codes


def test_the_agent_knows_exactly_the_reference_codes() -> None:
    assert reference_codes(REFERENCE) == {int(code) for code in ExceptionCode}
    assert len(DEFINED_CODES) == len(ExceptionCode) > 100


class Walk:
    """A live machine whose reads are answered from its true meters."""

    def __init__(self) -> None:
        self.interp = Interpreter("T1")
        self.state = self.interp.initial_state()
        self.at = T0
        self.meters = dict(BASE)
        self.events: list[Event] = []
        self.feed(LinkUp(at=self.tick()))
        self.feed(self.identified())
        self.feed(MetersRead(at=self.tick(), meters=dict(self.meters), widths={},
                             reason="discovery"))
        self.tick(60)  # past the backlog window
        self.events.clear()

    def tick(self, seconds: float = 1.0) -> float:
        self.at += seconds
        return self.at

    def identified(self) -> MachineIdentified:
        return MachineIdentified(at=self.tick(), sas_version="603", serial_number="S1",
                                 game_id="AB", denomination_cents=DENOM, games=1)

    def feed(self, obs: Observation) -> None:
        events, self.state, reads = self.interp.observe(self.state, obs)
        assert AgentState.from_json(self.state.to_json()) == self.state
        self.events += events
        for read in reads:
            self.answer(read)

    def answer(self, read: ReadRequest) -> None:
        match read:
            case ReadMeters(codes=codes):
                wanted = codes or tuple(self.meters)
                self.feed(MetersRead(at=self.tick(), reason=read.reason, widths={},
                                     meters={c: self.meters[c] for c in wanted
                                             if c in self.meters}))
            case ReadIdentity():
                self.feed(self.identified())
            case ReadHandpay():
                self.feed(HandpayInfoRead(at=self.tick(), progressive_group=0, level=0x40,
                                          amount_cents=120_000, partial_pay_credits=0,
                                          reset_id=0))
            case ReadTicket():
                validation_type = 0x10 if self.code == 0x3E else 0x00  # 3E: handpay receipt
                self.feed(TicketValidationRead(at=self.tick(), validation_type=validation_type,
                                               validation_number="0000000000001234",
                                               amount_cents=250, ticket_number=1))

    def raised(self, code: int, **fields: Any) -> list[Event]:
        self.code = code
        for meter, delta in MOVES.get(code, {}).items():
            self.meters[meter] += delta
        obs: Observation = (RealTimeEventObserved(at=self.tick(), code=code, fields=fields)
                            if fields else ExceptionObserved(at=self.tick(), code=code))
        self.feed(obs)
        return self.events


@pytest.mark.parametrize("code", sorted(DEFINED_CODES), ids=lambda c: f"{c:02X}")
def test_every_reference_code_yields_its_documented_events(code: int) -> None:
    walk = Walk()
    events = walk.raised(code)
    expected = EXCEPTION_EVENTS[code]
    if code in IDLE_EXCEPTIONS:
        assert events == []
        return
    assert expected, f"{code:02X} has no event"
    produced = {e.name for e in events}
    assert set(expected) <= produced, (f"{code:02X}", expected, produced)
    for event in events:
        if event.name in expected:
            assert event.channel is exception_channel(code), event
        if event.name == "machineException":
            assert event.data["code"] == f"0x{code:02X}"
            assert event.data["defined"] is True
            assert event.data["category"] == category_of(code).value
            assert event.data["name"] and event.data["description"]


def test_generic_codes_include_the_ones_that_were_dropped() -> None:
    """Issue 12: these were acknowledged and dropped with no event."""
    dropped = {0x2D, 0x2F, 0x3B, 0x3F, 0x53, 0x55, 0x57, 0x5A, 0x5F, 0x6A, 0x6F, 0x71, 0x72,
               0x7B, 0x7C, 0x80, 0x81, 0x86, 0x8E, 0x8F, 0x9E, 0x9F, 0xA0, 0xA1}
    assert dropped <= GENERIC_CODES
    assert all(EXCEPTION_EVENTS[code] == ("machineException",) for code in dropped)


@pytest.mark.parametrize(("code", "channel", "name"), [
    (0x3B, Channel.ALERTS, "lowBackupBattery"),
    (0x86, Channel.SYSTEM, "outOfService"),
    (0x6F, Channel.GAME, "gameLocked"),
    (0x71, Channel.ALERTS, "changeLampOn"),
    (0x55, Channel.CASH, "playerCancelledHandpay"),
    (0x6A, Channel.CASH, "aftRequestHostCashout"),
])
def test_generic_event_data_and_channel(code: int, channel: Channel, name: str) -> None:
    events = Walk().raised(code)
    (event,) = [e for e in events if e.name == "machineException"]
    assert event.channel is channel
    assert event.data["name"] == name


def test_rte_codes_with_data_are_walked_too() -> None:
    """RTE-only codes (87-8B) come as frames; they become machineException like the rest."""
    events = Walk().raised(0x88, reel=1, stop=4)
    assert [e.name for e in events] == ["machineException"]
    assert events[0].channel is Channel.GAME


@pytest.mark.parametrize("code", [b for b in range(256) if b not in DEFINED_CODES],
                         ids=lambda c: f"{c:02X}")
def test_undefined_bytes_are_reported_not_dropped(code: int) -> None:
    (event,) = Walk().raised(code)
    assert event.name == "machineException"
    assert event.channel is Channel.ALERTS
    assert event.data == {"code": f"0x{code:02X}", "name": "undefined", "description": None,
                          "category": "other", "defined": False}


def test_the_host_flag_for_an_undefined_byte_wins() -> None:
    """The line owner confirmed an undefined byte and flags it; nothing but the report."""
    walk = Walk()
    walk.feed(ExceptionObserved(at=walk.tick(), code=0x5E, defined=False))
    (event,) = walk.events
    assert event.data["defined"] is False
    assert walk.state.machines[1].doors == {}


def test_legacy_bonus_reads_the_win_meters() -> None:
    walk = Walk()
    walk.meters[0x01] += 40  # the bonus reaches coin out
    events = walk.raised(0x7C)
    assert [e.name for e in events] == ["machineException", "winPaid"]


# -- docs/events.md, "Exception codes" --------------------------------------------------


def doc_mapping() -> dict[int, tuple[tuple[str, ...], str]]:
    section = DOC.split("\n## Exception codes", 1)[1].split("\n## ", 1)[0]
    rows: dict[int, tuple[tuple[str, ...], str]] = {}
    for line in section.splitlines():
        match = re.match(r"\| `0x([0-9A-F]{2})` \|[^|]*\| ([^|]*) \| ([^|]*) \|", line)
        if match:
            events = tuple(re.findall(r"`(\w+)`", match.group(2)))
            rows[int(match.group(1), 16)] = (events, match.group(3).strip())
    return rows


def test_docs_map_every_code_to_its_event_and_channel() -> None:
    rows = doc_mapping()
    assert set(rows) == DEFINED_CODES
    for code, (events, channel) in rows.items():
        assert events == EXCEPTION_EVENTS[code], f"{code:02X}"
        want = "—" if not events else exception_channel(code).value
        assert channel == want, f"{code:02X}"
        assert all(name in CATALOG for name in events)


# -- on the wire: a routed event is valid on its category's channels only -----------------


def _frame(event: str, channel: str) -> str:
    import json

    return json.dumps({"type": "event", "id": "T1-5", "seq": 5, "channel": channel,
                       "terminalId": "T1", "event": event,
                       "timestamp": "2026-05-11T11:32:00.000Z", "data": {"code": "0x6F"}})


@pytest.mark.parametrize("channel", ["alerts", "cash", "game", "system"])
def test_machine_exception_is_valid_on_each_category_channel(channel: str) -> None:
    from api import wire

    assert wire.parse_message(_frame("machineException", channel), max_bytes=4096)
    assert wire.needs_ack(channel, "machineException") is (channel == "alerts")


def test_machine_exception_is_refused_on_another_channel() -> None:
    from api import wire

    with pytest.raises(wire.WireError, match="machineException belongs to channel"):
        wire.parse_message(_frame("machineException", "player"), max_bytes=4096)
    with pytest.raises(wire.WireError, match="'alerts', not 'cash'"):
        wire.parse_message(_frame("unexplainedMeterChange", "cash"), max_bytes=4096)
    assert "unexplainedMeterChange" in wire.ACKABLE_ALERTS


def test_an_event_cannot_be_routed_off_its_channels() -> None:
    with pytest.raises(ValueError, match="cannot go out on channel 'player'"):
        Event("machineException", "2026-05-11T11:32:00.000Z", {}, Channel.PLAYER)
    with pytest.raises(ValueError, match="cannot go out"):
        Event("doorOpened", "2026-05-11T11:32:00.000Z", {}, Channel.ALERTS)


def test_generic_codes_and_undefined_bytes_are_confirmed_before_they_count() -> None:
    """Their events are alerts too: a flipped idle byte must not raise one (docs/sas.md)."""
    from agent.derive.exceptions_map import CONFIRMED_CODES, READ_TRIGGERED

    assert GENERIC_CODES <= CONFIRMED_CODES
    assert {b for b in range(256) if b not in DEFINED_CODES} <= CONFIRMED_CODES
    assert not CONFIRMED_CODES & {int(c) for c in IDLE_EXCEPTIONS}
    assert not CONFIRMED_CODES & set(range(0x47, 0x51))  # bills: the meters are the truth
    assert 0x7E not in CONFIRMED_CODES and 0x66 in READ_TRIGGERED


@pytest.mark.parametrize("code", [0x72, 0x8F, 0xA1], ids=lambda c: f"{c:02X}")
def test_all_clear_codes_go_to_system_and_need_no_acknowledgement(code: int) -> None:
    """Change lamp off, authentication complete, meter change cancelled end a condition:
    an operator must not have to acknowledge them (their categories are on ``alerts``)."""
    from api import wire

    (event,) = [e for e in Walk().raised(code) if e.name == "machineException"]
    assert event.channel.value == "system"
    assert category_of(code).value in ("other", "memory")
    assert not wire.needs_ack(event.channel.value, event.name)
    # Their "on" counterparts still raise an alert.
    on = {0x72: 0x71, 0xA1: 0xA0}.get(code)
    if on is not None:
        (raised,) = [e for e in Walk().raised(on) if e.name == "machineException"]
        assert wire.needs_ack(raised.channel.value, raised.name)
