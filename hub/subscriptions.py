"""Client subscriptions: a list of filters, each matching on channel, event and terminal.

An empty list in a filter means "all"; an event is delivered when any filter matches it
(docs/protocol.md §5, subscribe).

A filter added with ``from`` is *replaying* (hub.replay) until the stored events are sent:
it matches no live event meanwhile. Then it goes live with a *floor*, the last cursor the
replay sent: a live event at or below it was in the replay and is not sent again (the events
stored but not yet fanned out when the replay read its last page).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from api.messages import Subscribe, Unsubscribe


@dataclass(frozen=True, slots=True)
class Filter:
    channels: frozenset[str] = frozenset()
    events: frozenset[str] = frozenset()
    terminals: frozenset[str] = frozenset()

    @classmethod
    def from_message(cls, msg: Subscribe | Unsubscribe) -> Filter:
        """From a ``subscribe``/``unsubscribe`` message."""
        return cls(frozenset(msg.channels), frozenset(msg.events), frozenset(msg.terminals))

    @property
    def empty(self) -> bool:
        return not (self.channels or self.events or self.terminals)

    def matches(self, channel: str, event: str, terminal_id: str) -> bool:
        return ((not self.channels or channel in self.channels)
                and (not self.events or event in self.events)
                and (not self.terminals or terminal_id in self.terminals))

    def to_wire(self) -> dict[str, list[str]]:
        return {"channels": sorted(self.channels), "events": sorted(self.events),
                "terminals": sorted(self.terminals)}


class Subscription:
    def __init__(self) -> None:
        self.filters: list[Filter] = []
        #: Filter -> None while it replays, or the cursor at or below which live events
        #: were replayed already (dropped until a later event passes).
        self._floors: dict[Filter, int | None] = {}

    def subscribe(self, flt: Filter, *, replaying: bool = False) -> None:
        if flt not in self.filters:
            self.filters.append(flt)
            if replaying:
                self._floors[flt] = None

    def unsubscribe(self, flt: Filter) -> None:
        if flt.empty:
            self.filters.clear()
            self._floors.clear()
        elif flt in self.filters:
            self.filters.remove(flt)
            self._floors.pop(flt, None)

    def go_live(self, flt: Filter, floor: int) -> bool:
        """End ``flt``'s replay: live events above ``floor`` are delivered from now on.
        False if the filter was removed meanwhile."""
        if flt not in self.filters:
            return False
        if self._floors.get(flt, 0) is None:
            self._floors[flt] = floor
        return True

    def takes_all(self) -> bool:
        """True if every live event matches (a filter naming nothing, and none replaying):
        the fan-out then sends this client what it sends every such client (hub/fanout.py)."""
        return not self._floors and any(f.empty for f in self.filters)

    def matches(self, frame: Mapping[str, Any]) -> bool:
        if not self._floors:
            return any(f.matches(frame["channel"], frame["event"], frame["terminalId"])
                       for f in self.filters)
        return any(self._live(f, frame) for f in self.filters)

    def _live(self, flt: Filter, frame: Mapping[str, Any]) -> bool:
        if not flt.matches(frame["channel"], frame["event"], frame["terminalId"]):
            return False
        if flt not in self._floors:
            return True
        floor = self._floors[flt]
        if floor is None:
            return False  # still replaying: the replay reads this event from the store
        cursor = frame.get("cursor")
        if isinstance(cursor, int) and cursor <= floor:
            return False  # the replay sent it
        del self._floors[flt]  # fan-out follows cursor order: no later event is below
        return True

    def terminal_scope(self) -> frozenset[str] | None:
        """Terminals the subscription covers; None means all of them."""
        if not self.filters or any(not f.terminals for f in self.filters):
            return None
        return frozenset().union(*(f.terminals for f in self.filters))

    def to_wire(self) -> list[dict[str, list[str]]]:
        return [f.to_wire() for f in self.filters]
