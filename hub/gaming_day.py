"""The casino's day: a time zone and the hour the gaming day starts (hub config).

A gaming day is named by the local date on which it starts: with ``gaming_day_start: 6``
in ``America/Los_Angeles``, day ``2026-05-11`` runs from 06:00 local on 11 May to 06:00 local
on 12 May (23 or 25 hours when the clocks change in between). Every "today" of the hub
(the terminals' coin in/out, the summaries) is the gaming day holding the hub's clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class GamingDayError(ValueError):
    """A bad day string (``YYYY-MM-DD``)."""


def load_zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; ValueError names it when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {name!r}") from None


@dataclass(frozen=True, slots=True)
class GamingDay:
    timezone: str = "UTC"
    start_hour: int = 0
    zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0 <= self.start_hour <= 23:
            raise ValueError(f"gaming_day_start must be an hour 0..23, got {self.start_hour}")
        object.__setattr__(self, "zone", load_zone(self.timezone))

    def day_of(self, epoch_seconds: float) -> str:
        """The gaming day (``YYYY-MM-DD``) holding this instant."""
        local = datetime.fromtimestamp(epoch_seconds, tz=self.zone)
        return (local - timedelta(hours=self.start_hour)).date().isoformat()

    def bounds(self, day: str) -> tuple[float, float]:
        """Epoch seconds of the start and the end (exclusive) of gaming day ``day``."""
        try:
            first = date.fromisoformat(day)
        except ValueError:
            raise GamingDayError(f"day must be YYYY-MM-DD, got {day[:40]!r}") from None
        start = datetime.combine(first, time(self.start_hour), tzinfo=self.zone)
        end = datetime.combine(first + timedelta(days=1), time(self.start_hour),
                               tzinfo=self.zone)
        return start.timestamp(), end.timestamp()

    def utc_offset_minutes(self, epoch_seconds: float) -> int:
        """The zone's offset from UTC at this instant (the dashboard shows local time)."""
        offset = datetime.fromtimestamp(epoch_seconds, tz=self.zone).utcoffset()
        return int(offset.total_seconds() // 60) if offset is not None else 0
