"""The WebSocket API's messages in one place: the names and codes (:mod:`api.codes`), the
checks (:mod:`api.checks`), reading a frame (:mod:`api.parse`), action signatures
(:mod:`api.signing`), and here the builders of every message. Both the agent and the hub
import this module (docs/architecture.md); it does no I/O. ``parse_message`` raises only
:class:`WireError`, whose ``code`` is the ``error`` reply to send. docs/protocol.md is the
contract.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

from api.checks import (
    format_timestamp,
    parse_timestamp,
    valid_terminal_id,
)
from api.codes import (
    ACKABLE_ALERTS,
    ATTENDANT_EVENTS,
    CLIENT_TO_HUB,
    DEFAULT_HISTORY_PAGE,
    DEFAULT_SIGNATURE_WINDOW,
    HUB_SOURCE,
    HUB_TO_CLIENT,
    HUB_TO_TERMINAL,
    INFORMATIONAL_ALERTS,
    MAX_AMOUNT_CENTS,
    MAX_HISTORY_PAGE,
    MAX_ID_LENGTH,
    MAX_JSON_DEPTH,
    MAX_JSON_VALUES,
    MAX_LIST_ITEMS,
    MAX_REASON_LENGTH,
    MAX_SNAPSHOT_ALERTS,
    PROTOCOL_VERSION,
    TERMINAL_TO_HUB,
    ActionAckStatus,
    ActionStatus,
    CloseCode,
    ErrorCode,
    LinkState,
    MessageType,
    Role,
    WireError,
    needs_ack,
)
from api.parse import (
    parse_message,
    too_deep,
)
from api.signing import (
    action_signature,
    canonical_action,
    sign_action,
    verify_action,
)

__all__ = [
    "ACKABLE_ALERTS",
    "ATTENDANT_EVENTS",
    "CLIENT_TO_HUB",
    "DEFAULT_HISTORY_PAGE",
    "DEFAULT_SIGNATURE_WINDOW",
    "HUB_SOURCE",
    "HUB_TO_CLIENT",
    "HUB_TO_TERMINAL",
    "INFORMATIONAL_ALERTS",
    "MAX_AMOUNT_CENTS",
    "MAX_HISTORY_PAGE",
    "MAX_ID_LENGTH",
    "MAX_JSON_DEPTH",
    "MAX_JSON_VALUES",
    "MAX_LIST_ITEMS",
    "MAX_REASON_LENGTH",
    "MAX_SNAPSHOT_ALERTS",
    "PROTOCOL_VERSION",
    "TERMINAL_TO_HUB",
    "ActionAckStatus",
    "ActionStatus",
    "CloseCode",
    "ErrorCode",
    "LinkState",
    "MessageType",
    "Role",
    "WireError",
    "ack",
    "ack_alert",
    "action",
    "action_ack",
    "action_result",
    "action_signature",
    "alert_ack",
    "auth",
    "auth_ok",
    "canonical_action",
    "encode",
    "error",
    "error_from",
    "event",
    "format_timestamp",
    "get_state",
    "hello",
    "history",
    "history_page",
    "needs_ack",
    "parse_message",
    "parse_timestamp",
    "ping",
    "pong",
    "replayed",
    "sign_action",
    "snapshot",
    "subscribe",
    "subscribed",
    "terminal_state",
    "too_deep",
    "valid_terminal_id",
    "verify_action",
    "welcome",
]


def encode(msg: Mapping[str, Any]) -> str:
    """Compact JSON text for one frame."""
    return json.dumps(msg, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


# --------------------------------------------------------------------------- builders


def _with_optional(msg: dict[str, Any], **optional: Any) -> dict[str, Any]:
    for key, value in optional.items():
        if value is not None:
            msg[key] = value
    return msg


def hello(terminal_id: str, version: str, last_seq: int,
          machine: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``machine``: the machine's state as the agent holds it now (``hostLocked``,
    ``gameLocked``)."""
    msg = {"type": MessageType.HELLO.value, "protocol": PROTOCOL_VERSION,
           "terminalId": terminal_id, "version": version, "lastSeq": last_seq}
    return _with_optional(msg, machine=dict(machine) if machine is not None else None)


def welcome(terminal_id: str, acked_seq: int, server_time: str) -> dict[str, Any]:
    return {"type": MessageType.WELCOME.value, "protocol": PROTOCOL_VERSION,
            "terminalId": terminal_id, "ackedSeq": acked_seq, "serverTime": server_time}


def event(
    *, event_id: str, seq: int, channel: str, terminal_id: str, name: str, timestamp: str,
    data: Mapping[str, Any],
) -> dict[str, Any]:
    """An ``event`` frame (the agent uses ``StoredEvent.to_wire``; the hub uses this)."""
    return {"type": MessageType.EVENT.value, "id": event_id, "seq": seq, "channel": channel,
            "terminalId": terminal_id, "event": name, "timestamp": timestamp, "data": dict(data)}


def ack(up_to: int) -> dict[str, Any]:
    return {"type": MessageType.ACK.value, "upTo": up_to}


def ack_alert(event_id: str, request_id: str | None = None) -> dict[str, Any]:
    return _with_optional({"type": MessageType.ACK.value, "eventId": event_id}, id=request_id)


def action(
    action_id: str, terminal_id: str, name: str, params: Mapping[str, Any] | None = None, *,
    expires_at: str | None = None, issued_at: str | None = None, sender: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    msg = {"type": MessageType.ACTION.value, "id": action_id, "terminalId": terminal_id,
           "action": name, "params": dict(params or {})}
    return _with_optional(msg, expiresAt=expires_at, issuedAt=issued_at, reason=reason,
                          **{"from": sender})


def action_ack(action_id: str, terminal_id: str, status: ActionAckStatus,
               error: str | None = None, *, action: str | None = None) -> dict[str, Any]:
    """``action`` (the action's name) is optional; the hub adds it for its clients."""
    msg = {"type": MessageType.ACTION_ACK.value, "id": action_id, "terminalId": terminal_id,
           "status": status.value}
    return _with_optional(msg, action=action, error=error)


def action_result(
    action_id: str, terminal_id: str, status: ActionStatus, *, error: str | None = None,
    result: Mapping[str, Any] | None = None, action: str | None = None,
) -> dict[str, Any]:
    """``action`` (the action's name) is optional; the hub adds it for its clients."""
    msg = {"type": MessageType.ACTION_RESULT.value, "id": action_id, "terminalId": terminal_id,
           "status": status.value}
    return _with_optional(msg, action=action, error=error,
                          result=None if result is None else dict(result))


def auth(token: str) -> dict[str, Any]:
    return {"type": MessageType.AUTH.value, "token": token, "protocol": PROTOCOL_VERSION}


def auth_ok(role: Role, name: str) -> dict[str, Any]:
    return {"type": MessageType.AUTH_OK.value, "protocol": PROTOCOL_VERSION, "role": role.value,
            "name": name}


def subscribe(
    *, channels: Collection[str] = (), events: Collection[str] = (),
    terminals: Collection[str] = (), request_id: str | None = None, unsubscribe: bool = False,
    start: int | str | None = None,
) -> dict[str, Any]:
    """``start`` (the ``from`` field): replay stored events after this cursor, or received
    at or after this timestamp, before the live stream (protocol.md §5, resuming)."""
    kind = MessageType.UNSUBSCRIBE if unsubscribe else MessageType.SUBSCRIBE
    msg = {"type": kind.value, "channels": list(channels), "events": list(events),
           "terminals": list(terminals)}
    return _with_optional(msg, id=request_id, **{"from": start})


def replayed(count: int, cursor: int, request_id: str | None = None) -> dict[str, Any]:
    """The end of a ``subscribe`` replay: ``count`` stored events sent, the last replayed
    cursor (or the ``from`` cursor when none matched); live events follow."""
    return _with_optional({"type": MessageType.REPLAYED.value, "count": count,
                           "cursor": cursor}, id=request_id)


def subscribed(filters: list[dict[str, list[str]]], request_id: str | None = None
               ) -> dict[str, Any]:
    return _with_optional({"type": MessageType.SUBSCRIBED.value, "filters": filters},
                          id=request_id)


def alert_ack(event_id: str, terminal_id: str, by: str, at: str) -> dict[str, Any]:
    return {"type": MessageType.ALERT_ACK.value, "eventId": event_id, "terminalId": terminal_id,
            "by": by, "at": at}


def history(*, terminals: Collection[str] = (), events: Collection[str] = (),
            channels: Collection[str] = (), since: str | None = None, until: str | None = None,
            after: int | None = None, before: int | None = None, limit: int | None = None,
            request_id: str | None = None) -> dict[str, Any]:
    """A page of stored events, with the filters and cursor paging of the HTTP history API
    (protocol.md §5 ``history``, §12); answered by ``historyPage``."""
    msg: dict[str, Any] = {"type": MessageType.HISTORY.value}
    for key, values in (("terminals", terminals), ("events", events), ("channels", channels)):
        if values:
            msg[key] = list(values)
    return _with_optional(msg, id=request_id, since=since, until=until, after=after,
                          before=before, limit=limit)


def history_page(events: list[dict[str, Any]], next_cursor: int | None, newest_first: bool,
                 request_id: str | None = None) -> dict[str, Any]:
    """``next``: the cursor to continue from (``after``, or ``before`` when newest first);
    None on the last page."""
    msg = {"type": MessageType.HISTORY_PAGE.value, "events": events, "next": next_cursor,
           "order": "newest-first" if newest_first else "oldest-first"}
    return _with_optional(msg, id=request_id)


def get_state(request_id: str | None = None) -> dict[str, Any]:
    return _with_optional({"type": MessageType.GET_STATE.value}, id=request_id)


def snapshot(
    *, at: str, terminals: list[dict[str, Any]], alerts: list[dict[str, Any]],
    recent: list[dict[str, Any]], coin_in_per_minute: list[dict[str, Any]],
    request_id: str | None = None,
) -> dict[str, Any]:
    msg = {"type": MessageType.SNAPSHOT.value, "at": at, "terminals": terminals,
           "alerts": alerts, "recent": recent, "coinInPerMinute": coin_in_per_minute}
    return _with_optional(msg, id=request_id)


def terminal_state(state: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": MessageType.TERMINAL.value, "terminal": dict(state)}


def error(code: ErrorCode, message: str, ref_id: str | None = None) -> dict[str, Any]:
    msg = {"type": MessageType.ERROR.value, "code": code.value, "message": message}
    return _with_optional(msg, id=ref_id)


def error_from(exc: WireError) -> dict[str, Any]:
    return error(exc.code, exc.message, exc.ref_id)


def ping(request_id: str | None = None) -> dict[str, Any]:
    return _with_optional({"type": MessageType.PING.value}, id=request_id)


def pong(request_id: str | None = None) -> dict[str, Any]:
    return _with_optional({"type": MessageType.PONG.value}, id=request_id)


# --------------------------------------------------------------------------- signatures


