"""Every event's ``data`` against docs/schemas/events/data.json, the typed form of docs/events.md.

A BI or surveillance client is written from docs/events.md alone; this file holds the code to
it from the outside: the interpreter (pure, agent/derive) is driven through observations that
produce every event it can emit, in each documented variant (RTE fields, a reel number, an
undefined exception byte, each ticket and bill source, each session end...), and every event
is validated against its schema: field names, required fields, types, units (integer cents),
timestamp form and enumerations. The schemas forbid fields they do not name, so a field the
code adds without documenting it fails here. The schema and docs/events.md are held together
too: every field a schema names is named in the event's section of the page, and every
catalog event has a schema.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any, get_args

import pytest

from agent.derive.interpreter import Interpreter
from agent.line.discovery import Identity
from agent.observations import (
    CardInserted,
    CardRemoved,
    ExceptionObserved,
    GameLockRead,
    LastBillRead,
    LinkUp,
    MachineIdentified,
    MeterReason,
    MetersRead,
    Observation,
    RealTimeEventObserved,
    SessionCommand,
    TicketValidationRead,
)
from api.events import CATALOG, Event, StoredEvent
from sas_protocol.messages.features import EnabledFeaturesReply
from sas_protocol.messages.responses import (
    EnabledGamesReply,
    ExtendedGameInfoReply,
    GameConfigurationReply,
    GameCountReply,
    MachineInfoReply,
    SasVersionReply,
    SelectedGameReply,
)
from tests.agent.test_interpreter_golden import scenario as golden_scenario
from tests.support.event_data import (
    EVENTS_DOC,
    SCHEMA,
    assert_documented,
    data_problems,
    doc_sections,
    field_rows,
)

DOC = EVENTS_DOC
T0 = 1_778_497_800.0  # 2026-05-11T11:10:00Z

#: Events no interpreter observation produces: the daemon's, the outbox's, the action
#: runner's and the hub's. Their own tests validate them against the same schema
#: (tests.support.event_data.assert_documented).
NOT_FROM_THE_INTERPRETER = frozenset({
    "agentStarted", "agentStopping", "outboxFault", "actionCompleted", "deviceOffline",
    "deviceOnline"})

def _meters(at: float, reason: Any, address: int = 1, **values: int) -> MetersRead:
    codes = {int(name[1:], 16): value for name, value in values.items()}
    widths = {code: 5 if code in (0x0D, 0x0E, 0x0F, 0x10, 0xA0, 0xB8) else 4 for code in codes}
    return MetersRead(at=at, address=address, meters=codes, widths=widths, reason=reason)


def _identified(at: float, address: int = 1) -> MachineIdentified:
    return MachineIdentified(at=at, address=address, sas_version="602", serial_number="S-1",
                             game_id="AT", denomination_cents=1, games=1)


def variants() -> list[Observation]:
    """Observations for the variants the golden shift does not reach (RTE mode)."""
    t = T0
    obs: list[Observation] = [
        LinkUp(at=t),
        _identified(t + 0.1),
        _meters(t + 0.2, "discovery", m00=1_000, m01=500, m02=0, m04=0, m05=10, m0B=0, m0C=0,
                m0E=0, m10=0, m1D=0, m1E=0, m20=0, m21=0),
        RealTimeEventObserved(at=t + 20, code=0x8C, fields={"game_number": 3}),
        RealTimeEventObserved(at=t + 21, code=0x7E,
                              fields={"credits_wagered": 5, "coin_in_meter": 1_005}),
        RealTimeEventObserved(at=t + 22, code=0x7F, fields={"game_win": 40}),
        # a machine-paid progressive win, then an attendant-paid bonus
        _meters(t + 22.5, "game_end", m01=540, m1D=40, m02=0, m05=11),
        _meters(t + 23, "timer", m02=25, m21=25),
        # $20 by the bills meter alone: no count meter says how many bills
        ExceptionObserved(at=t + 24, code=0x4F),
        _meters(t + 24.3, "bill", m0B=2_000, m0C=2_000),
        ExceptionObserved(at=t + 30, code=0x42),  # reel 2 tilt
        ExceptionObserved(at=t + 31, code=0x6F),  # game locked
        GameLockRead(at=t + 31.2, lock_status=0x00),
        GameLockRead(at=t + 36, lock_status=0x40),
        ExceptionObserved(at=t + 40, code=0x5E, defined=False),  # not in SAS Table A-1
        ExceptionObserved(at=t + 41, code=0x52),  # a reset with no pending handpay seen
        ExceptionObserved(at=t + 42, code=0x7A),  # soft meters reset
        _meters(t + 42.5, "reset", m00=0, m01=0, m05=0),
        # cards: an employee and a player card, both lost with the reader; a session
        # replaced by a remote start
        CardInserted(at=t + 50, card_id="E-0001", kind="employee"),
        CardRemoved(at=t + 51, card_id="E-0001", kind="employee", reason="readerLost"),
        CardInserted(at=t + 52, card_id="P-0001", kind="player"),
        CardRemoved(at=t + 53, card_id="P-0001", kind="player", reason="readerLost"),
        CardInserted(at=t + 54, card_id="P-0002", kind="player"),
        SessionCommand(at=t + 55, start=True, player_id="P-0003", action_id="act-1"),
        # tickets: a handpay receipt (not metered), a standard-validation LP 3D record, and
        # ticket-out movement whose record never came (reconciled after the settle time)
        ExceptionObserved(at=t + 60, code=0x3E),
        TicketValidationRead(at=t + 60.2, validation_type=0x10,
                             validation_number="0099999999999999", amount_cents=5_000,
                             ticket_number=12),
        ExceptionObserved(at=t + 61, code=0x3D),
        TicketValidationRead(at=t + 61.2, validation_type=0, validation_number="12345678",
                             amount_cents=300, ticket_number=None, poll="LP 3D"),
        _meters(t + 61.5, "ticket", m0E=300, m10=0, m04=300, m0C=0),
        _meters(t + 70, "timer", m0E=700, m10=0),
        _meters(t + 85, "timer", m0E=700, m10=0),
        # a legacy machine whose only bill meter is the drop: a bill valued by LP 48
        LinkUp(at=t + 100, address=2),
        _identified(t + 100.1, address=2),
        _meters(t + 100.2, "discovery", address=2, m00=0, m01=0, m02=0, m04=0, m05=0,
                m24=1_000, m0C=0),
        ExceptionObserved(at=t + 110, address=2, code=0x4F),
        LastBillRead(at=t + 110.1, address=2, country_code=0, denomination_code=3,
                     bill_count=7),
        _meters(t + 110.3, "bill", address=2, m24=2_000, m0C=1_000),
    ]
    return obs


def _run(interp: Interpreter, observations: Iterable[Observation]) -> list[dict[str, Any]]:
    state = interp.initial_state()
    frames: list[dict[str, Any]] = []
    for obs in observations:
        events, state, _ = interp.observe(state, obs)
        frames += [StoredEvent(len(frames) + 1, "T-1", e).to_wire() for e in events]
    return frames


def interpreter_frames() -> list[dict[str, Any]]:
    golden = _run(Interpreter("T-1", card_reader=True), golden_scenario())
    rte = _run(Interpreter("T-1", rte=True, backlog_window=0.0, card_reader=True),
               variants())
    return golden + rte


FRAMES = interpreter_frames()


def test_every_catalog_event_has_a_data_schema() -> None:
    assert set(SCHEMA["events"]) == set(CATALOG)


def test_the_interpreter_emits_every_event_that_is_its_own() -> None:
    emitted = {f["event"] for f in FRAMES}
    assert emitted == set(CATALOG) - NOT_FROM_THE_INTERPRETER


@pytest.mark.parametrize("name", sorted(set(CATALOG) - NOT_FROM_THE_INTERPRETER))
def test_each_emitted_event_is_what_the_docs_say(name: str) -> None:
    frames = [f for f in FRAMES if f["event"] == name]
    assert frames
    assert_documented(frames)


def test_the_variants_are_reached() -> None:
    """The scenarios reach the documented variants, not only the common shape."""
    seen = {(f["event"], key, json.dumps(value)) for f in FRAMES
            for key, value in f["data"].items()}
    for expected in (("gameStarted", "wagerCredits", "5"), ("gameEnded", "winCredits", "40"),
                     ("tilt", "reel", "2"), ("gameLocked", "lockStatus", '"0x00"'),
                     ("gameUnlocked", "lockStatus", '"0x40"'),
                     ("machineException", "defined", "false"),
                     ("handpayReset", "amount", "null"), ("winPaid", "kind", '"progressive"'),
                     ("winPaid", "kind", '"bonus"'), ("cardRemoved", "reason", '"readerLost"'),
                     ("playerSessionEnded", "reason", '"readerLost"'),
                     ("playerSessionEnded", "reason", '"replaced"'),
                     ("ticketPrinted", "metered", "false"), ("ticketPrinted", "source", '"LP 3D"'),
                     ("ticketPrinted", "reconciled", "true"),
                     ("billAccepted", "source", '"lastBill"'), ("billAccepted", "count", "null")):
        assert expected in seen, expected


def test_the_schema_rejects_what_the_docs_forbid() -> None:
    """The checks bite: an undocumented field, a float amount, a missing field, a timestamp
    with an offset."""
    bet = next(f["data"] for f in FRAMES if f["event"] == "betPlaced")
    assert data_problems("betPlaced", bet) == []
    assert data_problems("betPlaced", {**bet, "extra": 1})
    assert data_problems("betPlaced", {**bet, "amount": 1.5})
    assert data_problems("betPlaced", {k: v for k, v in bet.items() if k != "playerId"})
    up = next(f["data"] for f in FRAMES if f["event"] == "machineLinkUp")
    assert data_problems("machineLinkUp", {**up, "since": "2026-05-11T11:10:00+00:00"})


def _fields(schema: Mapping[str, Any]) -> set[str]:
    if "oneOf" in schema:
        return set().union(*(_fields(s) for s in schema["oneOf"]))
    return set(schema.get("properties", {}))


def test_every_field_of_a_schema_is_named_in_its_section_of_the_page() -> None:
    sections = doc_sections()
    unnamed = {(name, field) for name, schema in SCHEMA["events"].items()
               for field in _fields(schema) if f"`{field}`" not in sections.get(name, "")
               and f"`{field}." not in sections.get(name, "")}
    assert unnamed == set()


def test_machine_identified_from_every_identification_reply_is_documented() -> None:
    """``info`` as discovery (agent/line/discovery.py) builds it from every identification
    reply a machine can give: each key and type is the documented one."""
    identity = Identity(address=1)
    for reply in (
            SasVersionReply(version="602", serial="EGM-1"),
            MachineInfoReply(game_id="AT", additional_id="001", denomination=0x01, max_bet=5,
                             progressive_group=0, game_options=0, paytable_id="PT0042",
                             base_percent="9250"),
            GameCountReply(count=2), SelectedGameReply(game=1),
            EnabledGamesReply(games=(1, 2)),
            GameConfigurationReply(game=1, game_id="AT", additional_id="001", denomination=0x01,
                                   max_bet=5, progressive_group=0, game_options=0,
                                   paytable_id="PT0042", base_percent="9250"),
            ExtendedGameInfoReply(game=1, max_bet=5, progressive_group=0, progressive_levels=0,
                                  name="Lucky", paytable="PT0042", wager_categories=0,
                                  denominations=()),
            EnabledFeaturesReply(game=0, features1=0xFF, features2=0xFF, features3=0xFF,
                                 features4=0xFF, reserved=b"")):
        identity.add(reply)
    observed = identity.observation(at=T0, unsupported=())
    assert observed is not None
    assert {"additionalId", "maxBet", "paytableId", "basePercent", "progressiveGroup",
            "selectedGame", "enabledGames", "gameDetails", "features"} <= set(observed.info)
    frames = _run(Interpreter("T-1"), [LinkUp(at=T0), observed])
    assert [f["event"] for f in frames] == ["machineLinkUp", "machineIdentified"]
    assert_documented(frames)


def test_the_schema_requires_exactly_what_the_tables_do_not_mark_optional() -> None:
    """A field row of an event's table (docs/events.md) without *optional* in its type cell
    is a field the schema requires; one marked optional is one it does not."""
    wrong = set()
    for name, body in doc_sections().items():
        schema = SCHEMA["events"].get(name, {})
        if "required" not in schema:
            continue
        for fields, kind in field_rows(body):
            if not kind:
                continue  # "as betPlaced": the type is given elsewhere
            for field in (f for f in fields if "." not in f):
                if field not in schema["properties"]:
                    wrong.add((name, field, "not in the schema"))
                elif ("optional" in kind) == (field in schema["required"]):
                    wrong.add((name, field, "optional" if "optional" in kind else "required"))
    assert wrong == set()


def test_every_read_reason_a_snapshot_can_carry_is_documented() -> None:
    """A first read is reported with the reason of the read that found the meter first,
    whichever it was: each is in the schema's list and in the page's."""
    listed = set(SCHEMA["events"]["meterSnapshot"]["properties"]["reason"]["enum"])
    assert listed == set(get_args(MeterReason))
    section = doc_sections()["meterSnapshot"]
    assert {r for r in listed if f"`{r}`" not in section} == set()


def test_the_page_points_to_the_schema() -> None:
    assert "docs/schemas/events/data.json" in DOC


def test_a_stored_event_has_no_data_outside_its_schema() -> None:
    """The helper other tests use refuses an event its schema does not describe."""
    with pytest.raises(AssertionError):
        assert_documented([StoredEvent(1, "T-1", Event("doorOpened", "2026-05-11T11:10:00.000Z",
                                                       {"door": "lobby", "powerOff": False}))
                           .to_wire()])
    assert_documented([replace(StoredEvent(1, "T-1", Event(
        "doorOpened", "2026-05-11T11:10:00.000Z", {"door": "slot", "powerOff": False})))
                       .to_wire()])
