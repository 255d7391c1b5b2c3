"""Read-side queries over the stored events: pages by cursor, time to cursor, summaries.

Everything here reads the store's event-loop connection (``HubStore.reader``); nothing
writes. Used by the replay of ``subscribe`` with ``from`` (hub.replay) and by the HTTP
history API (hub.http_api). docs/protocol.md §5 (resuming) and §12 (history API).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from api.wire import format_timestamp
from hub.gaming_day import GamingDay
from hub.store import stored_frame

#: Most events one page of the history API returns.
MAX_PAGE = 1000
DEFAULT_PAGE = 100


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Which events: empty lists mean all; ``since``/``until`` bound the event ``timestamp``
    (since <= timestamp < until); ``after``/``before`` bound the cursor (exclusive).
    Oldest first, except with ``before`` (and no ``after``): newest first, for paging back."""

    terminals: Sequence[str] = ()
    events: Sequence[str] = ()
    channels: Sequence[str] = ()
    since: str | None = None
    until: str | None = None
    after: int | None = None
    before: int | None = None
    limit: int = DEFAULT_PAGE

    @property
    def newest_first(self) -> bool:
        return self.before is not None and self.after is None


def _in(column: str, values: Sequence[str], where: list[str], args: list[Any]) -> None:
    if values:
        where.append(f"{column} IN ({','.join('?' * len(values))})")
        args.extend(values)


def query_events(db: sqlite3.Connection, q: EventQuery) -> tuple[list[dict[str, Any]],
                                                                  int | None]:
    """One page of events and the cursor to continue from (None: nothing more).

    Continue with ``after=next`` (oldest first) or ``before=next`` (newest first)."""
    where: list[str] = []
    args: list[Any] = []
    _in("terminal_id", q.terminals, where, args)
    _in("event", q.events, where, args)
    _in("channel", q.channels, where, args)
    if q.since is not None:
        where.append("timestamp >= ?")
        args.append(q.since)
    if q.until is not None:
        where.append("timestamp < ?")
        args.append(q.until)
    if q.after is not None:
        where.append("n > ?")
        args.append(q.after)
    if q.before is not None:
        where.append("n < ?")
        args.append(q.before)
    sql = "SELECT * FROM events"
    if where:
        sql += " WHERE " + " AND ".join(where)
    order = "DESC" if q.newest_first else "ASC"
    limit = max(1, min(q.limit, MAX_PAGE))
    rows = db.execute(f"{sql} ORDER BY n {order} LIMIT ?", (*args, limit + 1)).fetchall()
    more = len(rows) > limit
    # A row that cannot be read back is skipped, never the page (hub.store._readable); the
    # next page starts after the last row read, readable or not.
    frames = [f for f in map(stored_frame, rows[:limit]) if f is not None]
    return frames, (int(rows[limit - 1]["n"]) if more else None)


def head_cursor(db: sqlite3.Connection) -> int:
    """The cursor of the newest stored event (0 if none)."""
    row = db.execute("SELECT max(n) FROM events").fetchone()
    return int(row[0] or 0)


def cursor_before_time(db: sqlite3.Connection, epoch: float) -> int:
    """The cursor after which the events the hub received at or after ``epoch`` are.

    Rows are appended as they are received, so ``received_at`` grows with the cursor; a
    binary search over row ids finds the boundary in a few point reads, without an index
    on ``received_at`` (which every insert would pay for).
    """
    lo_row = db.execute("SELECT min(n), max(n) FROM events").fetchone()
    if lo_row[0] is None:
        return 0
    lo, hi = int(lo_row[0]), int(lo_row[1]) + 1  # the answer's successor is in [lo, hi]
    while lo < hi:
        mid = (lo + hi) // 2
        row = db.execute("SELECT n, received_at FROM events WHERE n >= ? ORDER BY n LIMIT 1",
                         (mid,)).fetchone()
        if row is None or row[1] >= epoch:
            hi = mid
        else:
            lo = int(row[0]) + 1
    return lo - 1


# ------------------------------------------------------------------ summaries

#: The events a day's summary adds up (docs/events.md), per summary field.
_SUMS = {
    "betPlaced": "coinIn", "winPaid": "coinOut", "billAccepted": "bills",
    "ticketRedeemed": "ticketsIn", "ticketPrinted": "ticketsOut", "handpayPending": "handpays",
}


def _empty_row(terminal_id: str, info: dict[str, str]) -> dict[str, Any]:
    return {"terminalId": terminal_id, **info, "coinIn": 0, "coinOut": 0, "netWin": 0,
            "holdPercent": None, "games": 0,
            "bills": {"count": 0, "amount": 0}, "ticketsIn": {"count": 0, "amount": 0},
            "ticketsOut": {"count": 0, "amount": 0}, "handpays": {"count": 0, "amount": 0}}


def hold_percent(coin_in: int, coin_out: int) -> float | None:
    """(coin in - coin out) / coin in, in percent, two decimals; None without coin in."""
    if coin_in <= 0:
        return None
    return round((coin_in - coin_out) * 100.0 / coin_in, 2)


def day_summary(db: sqlite3.Connection, gaming_day: GamingDay, day: str,
                terminals: Iterable[str], registry: dict[str, dict[str, str]]
                ) -> dict[str, Any]:
    """Per-terminal figures of one gaming day (by event timestamp) and their totals.

    ``terminals``: the terminals to list (each appears, with zeros when it had nothing);
    ``registry``: optional ``bank`` / ``area`` per terminal (the token file).
    """
    start, end = gaming_day.bounds(day)
    since, until = format_timestamp(start), format_timestamp(end)
    ids = sorted(set(terminals))
    rows = {tid: _empty_row(tid, registry.get(tid, {})) for tid in ids}
    if ids:
        marks = ",".join("?" * len(ids))
        names = ",".join("?" * len(_SUMS))
        cur = db.execute(
            "SELECT terminal_id, event, count(*), total(json_extract(data, '$.amount')),"
            " total(coalesce(json_extract(data, '$.games'), 1)),"
            " total(coalesce(json_extract(data, '$.count'), 1))"
            f" FROM events WHERE terminal_id IN ({marks}) AND event IN ({names})"
            " AND timestamp >= ? AND timestamp < ? AND json_valid(data)"
            " GROUP BY terminal_id, event",
            (*ids, *_SUMS, since, until))
        for tid, event, count, amount, games, bills in cur.fetchall():
            row, key, total = rows[tid], _SUMS[event], int(amount)
            if key in ("coinIn", "coinOut"):  # a bet whose games meter was not read: 1
                row[key] = total
                if key == "coinIn":
                    row["games"] = int(games)
            else:
                # billAccepted may carry the number of bills; otherwise one event, one bill
                row[key] = {"count": int(bills) if key == "bills" else int(count),
                            "amount": total}
    totals = _empty_row("", {})
    del totals["terminalId"]
    for row in rows.values():
        row["netWin"] = row["coinIn"] - row["coinOut"]
        row["holdPercent"] = hold_percent(row["coinIn"], row["coinOut"])
        for key in ("coinIn", "coinOut", "netWin", "games"):
            totals[key] += row[key]
        for key in ("bills", "ticketsIn", "ticketsOut", "handpays"):
            totals[key] = {k: totals[key][k] + row[key][k] for k in ("count", "amount")}
    totals["holdPercent"] = hold_percent(totals["coinIn"], totals["coinOut"])
    return {"day": day, "timezone": gaming_day.timezone, "gamingDayStart": gaming_day.start_hour,
            "from": since, "until": until, "terminals": list(rows.values()), "totals": totals}


def latest_meters(db: sqlite3.Connection, terminals: Iterable[str]) -> list[dict[str, Any]]:
    """Each terminal's last ``meterSnapshot`` (the machine's own meters), or null."""
    out = []
    for tid in sorted(set(terminals)):
        row = db.execute("SELECT * FROM events WHERE terminal_id = ? AND event = 'meterSnapshot'"
                         " ORDER BY n DESC LIMIT 1", (tid,)).fetchone()
        frame = stored_frame(row) if row else None
        out.append({"terminalId": tid, "at": frame["timestamp"] if frame else None,
                    "cursor": frame["cursor"] if frame else None,
                    "meters": frame["data"].get("meters") if frame else None})
    return out
