"""Hostile input on the WebSocket API's parser: whatever arrives, ``parse_message`` returns a
checked message or raises :class:`api.wire.WireError` with a code from the closed list."""

from __future__ import annotations

import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from api import wire
from tests.reliability.hostile_frames import mutate, templates
from tests.reliability.reliability_kit import hypothesis_examples

ACCEPTS = [wire.TERMINAL_TO_HUB, wire.CLIENT_TO_HUB, wire.HUB_TO_TERMINAL, wire.HUB_TO_CLIENT,
           None]
ALL_TEMPLATES = [m for group in templates("T1").values() for m in group]
CODES = frozenset(wire.ErrorCode)

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                  max_size=4),
    max_leaves=20,
)


def _check(text: str | bytes, accept: frozenset[wire.MessageType] | None) -> None:
    try:
        msg = wire.parse_message(text, max_bytes=4096, accept=accept)
    except wire.WireError as exc:
        assert exc.code in CODES
        assert exc.message
        reply = wire.error_from(exc)  # the error reply itself must be a valid message
        wire.parse_message(wire.encode(reply), max_bytes=1 << 20)
        return
    assert isinstance(msg, dict) and isinstance(msg["type"], str)
    if accept is not None:
        assert wire.MessageType(msg["type"]) in accept


@settings(max_examples=hypothesis_examples(500))
@given(seed=st.integers(0, 2**32), template=st.sampled_from(ALL_TEMPLATES),
       accept=st.sampled_from(ACCEPTS), rounds=st.integers(1, 3))
def test_mutated_frames_get_a_code_or_parse(seed: int, template: dict[str, object],
                                            accept: frozenset[wire.MessageType] | None,
                                            rounds: int) -> None:
    rng = random.Random(seed)
    frame: str | bytes = mutate(rng, template)
    for _ in range(rounds - 1):
        if isinstance(frame, bytes):
            break
        try:
            obj = json.loads(frame)
        except (ValueError, RecursionError):
            break
        if not isinstance(obj, dict):
            break
        frame = mutate(rng, obj)
    _check(frame, accept)


@settings(max_examples=hypothesis_examples(300))
@given(obj=st.dictionaries(st.sampled_from(["type", "id", "seq", "terminalId", "event",
                                            "channel", "timestamp", "data", "upTo", "eventId",
                                            "action", "params", "token", "status", "x"]),
                           JSON, max_size=8),
       kind=st.sampled_from([t.value for t in wire.MessageType]),
       accept=st.sampled_from(ACCEPTS))
def test_random_objects_of_every_type_get_a_code_or_parse(
    obj: dict[str, object], kind: str, accept: frozenset[wire.MessageType] | None
) -> None:
    obj["type"] = kind
    _check(json.dumps(obj), accept)


def test_oversized_message_is_too_large_not_parsed() -> None:
    text = wire.encode(wire.ping("x" * 100))
    try:
        wire.parse_message(text + " " * 5000, max_bytes=4096)
    except wire.WireError as exc:
        assert exc.code is wire.ErrorCode.TOO_LARGE
    else:
        raise AssertionError("a message over max_bytes was parsed")
