"""api.wire at the door: nesting depth and size of every JSON value, signature shapes.

A value nested about 1,000 deep used to be stored and then break every snapshot (issue 13);
it is now refused with ``bad_message`` before it is decoded, like any value deeper than
``MAX_JSON_DEPTH`` or a message of more than ``MAX_JSON_VALUES`` values.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api import wire
from api.wire import MAX_JSON_DEPTH, MAX_JSON_VALUES, ErrorCode, WireError
from tests.support import ROOT

LIMIT = 1 << 20
TS = "2026-05-11T11:10:00.000Z"


def _event(data: object) -> str:
    return json.dumps({"type": "event", "id": "T-1", "seq": 1, "channel": "game",
                       "terminalId": "T", "event": "betPlaced", "timestamp": TS,
                       "data": data})


def _nested(depth: int, opener: str = "[") -> str:
    closer = "]" if opener == "[" else "}"
    inner = "0" if opener == "[" else ""
    if opener == "{":
        return '{"a":' * depth + "1" + "}" * depth
    return opener * depth + inner + closer * depth


def _code(text: str) -> ErrorCode:
    with pytest.raises(WireError) as info:
        wire.parse_message(text, max_bytes=LIMIT)
    return info.value.code


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH + 1, 980, 5000])
@pytest.mark.parametrize("opener", ["[", "{"])
def test_nesting_deeper_than_the_limit_is_bad_message(depth: int, opener: str) -> None:
    # The event itself is level 1 and its data level 2: data holding `depth` more levels.
    text = _event(None).replace('"data": null', '"data": {"x": ' + _nested(depth, opener) + "}")
    if 2 + depth <= MAX_JSON_DEPTH:
        assert wire.parse_message(text, max_bytes=LIMIT)["type"] == "event"
    else:
        assert _code(text) is ErrorCode.BAD_MESSAGE


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = _event({"note": "[" * 500 + '\\"{' * 100, "list": [[["deep enough"]]]})
    assert wire.parse_message(text, max_bytes=LIMIT)["data"]["note"].startswith("[[[")


def test_a_message_with_too_many_values_is_bad_message() -> None:
    assert _code(_event({"v": [0] * MAX_JSON_VALUES})) is ErrorCode.BAD_MESSAGE
    ok = wire.parse_message(_event({"v": [0] * (MAX_JSON_VALUES - 20)}), max_bytes=LIMIT)
    assert len(ok["data"]["v"]) == MAX_JSON_VALUES - 20


@given(st.integers(min_value=1, max_value=3 * MAX_JSON_DEPTH),
       st.lists(st.sampled_from(["[", "{"]), min_size=1, max_size=4))
def test_depth_check_agrees_with_the_decoded_depth(depth: int, kinds: list[str]) -> None:
    value: object = 1
    for i in range(depth):
        value = [value] if kinds[i % len(kinds)] == "[" else {"k": value}
    text = json.dumps({"type": "ping", "x": value})

    def measured(v: object) -> int:
        if isinstance(v, list):
            return 1 + max((measured(x) for x in v), default=0)
        if isinstance(v, dict):
            return 1 + max((measured(x) for x in v.values()), default=0)
        return 0

    levels = 1 + measured(value)
    if levels <= MAX_JSON_DEPTH:
        assert wire.parse_message(text, max_bytes=LIMIT)["type"] == "ping"
    else:
        assert _code(text) is ErrorCode.BAD_MESSAGE


def _action(**extra: object) -> str:
    return json.dumps({"type": "action", "id": "a", "terminalId": "T", "action": "lock"}
                      | extra)


@pytest.mark.parametrize("extra", [
    {"signature": "0" * 64},  # no issuedAt: §7 says bad_signature
    {"signature": "A" * 64, "issuedAt": TS},  # uppercase hex: not the documented form
    {"signature": "0" * 63, "issuedAt": TS},
    {"signature": 12, "issuedAt": TS},
])
def test_signature_shape_problems_are_bad_signature(extra: dict[str, object]) -> None:
    assert _code(_action(**extra)) is ErrorCode.BAD_SIGNATURE


def test_an_uppercase_copy_of_a_valid_signature_does_not_verify() -> None:
    msg = wire.action("a1", "T1", "lock", issued_at=TS)
    signed = wire.sign_action(b"k" * 16, msg)
    now = wire.parse_timestamp(TS)
    wire.verify_action(b"k" * 16, signed, now)
    with pytest.raises(WireError) as info:
        wire.verify_action(b"k" * 16, signed | {"signature": signed["signature"].upper()}, now)
    assert info.value.code is ErrorCode.BAD_SIGNATURE


def _outcome(text: str) -> object:
    try:
        return wire.parse_message(text, max_bytes=LIMIT)
    except WireError as exc:
        return (exc.code, str(exc))


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                               max_size=3),
    max_leaves=8)


@given(value=_json_values, event=st.booleans(), indent=st.sampled_from([None, 0, 1]),
       before=st.sampled_from(["", " ", "\n", "x"]),
       after=st.sampled_from(["", " ", "\n", "x", "}", "{}", " 1", "\ud800"]),
       cut=st.integers(0, 3))
def test_decoding_with_the_scanner_is_decoding(value: object, event: bool, indent: int | None,
                                               before: str, after: str, cut: int) -> None:
    """api/parse.py decodes a frame with the JSON scanner directly when the whole text is one
    value: the result, or the error code and message, are the decoder's, whatever the text."""
    import api.parse

    body = _event(value) if event else json.dumps(value, indent=indent)
    text = before + (body[:-cut] if cut else body) + after
    fast = _outcome(text)
    scan = api.parse._SCAN
    try:
        def refuse(_text: str, _idx: int) -> tuple[object, int]:
            raise StopIteration(0)
        api.parse._SCAN = refuse
        slow = _outcome(text)
    finally:
        api.parse._SCAN = scan
    assert fast == slow


# ------------------------------------------------------- docs/protocol.md §1, as written

_BASICS = (ROOT / "docs" / "protocol.md").read_text().split("## 2.")[0]


def _ok(text: str) -> bool:
    try:
        wire.parse_message(text, max_bytes=LIMIT)
    except WireError as exc:
        assert exc.code is ErrorCode.BAD_MESSAGE, exc
        return False
    return True


def _named(event: str = "newerEvent", action: str = "lock", stamp: str = TS) -> list[str]:
    return [json.dumps({"type": "event", "id": "T-1", "seq": 1, "channel": "system",
                        "terminalId": "T", "event": event, "timestamp": stamp, "data": {}}),
            json.dumps({"type": "action", "id": "a", "terminalId": "T", "action": action,
                        "issuedAt": stamp})]


def test_the_name_lengths_of_section_1_are_the_parsers() -> None:
    """§1 gives the id, terminal id and name lengths an external sender must keep to."""
    assert "Ids (`id` of actions and requests) are strings of 1 to 128 characters" in _BASICS
    assert "Terminal ids are 1 to 64 characters" in " ".join(_BASICS.split())
    assert "action names `^[A-Za-z][A-Za-z0-9_]*$`, each 1 to 64 characters" in " ".join(
        _BASICS.split())
    event, action = _named(event="e" * 64, action="A" * 64)
    assert _ok(event) and _ok(action)
    event, action = _named(event="e" * 65, action="A" * 65)
    assert not _ok(event) and not _ok(action)
    assert _ok(wire.encode(wire.ping("i" * 128))) and not _ok(wire.encode({"type": "ping",
                                                                           "id": "i" * 129}))


@pytest.mark.parametrize(("stamp", "valid"), [
    ("2026-05-11T11:10:00Z", True), ("2026-05-11T11:10:00.1Z", True),
    ("2026-05-11T11:10:00.123456Z", True), ("2026-05-11T11:10:00.1234567Z", False),
    ("2026-05-11T11:10:00+00:00", False), ("2026-05-11", False),
    ("2026-02-30T11:10:00Z", False)])
def test_the_timestamps_of_section_1_are_the_parsers(stamp: str, valid: bool) -> None:
    assert "has 1 to 6 digits" in " ".join(_BASICS.split())
    assert all(_ok(text) is valid for text in _named(stamp=stamp))


@pytest.mark.parametrize(("text", "code"), [
    ('{"type": "ping", "id": "p1", "x": 1e400}', ErrorCode.BAD_JSON),
    ('{"type": "ping", "id": "p1", "x": "' + "a" * LIMIT + '"}', ErrorCode.TOO_LARGE),
    ('{"type": "ping", "id": "p1", "x": ' + "[" * 40 + "]" * 40 + "}", ErrorCode.BAD_MESSAGE),
])
def test_an_error_about_the_whole_frame_carries_no_id(text: str, code: ErrorCode) -> None:
    """protocol.md §6: such errors come before the fields are read, so no ``id``."""
    assert "about the frame as a whole comes before its fields are read and carries no `id`" \
        in " ".join((ROOT / "docs" / "protocol.md").read_text().split())
    with pytest.raises(WireError) as info:
        wire.parse_message(text, max_bytes=LIMIT)
    assert (info.value.code, info.value.ref_id) == (code, None)


def test_the_hello_version_and_auth_token_lengths_are_the_documented_ones() -> None:
    """protocol.md §4 ``hello.version``: 1 to 64 characters; §5 ``auth.token``: 1 to 4,096."""
    doc = " ".join((ROOT / "docs" / "protocol.md").read_text().split())
    assert "software version, 1 to 64 characters" in doc
    assert "`token`: a string of 1 to 4,096 characters" in doc
    hello = {"type": "hello", "protocol": 1, "terminalId": "T", "lastSeq": 0}
    assert _ok(json.dumps(hello | {"version": "v" * 64}))
    assert not _ok(json.dumps(hello | {"version": "v" * 65}))
    assert not _ok(json.dumps(hello | {"version": ""}))
    assert _ok(json.dumps({"type": "auth", "token": "t" * 4096}))
    assert not _ok(json.dumps({"type": "auth", "token": "t" * 4097}))
