"""The fan-out's building blocks: frames built once, runs of frames, queues bounded in frames
(and the hub process's collector thresholds, hub/gc_tuning.py).

hub/fanout.py builds an event's frame text from the ``data`` text encoded for the store; it
must be exactly what the generic encoder writes (external clients parse it, docs/protocol.md
§3). hub/wsio.py frames by hand; it must be the RFC 6455 frame websockets itself writes.
"""

from __future__ import annotations

import asyncio
import gc
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode

from api import wire
from api.wire import LinkState
from hub.fanout import ENCODER, ack_frame, encode, event_text, terminal_text
from hub.floor import TerminalState
from hub.gc_tuning import YOUNG_THRESHOLD, tune_gc
from hub.peer import FrameQueue
from hub.store import data_text
from hub.subscriptions import Filter, Subscription
from hub.wsio import framed, joined, run_of

_json = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12)

_frames = st.builds(
    lambda tid, seq, name, data, cursor: {
        **wire.event(event_id=f"{tid}-{seq}", seq=seq, channel="game", terminal_id=tid,
                     name=name, timestamp="2026-12-06T22:00:00.000Z", data=data),
        **({} if cursor is None else {"cursor": cursor})},
    st.text(min_size=1, max_size=20), st.integers(min_value=1, max_value=2**63 - 1),
    st.text(min_size=1, max_size=20), st.dictionaries(st.text(max_size=8), _json, max_size=5),
    st.none() | st.integers(min_value=1, max_value=2**63 - 1))


@given(_frames)
def test_an_event_frame_built_from_its_data_text_is_what_the_encoder_writes(
        frame: dict[str, Any]) -> None:
    text = event_text(frame, data_text(frame["data"]))
    assert text == wire.encode(frame)
    assert json.loads(text) == frame


@given(st.dictionaries(st.text(max_size=8), _json, max_size=5)
       | st.lists(_json, max_size=4) | _json)
def test_the_encoders_made_once_write_what_the_json_encoders_write(value: Any) -> None:
    """hub/json_text.py keeps the C encoder instead of making one per call: the store's
    ``data_text`` (an event's data) writes what a compact ``JSONEncoder`` writes, and the
    fan-out's ``encode`` what ``api.wire``'s encoder writes (every other frame)."""
    stored = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
    assert data_text(value) == stored.encode(value)
    assert encode(value) == ENCODER.encode(value) == wire.encode(value)
    assert data_text({"x": float("nan")}) == stored.encode({"x": float("nan")})
    with pytest.raises(ValueError):
        encode({"x": float("nan")})  # as api.wire.encode: NaN is not JSON


_opt_text = st.none() | st.text(max_size=12)
_small_dict = st.none() | st.dictionaries(st.text(max_size=6), _json, max_size=3)
_summary = st.none() | st.builds(
    lambda i, e, t: {"id": i, "event": e, "timestamp": t}, st.text(max_size=10),
    st.text(max_size=10), st.text(max_size=10)) | st.dictionaries(
    st.sampled_from(["timestamp", "event", "id", "x"]), st.text(max_size=4) | st.integers())
_money = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_states = st.builds(
    TerminalState, terminal_id=st.text(min_size=1, max_size=12), day=st.text(max_size=10),
    online=st.booleans(), since=_opt_text, link=st.sampled_from(list(LinkState)),
    host_locked=st.none() | st.booleans(), game_locked=st.booleans(),
    acked_seq=st.integers(min_value=0, max_value=2**63 - 1), last_event=_summary,
    coin_in=_money, coin_out=_money, games=_money,
    unacked_alerts=st.integers(min_value=0, max_value=10**6),
    balance=st.none() | _money, doors_open=st.sets(st.text(max_size=6), max_size=3),
    tilt=_small_dict, handpay=_small_dict, bank=_opt_text, area=_opt_text)


@given(_states)
def test_a_terminal_frame_written_field_by_field_is_what_the_encoder_writes(
        state: TerminalState) -> None:
    """hub/fanout.py writes the ``terminal`` message (sent per terminal and burst) by hand;
    it must be the text the encoder writes for ``state.to_wire()``, key order included."""
    expected = ENCODER.encode({"type": "terminal", "terminal": state.to_wire()})
    assert terminal_text(state) == expected


def test_a_frame_of_another_shape_is_encoded_whole() -> None:
    frame = wire.event(event_id="T1-1", seq=1, channel="game", terminal_id="T1",
                       name="betPlaced", timestamp="2026-12-06T22:00:00.000Z", data={"a": 1})
    odd = {**frame, "extra": True}
    assert json.loads(event_text(odd, data_text(frame["data"]))) == frame  # its fields only
    assert event_text(frame, None) == wire.encode(frame)
    assert event_text({**frame, "seq": True}, "{}") == encode({**frame, "seq": True})


@given(st.binary(max_size=70_000))
def test_frames_built_by_hand_are_the_frames_websockets_writes(payload: bytes) -> None:
    assert framed(payload) == Frame(Opcode.TEXT, payload).serialize(mask=False)


@given(st.lists(st.binary(max_size=70_000), min_size=1, max_size=4))
def test_a_run_built_from_wire_bytes_is_the_run_of_framed_frames(
        payloads: list[bytes]) -> None:
    """The fan-out keeps each frame as its wire bytes and payload (no Framed per frame):
    the run it makes is the one ``joined`` makes of the ``framed`` frames."""
    frames = [framed(p) for p in payloads]
    run = run_of([bytes(f) for f in frames], payloads)
    expected = joined(frames)
    assert bytes(run) == bytes(expected) and run.payloads == expected.payloads
    assert run.frame_count == len(payloads)


def test_a_run_of_frames_is_their_bytes_in_order_and_counts_each() -> None:
    parts = [framed(b'{"n":1}'), framed(b"x" * 300), ack_frame(7)]
    run = joined(parts)
    assert run == b"".join(parts)
    assert run.frame_count == 3
    assert run.payloads == (b'{"n":1}', b"x" * 300, b'{"type":"ack","upTo":7}')
    assert json.loads(ack_frame(7).payloads[0]) == wire.ack(7)
    assert joined([parts[0]]) is parts[0]


async def test_a_peer_queue_is_bounded_in_frames_and_joins_when_written() -> None:
    queue = FrameQueue(4)
    queue.put_nowait("a")
    queue.put_nowait(joined([framed(b"1"), framed(b"2")]))
    assert queue.qsize() == 3
    with pytest.raises(asyncio.QueueFull):
        queue.put_nowait(joined([framed(b"3"), framed(b"4")]))  # 5 frames > 4
    queue.put_nowait(framed(b"3"))
    items, n = await queue.take()
    assert n == 4 and len(items) == 3 and queue.qsize() == 0 and queue.empty()
    joining = asyncio.create_task(queue.join())
    await asyncio.sleep(0)  # one step: it waits for the frames taken to be written
    assert not joining.done()
    queue.task_done(n)
    await asyncio.wait_for(joining, 5)


def test_a_subscription_takes_all_only_with_an_empty_filter_and_no_replay() -> None:
    sub = Subscription()
    assert not sub.takes_all()  # not subscribed: terminal states only
    sub.subscribe(Filter(channels=frozenset({"game"})))
    assert not sub.takes_all()
    sub.subscribe(Filter())
    assert sub.takes_all()
    sub.subscribe(Filter(terminals=frozenset({"T1"})), replaying=True)
    assert not sub.takes_all()  # a replaying filter decides per event
    assert sub.go_live(Filter(terminals=frozenset({"T1"})), 10)
    assert not sub.takes_all()  # until a live event passes its floor


def test_the_hub_process_collects_its_young_objects_less_often() -> None:
    previous = tune_gc()
    try:
        assert gc.get_threshold() == (YOUNG_THRESHOLD, previous[1], previous[2])
        assert gc.isenabled()  # less often, never off: cyclic garbage is still collected
    finally:
        gc.set_threshold(*previous)
