"""Every WebSocket message as a frozen class (docs/protocol.md, one class per shape).

A message is built as one of these classes and turned into its frame with ``to_wire()``
(the builders of :mod:`api.wire` do exactly that); a received frame becomes one with
:mod:`api.decode`, after :func:`api.parse.parse_message` has checked it. Field names are the
wire names in snake case; :data:`_RENAMED` lists the few that differ otherwise (``from`` is a
Python keyword). ``None`` always means "left out": the protocol never sends an optional field
as ``null`` (protocol.md §1). Free-form objects (an event's ``data``, an action's ``params``,
a terminal state, the frames inside a ``snapshot``) stay mappings, checked by
:mod:`api.checks` like every field here.

tests/test_messages.py holds these classes to the builders, to the checker (round trip and
any JSON value) and to docs/schemas/*.json both ways (every instance validates; every field
a schema requires is required here).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from api.codes import (
    PROTOCOL_VERSION,
    ActionAckStatus,
    ActionStatus,
    ErrorCode,
    MessageType,
    Role,
)

#: Python field name -> wire key, where snake case to camel case does not give it.
_RENAMED = {"sender": "from", "start": "from"}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


_AS_IS, _COPY, _LIST, _VALUE = range(4)


def _kind(annotation: str) -> int:
    """How a field of this (string) annotation goes on the wire."""
    if annotation.startswith("tuple["):
        return _LIST
    if annotation.startswith("Mapping["):
        return _COPY
    if annotation.split(" ")[0] in {"ErrorCode", "Role", "ActionAckStatus", "ActionStatus"}:
        return _VALUE
    return _AS_IS


def _item(value: Any) -> Any:
    return value.to_wire() if isinstance(value, _Wire) else dict(value)


class _Wire:
    """``to_wire()`` from the dataclass fields, in their order, leaving out ``None``."""

    __slots__ = ()
    _KEYS: ClassVar[dict[type, tuple[tuple[str, str, int], ...]]] = {}

    @classmethod
    def _keys(cls) -> tuple[tuple[str, str, int], ...]:
        keys = _Wire._KEYS.get(cls)
        if keys is None:
            keys = tuple((f.name, _RENAMED.get(f.name, _camel(f.name)), _kind(str(f.type)))
                         for f in fields(cls))  # type: ignore[arg-type]
            _Wire._KEYS[cls] = keys
        return keys

    def to_wire(self) -> dict[str, Any]:
        raise NotImplementedError

    def _fields_to_wire(self, out: dict[str, Any]) -> dict[str, Any]:
        for name, key, kind in self._keys():
            value = getattr(self, name)
            if value is None:
                continue
            if kind == _AS_IS:
                out[key] = value
            elif kind == _COPY:
                out[key] = dict(value)
            elif kind == _LIST:
                out[key] = [item if type(item) is str else _item(item) for item in value]
            else:
                out[key] = value.value
        return out


class Message(_Wire):
    """A WebSocket message: ``TYPE`` is its ``type``."""

    __slots__ = ()
    TYPE: ClassVar[MessageType]

    def to_wire(self) -> dict[str, Any]:
        """The frame as a dict, ready for :func:`api.wire.encode`."""
        return self._fields_to_wire({"type": self.TYPE.value})


@dataclass(frozen=True, slots=True)
class Filter(_Wire):
    """One subscription filter (an empty list matches everything)."""

    channels: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    terminals: tuple[str, ...] = ()

    def to_wire(self) -> dict[str, Any]:
        return self._fields_to_wire({})


# --------------------------------------------------------------------------- terminal path


@dataclass(frozen=True, slots=True)
class Hello(Message):
    """terminal -> hub, first message. ``machine``: the machine's state (``hostLocked``,
    optionally ``gameLocked``)."""

    TYPE: ClassVar[MessageType] = MessageType.HELLO
    terminal_id: str
    version: str
    last_seq: int
    protocol: int = PROTOCOL_VERSION
    machine: Mapping[str, Any] | None = None

    def to_wire(self) -> dict[str, Any]:  # the documented key order: protocol first
        msg: dict[str, Any] = {"type": self.TYPE.value, "protocol": self.protocol,
                               "terminalId": self.terminal_id, "version": self.version,
                               "lastSeq": self.last_seq}
        if self.machine is not None:
            msg["machine"] = dict(self.machine)
        return msg


@dataclass(frozen=True, slots=True)
class Welcome(Message):
    TYPE: ClassVar[MessageType] = MessageType.WELCOME
    protocol: int
    terminal_id: str
    acked_seq: int
    server_time: str


@dataclass(frozen=True, slots=True)
class EventFrame(Message):
    """An event, terminal -> hub and hub -> subscribers. ``cursor``: hub -> client only."""

    TYPE: ClassVar[MessageType] = MessageType.EVENT
    id: str
    seq: int
    channel: str
    terminal_id: str
    event: str
    timestamp: str
    data: Mapping[str, Any]
    cursor: int | None = None


@dataclass(frozen=True, slots=True)
class AckUpTo(Message):
    """hub -> terminal: every event up to ``up_to`` is stored. ``id``: only to be echoed in
    the ``error`` a client gets for sending one (the checker leaves it unchecked; it is
    kept when it could be echoed, a string of 1 to 128 characters)."""

    TYPE: ClassVar[MessageType] = MessageType.ACK
    up_to: int
    id: str | None = None


@dataclass(frozen=True, slots=True)
class AckAlert(Message):
    """operator -> hub: acknowledge one alert."""

    TYPE: ClassVar[MessageType] = MessageType.ACK
    event_id: str
    id: str | None = None


@dataclass(frozen=True, slots=True)
class AckTerminalAlerts(Message):
    """operator -> hub: acknowledge every open alert of one terminal."""

    TYPE: ClassVar[MessageType] = MessageType.ACK
    terminal_id: str
    id: str | None = None


@dataclass(frozen=True, slots=True)
class AckAllAlerts(Message):
    """operator -> hub: acknowledge every open alert (``"all": true``)."""

    TYPE: ClassVar[MessageType] = MessageType.ACK
    id: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return self._fields_to_wire({"type": self.TYPE.value, "all": True})


@dataclass(frozen=True, slots=True)
class Action(Message):
    """operator -> hub and hub -> terminal. ``sender`` is the wire's ``from``."""

    TYPE: ClassVar[MessageType] = MessageType.ACTION
    id: str
    terminal_id: str
    action: str
    params: Mapping[str, Any] | None = None
    expires_at: str | None = None
    issued_at: str | None = None
    reason: str | None = None
    sender: str | None = None
    signature: str | None = None


@dataclass(frozen=True, slots=True)
class ActionAck(Message):
    """terminal -> hub and hub -> clients (the hub adds ``action``, the action's name)."""

    TYPE: ClassVar[MessageType] = MessageType.ACTION_ACK
    id: str
    terminal_id: str
    status: ActionAckStatus
    action: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ActionResult(Message):
    """terminal -> hub and hub -> clients (the hub adds ``action``, the action's name)."""

    TYPE: ClassVar[MessageType] = MessageType.ACTION_RESULT
    id: str
    terminal_id: str
    status: ActionStatus
    action: str | None = None
    error: str | None = None
    result: Mapping[str, Any] | None = None


# --------------------------------------------------------------------------- client path


@dataclass(frozen=True, slots=True)
class Auth(Message):
    """``id``: only to be echoed in an ``error`` (as for :class:`AckUpTo`)."""

    TYPE: ClassVar[MessageType] = MessageType.AUTH
    token: str
    protocol: int | None = PROTOCOL_VERSION
    id: str | None = None


@dataclass(frozen=True, slots=True)
class AuthOk(Message):
    TYPE: ClassVar[MessageType] = MessageType.AUTH_OK
    role: Role
    name: str
    protocol: int = PROTOCOL_VERSION

    def to_wire(self) -> dict[str, Any]:  # the documented key order: protocol first
        return {"type": self.TYPE.value, "protocol": self.protocol, "role": self.role.value,
                "name": self.name}


@dataclass(frozen=True, slots=True)
class Subscribe(Message):
    """client -> hub: add a filter; ``start`` (the wire's ``from``): replay after this
    cursor, or from this timestamp, before the live stream."""

    TYPE: ClassVar[MessageType] = MessageType.SUBSCRIBE
    channels: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    terminals: tuple[str, ...] = ()
    id: str | None = None
    start: int | str | None = None

    @property
    def filter(self) -> Filter:
        return Filter(self.channels, self.events, self.terminals)


@dataclass(frozen=True, slots=True)
class Unsubscribe(Message):
    """client -> hub: remove the filter equal to this one (all empty: every filter)."""

    TYPE: ClassVar[MessageType] = MessageType.UNSUBSCRIBE
    channels: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    terminals: tuple[str, ...] = ()
    id: str | None = None

    @property
    def filter(self) -> Filter:
        return Filter(self.channels, self.events, self.terminals)


@dataclass(frozen=True, slots=True)
class Subscribed(Message):
    TYPE: ClassVar[MessageType] = MessageType.SUBSCRIBED
    filters: tuple[Filter, ...]
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Replayed(Message):
    """The end of a ``subscribe`` replay: ``count`` events sent, the last cursor."""

    TYPE: ClassVar[MessageType] = MessageType.REPLAYED
    count: int
    cursor: int
    id: str | None = None


@dataclass(frozen=True, slots=True)
class AlertAck(Message):
    TYPE: ClassVar[MessageType] = MessageType.ALERT_ACK
    event_id: str
    terminal_id: str
    by: str
    at: str


@dataclass(frozen=True, slots=True)
class GetState(Message):
    TYPE: ClassVar[MessageType] = MessageType.GET_STATE
    id: str | None = None


@dataclass(frozen=True, slots=True)
class History(Message):
    """client -> hub: one page of stored events (protocol.md §5 ``history``); an empty list
    is left out, like an absent one (all)."""

    TYPE: ClassVar[MessageType] = MessageType.HISTORY
    terminals: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    id: str | None = None
    since: str | None = None
    until: str | None = None
    after: int | None = None
    before: int | None = None
    limit: int | None = None

    def to_wire(self) -> dict[str, Any]:
        msg = self._fields_to_wire({"type": self.TYPE.value})
        for key in ("terminals", "events", "channels"):
            if not msg[key]:
                del msg[key]
        return msg


@dataclass(frozen=True, slots=True)
class HistoryPage(Message):
    """hub -> client: the answer to ``history``; ``events``: stored event frames with their
    ``cursor``; ``next``: the cursor to continue from, None (sent as null) on the last
    page; ``order``: ``oldest-first`` or ``newest-first``."""

    TYPE: ClassVar[MessageType] = MessageType.HISTORY_PAGE
    events: tuple[Mapping[str, Any], ...]
    next: int | None
    order: str
    id: str | None = None

    def to_wire(self) -> dict[str, Any]:
        msg: dict[str, Any] = {"type": self.TYPE.value,
                               "events": [dict(e) for e in self.events], "next": self.next,
                               "order": self.order}
        if self.id is not None:
            msg["id"] = self.id
        return msg


@dataclass(frozen=True, slots=True)
class Snapshot(Message):
    """hub -> client. ``terminals``: terminal states; ``alerts``, ``recent``: event frames;
    ``coin_in_per_minute``: 60 ``{"minute", "amount"}`` points (protocol.md §5)."""

    TYPE: ClassVar[MessageType] = MessageType.SNAPSHOT
    at: str
    terminals: tuple[Mapping[str, Any], ...]
    alerts: tuple[Mapping[str, Any], ...]
    recent: tuple[Mapping[str, Any], ...]
    coin_in_per_minute: tuple[Mapping[str, Any], ...]
    id: str | None = None
    #: the casino's time (hub config ``timezone``, ``gaming_day_start``; protocol.md §5)
    timezone: str | None = None
    gaming_day_start: int | None = None
    gaming_day: str | None = None
    utc_offset_minutes: int | None = None


@dataclass(frozen=True, slots=True)
class TerminalState(Message):
    """hub -> every client: one terminal's state changed (the wire's ``terminal``)."""

    TYPE: ClassVar[MessageType] = MessageType.TERMINAL
    terminal: Mapping[str, Any]


# --------------------------------------------------------------------------- both paths


@dataclass(frozen=True, slots=True)
class Error(Message):
    TYPE: ClassVar[MessageType] = MessageType.ERROR
    code: ErrorCode
    message: str
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Ping(Message):
    TYPE: ClassVar[MessageType] = MessageType.PING
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Pong(Message):
    TYPE: ClassVar[MessageType] = MessageType.PONG
    id: str | None = None


#: What each side receives on each path (the classes of :data:`api.codes.TERMINAL_TO_HUB`...).
FromTerminal = Hello | EventFrame | ActionAck | ActionResult | Ping | Pong
ToTerminal = Welcome | AckUpTo | Action | Error | Ping | Pong
AlertAckRequest = AckAlert | AckTerminalAlerts | AckAllAlerts
FromClient = (Auth | Subscribe | Unsubscribe | AckUpTo | AckAlert | AckTerminalAlerts
              | AckAllAlerts | Action | GetState | History | Ping | Pong)
ToClient = (AuthOk | Snapshot | Subscribed | Replayed | EventFrame | TerminalState | AlertAck
            | ActionAck | ActionResult | HistoryPage | Error | Ping | Pong)

#: Every message class (one per shape; ``ack`` has four).
MESSAGE_CLASSES: tuple[type[Message], ...] = (
    Hello, Welcome, EventFrame, AckUpTo, AckAlert, AckTerminalAlerts, AckAllAlerts, Action,
    ActionAck, ActionResult, Auth, AuthOk, Subscribe, Unsubscribe, Subscribed, Replayed,
    AlertAck, GetState, History, HistoryPage, Snapshot, TerminalState, Error, Ping, Pong,
)
