"""Client subscriptions: a list of filters, each matching on channel, event and terminal.

An empty list in a filter means "all"; an event is delivered when any filter matches it
(docs/protocol.md §5, subscribe).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Filter:
    channels: frozenset[str] = frozenset()
    events: frozenset[str] = frozenset()
    terminals: frozenset[str] = frozenset()

    @classmethod
    def from_message(cls, msg: Mapping[str, Any]) -> Filter:
        """From a validated ``subscribe``/``unsubscribe`` message."""
        return cls(frozenset(msg.get("channels") or ()), frozenset(msg.get("events") or ()),
                   frozenset(msg.get("terminals") or ()))

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

    def subscribe(self, flt: Filter) -> None:
        if flt not in self.filters:
            self.filters.append(flt)

    def unsubscribe(self, flt: Filter) -> None:
        if flt.empty:
            self.filters.clear()
        elif flt in self.filters:
            self.filters.remove(flt)

    def matches(self, frame: Mapping[str, Any]) -> bool:
        return any(f.matches(frame["channel"], frame["event"], frame["terminalId"])
                   for f in self.filters)

    def terminal_scope(self) -> frozenset[str] | None:
        """Terminals the subscription covers; None means all of them."""
        if not self.filters or any(not f.terminals for f in self.filters):
            return None
        return frozenset().union(*(f.terminals for f in self.filters))

    def to_wire(self) -> list[dict[str, list[str]]]:
        return [f.to_wire() for f in self.filters]
