"""The WebSocket API's messages in one place: the names and codes (:mod:`api.codes`), the
checks (:mod:`api.checks`), reading a frame (:mod:`api.parse`; into its class:
:mod:`api.decode`), action signatures (:mod:`api.signing`), and here the builders of every
message, each the frame of its class of :mod:`api.messages`. Both the agent and the hub
import this module (docs/architecture.md); it does no I/O. ``parse_message`` raises only
:class:`WireError`, whose ``code`` is the ``error`` reply to send. docs/protocol.md is the
contract.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

from api import messages as m
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
# Each builder is its class of api.messages turned into a frame (``to_wire``).


def hello(terminal_id: str, version: str, last_seq: int,
          machine: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``machine``: the machine's state as the agent holds it now (``hostLocked``,
    ``gameLocked``)."""
    return m.Hello(terminal_id, version, last_seq, machine=machine).to_wire()


def welcome(terminal_id: str, acked_seq: int, server_time: str) -> dict[str, Any]:
    return m.Welcome(PROTOCOL_VERSION, terminal_id, acked_seq, server_time).to_wire()


def event(
    *, event_id: str, seq: int, channel: str, terminal_id: str, name: str, timestamp: str,
    data: Mapping[str, Any],
) -> dict[str, Any]:
    """An ``event`` frame (the agent uses ``StoredEvent.to_wire``; the hub uses this)."""
    return m.EventFrame(event_id, seq, channel, terminal_id, name, timestamp, data).to_wire()


def ack(up_to: int) -> dict[str, Any]:
    return m.AckUpTo(up_to).to_wire()


def ack_alert(event_id: str, request_id: str | None = None) -> dict[str, Any]:
    return m.AckAlert(event_id, request_id).to_wire()


def action(
    action_id: str, terminal_id: str, name: str, params: Mapping[str, Any] | None = None, *,
    expires_at: str | None = None, issued_at: str | None = None, sender: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    return m.Action(action_id, terminal_id, name, params or {}, expires_at=expires_at,
                    issued_at=issued_at, reason=reason, sender=sender).to_wire()


def action_ack(action_id: str, terminal_id: str, status: ActionAckStatus,
               error: str | None = None, *, action: str | None = None) -> dict[str, Any]:
    """``action`` (the action's name) is optional; the hub adds it for its clients."""
    return m.ActionAck(action_id, terminal_id, status, action, error).to_wire()


def action_result(
    action_id: str, terminal_id: str, status: ActionStatus, *, error: str | None = None,
    result: Mapping[str, Any] | None = None, action: str | None = None,
) -> dict[str, Any]:
    """``action`` (the action's name) is optional; the hub adds it for its clients."""
    return m.ActionResult(action_id, terminal_id, status, action, error, result).to_wire()


def auth(token: str) -> dict[str, Any]:
    return m.Auth(token).to_wire()


def auth_ok(role: Role, name: str) -> dict[str, Any]:
    return m.AuthOk(role, name).to_wire()


def subscribe(
    *, channels: Collection[str] = (), events: Collection[str] = (),
    terminals: Collection[str] = (), request_id: str | None = None, unsubscribe: bool = False,
    start: int | str | None = None,
) -> dict[str, Any]:
    """``start`` (the ``from`` field): replay stored events after this cursor, or received
    at or after this timestamp, before the live stream (protocol.md §5, resuming)."""
    if unsubscribe:
        if start is not None:
            raise ValueError("'from' is for subscribe only")
        return m.Unsubscribe(tuple(channels), tuple(events), tuple(terminals),
                             request_id).to_wire()
    return m.Subscribe(tuple(channels), tuple(events), tuple(terminals), request_id,
                       start).to_wire()


def replayed(count: int, cursor: int, request_id: str | None = None) -> dict[str, Any]:
    """The end of a ``subscribe`` replay: ``count`` stored events sent, the last replayed
    cursor (or the ``from`` cursor when none matched); live events follow."""
    return m.Replayed(count, cursor, request_id).to_wire()


def subscribed(filters: list[dict[str, list[str]]], request_id: str | None = None
               ) -> dict[str, Any]:
    return m.Subscribed(tuple(m.Filter(tuple(f.get("channels", ())), tuple(f.get("events", ())),
                                       tuple(f.get("terminals", ()))) for f in filters),
                        request_id).to_wire()


def alert_ack(event_id: str, terminal_id: str, by: str, at: str) -> dict[str, Any]:
    return m.AlertAck(event_id, terminal_id, by, at).to_wire()


def history(*, terminals: Collection[str] = (), events: Collection[str] = (),
            channels: Collection[str] = (), since: str | None = None, until: str | None = None,
            after: int | None = None, before: int | None = None, limit: int | None = None,
            request_id: str | None = None) -> dict[str, Any]:
    """A page of stored events, with the filters and cursor paging of the HTTP history API
    (protocol.md §5 ``history``, §12); answered by ``historyPage``."""
    return m.History(tuple(terminals), tuple(events), tuple(channels), request_id, since,
                     until, after, before, limit).to_wire()


def history_page(events: list[dict[str, Any]], next_cursor: int | None, newest_first: bool,
                 request_id: str | None = None) -> dict[str, Any]:
    """``next``: the cursor to continue from (``after``, or ``before`` when newest first);
    None on the last page."""
    return m.HistoryPage(tuple(events), next_cursor,
                         "newest-first" if newest_first else "oldest-first",
                         request_id).to_wire()


def get_state(request_id: str | None = None) -> dict[str, Any]:
    return m.GetState(request_id).to_wire()


def snapshot(
    *, at: str, terminals: list[dict[str, Any]], alerts: list[dict[str, Any]],
    recent: list[dict[str, Any]], coin_in_per_minute: list[dict[str, Any]],
    request_id: str | None = None, timezone: str | None = None,
    gaming_day_start: int | None = None, gaming_day: str | None = None,
    utc_offset_minutes: int | None = None,
) -> dict[str, Any]:
    return m.Snapshot(at, tuple(terminals), tuple(alerts), tuple(recent),
                      tuple(coin_in_per_minute), request_id, timezone, gaming_day_start,
                      gaming_day, utc_offset_minutes).to_wire()


def terminal_state(state: Mapping[str, Any]) -> dict[str, Any]:
    return m.TerminalState(state).to_wire()


def error(code: ErrorCode, message: str, ref_id: str | None = None) -> dict[str, Any]:
    return m.Error(code, message, ref_id).to_wire()


def error_from(exc: WireError) -> dict[str, Any]:
    return error(exc.code, exc.message, exc.ref_id)


def ping(request_id: str | None = None) -> dict[str, Any]:
    return m.Ping(request_id).to_wire()


def pong(request_id: str | None = None) -> dict[str, Any]:
    return m.Pong(request_id).to_wire()


# --------------------------------------------------------------------------- signatures


