"""api.wire: validation mirrors docs/schemas, only WireError escapes, signatures."""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from referencing import Registry, Resource

from api import checks, wire
from api.events import CATALOG, Event, StoredEvent, wire_text
from api.wire import ActionAckStatus, ActionStatus, ErrorCode, Role, WireError

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "docs" / "schemas"
LIMIT = 64 * 1024


def _schemas() -> tuple[dict[str, Any], Registry[Any]]:
    by_type, resources = {}, []
    for path in SCHEMA_DIR.glob("*.json"):
        schema = json.loads(path.read_text())
        resources.append((schema["$id"], Resource.from_contents(schema)))
        by_type[path.stem] = schema
    return by_type, Registry().with_resources(resources)


SCHEMAS, REGISTRY = _schemas()


def schema_ok(msg: Any) -> bool:
    kind = msg.get("type") if isinstance(msg, dict) else None
    if kind not in SCHEMAS or kind == "common":
        return False
    validator = jsonschema.Draft202012Validator(SCHEMAS[kind], registry=REGISTRY)
    return validator.is_valid(msg)


TS = "2026-05-11T11:10:00.123Z"
EXAMPLES: list[dict[str, Any]] = [
    wire.hello("T-0042", "0.1.0", 1207),
    wire.hello("T-0042", "0.1.0", 1207, {"hostLocked": True}),
    wire.welcome("T-0042", 1200, TS),
    wire.event(event_id="T-0042-7", seq=7, channel="game", terminal_id="T-0042",
               name="betPlaced", timestamp=TS, data={"amount": 100}),
    wire.event(event_id="hub-3", seq=3, channel="alerts", terminal_id="T-0042",
               name="deviceOffline", timestamp=TS, data={"terminalId": "T-0042", "lostAt": TS}),
    wire.ack(5),
    wire.ack_alert("T-0042-9", "r1"),
    wire.action("a1", "T-0042", "lock", {}, expires_at=TS, issued_at=TS, sender="alice"),
    wire.sign_action(b"k", wire.action("a2", "T-0042", "unlock", {"n": 2}, issued_at=TS)),
    wire.action_ack("a1", "T-0042", ActionAckStatus.QUEUED),
    wire.action_ack("a1", "T-0042", ActionAckStatus.REJECTED, "unknown action"),
    wire.action_ack("a1", "T-0042", ActionAckStatus.SENT, action="lock"),
    wire.action_result("a1", "T-0042", ActionStatus.FAILED, error="jammed", action="unlock"),
    wire.action_result("a1", "T-0042", ActionStatus.SUCCEEDED, result={"locked": True}),
    wire.action_result("a1", "T-0042", ActionStatus.EXPIRED, error="too late"),
    wire.auth("secret"),
    wire.auth_ok(Role.VIEWER, "cctv"),
    wire.subscribe(channels=["alerts"], terminals=["T-0042"], request_id="s1"),
    wire.subscribe(unsubscribe=True),
    wire.subscribe(channels=["cash"], start=120, request_id="s2"),
    wire.subscribe(start=TS),
    wire.replayed(12, 132, "s2"),
    {"type": "ack", "terminalId": "T-0042", "id": "r2"},
    {"type": "ack", "all": True},
    wire.action("a3", "T-0042", "lock", reason="door tampering on camera 4", sender="alice"),
    wire.subscribed([{"channels": ["cash"], "events": [], "terminals": []}], "s1"),
    wire.alert_ack("T-0042-9", "T-0042", "alice", TS),
    wire.get_state("g"),
    wire.history(terminals=["T-0042"], channels=["cash"], since=TS, until=TS, after=3,
                 limit=50, request_id="h1"),
    wire.history(before=900),
    wire.history_page([{**wire.event(event_id="T-0042-7", seq=7, channel="game",
                                     terminal_id="T-0042", name="betPlaced", timestamp=TS,
                                     data={"amount": 100}), "cursor": 41}], 41, False, "h1"),
    wire.history_page([], None, True),
    wire.snapshot(at=TS, terminals=[], alerts=[], recent=[], coin_in_per_minute=[
        {"minute": TS, "amount": 0}] * 60),
    wire.terminal_state({"terminalId": "T1", "online": True, "since": TS, "link": "up",
                         "locked": None, "ackedSeq": 0, "lastEvent": None, "coinInToday": 0,
                         "coinOutToday": 0, "unackedAlerts": 0}),
    wire.error(ErrorCode.NOT_FOUND, "no alert", "r1"),
    wire.ping("p"),
    wire.pong(),
]


def test_every_message_type_has_a_schema_and_an_example() -> None:
    assert {m.value for m in wire.MessageType} == set(SCHEMAS) - {"common"}
    assert {m["type"] for m in EXAMPLES} == {m.value for m in wire.MessageType}


@pytest.mark.parametrize("msg", EXAMPLES, ids=lambda m: m["type"])
def test_builders_round_trip_and_match_the_schemas(msg: dict[str, Any]) -> None:
    assert schema_ok(msg)
    assert wire.parse_message(wire.encode(msg), max_bytes=LIMIT) == msg


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", ErrorCode.BAD_JSON),
        ("{", ErrorCode.BAD_JSON),
        ('{"type": "ping", "x": NaN}', ErrorCode.BAD_JSON),
        ("[]", ErrorCode.BAD_MESSAGE),
        ("{}", ErrorCode.BAD_MESSAGE),
        ('{"type": 3}', ErrorCode.BAD_MESSAGE),
        ('{"type": "nope"}', ErrorCode.UNKNOWN_TYPE),
        ('{"type": "hello", "protocol": true, "terminalId": "T", "version": "1",'
         ' "lastSeq": 0}', ErrorCode.BAD_MESSAGE),
        ('{"type": "hello", "protocol": 1, "terminalId": "T", "version": "1",'
         ' "lastSeq": -1}', ErrorCode.BAD_MESSAGE),
        ('{"type": "event", "id": "T-2", "seq": 1, "channel": "game", "terminalId": "T",'
         ' "event": "betPlaced", "timestamp": "' + TS + '", "data": {}}', ErrorCode.BAD_MESSAGE),
        ('{"type": "ack"}', ErrorCode.BAD_MESSAGE),
        ('{"type": "action", "id": "a", "terminalId": "T", "action": "lock",'
         ' "signature": "' + "0" * 64 + '"}', ErrorCode.BAD_SIGNATURE),
        ('{"type": "action", "id": "a", "terminalId": "T", "action": "lock",'
         ' "expiresAt": "2026-13-45T99:00:00Z"}', ErrorCode.BAD_MESSAGE),
        ('{"type": "error", "code": "teapot", "message": "x"}', ErrorCode.BAD_MESSAGE),
        ('{"type": "history", "limit": 201}', ErrorCode.BAD_MESSAGE),
        ('{"type": "history", "channels": ["casino"]}', ErrorCode.BAD_MESSAGE),
        ('{"type": "history", "after": null}', ErrorCode.BAD_MESSAGE),
        ('{"type": "historyPage", "events": [{}], "next": null, "order": "oldest-first"}',
         ErrorCode.BAD_MESSAGE),
        ('{"type": "historyPage", "events": [], "next": 3, "order": "sideways"}',
         ErrorCode.BAD_MESSAGE),
        ('{"type": "actionAck", "id": "a", "terminalId": "T", "status": "sent",'
         ' "action": "lock me"}', ErrorCode.BAD_MESSAGE),
        ('{"type": "actionResult", "id": "a", "terminalId": "T", "status": "failed",'
         ' "action": null}', ErrorCode.BAD_MESSAGE),
    ],
)
def test_bad_messages_raise_wire_error_with_the_code(text: str, code: ErrorCode) -> None:
    with pytest.raises(WireError) as info:
        wire.parse_message(text, max_bytes=LIMIT)
    assert info.value.code is code
    assert info.value.message


def test_size_binary_and_accept_limits() -> None:
    with pytest.raises(WireError) as info:
        wire.parse_message('{"type": "ping", "p": "' + "é" * 40 + '"}', max_bytes=64)
    assert info.value.code is ErrorCode.TOO_LARGE  # counted in UTF-8 bytes, not characters
    with pytest.raises(WireError) as info:
        wire.parse_message(b'{"type": "ping"}', max_bytes=LIMIT)
    assert info.value.code is ErrorCode.BAD_MESSAGE
    with pytest.raises(WireError) as info:
        wire.parse_message('{"type": "auth", "token": "t", "id": "x1"}', max_bytes=LIMIT,
                           accept=wire.TERMINAL_TO_HUB)
    assert (info.value.code, info.value.ref_id) == (ErrorCode.UNKNOWN_TYPE, "x1")


def test_error_refers_to_the_message_id() -> None:
    with pytest.raises(WireError) as info:
        wire.parse_message('{"type": "action", "id": "a9", "terminalId": "T"}', max_bytes=LIMIT)
    assert info.value.ref_id == "a9"
    assert wire.error_from(info.value) == {
        "type": "error", "code": "bad_message", "message": info.value.message, "id": "a9"}


def test_canonical_form_is_exactly_as_documented() -> None:
    msg = wire.action("act-1", "T-0042", "lock", {"b": [1, "é"], "a": {"z": 1, "y": None}},
                      issued_at="2026-05-11T11:10:00.000Z")
    assert wire.canonical_action(msg) == (
        'act-1|T-0042|lock|2026-05-11T11:10:00.000Z||{"a":{"y":null,"z":1},"b":[1,"é"]}'
    ).encode()
    with pytest.raises(WireError):
        wire.canonical_action(wire.action("a", "T", "x", {"f": 1.5}))


def test_signature_verification() -> None:
    now = wire.parse_timestamp("2026-05-11T11:10:00.000Z")
    msg = wire.action("a1", "T1", "lock", {"n": 1}, issued_at="2026-05-11T11:10:00.000Z",
                      expires_at="2026-05-11T11:15:00.000Z")
    signed = wire.sign_action(b"key", msg)
    wire.verify_action(b"key", signed, now + 10, 300)
    for bad_key, tampered, when in (
        (b"other", signed, now),
        (b"key", signed | {"action": "unlock"}, now),
        (b"key", signed | {"params": {"n": 2}}, now),
        (b"key", signed | {"expiresAt": "2026-05-11T12:00:00.000Z"}, now),
        (b"key", signed, now + 301),  # replay outside the window
        (b"key", signed, now - 301),
        (b"key", msg, now),  # unsigned
    ):
        with pytest.raises(WireError) as info:
            wire.verify_action(bad_key, tampered, when, 300)
        assert info.value.code is ErrorCode.BAD_SIGNATURE and info.value.ref_id == "a1"
    with pytest.raises(ValueError):
        wire.sign_action(b"key", wire.action("a", "T", "lock"))


def test_timestamps() -> None:
    assert wire.format_timestamp(0) == "1970-01-01T00:00:00.000Z"
    assert wire.parse_timestamp("1970-01-01T00:00:01.5Z") == 1.5
    for bad in ("1970-01-01 00:00:00Z", "1970-01-01T00:00:00+00:00", "1970-02-30T00:00:00Z"):
        with pytest.raises(ValueError):
            wire.parse_timestamp(bad)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)
field_values = st.sampled_from([
    None, True, 0, -1, 1, 2**70, 1.5, "", "T1", "T1-1", "hub-1", TS, "x" * 200, [], ["game"],
    ["bogus"], {}, {"a": 1}, [{}], [{"channels": [], "events": [], "terminals": []}],
    {"terminalId": "T1"}, "lock", "0" * 64, "accepted", "succeeded", "operator", "alerts",
])
message_like = st.fixed_dictionaries(
    {"type": st.sampled_from([m.value for m in wire.MessageType] + ["bogus"])},
    optional={k: field_values for k in (
        "id", "seq", "channel", "terminalId", "event", "timestamp", "data", "protocol",
        "version", "lastSeq", "ackedSeq", "serverTime", "upTo", "eventId", "action", "params",
        "expiresAt", "issuedAt", "signature", "status", "error", "result", "token", "role",
        "name", "channels", "events", "terminals", "filters", "by", "at", "terminal", "code",
        "message", "alerts", "recent", "coinInPerMinute", "terminals")},
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_random_json_raises_only_wire_error(value: Any) -> None:
    text = json.dumps(value)
    with contextlib.suppress(WireError):  # any other exception fails the test
        wire.parse_message(text, max_bytes=LIMIT)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_random_text_raises_only_wire_error(text: str) -> None:
    with contextlib.suppress(WireError):  # any other exception fails the test
        wire.parse_message(text, max_bytes=LIMIT)


@settings(max_examples=600, deadline=None)
@given(message_like)
def test_parse_agrees_with_the_schemas(msg: dict[str, Any]) -> None:
    """What the hand-written validation accepts, the published schema accepts too."""
    try:
        parsed = wire.parse_message(json.dumps(msg), max_bytes=LIMIT)
    except WireError:
        return
    assert schema_ok(parsed), parsed


def test_every_catalog_alert_is_either_ackable_or_all_clear() -> None:
    alerts = {name for name, channel in CATALOG.items() if channel.value == "alerts"}
    assert alerts == wire.ACKABLE_ALERTS | wire.INFORMATIONAL_ALERTS
    assert not wire.ACKABLE_ALERTS & wire.INFORMATIONAL_ALERTS
    assert all(wire.needs_ack("alerts", name) for name in wire.ACKABLE_ALERTS)
    assert not any(wire.needs_ack("alerts", name) for name in wire.INFORMATIONAL_ALERTS)
    assert wire.needs_ack("cash", "handpayPending")  # an attendant must pay it
    assert not wire.needs_ack("cash", "handpayReset")
    assert wire.needs_ack("alerts", "alarmFromANewerAgent")  # unknown: never hidden


# --------------------------------------------------------------------------- lone surrogates

def _string_spots(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], bool]]:
    """Every string of a message as (path, is_key): values and object keys."""
    spots: list[tuple[tuple[Any, ...], bool]] = []
    if isinstance(value, str):
        spots.append((path, False))
    elif isinstance(value, dict):
        for key, item in value.items():
            spots.append(((*path, key), True))
            spots.extend(_string_spots(item, (*path, key)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            spots.extend(_string_spots(item, (*path, i)))
    return spots


def _label(path: tuple[Any, ...]) -> str:
    """The parser's name of a place: ``params.note``, ``filters[0].channels[1]``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _poison(msg: dict[str, Any], path: tuple[Any, ...], is_key: bool, bad: str
            ) -> dict[str, Any]:
    """A deep copy of ``msg`` whose string (or key) at ``path`` holds ``bad``."""
    copy = json.loads(json.dumps(msg))
    parent = copy
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if is_key:
        parent[last + bad] = parent.pop(last)
    else:
        parent[last] = parent[last] + bad
    return copy


@settings(max_examples=400, deadline=None)
@given(st.data(), st.integers(0xD800, 0xDFFF), st.booleans())
def test_a_lone_surrogate_anywhere_is_bad_message_naming_the_place(
        data: st.DataObject, code_point: int, escaped: bool) -> None:
    """Every message type, every string value and every key: a lone surrogate, sent as the
    JSON escape (what a peer can send) or already in the text, is ``bad_message`` naming
    where it is; the error reply is itself valid UTF-8 text."""
    msg = data.draw(st.sampled_from(EXAMPLES), label="message")
    path, is_key = data.draw(st.sampled_from(_string_spots(msg)), label="place")
    poisoned = _poison(msg, path, is_key, chr(code_point))
    text = json.dumps(poisoned, ensure_ascii=escaped)
    with pytest.raises(WireError) as info:
        wire.parse_message(text, max_bytes=LIMIT)
    exc = info.value
    assert exc.code is ErrorCode.BAD_MESSAGE
    if is_key:
        parent = _label(path[:-1])
        assert exc.message.startswith(f"a key of {parent!r}" if parent else
                                      "a key of the message"), exc.message
    else:
        assert exc.message.startswith(repr(_label(path))), exc.message
    assert "surrogate" in exc.message
    # The id is echoed only while it is intact (a poisoned id, or key "id", is not).
    assert exc.ref_id == (msg.get("id") if path != ("id",) else None)
    wire.encode(wire.error_from(exc)).encode("utf-8")  # never raises UnicodeEncodeError


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30), st.text(max_size=10))
def test_real_text_in_params_is_accepted_and_signs(value: str, key: str) -> None:
    """Any Unicode text (hypothesis draws no lone surrogates; astral characters arrive as
    escaped surrogate pairs with ensure_ascii) is accepted and can be signed."""
    msg = wire.action("a1", "T1", "lock", {"address": 1, f"k{key}": value}, issued_at=TS)
    for escaped in (True, False):
        parsed = wire.parse_message(json.dumps(msg, ensure_ascii=escaped), max_bytes=LIMIT)
        assert parsed == msg
        signed = wire.sign_action(b"key", parsed)
        wire.verify_action(b"key", signed, wire.parse_timestamp(TS))


def test_a_surrogate_pair_escape_is_one_character_not_a_lone_surrogate() -> None:
    msg = wire.parse_message('{"type":"ping","id":"\\ud83c\\udfb0"}', max_bytes=LIMIT)
    assert msg["id"] == "\U0001f3b0"
    with pytest.raises(WireError) as info:  # the pair reversed: two lone surrogates
        wire.parse_message('{"type":"ping","id":"\\udfb0\\ud83c"}', max_bytes=LIMIT)
    assert (info.value.code, info.value.ref_id) == (ErrorCode.BAD_MESSAGE, None)


def test_canonical_action_refuses_a_lone_surrogate_built_in_code() -> None:
    with pytest.raises(WireError) as info:
        wire.canonical_action(wire.action("a1", "T1", "lock", {"note": "\udc80"}))
    assert (info.value.code, info.value.ref_id) == (ErrorCode.BAD_MESSAGE, "a1")


# --------------------------------------------------------------------------- spliced frames

@settings(max_examples=300, deadline=None)
@given(seq=st.integers(1, 2**63 - 1),
       terminal=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}", fullmatch=True),
       name=st.sampled_from(sorted(CATALOG)),
       epoch=st.floats(0, 4_102_444_800, allow_nan=False),
       data=st.dictionaries(st.text(max_size=10), json_values, max_size=6),
       ascii_only=st.booleans())
def test_a_spliced_event_frame_is_the_to_wire_frame(
        seq: int, terminal: str, name: str, epoch: float, data: dict[str, Any],
        ascii_only: bool) -> None:
    """``wire_text`` with the data text spliced in (as the outbox stores it, or not ASCII)
    decodes to exactly ``StoredEvent.to_wire()``, keys in the same order, and the hub
    accepts it."""
    stored = StoredEvent(seq, terminal, Event(name, wire.format_timestamp(epoch), data))
    try:  # as the outbox stores it: no infinities (they are not JSON)
        data_json = json.dumps(data, sort_keys=True, separators=(",", ":"),
                               ensure_ascii=ascii_only, allow_nan=False)
    except ValueError:
        assume(False)
        return
    text = wire_text(seq, terminal, name, stored.event.channel.value, stored.event.timestamp,
                     data_json)
    expected = stored.to_wire()
    decoded = json.loads(text)
    assert decoded == expected and list(decoded) == list(expected)
    assert wire.parse_message(text, max_bytes=1 << 20, accept=wire.TERMINAL_TO_HUB) == expected


def test_spliced_frames_quote_every_string() -> None:
    """Quotes, backslashes and control characters in the quoted fields stay valid JSON."""
    text = wire_text(7, 'T"1\\', "a\nb", "c\u0000", "2026\t", "{}")
    assert json.loads(text) == {"type": "event", "id": 'T"1\\-7', "seq": 7, "channel": "c\u0000",
                                "terminalId": 'T"1\\', "event": "a\nb",
                                "timestamp": "2026\t", "data": {}}


VALID_EVENT: dict[str, Any] = {"id": "T1-7", "seq": 7, "channel": "game", "terminalId": "T1",
                               "event": "betPlaced", "timestamp": TS, "data": {}}
odd_values = field_values | st.sampled_from([
    "T1-7", "hub-7", "x" * 129, 7, 2**63 - 1, 2**63, 0, "game", "GAME", "T1\n", "-T1", "T" * 65,
    "betPlaced", "BetPlaced", "bet placed", TS + "\n", "2026-02-30T00:00:00Z"])
#: A valid event with up to two fields changed and maybe one dropped.
event_like = st.builds(
    lambda changes, drop: {k: v for k, v in (VALID_EVENT | changes).items() if k not in drop},
    st.dictionaries(st.sampled_from(sorted(VALID_EVENT)), odd_values, max_size=2),
    st.sets(st.sampled_from(sorted(VALID_EVENT)), max_size=1))


@settings(max_examples=1500, deadline=None)
@given(event_like)
def test_the_one_pass_event_check_agrees_with_the_field_checks(msg: dict[str, Any]) -> None:
    """parse_message checks events in one expression first (the drain's hot path); it must
    accept exactly what the field-by-field checks accept."""
    msg = {"type": "event", **msg}
    try:
        checks._check_event_fields(checks._Checker(msg, None))
        slow = True
    except WireError:
        slow = False
    assert checks._event_fields_ok(msg) is slow


odd_data = st.sampled_from([{}, {"amount": 0}, {"amount": 100}, {"amount": -1},
                            {"amount": 10**15}, {"amount": 10**15 + 1}, {"amount": 1.0},
                            {"amount": True}, {"amount": None}, {"amount": "100"}])


@settings(max_examples=1500, deadline=None)
@given(event_like, odd_data, st.sampled_from(["cash", "game", "alerts", "system"]))
def test_the_one_pass_event_check_agrees_with_check_event(
        msg: dict[str, Any], data: dict[str, Any], channel: str) -> None:
    """parse_message accepts an event in one pass (``checks.event_ok``) before any
    ``_Checker``: it must accept exactly what ``_check_event`` accepts (channels by event
    name, ``hub-`` ids, ``data.amount``), also for names and terminal ids seen before."""
    msg = {"type": "event", **msg}
    if "data" in msg and msg["data"] == {}:
        msg["data"] = data
    if msg.get("channel") == "game":
        msg["channel"] = channel
    for _ in range(2):  # the second time, from the cache of valid terminal ids
        try:
            checks._check_event(checks._Checker(msg, None))
            slow = True
        except WireError:
            slow = False
        assert checks.event_ok(msg) is slow


@pytest.mark.parametrize("field", ["terminalId", "event"])
def test_a_trailing_newline_is_not_part_of_a_valid_name(field: str) -> None:
    """The patterns anchor at the very end (``\\Z``): ``$`` would also match before a final
    newline and let ``"T1\\n"`` through as a terminal id."""
    frame: dict[str, Any] = {
        "type": "event", "id": "T1-1", "seq": 1, "channel": "game", "terminalId": "T1",
        "event": "gameStarted", "timestamp": "2026-05-11T11:10:40.300Z", "data": {}}
    frame[field] = frame[field] + "\n"
    with pytest.raises(WireError) as caught:
        wire.parse_message(json.dumps(frame), max_bytes=65536)
    assert caught.value.code == ErrorCode.BAD_MESSAGE


@pytest.mark.parametrize("number", ["1e400", "-1e999"])
def test_a_number_that_reads_as_infinity_is_refused(number: str) -> None:
    """Valid JSON, but infinity can be neither signed, stored as JSON nor sent on."""
    text = ('{"type":"action","id":"a1","terminalId":"T1","action":"unlock",'
            f'"params":{{"n":{number}}}}}')
    with pytest.raises(WireError) as caught:
        wire.parse_message(text, max_bytes=65536)
    assert caught.value.code == ErrorCode.BAD_JSON
    assert "out of range" in str(caught.value)


@pytest.mark.parametrize("amount", [-1, 10**15 + 1, 2**63, 1.5, "100", True])
def test_an_event_amount_must_be_whole_cents_in_range(amount: Any) -> None:
    frame = {"type": "event", "id": "T1-1", "seq": 1, "channel": "game", "terminalId": "T1",
             "event": "betPlaced", "timestamp": "2026-05-11T11:10:40.300Z",
             "data": {"amount": amount}}
    with pytest.raises(WireError) as caught:
        wire.parse_message(json.dumps(frame), max_bytes=65536)
    assert caught.value.code == ErrorCode.BAD_MESSAGE
    assert "data.amount" in str(caught.value)
    frame["data"] = {"amount": wire.MAX_AMOUNT_CENTS}
    assert wire.parse_message(json.dumps(frame), max_bytes=65536)["data"]["amount"] == 10**15


def test_an_auth_id_that_is_not_a_string_is_refused_as_its_schema_says() -> None:
    """auth.json's optional ``id`` is a string of 1-128 characters, as on every request;
    the parser accepted any value there (found by test_parse_agrees_with_the_schemas)."""
    ok = {"type": "auth", "token": "t", "id": "r1"}
    assert wire.parse_message(json.dumps(ok), max_bytes=LIMIT)["id"] == "r1"
    for bad in (7, "", "x" * 129, None):
        with pytest.raises(WireError, match="'id' must"):
            wire.parse_message(json.dumps({**ok, "id": bad}), max_bytes=LIMIT)


# ------------------------------------------ the closed lists of docs/protocol.md §6 and §9

_PROTOCOL = (Path(__file__).parent.parent / "docs" / "protocol.md").read_text()
_ROOT = Path(__file__).parent.parent


def _first_column(heading: str) -> set[str]:
    text = _PROTOCOL[_PROTOCOL.index(heading):]
    text = text[:text.index("\n## ", 1)] if "\n## " in text[1:] else text
    return {line.split("|")[1].strip().strip("`") for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("| code")}


def test_the_error_codes_of_section_6_are_the_closed_list() -> None:
    assert _first_column("## 6. Errors") == {code.value for code in ErrorCode}


def test_the_close_codes_of_section_9_are_the_ones_the_hub_closes_with() -> None:
    """§9 lists each close code an implementation may see; each one the hub sends itself is
    used in hub/ (1000 is a peer's own close; 1009 and the keepalive's 1011 come from the
    WebSocket library). A code in the table that nothing sends misleads a client."""
    assert _first_column("## 9. Close codes") == {str(code.value) for code in wire.CloseCode}
    source = "\n".join(p.read_text() for p in (_ROOT / "hub").glob("*.py"))
    for code in wire.CloseCode:
        if code in (wire.CloseCode.NORMAL, wire.CloseCode.MESSAGE_TOO_BIG):
            continue
        assert f"CloseCode.{code.name}" in source, code


def test_the_snapshot_table_of_section_5_describes_every_terminal_field() -> None:
    """Each field of a terminal's state (schema ``terminalState``, held to the message class
    by tests/test_messages.py) has its row in §5's table, and the table names no other."""
    common = json.loads((_ROOT / "docs" / "schemas" / "common.json").read_text())
    fields = set(common["$defs"]["terminalState"]["properties"])
    described = set()
    for line in _PROTOCOL.splitlines():
        if line.startswith("| `terminals[]."):
            described |= set(re.findall(r"`(?:terminals\[\]\.)?([a-zA-Z]+)`",
                                        line.split("|")[1]))
    assert described == fields
