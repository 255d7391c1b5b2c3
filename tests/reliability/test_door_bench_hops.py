"""The door benchmark's arithmetic (bench/e2e_latency.py): which door move an event belongs
to, the hops of an event from the machine's wire log (answers piled into one write count
one by one), and the transits between the line's capture and the machine's log. A wrong
hop would send the hunt for a stall to the wrong process (issue 17)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from e2e_latency import Received, acked_unanswered, hops, match, stalls  # noqa: E402

OFFSET = 1_000.0  # wall = monotonic + OFFSET


def test_each_event_pairs_with_the_latest_move_of_its_name_before_it() -> None:
    raised = [("doorOpened", 1.0), ("doorClosed", 2.0), ("doorOpened", 3.0),
              ("doorClosed", 4.0)]
    received = [("doorOpened", 1.1), ("doorOpened", 3.1), ("doorClosed", 4.2)]
    latencies, lost = match(raised, received)
    assert lost == [1]
    assert latencies == pytest.approx([100.0, 100.0, 200.0])


def test_a_read_with_a_sync_poll_after_a_general_poll_is_an_unanswered_ack() -> None:
    assert acked_unanswered("^80 ^81 ^81 ^81 ^80 ^81")
    assert not acked_unanswered("^80 ^81 ^81 ^81")
    assert not acked_unanswered("^80 ^81")


def test_hops_follow_the_code_from_the_move_to_the_subscriber() -> None:
    wire = [(10.000, "rx", "^80 ^81"), (10.001, "tx", "00"),  # before the move
            (10.030, "rx", "^80 ^81"), (10.031, "tx", "1e"),  # the poll that sees it
            (10.070, "rx", "^81"), (10.071, "tx", "1e")]  # the confirming re-send
    got = Received("doorClosed", 7, timestamp=10.071 + OFFSET, wall=10.080 + OFFSET,
                   mono=10.080)
    parts = hops(10.010, "1e", got, wire, OFFSET, created=10.073 + OFFSET,
                 hub_at=10.076 + OFFSET)
    assert parts == pytest.approx([21.0, 40.0, 0.0, 2.0, 3.0, 4.0], abs=1e-6)
    assert sum(parts) == pytest.approx(70.0, abs=1e-6)


def test_answers_piled_in_one_write_are_two_answers_at_once() -> None:
    wire = [(10.120, "rx", "^80 ^81 ^81 ^81"), (10.121, "tx", "1d1d1d")]
    got = Received("doorOpened", 3, timestamp=10.122 + OFFSET, wall=10.130 + OFFSET,
                   mono=10.130)
    parts = hops(10.000, "1d", got, wire, OFFSET, created=10.124 + OFFSET,
                 hub_at=10.127 + OFFSET)
    assert parts[:2] == pytest.approx([121.0, 0.0], abs=1e-6)


def test_stalls_show_a_poll_held_in_transit_while_the_machine_slept() -> None:
    wire = [(9.990, "wake", ""), (10.000, "rx", "^80 ^81"), (10.001, "tx", "00"),
            (10.075, "rx", "^81"), (10.076, "tx", "1d")]
    line = [(10.000, "tx", "80"), (10.000, "tx", "81"), (10.001, "rx", "00"),
            (10.040, "tx", "81"), (10.077, "rx", "1d")]
    asleep, to_machine, to_line = stalls(10.010, 10.100, wire, line)
    assert asleep == pytest.approx(74.0, abs=1e-6)  # 10.001 -> 10.075, nothing logged
    assert to_machine == pytest.approx(35.0, abs=1e-6)  # the re-send of 10.040
    assert to_line == pytest.approx(1.0, abs=1e-6)


def test_without_the_line_capture_the_transits_are_unknown() -> None:
    wire = [(10.000, "rx", "^80 ^81"), (10.001, "tx", "00")]
    asleep, to_machine, to_line = stalls(10.000, 10.050, wire, [])
    assert asleep == pytest.approx(1.0, abs=1e-6)
    assert to_machine != to_machine and to_line != to_line  # NaN
