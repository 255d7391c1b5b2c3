"""The typed messages (api.messages, api.decode) against the checker and docs/schemas.

docs/schemas/*.json are the contract external implementations are tested against; the
classes are the code's one source of the same shapes. These properties hold the two
together both ways: every valid instance's frame validates against its schema and decodes
back to the same instance; every field a schema requires is required by the decoder, and
every field it leaves optional may be left out. Any JSON value decodes or raises WireError,
never anything else.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api import decode, messages, wire
from api.codes import (
    CLIENT_TO_HUB,
    HUB_TO_CLIENT,
    HUB_TO_TERMINAL,
    MAX_AMOUNT_CENTS,
    MAX_HISTORY_PAGE,
    MAX_ID_LENGTH,
    TERMINAL_TO_HUB,
    ActionAckStatus,
    ActionStatus,
    ErrorCode,
    LinkState,
    MessageType,
    Role,
    WireError,
)
from api.events import CATALOG, Channel, channels_of
from tests.support.hub import SCHEMAS, validate_frame

MAX = 1 << 20

ids = st.text(min_size=1, max_size=MAX_ID_LENGTH)
terminal_ids = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:-]{0,63}\Z")
event_names = st.from_regex(r"\A[a-z][A-Za-z0-9]{0,63}\Z")
action_names = st.from_regex(r"\A[A-Za-z][A-Za-z0-9_]{0,63}\Z")
non_negative = st.integers(0, 2**63 - 1)
channels = st.sampled_from([c.value for c in Channel])
names = st.lists(st.text(min_size=1, max_size=MAX_ID_LENGTH), max_size=4).map(tuple)


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    moment = draw(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 1, 1)))
    digits = draw(st.integers(0, 6))
    text = moment.replace(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        text += "." + f"{moment.microsecond:06d}"[:digits]
    return text + "Z"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
objects = st.dictionaries(st.text(max_size=8), json_values, max_size=5)
event_data = objects.map(lambda d: {k: v for k, v in d.items() if k != "amount"}) | st.builds(
    lambda d, amount: {**d, "amount": amount}, objects, st.integers(0, MAX_AMOUNT_CENTS))


@st.composite
def event_frames(draw: st.DrawFn, cursor: bool = True) -> messages.EventFrame:
    name = draw(st.sampled_from(sorted(CATALOG)) | event_names)
    allowed = channels_of(name)
    channel = draw(st.sampled_from(sorted(c.value for c in allowed)) if allowed else channels)
    tid, seq = draw(terminal_ids), draw(st.integers(1, 2**63 - 1))
    event_id = draw(st.sampled_from([f"{tid}-{seq}", f"hub-{seq}"]))
    return messages.EventFrame(event_id, seq, channel, tid, name, draw(timestamps()),
                               draw(event_data),
                               draw(st.none() | st.integers(1, 2**63 - 1)) if cursor else None)


@st.composite
def terminal_states(draw: st.DrawFn) -> dict[str, Any]:
    last = draw(st.none() | st.fixed_dictionaries(
        {"id": ids, "event": event_names, "timestamp": timestamps()}))
    return {"terminalId": draw(terminal_ids), "online": draw(st.booleans()),
            "since": draw(st.none() | timestamps()),
            "link": draw(st.sampled_from([s.value for s in LinkState])),
            "locked": draw(st.none() | st.booleans()), "ackedSeq": draw(non_negative),
            "lastEvent": last, "coinInToday": draw(st.integers(-(2**63), 2**63 - 1)),
            "coinOutToday": draw(st.integers(-(2**63), 2**63 - 1)),
            "unackedAlerts": draw(non_negative)}


def opt(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


points = st.lists(st.fixed_dictionaries({"minute": timestamps(),
                                         "amount": st.integers(-(2**63), 2**63 - 1)}),
                  min_size=60, max_size=60).map(tuple)
wire_frames = event_frames().map(lambda e: e.to_wire())
filters = st.builds(messages.Filter, st.lists(channels, max_size=3).map(tuple), names, names)

#: One strategy per class: every valid instance the class can hold.
STRATEGIES: dict[type[messages.Message], st.SearchStrategy[Any]] = {
    messages.Hello: st.builds(messages.Hello, terminal_ids, st.text(min_size=1, max_size=64),
                              non_negative, non_negative,
                              opt(st.fixed_dictionaries({"hostLocked": st.booleans()},
                                                        optional={"gameLocked": st.booleans()}))),
    messages.Welcome: st.builds(messages.Welcome, non_negative, terminal_ids, non_negative,
                                timestamps()),
    messages.EventFrame: event_frames(),
    messages.AckUpTo: st.builds(messages.AckUpTo, non_negative, opt(ids)),
    messages.AckAlert: st.builds(messages.AckAlert, ids, opt(ids)),
    messages.AckTerminalAlerts: st.builds(messages.AckTerminalAlerts, terminal_ids, opt(ids)),
    messages.AckAllAlerts: st.builds(messages.AckAllAlerts, opt(ids)),
    messages.Action: st.builds(
        messages.Action, ids, terminal_ids, action_names, opt(objects), opt(timestamps()),
        st.just(None), opt(st.text(min_size=1, max_size=500)), opt(ids), st.just(None))
    | st.builds(messages.Action, ids, terminal_ids, action_names, opt(objects),
                opt(timestamps()), timestamps(), opt(st.text(min_size=1, max_size=500)),
                opt(ids), opt(st.from_regex(r"\A[0-9a-f]{64}\Z"))),
    # A rejection, a failure, an expiry says why: ``error`` (protocol.md §4).
    messages.ActionAck: st.builds(messages.ActionAck, ids, terminal_ids,
                                  st.sampled_from(ActionAckStatus), opt(action_names),
                                  opt(st.text(min_size=1, max_size=4096)))
    .filter(lambda m: m.status is not ActionAckStatus.REJECTED or m.error is not None),
    messages.ActionResult: st.builds(messages.ActionResult, ids, terminal_ids,
                                     st.sampled_from(ActionStatus), opt(action_names),
                                     opt(st.text(min_size=1, max_size=4096)), opt(objects))
    .filter(lambda m: m.status is ActionStatus.SUCCEEDED or m.error is not None),
    messages.Auth: st.builds(messages.Auth, st.text(min_size=1, max_size=4096),
                             opt(non_negative), opt(ids)),
    messages.AuthOk: st.builds(messages.AuthOk, st.sampled_from(Role), ids, non_negative),
    messages.Subscribe: st.builds(messages.Subscribe, st.lists(channels, max_size=3).map(tuple),
                                  names, names, opt(ids), opt(non_negative | timestamps())),
    messages.Unsubscribe: st.builds(messages.Unsubscribe,
                                    st.lists(channels, max_size=3).map(tuple), names, names,
                                    opt(ids)),
    messages.Subscribed: st.builds(messages.Subscribed, st.lists(filters, max_size=3).map(tuple),
                                   opt(ids)),
    messages.Replayed: st.builds(messages.Replayed, non_negative, non_negative, opt(ids)),
    messages.AlertAck: st.builds(messages.AlertAck, ids, terminal_ids, ids, timestamps()),
    messages.GetState: st.builds(messages.GetState, opt(ids)),
    messages.History: st.builds(
        messages.History, names, names, st.lists(channels, max_size=3).map(tuple), opt(ids),
        opt(timestamps()), opt(timestamps()), opt(non_negative), opt(st.integers(1, 2**63 - 1)),
        opt(st.integers(1, MAX_HISTORY_PAGE))),
    messages.HistoryPage: st.builds(
        messages.HistoryPage,
        st.lists(st.builds(lambda e, c: {**e.to_wire(), "cursor": c}, event_frames(),
                           st.integers(1, 2**63 - 1)), max_size=3).map(tuple),
        opt(st.integers(1, 2**63 - 1)), st.sampled_from(["oldest-first", "newest-first"]),
        opt(ids)),
    messages.Snapshot: st.builds(
        messages.Snapshot, timestamps(), st.lists(terminal_states(), max_size=2).map(tuple),
        st.lists(wire_frames, max_size=2).map(tuple),
        st.lists(wire_frames, max_size=2).map(tuple), points, opt(ids),
        opt(st.text(min_size=1, max_size=128)), opt(st.integers(0, 23)),
        opt(st.dates().map(lambda d: d.isoformat())), opt(st.integers(-(2**63), 2**63 - 1))),
    messages.TerminalState: st.builds(messages.TerminalState, terminal_states()),
    messages.Error: st.builds(messages.Error, st.sampled_from(ErrorCode),
                              st.text(min_size=1, max_size=4096), opt(ids)),
    messages.Ping: st.builds(messages.Ping, opt(ids)),
    messages.Pong: st.builds(messages.Pong, opt(ids)),
}

any_message = st.one_of(*STRATEGIES.values())
SLOW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_every_message_type_has_a_class_and_a_schema() -> None:
    assert set(STRATEGIES) == set(messages.MESSAGE_CLASSES)
    assert {cls.TYPE for cls in messages.MESSAGE_CLASSES} == set(MessageType)
    assert set(SCHEMAS) == {t.value for t in MessageType}


@SLOW
@given(any_message)
def test_round_trip_encode_then_decode_gives_the_same_message(msg: messages.Message) -> None:
    text = wire.encode(msg.to_wire())
    assert decode.decode(text, max_bytes=MAX) == msg


@SLOW
@given(any_message)
def test_every_instance_validates_against_its_schema(msg: messages.Message) -> None:
    validate_frame(json.loads(wire.encode(msg.to_wire())))


COMMON = json.loads((Path(__file__).parent.parent / "docs" / "schemas" / "common.json")
                    .read_text())


def _schema(kind: str) -> dict[str, Any]:
    """The object schema of one type (event.json refers to common.json's eventFrame)."""
    schema = SCHEMAS[kind]
    return COMMON["$defs"]["eventFrame"] if "$ref" in schema else schema


@pytest.mark.parametrize("cls", messages.MESSAGE_CLASSES, ids=lambda c: c.__name__)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_field_the_schema_requires_is_required_and_no_other(
    cls: type[messages.Message], data: st.DataObject,
) -> None:
    frame = data.draw(STRATEGIES[cls]).to_wire()
    required = set(_schema(frame["type"]).get("required", ()))
    for key in frame:
        smaller = {k: v for k, v in frame.items() if k != key}
        if key in required:
            with pytest.raises(WireError) as caught:
                decode.decode(wire.encode(smaller), max_bytes=MAX)
            assert caught.value.code is ErrorCode.BAD_MESSAGE
            continue
        # An optional field left out: the schema and the decoder agree on the rest (both
        # accept it, or, for an `ack` without its one selector, for an action signed
        # without `issuedAt`, both refuse it).
        try:
            validate_frame(smaller)
            schema_ok = True
        except jsonschema.ValidationError:
            schema_ok = False
        try:
            decode.decode(wire.encode(smaller), max_bytes=MAX)
            decoded = True
        except WireError:
            decoded = False
        assert decoded == schema_ok, (key, smaller)


@pytest.mark.parametrize("cls", messages.MESSAGE_CLASSES, ids=lambda c: c.__name__)
def test_the_class_fields_are_the_schema_properties(cls: type[messages.Message]) -> None:
    props = set(_schema(cls.TYPE.value)["properties"])
    keys = {key for _, key, _ in cls._keys()} | {"type"}
    if cls is messages.AckAllAlerts:
        keys.add("all")
    assert keys <= props
    if cls.TYPE is not MessageType.ACK:
        assert keys == props


def test_the_builders_write_the_documented_key_order() -> None:
    assert list(wire.hello("T1", "1.0", 3, {"hostLocked": False})) == [
        "type", "protocol", "terminalId", "version", "lastSeq", "machine"]
    assert list(wire.action("a", "T1", "lock", expires_at="2026-01-01T00:00:00Z",
                            issued_at="2026-01-01T00:00:00Z", sender="x", reason="r")) == [
        "type", "id", "terminalId", "action", "params", "expiresAt", "issuedAt", "reason",
        "from"]
    assert wire.subscribe(channels=["cash"], request_id="r", start=0) == {
        "type": "subscribe", "channels": ["cash"], "events": [], "terminals": [], "id": "r",
        "from": 0}
    assert wire.ack_alert("T1-1", "r") == {"type": "ack", "eventId": "T1-1", "id": "r"}
    with pytest.raises(ValueError):
        wire.subscribe(unsubscribe=True, start=0)


PATHS = [
    (decode.from_terminal, TERMINAL_TO_HUB),
    (decode.from_client, CLIENT_TO_HUB),
    (decode.from_hub_to_terminal, HUB_TO_TERMINAL),
    (decode.from_hub_to_client, HUB_TO_CLIENT),
]


@SLOW
@given(any_message)
def test_each_path_decodes_its_types_and_refuses_the_others(msg: messages.Message) -> None:
    text = wire.encode(msg.to_wire())
    for read, accepted in PATHS:
        if msg.TYPE in accepted:
            assert read(text, max_bytes=MAX) == msg
        else:
            with pytest.raises(WireError) as caught:
                read(text, max_bytes=MAX)
            assert caught.value.code is ErrorCode.UNKNOWN_TYPE


any_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(st.sampled_from(["type", "id", "seq", "data", "upTo", "eventId",
                                       "terminalId", "all", "from", "channels"]) | st.text(),
                      inner, max_size=6),
    max_leaves=20,
)
typed_objects = st.builds(
    lambda kind, rest: {**rest, "type": kind},
    st.sampled_from([t.value for t in MessageType]) | st.text(max_size=5),
    st.dictionaries(st.text(max_size=12), any_json, max_size=8))


@settings(max_examples=300, deadline=None)
@given(any_json | typed_objects)
def test_any_json_value_decodes_or_raises_the_documented_error(value: Any) -> None:
    try:
        text = json.dumps(value)
    except ValueError:
        return
    for read, _ in PATHS:
        try:
            msg = read(text, max_bytes=MAX)
        except WireError as exc:
            assert exc.code in ErrorCode
            assert exc.code in {ErrorCode.BAD_JSON, ErrorCode.BAD_MESSAGE,
                                ErrorCode.UNKNOWN_TYPE, ErrorCode.BAD_SIGNATURE}
        else:
            assert isinstance(msg, messages.Message)
            assert dataclasses.is_dataclass(msg)
            # What was accepted is what was sent (known fields only), and reads the same again.
            frame = msg.to_wire()
            assert all(frame[k] == value[k] for k in frame if k in value)
            assert read(wire.encode(frame), max_bytes=MAX) == msg


@settings(max_examples=200, deadline=None)
@given(st.text() | st.binary())
def test_any_text_decodes_or_raises_the_documented_error(text: str | bytes) -> None:
    for read, _ in PATHS:
        try:
            read(text, max_bytes=MAX)
        except WireError as exc:
            assert exc.code in {ErrorCode.BAD_JSON, ErrorCode.BAD_MESSAGE,
                                ErrorCode.UNKNOWN_TYPE}
