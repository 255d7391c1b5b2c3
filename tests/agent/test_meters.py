"""The meter delta rule: increase, BCD rollover, decrease (SAS §3.8, §4.3 pitfall 2)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.derive.meters import Change, default_width, is_cents_meter, meter_delta, meter_name


@pytest.mark.parametrize(
    ("before", "after", "width", "change", "amount"),
    [
        (100, 100, 4, Change.SAME, 0),
        (100, 150, 4, Change.UP, 50),
        (99_999_990, 5, 4, Change.ROLLOVER, 15),  # 4-byte wrap at 10^8
        (99_999_999, 0, 4, Change.ROLLOVER, 1),
        (9_999_999_990, 20, 5, Change.ROLLOVER, 30),  # 5-byte wrap at 10^10
        (99_999_990, 5, 5, Change.DOWN, 0),  # a 5-byte meter near 10^8 has not wrapped
        (50_000_000, 10, 4, Change.DOWN, 0),  # from the middle: a reset or a rollback
        (95_000_000, 20_000_000, 4, Change.DOWN, 0),  # after not in the bottom 10 %
        (1_000, 999, 4, Change.DOWN, 0),
    ],
)
def test_meter_delta(before: int, after: int, width: int, change: Change, amount: int) -> None:
    delta = meter_delta(before, after, width)
    assert (delta.change, delta.amount) == (change, amount)


@given(st.integers(0, 10**8 - 1), st.integers(0, 10**7 - 1))
def test_unwrapped_delta_is_the_increment(start: int, increment: int) -> None:
    """Any increment under 10 % of the range is recovered exactly, wrapped or not."""
    after = (start + increment) % 10**8
    delta = meter_delta(start, after, 4)
    assert delta.amount == increment
    assert delta.change is not Change.DOWN


def test_widths_and_names() -> None:
    assert default_width(0x00) == 4
    assert default_width(0x0D) == 5
    assert default_width(0xA0) == 5
    # reference §3.10: the odd codes of 80-93 / A0-BD are 4-byte transaction counts
    assert default_width(0x81) == 4 and default_width(0xA1) == 4 and default_width(0xBD) == 4
    assert not is_cents_meter(0xB9) and is_cents_meter(0xB8)
    assert meter_name(0x00) == "coinIn"
    assert meter_name(0x44) == "bills20"
    assert meter_name(0x7E) == "meter7E"
