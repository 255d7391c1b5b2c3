"""The human status line: counts, rates and link state, for a person watching a terminal.

``slot-agent run`` and ``slot-agent demo`` feed a :class:`Progress` with :class:`Snapshot`
values. On a terminal the line is rewritten in place (``\\r``) at most every
``interval`` seconds; on a pipe or file a plain line is written every ``interval`` seconds,
so a log of the run stays readable. Started by systemd (:func:`agent.ops.logs.under_systemd`)
nothing is printed at all: the journal gets structured logs, ``systemctl status`` the
sd_notify ``STATUS=`` line (:func:`status_text`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TextIO

from agent.ops.logs import under_systemd

__all__ = ["Progress", "Snapshot", "format_line", "status_text"]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the daemon is doing now. Counts are totals since start."""

    link: str  # "up", "down" or "starting"
    events: int  # committed to the outbox
    games: int  # games played (the games counts of betPlaced events)
    coin_in_cents: int  # sum of betPlaced amounts
    outbox_depth: int  # not yet acknowledged by the hub
    uplink: str  # "connected", "connecting", "off" or the last error
    by_event: Mapping[str, int] = field(default_factory=dict)


def _money(cents: int) -> str:
    return f"{cents // 100:,}.{cents % 100:02d}"


def status_text(s: Snapshot) -> str:
    """One short line for sd_notify ``STATUS=`` (``systemctl status`` shows it)."""
    return (f"link {s.link}; outbox {s.outbox_depth} waiting; uplink {s.uplink}; "
            f"{s.events} events")


def format_line(s: Snapshot, *, games_per_min: float | None = None,
                events_per_s: float | None = None) -> str:
    """The line a person reads: link, games and their rate, coin in, events, outbox, uplink."""
    games = f"games {s.games}"
    if games_per_min is not None:
        games += f" ({games_per_min:.1f}/min)"
    events = f"events {s.events}"
    if events_per_s is not None:
        events += f" ({events_per_s:.1f}/s)"
    return (f"link {s.link} | {games} | coin in {_money(s.coin_in_cents)} | {events} | "
            f"outbox {s.outbox_depth} waiting | uplink {s.uplink}")


class Progress:
    """Writes snapshots for a person; silent when disabled (under systemd by default)."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        enabled: bool | None = None,
        interval: float = 1.0,
        in_place: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.enabled = (not under_systemd()) if enabled is None else enabled
        isatty = getattr(self.stream, "isatty", None)
        # In place only on a terminal, and not when log lines share it (they would land in
        # the middle of the rewritten line).
        self.tty = bool(isatty and isatty()) if in_place is None else in_place
        self.interval = interval if self.tty else max(interval, 5.0)
        self._clock = clock
        self._start = clock()
        self._first: Snapshot | None = None
        self._last_at: float | None = None
        self._dirty = False

    def rates(self, s: Snapshot, now: float) -> tuple[float | None, float | None]:
        """(games per minute, events per second) since the first snapshot."""
        elapsed = now - self._start
        if self._first is None or elapsed < 1.0:
            return None, None
        return ((s.games - self._first.games) * 60.0 / elapsed,
                (s.events - self._first.events) / elapsed)

    def update(self, s: Snapshot, *, force: bool = False) -> None:
        now = self._clock()
        if self._first is None:
            self._first = s
        if not self.enabled:
            return
        if not force and self._last_at is not None and now - self._last_at < self.interval:
            return
        self._last_at = now
        games_rate, events_rate = self.rates(s, now)
        line = format_line(s, games_per_min=games_rate, events_per_s=events_rate)
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
            self._dirty = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """A line of its own (the status line, if any, is ended first)."""
        if not self.enabled:
            return
        self.close()
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the in-place line so what follows starts on a fresh line."""
        if self._dirty:
            self.stream.write("\n")
            self.stream.flush()
            self._dirty = False
