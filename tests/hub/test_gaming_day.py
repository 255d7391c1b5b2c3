"""The gaming day: local start hour in an IANA zone, DST days of 23 and 25 hours."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.gaming_day import GamingDay, GamingDayError


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_a_day_starts_at_the_local_hour() -> None:
    vegas = GamingDay("America/Los_Angeles", 6)  # PDT in May: UTC-7
    start, end = vegas.bounds("2026-05-11")
    assert (start, end) == (utc("2026-05-11T13:00:00"), utc("2026-05-12T13:00:00"))
    assert vegas.day_of(utc("2026-05-11T12:59:59")) == "2026-05-10"
    assert vegas.day_of(utc("2026-05-11T13:00:00")) == "2026-05-11"
    assert vegas.utc_offset_minutes(start) == -420


def test_days_when_the_clocks_change_have_23_and_25_hours() -> None:
    berlin = GamingDay("Europe/Berlin", 6)
    spring = berlin.bounds("2026-03-28")  # clocks forward in the night of 28/29 March
    autumn = berlin.bounds("2026-10-24")  # back in the night of 24/25 October
    assert spring[1] - spring[0] == 23 * 3600
    assert autumn[1] - autumn[0] == 25 * 3600


def test_bad_values() -> None:
    with pytest.raises(GamingDayError):
        GamingDay().bounds("11/05/2026")
    with pytest.raises(ValueError, match=r"0\.\.23"):
        GamingDay("UTC", 24)
    with pytest.raises(ValueError, match="unknown IANA"):
        GamingDay("Nowhere/Town")


@given(st.floats(min_value=0, max_value=4e9), st.integers(0, 23),
       st.sampled_from(["UTC", "America/Los_Angeles", "Europe/Berlin", "Asia/Macau",
                        "Australia/Lord_Howe"]))
def test_every_instant_is_in_the_day_it_is_said_to_be_in(epoch: float, hour: int,
                                                         zone: str) -> None:
    day = GamingDay(zone, hour)
    start, end = day.bounds(day.day_of(epoch))
    assert start <= epoch < end
