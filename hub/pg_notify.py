"""PostgreSQL notifications between hub instances (hub/cluster.py): the channels, the
payloads (the ids of inserted rows as runs, ``1-3,7``), and the queries that read the rows a
notification announces.

Kept apart from hub/store_pg.py, which writes the rows and sends the notifications, because
the cluster reads them (and tests forge them) without needing the store.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hub.store_sql import EventWrite, _readable

#: Channel of the event notifications: ``<origin> <n>[-<m>][,…]`` (inserted row ids).
EVENTS_CHANNEL = "slot_hub_events"
#: Channel of the notice notifications: ``<origin> <n>`` (a row of ``notices``).
NOTICES_CHANNEL = "slot_hub_notices"
#: PostgreSQL's limit on a notification's payload is 8000 bytes; stay well below.
_MAX_PAYLOAD = 7000


def id_ranges(ids: Iterable[int]) -> str:
    """``1-3,7``: sorted row ids as ranges (a notification's payload)."""
    out: list[str] = []
    run: list[int] = []
    for n in sorted(ids):
        if run and n == run[1] + 1:
            run[1] = n
            continue
        if run:
            out.append(str(run[0]) if run[0] == run[1] else f"{run[0]}-{run[1]}")
        run = [n, n]
    if run:
        out.append(str(run[0]) if run[0] == run[1] else f"{run[0]}-{run[1]}")
    return ",".join(out)


def parse_ranges(text: str) -> list[tuple[int, int]]:
    """The inverse of :func:`id_ranges`: ``[(first, last), …]``."""
    spans = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        spans.append((int(first), int(last or first)))
    return spans


def _payloads(origin: str, ids: list[int]) -> list[str]:
    """``<origin> <ranges>`` notifications, each under PostgreSQL's payload limit."""
    ranges = id_ranges(ids).split(",") if ids else []
    payloads: list[str] = []
    chunk: list[str] = []
    size = len(origin) + 1
    for part in ranges:
        if chunk and size + len(part) + 1 > _MAX_PAYLOAD:
            payloads.append(f"{origin} {','.join(chunk)}")
            chunk, size = [], len(origin) + 1
        chunk.append(part)
        size += len(part) + 1
    if chunk:
        payloads.append(f"{origin} {','.join(chunk)}")
    return payloads


#: The rows of an event notification (:func:`parse_ranges`: arrays of firsts and lasts).
#: One JSON array of row objects (``rows``): decoded by the json module, not row by row.
EVENTS_BY_IDS = (
    "SELECT coalesce(json_agg(json_build_object('n', e.n, 'source', e.source, 'seq', e.seq,"
    " 'id', e.id, 'terminal_id', e.terminal_id, 'channel', e.channel, 'event', e.event,"
    " 'timestamp', e.timestamp, 'data', e.data) ORDER BY e.n), '[]'::json) AS rows"
    " FROM events e JOIN unnest(%s::bigint[], %s::bigint[]) AS r(lo, hi)"
    " ON e.n BETWEEN r.lo AND r.hi")

#: As :data:`EVENTS_BY_IDS`, each row ready: ``[source, frame]``, the frame's ``data``
#: decoded by the same one decoding (:func:`frames_to_writes`). The rows were written by a
#: hub from checked frames; a row this cannot read (damaged, or written by an older hub
#: without the nesting bound) fails the query, and the caller reads them the careful way.
EVENTS_BY_IDS_FAST = (
    "SELECT coalesce(json_agg(json_build_array(e.source, json_build_object('type', 'event',"
    " 'id', e.id, 'seq', e.seq, 'channel', e.channel, 'terminalId', e.terminal_id,"
    " 'event', e.event, 'timestamp', e.timestamp, 'data', e.data::json, 'cursor', e.n))"
    " ORDER BY e.n),"
    " '[]'::json) AS rows FROM events e JOIN unnest(%s::bigint[], %s::bigint[]) AS r(lo, hi)"
    " ON e.n BETWEEN r.lo AND r.hi")


def frames_to_writes(rows: Iterable[list[Any]]) -> list[EventWrite]:
    """Rows read with :data:`EVENTS_BY_IDS_FAST` as writes (a terminal's event carries its
    seq as acknowledged); rows whose ``data`` is not an object are left out."""
    out = []
    for source, frame in rows:
        if isinstance(frame.get("data"), dict):
            acked = frame["seq"] if source == frame["terminalId"] else None
            out.append(EventWrite(frame, source, acked))
    return out


#: The row of a notice notification.
NOTICE_BY_ID = "SELECT kind, body FROM notices WHERE n = %s"


def rows_to_writes(rows: Iterable[dict[str, Any]]) -> list[EventWrite]:
    """Rows read with :data:`EVENTS_BY_IDS` as the writes they were, in storage order; a
    terminal's event carries its seq as acknowledged. Unreadable rows are left out."""
    out = []
    for row in rows:
        frame = _readable(row)
        if frame is not None:
            source = row["source"]
            acked = int(row["seq"]) if source == frame["terminalId"] else None
            out.append(EventWrite(frame, source, acked))
    return out
