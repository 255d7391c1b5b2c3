"""Read-side queries over the stored events: pages by cursor, time to cursor, summaries.

Everything here reads one connection of the store (``Store.reader``, a
:class:`hub.store_sql.Db`: the same queries on SQLite and PostgreSQL); nothing writes. Used by
the replay of ``subscribe`` with ``from`` (hub.replay) and by the HTTP history API
(hub.http_api). docs/protocol.md §5 (resuming) and §12 (history API).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from api.wire import format_timestamp
from hub.gaming_day import GamingDay
from hub.sql_dialect import conditions
from hub.store_sql import EVENT_COLUMNS, Db, _int64, one, stored_frame

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


def query_events(db: Db, q: EventQuery) -> tuple[list[dict[str, Any]], int | None]:
    """One page of events and the cursor to continue from (None: nothing more).

    Continue with ``after=next`` (oldest first) or ``before=next`` (newest first)."""
    where, args = conditions(
        db.dialect, [("e.terminal_id", q.terminals), ("e.event", q.events),
                     ("e.channel", q.channels)],
        [("e.timestamp >= ?", q.since), ("e.timestamp < ?", q.until), ("e.n > ?", q.after),
         ("e.n < ?", q.before)])
    sql = f"SELECT {EVENT_COLUMNS} FROM events e"
    if where:
        sql += " WHERE " + " AND ".join(where)
    order = "DESC" if q.newest_first else "ASC"
    limit = max(1, min(q.limit, MAX_PAGE))
    rows = db.rows(f"{sql} ORDER BY e.n {order} LIMIT ?", (*args, limit + 1))
    more = len(rows) > limit
    # A row that cannot be read back is skipped, never the page (hub.store_sql._readable);
    # the next page starts after the last row read, readable or not.
    frames = [f for f in map(stored_frame, rows[:limit]) if f is not None]
    return frames, (int(rows[limit - 1]["n"]) if more else None)


def head_cursor(db: Db) -> int:
    """The cursor of the newest stored event (0 if none)."""
    row = one(db, "SELECT max(n) AS n FROM events")
    return int(row["n"] or 0) if row else 0


def cursor_before_time(db: Db, epoch: float) -> int:
    """The cursor after which the events the hub received at or after ``epoch`` are.

    Rows are appended as they are received, so ``received_at`` grows with the cursor (on
    PostgreSQL within the clock agreement of the instances); a binary search over row ids
    finds the boundary in a few point reads, without an index on ``received_at`` (which
    every insert would pay for).
    """
    # Two subqueries: SQLite reads min() or max() alone from the end of the row ids, but
    # both in one SELECT scan the whole table.
    bounds = one(db, "SELECT (SELECT min(n) FROM events) AS lo, (SELECT max(n) FROM events)"
                     " AS hi")
    if bounds is None or bounds["lo"] is None:
        return 0
    lo, hi = int(bounds["lo"]), int(bounds["hi"]) + 1  # the answer's successor is in [lo, hi]
    while lo < hi:
        mid = (lo + hi) // 2
        row = one(db, "SELECT n, received_at FROM events WHERE n >= ? ORDER BY n LIMIT 1",
                  (mid,))
        if row is None or row["received_at"] >= epoch:
            hi = mid
        else:
            lo = int(row["n"]) + 1
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


def day_summary(db: Db, gaming_day: GamingDay, day: str,
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
        d = db.dialect
        mine, tid_args = d.one_of("e.terminal_id", ids)
        names, name_args = d.one_of("e.event", list(_SUMS))
        amount = d.total(d.number("amount"))
        games = d.total(f"coalesce({d.number('games')}, 1)")
        bills = d.total(f"coalesce({d.number('count')}, 1)")
        found = db.rows(
            f"SELECT e.terminal_id AS tid, e.event AS event, count(*) AS c,"
            f" {amount} AS amount, {games} AS games, {bills} AS bills"
            f" FROM events e {d.json_join} WHERE {mine} AND {names}"
            f" AND e.timestamp >= ? AND e.timestamp < ? AND {d.valid_sql}"
            " GROUP BY e.terminal_id, e.event",
            (*tid_args, *name_args, since, until))
        for r in found:
            tid, event, count = r["tid"], r["event"], r["c"]
            row, key, total = rows[tid], _SUMS[event], _int64(r["amount"])
            if key in ("coinIn", "coinOut"):  # a bet whose games meter was not read: 1
                row[key] = total
                if key == "coinIn":
                    row["games"] = _int64(r["games"])
            else:
                # billAccepted may carry the number of bills; otherwise one event, one bill
                row[key] = {"count": _int64(r["bills"]) if key == "bills" else int(count),
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


def latest_meters(db: Db, terminals: Iterable[str]) -> list[dict[str, Any]]:
    """Each terminal's last ``meterSnapshot`` (the machine's own meters), or null."""
    out = []
    for tid in sorted(set(terminals)):
        row = one(db, f"SELECT {EVENT_COLUMNS} FROM events e WHERE e.terminal_id = ?"
                      " AND e.event = 'meterSnapshot' ORDER BY e.n DESC LIMIT 1", (tid,))
        frame = stored_frame(row) if row else None
        out.append({"terminalId": tid, "at": frame["timestamp"] if frame else None,
                    "cursor": frame["cursor"] if frame else None,
                    "meters": frame["data"].get("meters") if frame else None})
    return out
