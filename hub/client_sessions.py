"""Client connections on ``/ws/client``: dashboards, operator panels, tools (docs/protocol.md
§5): auth, subscriptions and replays, snapshots, history pages (run on the history workers,
hub.history_runner), alert acknowledgements, and the fan-out of events and terminal states
to them. Actions are handed to :class:`hub.actions.ActionRouter`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection

from api import decode, messages, wire
from api.wire import CloseCode, ErrorCode, Role, WireError
from hub import replay
from hub.cluster_hooks import ALERT_ACK, ALERTS_RECOUNT, OPERATORS
from hub.fanout import terminal_frame
from hub.floor import TerminalState
from hub.history import EventQuery, query_events
from hub.history_runner import HistoryBusyError, HistoryTooSlowError
from hub.limits import TokenBucket
from hub.peer import Peer, let_writers_run
from hub.subscriptions import Filter, Subscription
from hub.tokens import Principal

if TYPE_CHECKING:
    from hub.server import Hub

log = logging.getLogger("hub")

#: Most alerts one bulk ``ack`` (terminalId / all) reports as one ``alertAck`` each.
BULK_ACK_BROADCAST = 100


@dataclass(eq=False)
class ClientConn:
    peer: Peer
    get_state: TokenBucket
    subscription: Subscription = field(default_factory=Subscription)
    #: Running replays of ``subscribe`` with ``from`` (hub.replay), cancelled at the end.
    replays: set[asyncio.Task[int]] = field(default_factory=set)
    #: Running ``history`` requests, cancelled at the end (their query still finishes).
    queries: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def role(self) -> Role:
        return self.peer.principal.role


class ClientSessions:
    """Every client connection of one hub, and what is sent to them."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self.connected: set[ClientConn] = set()

    # ------------------------------------------------------------------ sending

    def broadcast_terminal(self, state: TerminalState) -> None:
        if not self.connected:
            return  # nobody to tell: no encoding per batch
        frame = terminal_frame(state)
        for client in list(self.connected):
            client.peer.send_text(frame)

    def to_operators(self, msg: dict[str, Any]) -> None:
        """Send to every operator, those of the other instances too (hub/cluster.py)."""
        text = wire.encode(msg)
        self.to_local_operators(text)
        if self._hub.cluster is not None:
            self._hub.cluster.publish(OPERATORS, text)

    def to_local_operators(self, text: str) -> None:
        for client in list(self.connected):
            if client.role is Role.OPERATOR:
                client.peer.send_text(text)

    def alert_acked(self, text: str, terminal_id: str, now: float) -> None:
        """An ``alertAck`` (``text``) to every client, and the terminal's new alert count."""
        for other in list(self.connected):
            other.peer.send_text(text)
        self.broadcast_terminal(self._hub.floor.alert_acked(terminal_id, now))

    # ------------------------------------------------------------------ sessions

    async def serve(self, ws: ServerConnection, principal: Principal | None) -> None:
        """One client connection: auth (by header or first message), then its messages."""
        hub = self._hub
        if principal is None:
            try:
                principal = await self._await_auth(ws)
            except TimeoutError:
                await hub.send_and_close(ws, WireError(
                    ErrorCode.UNAUTHORIZED, "no auth message in time"),
                    CloseCode.POLICY_VIOLATION)
                return
            if principal is None:
                return
        hub.audit.record(at=wire.format_timestamp(hub.now()), who=principal.name,
                         role=principal.role.value, kind="login",
                         detail={"remote": _remote(ws)})
        client = ClientConn(Peer(ws, principal, hub.config.client_queue, hub.dropped),
                            TokenBucket(hub.config.get_state_burst,
                                        hub.config.get_state_per_second))
        self.connected.add(client)
        log.info("client %s (%s) connected", principal.name, principal.role.value)
        client.peer.send(wire.auth_ok(principal.role, principal.name))
        try:
            client.peer.send(self._snapshot(client, None))
        except Exception:
            # The store skips rows it cannot read; whatever else fails here must not close
            # every new client (issue 13): say so, and serve the live stream.
            log.exception("snapshot for %s failed", principal.name)
            hub.reply_error(client.peer, WireError(ErrorCode.INTERNAL, "snapshot failed"))
        try:
            async for text in ws:
                self._message(client, text)
                await let_writers_run()
        finally:
            self.connected.discard(client)
            for task in [*client.replays, *client.queries]:
                task.cancel()
            await client.peer.finish()

    async def _await_auth(self, ws: ServerConnection) -> Principal | None:
        hub = self._hub
        text = await hub.receive(ws, hub.config.auth_timeout)
        try:
            msg = decode.from_client(text, max_bytes=hub.config.max_message_bytes)
            if not isinstance(msg, messages.Auth):
                raise WireError(ErrorCode.UNAUTHORIZED, "the first message must be auth",
                                getattr(msg, "id", None))
        except WireError as exc:
            code = ErrorCode.UNAUTHORIZED if exc.code != ErrorCode.UNAUTHORIZED else exc.code
            await hub.send_and_close(ws, WireError(code, f"authenticate first: {exc.message}",
                                                   exc.ref_id), CloseCode.POLICY_VIOLATION)
            return None
        protocol = msg.protocol
        if protocol is not None and protocol != wire.PROTOCOL_VERSION:
            await hub.send_and_close(ws, WireError(
                ErrorCode.UNSUPPORTED_VERSION, f"protocol {protocol} not supported", msg.id),
                CloseCode.UNSUPPORTED_VERSION)
            return None
        principal = hub.tokens.lookup(msg.token)
        if principal is None:
            log.warning("client auth refused from %s: unknown token", ws.remote_address)
            hub.audit.login_refused(wire.format_timestamp(hub.now()), ws.remote_address)
            await hub.send_and_close(ws, WireError(ErrorCode.UNAUTHORIZED, "unknown token", msg.id),
                                     CloseCode.POLICY_VIOLATION)
            return None
        if principal.role is Role.TERMINAL:
            await hub.send_and_close(ws, WireError(
                ErrorCode.FORBIDDEN, "terminal tokens connect to /ws/terminal", msg.id),
                CloseCode.POLICY_VIOLATION)
            return None
        return principal

    def _message(self, client: ClientConn, text: str | bytes) -> None:
        hub = self._hub
        try:
            match decode.from_client(text, max_bytes=hub.config.max_message_bytes):
                case messages.Subscribe() as msg:
                    flt = Filter.from_message(msg)
                    self._check_filter_limits(client, flt, msg.id)
                    if msg.start is None:
                        client.subscription.subscribe(flt)
                    else:
                        self._start_replay(client, flt, msg.start, msg.id)
                    client.peer.send(wire.subscribed(client.subscription.to_wire(), msg.id))
                case messages.Unsubscribe() as msg:
                    client.subscription.unsubscribe(Filter.from_message(msg))
                    client.peer.send(wire.subscribed(client.subscription.to_wire(), msg.id))
                case messages.GetState(id=request_id):
                    if not client.get_state.take(hub.now()):
                        raise WireError(ErrorCode.RATE_LIMITED,
                                        f"getState: at most {hub.config.get_state_burst} at "
                                        f"once, then {hub.config.get_state_per_second:g} per "
                                        "second", request_id)
                    client.peer.send(self._snapshot(client, request_id))
                case messages.History() as msg:
                    self._start_history(client, msg)
                case messages.AckUpTo(id=request_id):
                    raise WireError(ErrorCode.BAD_MESSAGE,
                                    "clients acknowledge alerts by eventId", request_id)
                case messages.AckAlert() | messages.AckTerminalAlerts() \
                        | messages.AckAllAlerts() as msg:
                    self._alert_ack(client, msg)
                case messages.Action() as msg:
                    hub.actions.from_client(client, msg)
                case messages.Ping(id=request_id):
                    client.peer.send(wire.pong(request_id))
                case messages.Auth(id=request_id):
                    raise WireError(ErrorCode.BAD_MESSAGE, "already authenticated", request_id)
        except WireError as exc:
            hub.reply_error(client.peer, exc)
        except Exception:
            log.exception("client %s: internal error", client.peer.principal.name)
            hub.reply_error(client.peer, WireError(ErrorCode.INTERNAL, "internal error"))

    def _check_filter_limits(self, client: ClientConn, flt: Filter, request_id: str | None
                             ) -> None:
        """Per-client subscription limits (protocol.md §5): ``too_large`` over them."""
        config = self._hub.config
        names = len(flt.channels) + len(flt.events) + len(flt.terminals)
        limit = config.client_max_filter_names
        if names > limit:
            raise WireError(ErrorCode.TOO_LARGE,
                            f"a filter may name at most {limit} channels, events and "
                            f"terminals together; this one names {names}", request_id)
        filters = client.subscription.filters
        if flt not in filters and len(filters) >= config.client_max_filters:
            raise WireError(ErrorCode.TOO_LARGE,
                            f"at most {config.client_max_filters} filters per client; "
                            "unsubscribe one first", request_id)

    def _start_replay(self, client: ClientConn, flt: Filter, start: int | str,
                      request_id: str | None) -> None:
        """``subscribe`` with ``from``: register ``flt`` replaying, then send the stored
        events and go live (hub.replay)."""
        store = self._hub.store
        after = replay.start_cursor(store.reader, start, self._hub.now())
        client.subscription.subscribe(flt, replaying=True)
        task = asyncio.create_task(replay.replay(store.reader, client.peer,
                                                 client.subscription, flt, after, request_id))
        client.replays.add(task)
        task.add_done_callback(client.replays.discard)

    # ------------------------------------------------------------------ history

    def _start_history(self, client: ClientConn, msg: messages.History) -> None:
        """``history``: one page of stored events, as ``GET /api/history/events`` gives it
        (protocol.md §5), queried on a history worker, never on this loop."""
        # stored timestamps compare as text: the bounds in the stored form (milliseconds)
        since, until = (None if bound is None
                        else wire.format_timestamp(wire.parse_timestamp(bound))
                        for bound in (msg.since, msg.until))
        query = EventQuery(
            terminals=msg.terminals, events=msg.events, channels=msg.channels, since=since,
            until=until, after=msg.after, before=msg.before,
            limit=wire.DEFAULT_HISTORY_PAGE if msg.limit is None else msg.limit)
        task = asyncio.create_task(self._history(client, query, msg.id))
        client.queries.add(task)
        task.add_done_callback(client.queries.discard)

    async def _history(self, client: ClientConn, query: EventQuery,
                       request_id: str | None) -> None:
        hub = self._hub
        try:
            frames, nxt = await hub.history.run(lambda db: query_events(db, query))
        except HistoryBusyError as exc:
            hub.reply_error(client.peer, WireError(ErrorCode.RATE_LIMITED, str(exc),
                                                   request_id))
            return
        except HistoryTooSlowError as exc:
            hub.reply_error(client.peer, WireError(ErrorCode.TOO_LARGE, str(exc), request_id))
            return
        except Exception:
            log.exception("history for %s failed", client.peer.principal.name)
            hub.reply_error(client.peer, WireError(ErrorCode.INTERNAL, "history failed",
                                                   request_id))
            return
        client.peer.send(wire.history_page(frames, nxt, query.newest_first, request_id))

    # ------------------------------------------------------------------ alerts

    def _alert_ack(self, client: ClientConn, msg: messages.AlertAckRequest) -> None:
        hub = self._hub
        request_id = msg.id
        if client.role is not Role.OPERATOR:
            raise WireError(ErrorCode.FORBIDDEN, "only an operator may acknowledge alerts",
                            request_id)
        if not isinstance(msg, messages.AckAlert):
            self._alert_ack_many(client, msg)
            return
        event_id = msg.event_id
        frame = hub.store.get_event(event_id)
        if frame is None or (frame["channel"] != "alerts"
                             and not wire.needs_ack(frame["channel"], frame["event"])):
            raise WireError(ErrorCode.NOT_FOUND, f"no alert {event_id}", request_id)
        if not wire.needs_ack(frame["channel"], frame["event"]):
            raise WireError(ErrorCode.NOT_FOUND,
                            f"{event_id} ({frame['event']}) needs no acknowledgement",
                            request_id)
        previous = hub.store.alert_ack(event_id)
        if previous is not None:
            raise WireError(ErrorCode.DUPLICATE,
                            f"{event_id} was acknowledged by {previous[0]} at {previous[1]}",
                            request_id)
        now = hub.now()
        at = wire.format_timestamp(now)
        name = client.peer.principal.name
        if not hub.store.add_alert_ack(event_id, frame["terminalId"], name, at):
            # Acknowledged on another hub instance a moment ago: one acknowledgement wins.
            by, when = hub.store.alert_ack(event_id) or ("?", "?")
            raise WireError(ErrorCode.DUPLICATE, f"{event_id} was acknowledged by {by} at "
                            f"{when}", request_id)
        hub.audit.record(at=at, who=name, role=client.role.value, kind="alertAck",
                         terminal_id=frame["terminalId"], subject=event_id,
                         what=frame["event"])
        log.info("alert %s acknowledged by %s", event_id, name)
        text = wire.encode(wire.alert_ack(event_id, frame["terminalId"], name, at))
        self.alert_acked(text, frame["terminalId"], now)
        if hub.cluster is not None:
            hub.cluster.publish(ALERT_ACK, text)

    def _alert_ack_many(self, client: ClientConn,
                        msg: messages.AckTerminalAlerts | messages.AckAllAlerts) -> None:
        """``ack`` with ``terminalId`` (that terminal's open alerts) or ``all``: each open
        alert is acknowledged, recorded and broadcast as if acknowledged one by one."""
        hub = self._hub
        terminal_id = msg.terminal_id if isinstance(msg, messages.AckTerminalAlerts) else None
        if terminal_id is not None and terminal_id not in hub.floor.terminals:
            raise WireError(ErrorCode.UNKNOWN_TERMINAL, f"no terminal {terminal_id}", msg.id)
        scope = None if terminal_id is None else [terminal_id]
        at = wire.format_timestamp(hub.now())
        name = client.peer.principal.name
        open_alerts = hub.store.unacked_alerts(1_000_000, scope)
        # Beyond this many, one alertAck each could overflow the clients' queues: they get
        # a fresh snapshot instead (protocol.md §5, ack).
        one_by_one = len(open_alerts) <= BULK_ACK_BROADCAST
        texts = []
        for frame in reversed(open_alerts):  # oldest first
            if not hub.store.add_alert_ack(frame["id"], frame["terminalId"], name, at):
                continue
            hub.audit.record(at=at, who=name, role=client.role.value, kind="alertAck",
                             terminal_id=frame["terminalId"], subject=frame["id"],
                             what=frame["event"],
                             detail={"bulk": "all" if terminal_id is None else "terminal"})
            if one_by_one:
                text = wire.encode(wire.alert_ack(frame["id"], frame["terminalId"], name, at))
                texts.append(text)
                for other in list(self.connected):
                    other.peer.send_text(text)
        log.info("%d alerts acknowledged by %s (%s)", len(open_alerts), name,
                 terminal_id or "all terminals")
        if not one_by_one:
            self.alerts_recounted()
            if hub.cluster is not None:
                hub.cluster.publish(ALERTS_RECOUNT, "")
            return
        for state in hub.floor.recount_alerts():
            self.broadcast_terminal(state)
        if hub.cluster is not None:  # the other instances' clients see them too (§11)
            for text in texts:
                hub.cluster.publish(ALERT_ACK, text)

    def alerts_recounted(self) -> None:
        """Many alerts acknowledged at once, here or on another instance: the open alerts
        counted again and every client sent a fresh snapshot instead of each ``alertAck``
        (protocol.md §5, ack)."""
        self._hub.floor.recount_alerts()
        for other in list(self.connected):
            other.peer.send(self._snapshot(other, None))

    def _snapshot(self, client: ClientConn, request_id: str | None) -> dict[str, Any]:
        hub = self._hub
        now = hub.now()
        scope = client.subscription.terminal_scope()
        msg = wire.snapshot(
            at=wire.format_timestamp(now),
            terminals=hub.floor.snapshot_terminals(scope, now),
            alerts=hub.store.unacked_alerts(wire.MAX_SNAPSHOT_ALERTS, scope),
            recent=hub.store.recent(hub.config.recent_events, scope),
            coin_in_per_minute=hub.floor.coin_in_per_minute(scope, now),
            request_id=request_id,
            # The casino's time (hub.gaming_day): the page shows local time and gaming day.
            timezone=hub.gaming_day.timezone,
            gaming_day_start=hub.gaming_day.start_hour,
            gaming_day=hub.gaming_day.day_of(now),
            utc_offset_minutes=hub.gaming_day.utc_offset_minutes(now),
        )
        return msg


def _remote(ws: ServerConnection) -> str | None:
    return str(ws.remote_address[0]) if ws.remote_address else None
