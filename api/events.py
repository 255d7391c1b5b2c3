"""The event envelope and the catalog of event names.

Every event the agent emits has a name from :data:`CATALOG`, which fixes its channel, except
the generic ``machineException``, which goes out on the channel of its exception code's
category (:data:`ROUTED_EVENTS`; docs/events.md, "Exception codes"). The
customer-facing shape is ``{"event", "timestamp", "data"}``; the outbox adds ``seq`` and
``id`` and the uplink wraps it with ``type``, ``channel`` and ``terminalId`` (docs/protocol.md).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any


class Channel(enum.StrEnum):
    GAME = "game"
    CASH = "cash"
    ALERTS = "alerts"
    SYSTEM = "system"
    PLAYER = "player"


#: Event name -> channel. docs/events.md documents each one.
CATALOG: Mapping[str, Channel] = {
    # game
    "gameStarted": Channel.GAME,
    "betPlaced": Channel.GAME,
    "gameEnded": Channel.GAME,
    "winPaid": Channel.GAME,
    "gameSelected": Channel.GAME,
    "balanceChanged": Channel.GAME,
    "progressiveHit": Channel.GAME,
    # cash
    "billAccepted": Channel.CASH,
    "ticketPrinted": Channel.CASH,
    "ticketInserted": Channel.CASH,
    "ticketRedeemed": Channel.CASH,
    "handpayPending": Channel.CASH,
    "handpayReset": Channel.CASH,
    "cashout": Channel.CASH,
    "transferIn": Channel.CASH,
    "transferOut": Channel.CASH,
    # alerts
    "doorOpened": Channel.ALERTS,
    "doorClosed": Channel.ALERTS,
    "cashboxRemoved": Channel.ALERTS,
    "cashboxInstalled": Channel.ALERTS,
    "tilt": Channel.ALERTS,
    "billAcceptorFault": Channel.ALERTS,
    "printerFault": Channel.ALERTS,
    "powerLost": Channel.ALERTS,
    "powerRestored": Channel.ALERTS,
    "memoryError": Channel.ALERTS,
    "meterRollback": Channel.ALERTS,
    "dataGap": Channel.ALERTS,
    "bypassAttempt": Channel.ALERTS,
    "machineLinkDown": Channel.ALERTS,
    "machineLinkUp": Channel.ALERTS,
    "deviceOffline": Channel.ALERTS,
    "deviceOnline": Channel.ALERTS,
    "outboxFault": Channel.ALERTS,
    "unexplainedMeterChange": Channel.ALERTS,
    # routed by category (ROUTED_EVENTS); alerts for undefined codes and the default
    "machineException": Channel.ALERTS,
    # system
    "agentStarted": Channel.SYSTEM,
    "agentStopping": Channel.SYSTEM,
    "machineIdentified": Channel.SYSTEM,
    "meterSnapshot": Channel.SYSTEM,
    "metersReset": Channel.SYSTEM,
    "machineLocked": Channel.SYSTEM,
    "machineUnlocked": Channel.SYSTEM,
    "gameLocked": Channel.SYSTEM,
    "gameUnlocked": Channel.SYSTEM,
    "optionsChanged": Channel.SYSTEM,
    "operatorMenu": Channel.SYSTEM,
    "actionCompleted": Channel.SYSTEM,
    "clockSkew": Channel.SYSTEM,
    # player
    "cardInserted": Channel.PLAYER,
    "cardRemoved": Channel.PLAYER,
    "playerSessionStarted": Channel.PLAYER,
    "playerSessionEnded": Channel.PLAYER,
}

#: Events whose channel is chosen per event (``Event.route``) among these; the catalog
#: channel is the default. A SAS exception code with no specific event becomes
#: ``machineException`` on its category's channel (agent.derive.exceptions_map.CATEGORY_CHANNEL).
ROUTED_EVENTS: Mapping[str, frozenset[Channel]] = {
    "machineException": frozenset({Channel.GAME, Channel.CASH, Channel.ALERTS, Channel.SYSTEM}),
}


#: Each catalog name's channels, built once: every received event is checked against them
#: (api/checks.py), and building the set per event cost about half a microsecond.
_CHANNELS_OF: dict[str, frozenset[Channel]] = {
    name: ROUTED_EVENTS.get(name, frozenset({channel})) for name, channel in CATALOG.items()}


def channels_of(name: str) -> frozenset[Channel] | None:
    """The channels event ``name`` may go out on; None for a name not in the catalog."""
    return _CHANNELS_OF.get(name)


#: Events the outbox never drops to make room (docs/operations.md, "Outbox size cap").
PROTECTED_CHANNELS = frozenset({Channel.CASH, Channel.ALERTS})
PROTECTED_EVENTS = frozenset({"betPlaced", "winPaid", "actionCompleted", "metersReset"})


def utc_timestamp(epoch_seconds: float) -> str:
    """UTC ISO-8601 with milliseconds and ``Z``, the only timestamp form on the wire."""
    dt = datetime.fromtimestamp(epoch_seconds, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class Event:
    """One business event before it is stored (no seq yet)."""

    name: str
    timestamp: str
    data: Mapping[str, Any] = field(default_factory=dict)
    #: the channel of a routed event (:data:`ROUTED_EVENTS`); None: the catalog's
    route: Channel | None = None

    def __post_init__(self) -> None:
        if self.name not in CATALOG:
            raise ValueError(f"unknown event name {self.name!r}")
        if self.route is not None and self.route not in ROUTED_EVENTS.get(self.name, ()):
            raise ValueError(f"{self.name} cannot go out on channel {self.route.value!r}")

    @property
    def channel(self) -> Channel:
        return self.route if self.route is not None else CATALOG[self.name]

    @property
    def protected(self) -> bool:
        """Money and alert events: never dropped by the outbox size cap."""
        return self.channel in PROTECTED_CHANNELS or self.name in PROTECTED_EVENTS


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event with its identity, as kept in the outbox and sent on the wire."""

    seq: int
    terminal_id: str
    event: Event

    @property
    def id(self) -> str:
        return f"{self.terminal_id}-{self.seq}"

    def to_wire(self) -> dict[str, Any]:
        """The `event` frame of docs/protocol.md."""
        return {
            "type": "event",
            "id": self.id,
            "seq": self.seq,
            "channel": self.event.channel.value,
            "terminalId": self.terminal_id,
            "event": self.event.name,
            "timestamp": self.event.timestamp,
            "data": dict(self.event.data),
        }


def wire_text(seq: int, terminal_id: str, name: str, channel: str, timestamp: str,
              data_json: str) -> str:
    """The `event` frame of :meth:`StoredEvent.to_wire` as compact JSON text, ``data_json``
    spliced in as it is.

    The uplink sends what the outbox stored without decoding and encoding each event's data
    again (docs/performance.md, "Backlog drain"). ``data_json`` must be the JSON text of an
    object, which is how the outbox stores it; the other values are quoted here, so the frame
    is valid JSON with the keys of :meth:`StoredEvent.to_wire`, in the same order.
    """
    return (f'{{"type":"event","id":{encode_basestring(f"{terminal_id}-{seq}")},'
            f'"seq":{seq:d},"channel":{encode_basestring(channel)},'
            f'"terminalId":{encode_basestring(terminal_id)},"event":{encode_basestring(name)},'
            f'"timestamp":{encode_basestring(timestamp)},"data":{data_json}}}')
