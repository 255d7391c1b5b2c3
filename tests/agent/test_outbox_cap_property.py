"""Property: the size cap never drops a protected event, and every drop is reported."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.store.outbox import Outbox
from api.events import Event

TS = "2026-01-01T00:00:00.000Z"
NAMES = ["gameStarted", "gameEnded", "betPlaced", "billAccepted", "doorOpened", "meterSnapshot"]

step = st.one_of(
    st.tuples(st.just("commit"), st.lists(st.sampled_from(NAMES), min_size=1, max_size=6)),
    st.tuples(st.just("ack"), st.floats(min_value=0.0, max_value=1.0)),
)


@settings(max_examples=60, deadline=None)
@given(max_events=st.integers(min_value=1, max_value=12), steps=st.lists(step, max_size=25))
def test_cap_policy_keeps_protected_events_and_reports_every_drop(
    max_events: int, steps: list[tuple[str, object]]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ob = Outbox.open(Path(tmp) / "o.db", terminal_id="P1", max_events=max_events)
        committed: dict[int, Event] = {}
        dropped: set[int] = set()
        try:
            for kind, arg in steps:
                last_batch: set[int] = set()
                if kind == "commit":
                    assert isinstance(arg, list)
                    for s in ob.commit([Event(n, TS, {}) for n in arg], None):
                        committed[s.seq] = s.event
                        last_batch.add(s.seq)
                        if s.event.name == "dataGap":
                            lo, hi = s.event.data["fromSeq"], s.event.data["toSeq"]
                            in_range = {q for q in range(lo, hi + 1)
                                        if not committed[q].protected}
                            # the report counts exactly the unprotected events of its range
                            assert s.event.data["dropped"] == len(in_range)
                            assert not in_range & dropped
                            dropped |= in_range
                else:
                    assert isinstance(arg, float)
                    ob.ack(int(ob.last_seq * arg))
                present = {s.seq for s in ob.pending(0, 10_000)}
                acked = ob.acked_seq
                missing = {seq for seq in committed if seq > acked and seq not in present}
                # an unacknowledged protected event is never dropped, and every unacknowledged
                # event that is gone was reported by a dataGap
                assert not [seq for seq in missing if committed[seq].protected]
                assert missing == {seq for seq in dropped if seq > acked}
                # over the cap only when nothing droppable is left but the batch just stored
                if kind == "commit" and ob.rows > max_events:
                    assert ob.rows == ob.depth, "acked events must go before anything else"
                    assert all(
                        committed[seq].protected or seq in last_batch for seq in present
                    )
        finally:
            ob.close()
