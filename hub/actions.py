"""Operator actions through the hub: from an operator to its terminal, and the terminal's
answers back to every operator (docs/protocol.md §6, action flow).

An action for a terminal that is not connected is queued with a deadline and sent when the
terminal comes back, or expires; with several hub instances the one holding the terminal's
connection claims it (hub/cluster.py). Every status is written to the store and the audit.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from api import messages, wire
from api.wire import ActionAckStatus, ActionStatus, ErrorCode, Role, WireError
from hub.cluster_hooks import OFFER

if TYPE_CHECKING:
    from hub.client_sessions import ClientConn
    from hub.server import Hub
    from hub.terminal_sessions import TerminalConn

log = logging.getLogger("hub")


class ActionRouter:
    """The hub's actions: sent, queued, expired, answered; one per hub."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._key: bytes | None = None
        if hub.config.action_key_file is not None:
            self._key = hub.config.action_key_file.read_bytes().strip()

    def start(self) -> None:
        """Arm the expiry of every action queued in the store."""
        for stored in self._hub.store.queued_actions():
            self._schedule_expiry(stored.id, stored.deadline)

    def stop(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    # ------------------------------------------------------------------ to terminals

    def from_client(self, client: ClientConn, msg: messages.Action) -> None:
        """An operator's ``action``: stored, then sent or queued; WireError refuses it."""
        hub = self._hub
        action_id = msg.id
        if client.role is not Role.OPERATOR:
            raise WireError(ErrorCode.FORBIDDEN, "only an operator may send actions", action_id)
        terminal_id = msg.terminal_id
        if terminal_id not in hub.tokens.terminals():
            raise WireError(ErrorCode.UNKNOWN_TERMINAL, f"no terminal {terminal_id}", action_id)
        if hub.store.get_action(action_id) is not None:
            raise WireError(ErrorCode.DUPLICATE, f"action id {action_id} was already used",
                            action_id)
        now = hub.now()
        expires_at = msg.expires_at
        deadline = wire.parse_timestamp(expires_at) if expires_at else None
        if deadline is not None and deadline <= now:
            raise WireError(ErrorCode.EXPIRED, f"expiresAt {expires_at} has passed", action_id)
        out = wire.action(action_id, terminal_id, msg.action, msg.params,
                          expires_at=expires_at, issued_at=msg.issued_at,
                          sender=client.peer.principal.name, reason=msg.reason)
        if msg.signature is not None:
            out["signature"] = msg.signature
            if self._key is not None:
                wire.verify_action(self._key, out, now, hub.config.signature_window)
        elif self._key is not None:
            out["issuedAt"] = out.get("issuedAt") or wire.format_timestamp(now)
            out = wire.sign_action(self._key, out)
            # An issuedAt the operator gave is held to the window as a signed action's is
            # (protocol.md §7): the terminal would refuse what the hub signed with it.
            wire.verify_action(self._key, out, now, hub.config.signature_window)
        conn = hub.terminals.connections.get(terminal_id)
        status = ActionAckStatus.SENT if conn is not None else ActionAckStatus.QUEUED
        if deadline is None and conn is None:
            deadline = now + hub.config.action_queue_ttl
        hub.store.add_action(out, sender=client.peer.principal.name, status=status.value,
                             deadline=deadline, created_at=now)
        hub.audit.record(at=wire.format_timestamp(now), who=client.peer.principal.name,
                         role=client.role.value, kind="action", terminal_id=terminal_id,
                         subject=action_id, what=msg.action, reason=msg.reason,
                         result=status.value, detail={"params": out["params"]})
        log.info("action %s (%s) for %s from %s: %s", action_id, msg.action, terminal_id,
                 client.peer.principal.name, status.value)
        if conn is not None:
            conn.peer.send(out)
        else:
            self._schedule_expiry(action_id, deadline)
        ack = wire.action_ack(action_id, terminal_id, status, action=msg.action)
        hub.clients.to_operators(ack)
        if conn is None and hub.cluster is not None and hub.floor.get(terminal_id, now).online:
            # Connected to another instance: that one claims it and sends it (then `sent`).
            hub.cluster.publish(OFFER, action_id)

    def deliver_queued(self, conn: TerminalConn) -> None:
        """Send a (re)connected terminal the actions queued for it."""
        hub = self._hub
        now = hub.now()
        for stored in hub.store.queued_actions(conn.terminal_id):
            if stored.deadline is not None and stored.deadline <= now:
                self._expire(stored.id)
                continue
            if not hub.store.claim_action(stored.id, ActionAckStatus.QUEUED,
                                          ActionAckStatus.SENT):
                continue  # another hub instance sent or expired it meanwhile
            self._cancel_expiry(stored.id)
            self._audit(stored.id, ActionAckStatus.SENT)
            conn.peer.send(stored.message)
            hub.clients.to_operators(wire.action_ack(stored.id, stored.terminal_id,
                                                     ActionAckStatus.SENT, action=stored.name))

    # ------------------------------------------------------------------ from terminals

    def from_terminal(self, conn: TerminalConn,
                      msg: messages.ActionAck | messages.ActionResult) -> None:
        """A terminal's ``actionAck`` or ``actionResult``, relayed to every operator."""
        hub = self._hub
        if msg.terminal_id != conn.terminal_id:
            raise WireError(ErrorCode.FORBIDDEN, f"may only answer as {conn.terminal_id}",
                            msg.id)
        if isinstance(msg, messages.ActionAck) and msg.status not in (
                ActionAckStatus.ACCEPTED, ActionAckStatus.REJECTED):
            # `sent` / `queued` are the hub's own (protocol.md §4 actionAck): malformed,
            # whatever the id.
            raise WireError(ErrorCode.BAD_MESSAGE, "a terminal acks with accepted or rejected",
                            msg.id)
        stored = hub.store.get_action(msg.id)
        if stored is None or stored.terminal_id != conn.terminal_id:
            raise WireError(ErrorCode.NOT_FOUND, "no such action for this terminal", msg.id)
        if stored.result is not None:
            # Settled: every final status is written together with its actionResult. The
            # status alone is not enough, since an actionAck may say "rejected" too and one
            # actionResult still follows it (docs/protocol.md, action flow).
            return  # a re-sent answer to an action already settled
        if isinstance(msg, messages.ActionAck):
            hub.store.set_action_status(stored.id, msg.status.value)
            relay = wire.action_ack(stored.id, stored.terminal_id, msg.status, msg.error,
                                    action=stored.name)
        else:
            relay = wire.action_result(stored.id, stored.terminal_id, msg.status,
                                       error=msg.error, result=msg.result, action=stored.name)
            hub.store.set_action_status(stored.id, msg.status.value, relay)
            self._cancel_expiry(stored.id)
            state = hub.floor.action_settled(stored.terminal_id, stored.name, msg.status.value,
                                             None if msg.result is None else dict(msg.result),
                                             hub.now())
            if state is not None:
                hub.clients.broadcast_terminal(state)
        self._audit(stored.id, msg.status.value, relay)
        hub.clients.to_operators(relay)

    # ------------------------------------------------------------------ expiry

    def _schedule_expiry(self, action_id: str, deadline: float | None) -> None:
        if deadline is None:
            return
        delay = max(0.0, deadline - self._hub.now())
        loop = asyncio.get_running_loop()
        self._timers[action_id] = loop.call_later(delay, self._expire, action_id)

    def _cancel_expiry(self, action_id: str) -> None:
        handle = self._timers.pop(action_id, None)
        if handle is not None:
            handle.cancel()

    def _expire(self, action_id: str) -> None:
        hub = self._hub
        self._timers.pop(action_id, None)
        stored = hub.store.get_action(action_id)
        if stored is None or stored.status != ActionAckStatus.QUEUED:
            return
        result = wire.action_result(action_id, stored.terminal_id, ActionStatus.EXPIRED,
                                    error="expired before the terminal came back",
                                    action=stored.name)
        if not hub.store.claim_action(action_id, ActionAckStatus.QUEUED,
                                      ActionStatus.EXPIRED, result):
            return  # sent meanwhile (by another hub instance)
        self._audit(action_id, ActionStatus.EXPIRED, result)
        log.info("action %s for %s expired in the queue", action_id, stored.terminal_id)
        hub.clients.to_operators(result)

    def _audit(self, action_id: str, status: str, message: dict[str, Any] | None = None
               ) -> None:
        detail: dict[str, Any] | None = None
        if message is not None:
            detail = {k: message[k] for k in ("error", "result") if k in message}
        self._hub.audit.action_status(action_id, str(status), detail)
