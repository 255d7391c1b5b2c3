"""The hub's reader of whole text frames (hub/frame_reader.py) against websockets' parser:
for any stream of client frames, cut anywhere, the same frames reach websockets' buffer in
the same order, the same answers go out (pongs, close frames) and the connection ends in the
same state with the same error, whatever the frames (control, binary, fragmented, unmasked,
reserved bits, too large)."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import Protocol, Side, State

from hub.frame_reader import FrameReader, at_frame_boundary

MAX_SIZE = 1000


def _frame(opcode: Opcode, data: bytes, *, fin: bool = True) -> bytes:
    return Frame(opcode, data, fin).serialize(mask=True)


def _text(payload: str) -> bytes:
    return _frame(Opcode.TEXT, payload.encode())


_payload = st.one_of(st.text(max_size=40), st.text(min_size=126, max_size=400),
                     st.just("é" * 700))

frames = st.one_of(
    _payload.map(_text),
    _payload.map(_text),
    st.binary(max_size=125).map(lambda b: _frame(Opcode.PING, b)),
    st.binary(max_size=125).map(lambda b: _frame(Opcode.PONG, b)),
    st.binary(max_size=30).map(lambda b: _frame(Opcode.BINARY, b)),
    st.just(_frame(Opcode.CLOSE, Close(1000, "bye").serialize())),
    st.just(_frame(Opcode.TEXT, b"ab", fin=False) + _frame(Opcode.CONT, b"cd")),
    st.just(Frame(Opcode.TEXT, b"unmasked").serialize(mask=False)),
    st.just(bytes([_text("x")[0] | 0x40]) + _text("x")[1:]),  # RSV1
    st.just(_frame(Opcode.TEXT, b"y" * (MAX_SIZE + 1))),  # too large
    st.just(b"\x8f\x80" + b"\x00" * 4),  # opcode 15: unknown
    st.just(b"\x89\xfe\x00\x7e" + b"\x00" * 130),  # a ping of 126 bytes
    st.just(_frame(Opcode.TEXT, b"\xff\xfe")),  # not UTF-8: websockets' recv refuses it
)


def _summary(frame: Any) -> tuple[Any, ...]:
    return (frame.opcode, bytes(frame.data), frame.fin)


def _outcome(proto: Protocol) -> tuple[Any, ...]:
    return (proto.state, type(proto.parser_exc), proto.close_rcvd and proto.close_rcvd.code,
            proto.close_sent and proto.close_sent.code, proto.data_to_send())


@settings(max_examples=300, deadline=None)
@given(stream=st.lists(frames, max_size=12), cuts=st.lists(st.integers(0, 5000), max_size=6))
def test_the_same_frames_answers_and_errors_as_websockets(stream: list[bytes],
                                                         cuts: list[int]) -> None:
    data = b"".join(stream)
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    chunks = [data[a:b] for a, b in itertools.pairwise(bounds)]

    ref = Protocol(Side.SERVER, state=State.OPEN, max_size=MAX_SIZE)
    expected = []
    for chunk in chunks:
        ref.receive_data(chunk)
        expected += [_summary(f) for f in ref.events_received()]

    ours = Protocol(Side.SERVER, state=State.OPEN, max_size=MAX_SIZE)
    got: list[tuple[Any, ...]] = []

    def pass_on(raw: bytes) -> None:
        ours.receive_data(raw)
        got.extend(_summary(f) for f in ours.events_received())

    assert at_frame_boundary(ours)
    reader = FrameReader(ours, lambda f: got.append(_summary(f)), pass_on)
    for chunk in chunks:
        if reader.active:
            reader.feed(chunk)
        else:
            pass_on(chunk)
    assert got == expected
    assert _outcome(ours) == _outcome(ref)


def test_not_at_a_frame_boundary_in_the_middle_of_a_frame() -> None:
    proto = Protocol(Side.SERVER, state=State.OPEN, max_size=MAX_SIZE)
    frame = _text("hello")
    proto.receive_data(frame[:3])  # the header read, the mask not yet
    assert not at_frame_boundary(proto)
    proto.receive_data(frame[3:])
    assert [_summary(f)[1] for f in proto.events_received()] == [b"hello"]
    assert at_frame_boundary(proto)
    proto.receive_data(_frame(Opcode.TEXT, b"ab", fin=False))  # a fragmented message
    assert not at_frame_boundary(proto)


def test_only_text_frames_bypass_websockets() -> None:
    """A burst of text frames is read without websockets' parser; a ping in it is answered
    by websockets (a pong), and the reader carries on after it."""
    proto = Protocol(Side.SERVER, state=State.OPEN, max_size=MAX_SIZE)
    put: list[bytes] = []
    passed: list[bytes] = []

    def pass_on(raw: bytes) -> None:
        passed.append(raw)
        proto.receive_data(raw)

    reader = FrameReader(proto, lambda f: put.append(bytes(f.data)), pass_on)
    ping = _frame(Opcode.PING, b"k")
    c = _text("c")  # each frame has its own random mask
    reader.feed(_text("a") + _text("b") + ping + c[:4])
    reader.feed(c[4:])
    assert put == [b"a", b"b", b"c"]
    assert passed == [ping]
    assert proto.data_to_send() == [Frame(Opcode.PONG, b"k").serialize(mask=False)]
    assert reader.active
