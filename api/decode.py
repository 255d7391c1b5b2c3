"""Reading a frame into its typed message: the one place a received text becomes a message.

Each path has its function (:func:`from_terminal` for the hub's ``/ws/terminal``,
:func:`from_client` for its ``/ws/client``, :func:`from_hub_to_terminal` for the agent,
:func:`from_hub_to_client` for a subscriber). Each reads the text with
:func:`api.parse.parse_message` (size, depth, value count, finite numbers, lone surrogates,
then the type's rules in :mod:`api.checks`) and builds the class of :mod:`api.messages`
from the checked object, so each raises :class:`api.codes.WireError` and nothing else, with
the codes of docs/protocol.md §6. Unknown fields are ignored (protocol.md §1): they are
checked by nothing and kept by nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, cast

from api.codes import (
    CLIENT_TO_HUB,
    HUB_TO_CLIENT,
    HUB_TO_TERMINAL,
    MAX_ID_LENGTH,
    TERMINAL_TO_HUB,
    ActionAckStatus,
    ActionStatus,
    ErrorCode,
    MessageType,
    Role,
)
from api.messages import (
    AckAlert,
    AckAllAlerts,
    AckTerminalAlerts,
    AckUpTo,
    Action,
    ActionAck,
    ActionResult,
    AlertAck,
    Auth,
    AuthOk,
    Error,
    EventFrame,
    Filter,
    FromClient,
    FromTerminal,
    GetState,
    Hello,
    History,
    HistoryPage,
    Message,
    Ping,
    Pong,
    Replayed,
    Snapshot,
    Subscribe,
    Subscribed,
    TerminalState,
    ToClient,
    ToTerminal,
    Unsubscribe,
    Welcome,
)
from api.parse import parse_message


def _echoable(value: object) -> str | None:
    """An id the checker left unchecked, kept when an ``error`` could echo it (the rule of
    :func:`api.parse.parse_message`'s ``ref_id``)."""
    return value if isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH else None


def _names(msg: dict[str, Any], key: str) -> tuple[str, ...]:
    return tuple(msg.get(key, ()))


def _event(m: dict[str, Any]) -> EventFrame:
    cursor = m.get("cursor")
    return EventFrame(m["id"], m["seq"], m["channel"], m["terminalId"], m["event"],
                      m["timestamp"], m["data"],
                      cursor if type(cursor) is int and cursor >= 1 else None)


def _ack(m: dict[str, Any]) -> Message:
    if "upTo" in m:
        return AckUpTo(m["upTo"], _echoable(m.get("id")))
    if "eventId" in m:
        return AckAlert(m["eventId"], m.get("id"))
    if "terminalId" in m:
        return AckTerminalAlerts(m["terminalId"], m.get("id"))
    return AckAllAlerts(m.get("id"))


def _action(m: dict[str, Any]) -> Action:
    return Action(m["id"], m["terminalId"], m["action"], m.get("params"), m.get("expiresAt"),
                  m.get("issuedAt"), m.get("reason"), m.get("from"), m.get("signature"))


def _filter(m: dict[str, Any]) -> Filter:
    return Filter(_names(m, "channels"), _names(m, "events"), _names(m, "terminals"))


#: type -> the class built from a checked object of that type.
_BUILD: dict[MessageType, Callable[[dict[str, Any]], Message]] = {
    MessageType.HELLO: lambda m: Hello(m["terminalId"], m["version"], m["lastSeq"],
                                       m["protocol"], m.get("machine")),
    MessageType.WELCOME: lambda m: Welcome(m["protocol"], m["terminalId"], m["ackedSeq"],
                                           m["serverTime"]),
    MessageType.EVENT: _event,
    MessageType.ACK: _ack,
    MessageType.ACTION: _action,
    MessageType.ACTION_ACK: lambda m: ActionAck(m["id"], m["terminalId"],
                                                ActionAckStatus(m["status"]), m.get("action"),
                                                m.get("error")),
    MessageType.ACTION_RESULT: lambda m: ActionResult(
        m["id"], m["terminalId"], ActionStatus(m["status"]), m.get("action"), m.get("error"),
        m.get("result")),
    MessageType.AUTH: lambda m: Auth(m["token"], m.get("protocol"), _echoable(m.get("id"))),
    MessageType.AUTH_OK: lambda m: AuthOk(Role(m["role"]), m["name"], m["protocol"]),
    MessageType.SUBSCRIBE: lambda m: Subscribe(
        _names(m, "channels"), _names(m, "events"), _names(m, "terminals"), m.get("id"),
        m.get("from")),
    MessageType.UNSUBSCRIBE: lambda m: Unsubscribe(
        _names(m, "channels"), _names(m, "events"), _names(m, "terminals"), m.get("id")),
    MessageType.SUBSCRIBED: lambda m: Subscribed(tuple(_filter(f) for f in m["filters"]),
                                                 m.get("id")),
    MessageType.REPLAYED: lambda m: Replayed(m["count"], m["cursor"], m.get("id")),
    MessageType.ALERT_ACK: lambda m: AlertAck(m["eventId"], m["terminalId"], m["by"],
                                              m["at"]),
    MessageType.GET_STATE: lambda m: GetState(m.get("id")),
    MessageType.HISTORY: lambda m: History(
        _names(m, "terminals"), _names(m, "events"), _names(m, "channels"), m.get("id"),
        m.get("since"), m.get("until"), m.get("after"), m.get("before"), m.get("limit")),
    MessageType.HISTORY_PAGE: lambda m: HistoryPage(tuple(m["events"]), m["next"],
                                                    m["order"], m.get("id")),
    MessageType.SNAPSHOT: lambda m: Snapshot(
        m["at"], tuple(m["terminals"]), tuple(m["alerts"]), tuple(m["recent"]),
        tuple(m["coinInPerMinute"]), m.get("id"), m.get("timezone"), m.get("gamingDayStart"),
        m.get("gamingDay"), m.get("utcOffsetMinutes")),
    MessageType.TERMINAL: lambda m: TerminalState(m["terminal"]),
    MessageType.ERROR: lambda m: Error(ErrorCode(m["code"]), m["message"], m.get("id")),
    MessageType.PING: lambda m: Ping(m.get("id")),
    MessageType.PONG: lambda m: Pong(m.get("id")),
}


def from_checked(msg: dict[str, Any]) -> Message:
    """The typed message of an object :func:`api.parse.parse_message` has accepted."""
    return _BUILD[MessageType(msg["type"])](msg)


def decode(text: str | bytes, *, max_bytes: int,
           accept: Collection[MessageType] | None = None) -> Message:
    """One frame -> its typed message; raises :class:`api.codes.WireError` only."""
    return from_checked(parse_message(text, max_bytes=max_bytes, accept=accept))


def from_terminal(text: str | bytes, *, max_bytes: int) -> FromTerminal:
    """What the hub reads on ``/ws/terminal``."""
    return cast(FromTerminal, decode(text, max_bytes=max_bytes, accept=TERMINAL_TO_HUB))


def from_client(text: str | bytes, *, max_bytes: int) -> FromClient:
    """What the hub reads on ``/ws/client``."""
    return cast(FromClient, decode(text, max_bytes=max_bytes, accept=CLIENT_TO_HUB))


def from_hub_to_terminal(text: str | bytes, *, max_bytes: int) -> ToTerminal:
    """What a terminal (the agent's uplink) reads from the hub."""
    return cast(ToTerminal, decode(text, max_bytes=max_bytes, accept=HUB_TO_TERMINAL))


def from_hub_to_client(text: str | bytes, *, max_bytes: int) -> ToClient:
    """What a subscriber reads from the hub."""
    return cast(ToClient, decode(text, max_bytes=max_bytes, accept=HUB_TO_CLIENT))
