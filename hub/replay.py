"""``subscribe`` with ``from``: the stored events, then the live stream, no gap, no duplicate.

The filter is registered first, *replaying* (it matches no live event). Pages of stored
events matching it, above the start cursor, are read from the store and queued for the
client, waiting for its queue to drain between pages (a long replay never overflows it).
When a page comes back short, every event stored so far has been read: in the same step of
the event loop (no ``await`` in between, so no fan-out can run) the filter goes live with
the last cursor read as its floor. An event stored before that read but fanned out after it
is at or below the floor and is dropped as a duplicate; every later event is above it and is
delivered live. Events are fanned out in cursor order (hub.ingest: transactions commit and
are published in one order), so no event is skipped. docs/protocol.md §5, "Resuming".
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from api import wire
from hub.history import EventQuery, cursor_before_time, head_cursor, query_events

if TYPE_CHECKING:
    from hub.store_sql import Db
    from hub.subscriptions import Filter, Subscription

#: Events read and queued per page: at most half a client's queue, so live frames fit too.
PAGE = 200


def start_cursor(db: Db, start: int | str, now: float) -> int:
    """The cursor to replay after: ``from`` itself, or the last one received before the
    ``from`` time (a future time: the newest, so only live events follow).

    A cursor above the newest stored one was never handed out by this database (a client's
    cursor from before the hub's database was replaced): the replay starts after the newest
    instead, or the filter's live events would all be taken for replayed ones, up to it."""
    if isinstance(start, int):
        return min(start, head_cursor(db))
    return cursor_before_time(db, min(wire.parse_timestamp(start), now + 1.0))


async def replay(db: Db, peer: Any, subscription: Subscription, flt: Filter,
                 after: int, request_id: str | None) -> int:
    """Send the stored events matching ``flt`` above cursor ``after``, then a ``replayed``;
    ``flt`` is live when this returns. Returns the number of events replayed."""
    count = 0
    cursor = after
    page = max(1, min(PAGE, peer.queue.maxsize // 2))
    while True:
        if flt not in subscription.filters:
            return count  # unsubscribed meanwhile: nothing more, no `replayed`
        frames, _ = query_events(db, EventQuery(
            terminals=sorted(flt.terminals), events=sorted(flt.events),
            channels=sorted(flt.channels), after=cursor, limit=page))
        for frame in frames:
            if not peer.send_text(wire.encode(frame)):
                return count  # dropped as a slow consumer
        count += len(frames)
        if frames:
            cursor = frames[-1]["cursor"]
        if len(frames) < page:
            # Everything stored is read: go live in this same step (see module docstring).
            if subscription.go_live(flt, cursor):
                peer.send_text(wire.encode(wire.replayed(count, cursor, request_id)))
            return count
        # Yield between pages even to a client that takes them as fast as they come (they
        # go straight to its socket): the loop serves the other peers, and this client's
        # own messages (an unsubscribe ends this replay), between two pages.
        await asyncio.sleep(0)
        # Let the client take this page before queuing the next (a short poll: a queue has
        # no "below n" wait, and join() could wait for ever under a steady live stream).
        while peer.queue.qsize() > peer.queue.maxsize - 2 * page and not peer.dropped:
            await asyncio.sleep(0.005)
        if peer.dropped:
            return count
