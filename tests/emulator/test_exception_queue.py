"""The exception queue: FIFO of 25, overflow 70, priority order, persistence (property-tested)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.exceptions_queue import (
    PRIORITY_ORDER,
    ExceptionQueue,
    PendingException,
)
from emulator.meters import METERS
from sas_protocol.codes import meter_spec


def test_overflow_drops_the_oldest_and_flags_70() -> None:
    q = ExceptionQueue(capacity=3)
    for code in (0x11, 0x12, 0x13, 0x14, 0x15):
        q.push(PendingException.simple(code), 0.0)
    assert [e.code for e in q.queued()] == [0x13, 0x14, 0x15] and q.dropped == 2
    first = q.peek(0.0)
    assert first is not None and first.code == 0x70
    q.acknowledge(first, 0.0)
    assert not q.is_flagged(0x70)  # 70 is reported once


def test_priority_order_and_persistence() -> None:
    q = ExceptionQueue()
    q.push(PendingException.simple(0x11), 0.0)
    q.raise_priority(PendingException.simple(0x51), 0.0, persistent=True)
    q.raise_priority(PendingException.simple(0x3D), 0.0, persistent=True)
    order = []
    for _ in range(3):
        exc = q.peek(1.0)
        assert exc is not None
        order.append(exc.code)
        q.acknowledge(exc, 1.0)
    assert order == [0x3D, 0x51, 0x11]  # Monaco order: 3D before 51, both before the FIFO
    assert q.peek(15.9) is None
    again = q.peek(16.0)
    assert again is not None and again.code == 0x3D
    assert q.service(0x3D) and q.service(0x51)
    assert q.peek(100.0) is None


def test_meter_widths_agree_with_the_protocol_core() -> None:
    for code, meter in METERS.items():
        assert meter == meter_spec(code), hex(code)  # one table: sas_protocol.meter_codes


ops = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.sampled_from([0x11, 0x12, 0x1D, 0x1E, 0x7E, 0x7F])),
        st.tuples(st.just("priority"), st.sampled_from([0x51, 0x3D, 0x52])),
        st.tuples(st.just("ack"), st.just(0)),
        st.tuples(st.just("nack"), st.just(0)),
        st.tuples(st.just("service"), st.sampled_from([0x51, 0x3D])),
        st.tuples(st.just("time"), st.floats(0.0, 30.0)),
    ),
    max_size=120,
)


@settings(max_examples=200, deadline=None)
@given(ops, st.integers(1, 30))
def test_queue_properties(script: list[tuple[str, float]], capacity: int) -> None:
    """Bounded; FIFO order kept; entries leave only when acknowledged or dropped by overflow;
    a NACK (peek again without ack) shows the same exception."""
    q = ExceptionQueue(capacity=capacity)
    model: list[int] = []  # expected FIFO contents
    now = 0.0
    overflowed = 0
    for op, arg in script:
        if op == "time":
            now += arg
        elif op == "push":
            q.push(PendingException.simple(int(arg)), now)
            model.append(int(arg))
            if len(model) > capacity:
                model.pop(0)
                overflowed += 1
                assert q.is_flagged(0x70)
        elif op == "priority":
            q.raise_priority(PendingException.simple(int(arg)), now, persistent=arg != 0x52)
        elif op == "service":
            q.service(int(arg))
        else:
            exc = q.peek(now)
            if exc is None:
                assert not model or any(q.is_flagged(c) for c in PRIORITY_ORDER)
                continue
            assert q.peek(now) == exc  # stable until acknowledged (implied NACK)
            if exc.code not in PRIORITY_ORDER:
                assert exc.code == model[0]
                if op == "ack":
                    model.pop(0)
            if op == "ack":
                q.acknowledge(exc, now)
        assert len(q) == len(model) <= capacity
        assert [e.code for e in q.queued()] == model
    assert q.dropped == overflowed
