"""The reference hub: terminals publish, clients subscribe, operators act (docs/protocol.md).

One asyncio server on one port: ``/ws/terminal``, ``/ws/client``, the dashboard files and
``/healthz``. Events are stored (de-duplicated on terminal and seq) before they are acknowledged
and fanned out; each peer has a bounded outgoing queue so one slow client cannot slow the rest.

Group commit: what a terminal sends in a burst (every message already received, up to
:data:`MAX_BATCH` events) is one batch; the batches of every terminal that arrive while a
transaction commits are stored together in the next one (hub/ingest.py), then fanned out in
order and acknowledged, one cumulative ``ack`` per batch. What a connection may have read
and not yet answered is bounded (:class:`hub.ingest.InflightGate`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from api import wire
from api.wire import (
    ActionAckStatus,
    ActionStatus,
    CloseCode,
    ErrorCode,
    MessageType,
    Role,
    WireError,
)
from hub import http_api, redact, replay
from hub.cluster_hooks import ALERT_ACK, OFFER, OPERATORS, ClusterHooks
from hub.config import HubConfig
from hub.connection import HubConnection
from hub.floor import Floor, TerminalState
from hub.gaming_day import GamingDay
from hub.http_answers import STATIC_DIR, static_response, text_response
from hub.ingest import Credits, GroupCommitter, InflightGate
from hub.limits import TokenBucket
from hub.store import EventWrite
from hub.store_api import open_audit, open_store
from hub.subscriptions import Filter, Subscription
from hub.tokens import Principal, TokenTable, load_tokens
from hub.wsio import framed, read_burst, send_frames

if TYPE_CHECKING:
    from hub.cluster import Cluster


log = logging.getLogger("hub")

TERMINAL_PATH = "/ws/terminal"
CLIENT_PATH = "/ws/client"

_FINAL_STATUSES = frozenset(s.value for s in ActionStatus)

#: Most messages handled as one burst, so at most this many events are stored in one
#: transaction and acknowledged by one ``ack``.
MAX_BATCH = 500

#: The fields of an ``event`` frame (``type`` included).
_EVENT_FIELDS = len(wire.event(event_id="-", seq=1, channel="", terminal_id="", name="",
                               timestamp="", data={}))

#: Most frames a peer's writer joins into one write.
_WRITE_BATCH = 256

#: Seconds a peer's queued frames may take to go out before a close the hub initiates.
_DRAIN_TIMEOUT = 5.0

#: Seconds a close handshake the hub starts may take (websockets' ``close_timeout``).
_CLOSE_TIMEOUT = 1.0

#: Seconds ``stop`` waits for connections to close before it aborts them.
_STOP_TIMEOUT = 1.5

#: Most alerts one bulk ``ack`` (terminalId / all) reports as one ``alertAck`` each.
BULK_ACK_BROADCAST = 100

#: Seconds between two prunes of stored events older than ``retention_days``.
PRUNE_INTERVAL = 3600.0

#: Hub event seqs taken from the store at a time (hub/store_api.py ``reserve_hub_seqs``).
_HUB_SEQ_BLOCK = 100


class _StoreFailedError(Exception):
    """A batch of events could not be committed; the terminal must resend from ackedSeq."""


async def _let_writers_run() -> None:
    """Yield once to the loop after handling a message.

    ``recv`` returns buffered frames without suspending, so a burst from one peer would
    otherwise be handled entirely before any writer task sends a byte, and the bounded
    queues would overflow with frames the peers could well take (slow consumers are those
    that do not read, not those that receive a burst).
    """
    await asyncio.sleep(0)


class _Peer:
    """One open connection with a bounded outgoing queue drained by its own task."""

    def __init__(self, ws: ServerConnection, principal: Principal, limit: int,
                 on_drop: Callable[[_Peer], None]) -> None:
        self.ws = ws
        self.principal = principal
        self._on_drop = on_drop
        self.queue: asyncio.Queue[str | bytes] = asyncio.Queue(maxsize=limit)
        self.dropped = False
        self.closing_code: int | None = None
        self._closer: asyncio.Task[None] | None = None
        self.writer = asyncio.create_task(self._write())

    async def _write(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                frames = [await self.queue.get()]
                while len(frames) < _WRITE_BATCH and not self.queue.empty():
                    frames.append(self.queue.get_nowait())
                await send_frames(self.ws, frames)
                for _ in frames:
                    self.queue.task_done()

    def send(self, msg: dict[str, Any]) -> None:
        self.send_text(wire.encode(msg))

    def send_text(self, text: str | bytes) -> bool:
        """Queue a frame; False (and the peer is being dropped) if its queue is full."""
        if self.dropped:
            return False
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.dropped = True
            self._on_drop(self)
            self.close(CloseCode.SLOW_CONSUMER, "slow consumer: outgoing queue full")
            return False
        return True

    def close(self, code: int, reason: str) -> None:
        """Stop writing and close with ``code`` (queued frames are abandoned)."""
        self.closing_code = code
        self.writer.cancel()
        # Keep a reference: a task nobody holds may be garbage-collected before it runs.
        self._closer = asyncio.get_running_loop().create_task(
            self.ws.close(code, reason.encode()[:120].decode("utf-8", "ignore")))

    async def drain(self, timeout: float) -> None:
        """Wait (at most ``timeout`` seconds) until everything queued has been sent."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.queue.join()

    async def finish(self) -> None:
        self.writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.writer


@dataclass(eq=False)
class _TerminalConn:
    peer: _Peer
    terminal_id: str
    cursor: int  # highest seq received in order on this connection (protocol.md §4, event)
    credits: Credits  # messages read and not yet answered (InflightGate)
    connected_at: str = ""  # the welcome's time (a newer connection elsewhere replaces it)
    replaced: bool = False
    #: The batch being stored and acknowledged while the next burst is read and parsed.
    storing: asyncio.Future[list[bool]] | None = None
    #: Of the batch in ``storing``: the cursor once stored, its size, first and last ids.
    unsettled: tuple[int, int, str, str] | None = None
    #: The close after a batch could not be stored (kept: a task nobody holds may vanish).
    failing: asyncio.Task[None] | None = None


@dataclass(eq=False)
class _Client:
    peer: _Peer
    get_state: TokenBucket
    subscription: Subscription = field(default_factory=Subscription)
    #: Running replays of ``subscribe`` with ``from`` (hub.replay), cancelled at the end.
    replays: set[asyncio.Task[int]] = field(default_factory=set)

    @property
    def role(self) -> Role:
        return self.peer.principal.role


@dataclass
class HubStats:
    """Counters for tests and the log."""

    events_stored: int = 0
    duplicates: int = 0
    errors_sent: int = 0
    slow_consumers_dropped: int = 0


class Hub(ClusterHooks):
    """The hub server. ``await start()`` returns the bound port; ``await stop()`` ends it.

    ``store`` is public so tests and tools read what was stored in-process.
    """

    def __init__(
        self, config: HubConfig, *, tokens: TokenTable | None = None,
        clock: Callable[[], float] = time.time, static_dir: Path = STATIC_DIR,
        prune_interval: float = PRUNE_INTERVAL,
    ) -> None:
        redact.install()  # before any connection can log a header or a frame
        self.config = config
        self.tokens = tokens if tokens is not None else load_tokens(config.tokens)
        self.clock = clock
        self.static_dir = static_dir
        self.stats = HubStats()
        #: This instance among several sharing one PostgreSQL store (hub/cluster.py).
        self.instance_id = uuid.uuid4().hex[:12]
        self.store = open_store(config, origin=self.instance_id)
        self.gaming_day = GamingDay(config.timezone, config.gaming_day_start)
        self.audit = open_audit(self.store)
        self.floor = Floor(self.store, self.tokens.terminals(), clock(),
                           gaming_day=self.gaming_day, registry=self.tokens.registry())
        self._action_key: bytes | None = None
        if config.action_key_file is not None:
            self._action_key = config.action_key_file.read_bytes().strip()
        self._hub_seq = self._hub_seq_end = 0  # the block of hub seqs in hand
        self.cluster: Cluster | None = None
        if config.store is not None:
            from hub.cluster import Cluster
            from hub.store_pg import PgStore

            assert isinstance(self.store, PgStore)
            self.cluster = Cluster(self, self.store)
        self._terminals: dict[str, _TerminalConn] = {}
        self._clients: set[_Client] = set()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        # With several instances, own batches are fanned out in cursor order with the
        # others' (hub/cluster.py); the ingest's publish step waits for their turn.
        self.ingest = GroupCommitter(
            self.store, self._publish if self.cluster is None else self.cluster.publish_own,
            self._now)
        self.gate = InflightGate(config.max_inflight_events, config.max_inflight_per_terminal)
        self._prune_interval = prune_interval
        self._pruner: asyncio.Task[None] | None = None
        self._server: Server | None = None
        self._stopping = False
        self.port = 0

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> int:
        ssl_context: ssl.SSLContext | None = None
        if self.config.tls_cert is not None and self.config.tls_key is not None:
            ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ssl_context.load_cert_chain(self.config.tls_cert, self.config.tls_key)
        self.ingest.start()
        if self.cluster is not None:
            await self.cluster.start()
            self._online_elsewhere()
        self._server = await serve(
            self._handle, self.config.host, self.config.port,
            process_request=self._process_request, ssl=ssl_context,
            max_size=self.config.max_frame_bytes, ping_interval=self.config.ping_interval,
            ping_timeout=self.config.ping_timeout,
            # permessage-deflate is never negotiated (docs/protocol.md §1): every frame would
            # be compressed once per peer, and the CPU per frame bounds the event rate.
            compression=None,
            # A shutdown under load must not wait 10 s (the default) per unresponsive peer.
            close_timeout=_CLOSE_TIMEOUT,
            create_connection=HubConnection,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        for stored in self.store.queued_actions():
            self._schedule_expiry(stored.id, stored.deadline)
        if self.config.retention_days is not None:
            self._pruner = asyncio.create_task(self._prune_loop())
        log.info("hub listening on %s", self.url)
        return self.port

    def _netloc(self) -> str:
        host = self.config.host
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """The dashboard's URL (``http`` or ``https``)."""
        scheme = "http" if self.config.tls_cert is None else "https"
        return f"{scheme}://{self._netloc()}/"

    @property
    def ws_url(self) -> str:
        """Base of the WebSocket URLs: append ``/ws/terminal`` or ``/ws/client``."""
        scheme = "ws" if self.config.tls_cert is None else "wss"
        return f"{scheme}://{self._netloc()}"

    async def stop(self) -> None:
        self._stopping = True
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner
        if self._server is not None:
            self._server.close()  # closes every connection with 1001 going away
            try:
                async with asyncio.timeout(_STOP_TIMEOUT):
                    await self._server.wait_closed()
            except TimeoutError:
                # Overloaded: peers that did not finish closing are cut (a terminal resends
                # what was not acknowledged; nothing acknowledged is lost).
                log.warning("connections still open after %.0f s: aborting them",
                            _STOP_TIMEOUT)
                for ws in list(self._server.connections):
                    if ws.transport is not None:
                        ws.transport.abort()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):
                        await self._server.wait_closed()
        await self.ingest.stop()
        if self.cluster is not None:
            await self.cluster.stop()
        self.store.close()

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()

    # ------------------------------------------------------------------ retention

    async def prune(self) -> int:
        """Delete what is older than ``retention_days`` now; the number of events deleted.

        Open alerts that were deleted stop counting; the terminals whose count changed are
        broadcast. The acknowledged seqs are kept, so terminals resume where they were.
        """
        days = self.config.retention_days
        if days is None:
            return 0
        cutoff = self._now() - days * 86400.0
        deleted = await self.store.prune(cutoff, _FINAL_STATUSES)
        if deleted:
            log.info("pruned %d events received before %s (retention %g days)", deleted,
                     wire.format_timestamp(cutoff), days)
            for state in self.floor.recount_alerts():
                self._broadcast_terminal(state)
        return deleted

    async def _prune_loop(self) -> None:
        while True:
            try:
                await self.prune()
            except Exception:
                log.exception("pruning old events failed; next try in %.0f s",
                              self._prune_interval)
            await asyncio.sleep(self._prune_interval)

    # ------------------------------------------------------------------ HTTP

    def _process_request(self, connection: ServerConnection, request: Request
                         ) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path in (TERMINAL_PATH, CLIENT_PATH):
            header = request.headers.get("Authorization")
            if header is None and path == CLIENT_PATH:
                return None  # browsers authenticate with the first message
            principal = self.bearer(header)
            if principal is None:
                resp = text_response(401, "missing or unknown bearer token\n")
                resp.headers["WWW-Authenticate"] = "Bearer"
                log.warning("refused %s from %s: bad token", path, connection.remote_address)
                return resp
            wanted_terminal = path == TERMINAL_PATH
            if (principal.role is Role.TERMINAL) != wanted_terminal:
                log.warning("refused %s for %s: role %s", path, principal.name,
                            principal.role.value)
                return text_response(403, f"a {principal.role.value} token may not use {path}\n")
            return None
        if path == "/healthz":
            return text_response(200, "ok\n")
        if path.startswith(http_api.PREFIX):
            return http_api.answer(self, request)
        if path == "/" or path.startswith("/static/"):
            return static_response(path, self.static_dir)
        return text_response(404, "not found\n")

    def bearer(self, header: str | None) -> Principal | None:
        """Who an ``Authorization: Bearer`` header names (None: missing or unknown)."""
        token = header[7:].strip() if header and header[:7].lower() == "bearer " else None
        return self.tokens.lookup(token)

    async def _handle(self, ws: ServerConnection) -> None:
        if ws.request is None:
            return
        path = ws.request.path.split("?", 1)[0]
        # process_request already refused a bad header; read the principal again here.
        principal = self.bearer(ws.request.headers.get("Authorization"))
        try:
            if path == TERMINAL_PATH and principal is not None:
                await self._terminal_session(ws, principal)
            elif path == CLIENT_PATH:
                await self._client_session(ws, principal)
        except ConnectionClosed:
            pass

    # ------------------------------------------------------------------ helpers

    def _dropped(self, peer: _Peer) -> None:
        self.stats.slow_consumers_dropped += 1
        log.warning("%s dropped: slow consumer (%d messages queued)", peer.principal.name,
                    peer.queue.qsize())

    def _now(self) -> float:
        return self.clock()

    async def _send_and_close(self, ws: ServerConnection, exc: WireError, code: int) -> None:
        self.stats.errors_sent += 1
        with contextlib.suppress(ConnectionClosed):
            await ws.send(wire.encode(wire.error_from(exc)))
        # A close reason is at most 123 bytes of UTF-8 (RFC 6455 §5.5: control frames <= 125).
        await ws.close(code, exc.message.encode()[:120].decode("utf-8", "ignore"))

    def _reply_error(self, peer: _Peer, exc: WireError) -> None:
        self.stats.errors_sent += 1
        log.info("error to %s: %s %s", peer.principal.name, exc.code.value, exc.message)
        peer.send(wire.error_from(exc))

    async def _receive(self, ws: ServerConnection, timeout: float | None) -> str | bytes:
        if timeout is None:
            return await ws.recv()
        async with asyncio.timeout(timeout):
            return await ws.recv()

    def _parse(self, text: str | bytes, accept: frozenset[MessageType]) -> dict[str, Any]:
        return wire.parse_message(text, max_bytes=self.config.max_message_bytes, accept=accept)

    def _broadcast_terminal(self, state: TerminalState) -> None:
        if not self._clients:
            return  # nobody to tell: no encoding per batch
        text = wire.encode(wire.terminal_state(state.to_wire()))
        for client in list(self._clients):
            client.peer.send_text(text)

    def _to_operators(self, msg: dict[str, Any]) -> None:
        """Send to every operator, those of the other instances too (hub/cluster.py)."""
        text = wire.encode(msg)
        self._to_local_operators(text)
        if self.cluster is not None:
            self.cluster.publish(OPERATORS, text)

    def _to_local_operators(self, text: str) -> None:
        for client in list(self._clients):
            if client.role is Role.OPERATOR:
                client.peer.send_text(text)

    def _fan_out(self, frame: dict[str, Any]) -> bool:
        """Queue ``frame`` for the matching clients; True if a queue is half full or more."""
        data: bytes | None = None
        filling = False
        for client in list(self._clients):
            if client.subscription.matches(frame):
                data = framed(wire.encode(frame).encode()) if data is None else data
                peer = client.peer
                peer.send_text(data)
                filling = filling or peer.queue.qsize() * 2 >= peer.queue.maxsize
        return filling

    async def _publish(self, writes: Sequence[EventWrite], inserted: Sequence[bool]) -> None:
        """For the new events of one stored batch, in order: update the floor and fan them
        out; each touched terminal's state is broadcast once. Called by the ingest's
        publisher (hub/ingest.py) in storage order, which is thus the fan-out order
        (protocol.md §5: clients get events in the order the hub stored them)."""
        now = self._now()
        touched: dict[str, TerminalState] = {}
        for write, new in zip(writes, inserted, strict=True):
            if not new:
                self.stats.duplicates += 1
                continue
            self.stats.events_stored += 1
            state = self.floor.apply(write.frame, now)
            if write.acked_seq is not None and write.source == state.terminal_id:
                state.acked_seq = max(state.acked_seq, write.acked_seq)
            touched[state.terminal_id] = state
            if self._clients and self._fan_out(write.frame):
                # A batch is larger than a queue: let the writers send before going on,
                # so only clients that do not read are dropped as slow (_let_writers_run).
                await _let_writers_run()
        for state in touched.values():
            self._broadcast_terminal(state)

    def _emit_hub_event(self, name: str, terminal_id: str, data: dict[str, Any]) -> None:
        """Store and publish a hub event with the next batch of the ingest; not awaited:
        connection bookkeeping stays off the event path (its state is broadcast when the
        event is published, or at once if it cannot be stored)."""
        if self._hub_seq >= self._hub_seq_end:
            self._hub_seq = self.store.reserve_hub_seqs(_HUB_SEQ_BLOCK)
            self._hub_seq_end = self._hub_seq + _HUB_SEQ_BLOCK
        seq = self._hub_seq
        self._hub_seq += 1
        frame = wire.event(
            event_id=f"{wire.HUB_SOURCE}-{seq}", seq=seq, channel="alerts",
            terminal_id=terminal_id, name=name, timestamp=wire.format_timestamp(self._now()),
            data=data,
        )
        # acked_seq keeps the hub's counter even when old hub events are pruned.
        done = self.ingest.submit([EventWrite(frame, wire.HUB_SOURCE, acked_seq=seq)])

        def settled(fut: asyncio.Future[list[bool]]) -> None:
            if fut.cancelled():
                return
            if fut.exception() is not None:
                # The connection it reports on carries on; the floor state still says it.
                log.error("cannot store %s for %s: %s", name, terminal_id, fut.exception())
                self._broadcast_terminal(self.floor.get(terminal_id, self._now()))

        done.add_done_callback(settled)

    # ------------------------------------------------------------------ terminals

    async def _terminal_session(self, ws: ServerConnection, principal: Principal) -> None:
        terminal_id = principal.terminal_id
        assert terminal_id is not None
        try:
            hello = await self._await_hello(ws, principal)
        except TimeoutError:
            await ws.close(CloseCode.POLICY_VIOLATION, "no hello in time")
            return
        if hello is None:
            return
        now = self._now()
        acked = self.store.acked_seq(terminal_id)
        previous = self._terminals.get(terminal_id)
        peer = _Peer(ws, principal, self.config.client_queue, self._dropped)
        conn = _TerminalConn(peer, terminal_id, acked, self.gate.join(),
                             connected_at=wire.format_timestamp(now))
        self._terminals[terminal_id] = conn
        if previous is not None:
            previous.replaced = True
            previous.peer.close(CloseCode.REPLACED, "replaced by a newer connection")
            log.info("terminal %s: new connection replaces the old one", terminal_id)
        if hello["lastSeq"] < acked:
            log.warning("terminal %s: lastSeq %d is below ackedSeq %d; its store was reset",
                        terminal_id, hello["lastSeq"], acked)
        conn.peer.send(wire.welcome(terminal_id, acked, wire.format_timestamp(now)))
        log.info("terminal %s connected (lastSeq %d, ackedSeq %d)", terminal_id,
                 hello["lastSeq"], acked)
        if self.cluster is not None:
            self.cluster.present(terminal_id, True)
        reported = self.floor.machine_reported(terminal_id, hello.get("machine"), now)
        if previous is None:
            state = self.floor.set_online(terminal_id, True, now)
            state.acked_seq = acked
            # Its state is broadcast when the event is published (hub/ingest.py).
            self._emit_hub_event("deviceOnline", terminal_id,
                                 {"terminalId": terminal_id, "since": state.since})
        else:  # a replacing connection: the reported state may still have changed
            self._broadcast_terminal(reported)
        self._deliver_queued(conn)
        try:
            while True:
                # Backpressure: over its share, the connection is not read from (its
                # socket fills, then the terminal's window).
                await self.gate.wait_for_room(conn.credits)
                await self._terminal_burst(conn, await ws.recv())
                await _let_writers_run()
        except _StoreFailedError:
            await self._close_store_failed(conn)
        finally:
            # What arrived is kept, also when the connection is gone (the ack is lost).
            with contextlib.suppress(_StoreFailedError, ConnectionClosed,
                                     asyncio.CancelledError):
                await self._settle(conn)
            self.gate.leave(conn.credits)
            await conn.peer.finish()
            if self._terminals.get(terminal_id) is conn:
                del self._terminals[terminal_id]
            if not conn.replaced and not self._stopping:
                if self.cluster is not None:
                    self.cluster.present(terminal_id, False)
                now = self._now()
                state = self.floor.set_online(terminal_id, False, now)
                log.info("terminal %s disconnected", terminal_id)
                self._emit_hub_event("deviceOffline", terminal_id,
                                     {"terminalId": terminal_id, "lostAt": state.since})

    async def _await_hello(self, ws: ServerConnection, principal: Principal
                           ) -> dict[str, Any] | None:
        """Read until a valid ``hello``; None when the connection was refused and closed."""
        while True:
            text = await self._receive(ws, self.config.auth_timeout)
            try:
                msg = self._parse(text, wire.TERMINAL_TO_HUB)
                if msg["type"] != MessageType.HELLO:
                    raise WireError(ErrorCode.BAD_MESSAGE, "send hello first", msg.get("id"))
            except WireError as exc:
                self.stats.errors_sent += 1
                await ws.send(wire.encode(wire.error_from(exc)))
                continue
            if msg["protocol"] != wire.PROTOCOL_VERSION:
                await self._send_and_close(ws, WireError(
                    ErrorCode.UNSUPPORTED_VERSION,
                    f"protocol {msg['protocol']} not supported; this hub speaks "
                    f"{wire.PROTOCOL_VERSION}"), CloseCode.UNSUPPORTED_VERSION)
                return None
            if msg["terminalId"] != principal.terminal_id:
                log.warning("terminal token of %s said hello as %s", principal.name,
                            msg["terminalId"])
                await self._send_and_close(ws, WireError(
                    ErrorCode.FORBIDDEN, f"this token may only connect as {principal.name}"),
                    CloseCode.POLICY_VIOLATION)
                return None
            return msg

    async def _terminal_burst(self, conn: _TerminalConn, first: str | bytes) -> None:
        """Handle ``first`` and every message already received behind it (group commit).

        Events are collected and stored in one transaction; any
        other message (or a refused one) first stores the events before it, so replies keep
        the order of the messages they answer. The burst's last events are committed and
        acknowledged while the next burst is read (:meth:`_store_terminal_events`). Raises
        :class:`_StoreFailedError` after replying ``internal`` when a batch could not be
        stored.
        """
        limit = max(1, min(MAX_BATCH, self.gate.allowance(conn.credits)))
        texts, closed = await read_burst(conn.peer.ws, first, limit)
        self.gate.take(conn.credits, len(texts))
        pending: list[dict[str, Any]] = []
        answered = 0  # messages other than stored events: their credit is returned now
        for text in texts:
            try:
                msg = self._parse(text, wire.TERMINAL_TO_HUB)
                if msg["type"] == MessageType.EVENT:
                    pending.append(self._terminal_event(conn, msg))
                    continue
                await self._store_terminal_events(conn, pending)
                self._terminal_message(conn, msg)
            except WireError as exc:
                await self._store_terminal_events(conn, pending)
                self._reply_error(conn.peer, exc)
            answered += 1
        self.gate.release(conn.credits, answered)
        # Also when the connection closed behind them: what arrived is kept (the ack is lost).
        await self._store_terminal_events(conn, pending, wait=closed is not None)
        if closed is not None:
            raise closed

    async def _settle(self, conn: _TerminalConn) -> None:
        """Wait for the batch in :attr:`_TerminalConn.storing`: committed and acknowledged,
        or :class:`_StoreFailedError`."""
        batch, conn.storing = conn.storing, None
        if batch is None:
            return
        try:
            await batch
        except Exception as exc:
            raise _StoreFailedError(str(exc)) from exc
        finally:
            # An already settled future returns at once, maybe before its done-callbacks
            # ran: acknowledge now (the callback then finds nothing left to do).
            if batch.done():
                self._batch_done(conn, batch)

    async def _store_terminal_events(self, conn: _TerminalConn, pending: list[dict[str, Any]],
                                     *, wait: bool = True) -> None:
        """Hand the collected events to the ingest as one batch; one cumulative ack follows
        its commit (:meth:`_batch_done`).

        One batch per connection is in the ingest at a time, in order: the previous one is
        settled first, so an ack never passes a batch that failed and nothing after a failed
        batch is stored. ``wait=False`` (the end of a burst) lets the commit and its ack run
        while the next burst is read and parsed; any other message waits for them (its reply
        follows the ack of the events before it).
        """
        await self._settle(conn)
        if pending:
            writes, cursor = self._writes(conn, pending)
            batch = self.ingest.submit(writes)
            # A done-callback, not a task per batch: it runs before the task that awaits the
            # batch in _settle, so the ack goes out before any later reply.
            conn.unsettled = (cursor, len(pending), pending[0]["id"], pending[-1]["id"])
            batch.add_done_callback(functools.partial(self._batch_done, conn))
            conn.storing = batch
            pending.clear()
        if wait:
            await self._settle(conn)

    def _writes(self, conn: _TerminalConn, frames: list[dict[str, Any]]
                ) -> tuple[list[EventWrite], int]:
        """The batch's writes, and the cursor once it is stored."""
        cursor = conn.cursor
        writes = []
        for frame in frames:
            seq = frame["seq"]
            if seq > cursor:
                if seq > cursor + 1:
                    # The terminal sends oldest first; a skipped seq is one it no longer holds.
                    log.warning("terminal %s: seqs %d..%d never arrived (dropped by the terminal)",
                                conn.terminal_id, cursor + 1, seq - 1)
                writes.append(EventWrite(frame, conn.terminal_id, acked_seq=seq))
                cursor = seq
            else:
                writes.append(EventWrite(frame, conn.terminal_id))
        return writes, cursor

    def _batch_done(self, conn: _TerminalConn, batch: asyncio.Future[list[bool]]) -> None:
        """Acknowledge (or fail) the connection's batch once it is settled; once."""
        if conn.unsettled is None:
            return
        (cursor, count, first_id, last_id), conn.unsettled = conn.unsettled, None
        self.gate.release(conn.credits, count)
        if batch.cancelled():
            return  # the hub stops
        exc = batch.exception()
        if exc is not None:
            log.error("terminal %s: cannot store events %s..%s", conn.terminal_id, first_id,
                      last_id, exc_info=exc)
            self._reply_error(conn.peer, WireError(
                ErrorCode.INTERNAL, "events not stored; send them again", first_id))
            # Events after these would be acknowledged past the gap: stop this connection
            # now, also if the terminal sends nothing more while it waits for the ack.
            conn.failing = asyncio.ensure_future(self._close_store_failed(conn))
            return
        # Only now, with the transaction committed, may the ack cover these seqs.
        conn.cursor = max(conn.cursor, cursor)
        conn.peer.send(wire.ack(conn.cursor))

    async def _close_store_failed(self, conn: _TerminalConn) -> None:
        await conn.peer.drain(_DRAIN_TIMEOUT)  # the `internal` error goes out first
        await conn.peer.ws.close(CloseCode.INTERNAL_ERROR,
                                 "events not stored; resend from ackedSeq")

    def _terminal_message(self, conn: _TerminalConn, msg: dict[str, Any]) -> None:
        """A message other than ``event``; WireError becomes the error reply."""
        kind = msg["type"]
        try:
            if kind in (MessageType.ACTION_ACK, MessageType.ACTION_RESULT):
                self._terminal_action_reply(conn, msg)
            elif kind == MessageType.PING:
                conn.peer.send(wire.pong(msg.get("id")))
            elif kind == MessageType.HELLO:
                raise WireError(ErrorCode.BAD_MESSAGE, "hello was already received")
        except WireError:
            raise
        except Exception:
            log.exception("terminal %s: internal error", conn.terminal_id)
            raise WireError(ErrorCode.INTERNAL, "internal error") from None

    def _terminal_event(self, conn: _TerminalConn, msg: dict[str, Any]) -> dict[str, Any]:
        """Check an ``event`` from this connection; the frame to store."""
        if msg["terminalId"] != conn.terminal_id:
            raise WireError(ErrorCode.FORBIDDEN,
                            f"may only publish as {conn.terminal_id}", msg["id"])
        if msg["id"] != f"{msg['terminalId']}-{msg['seq']}":
            raise WireError(ErrorCode.BAD_MESSAGE, "event ids must be terminalId-seq", msg["id"])
        if len(msg) == _EVENT_FIELDS:
            return msg  # exactly the frame's fields (parse_message checked each): as it is
        return wire.event(  # without the unknown fields, which are not stored or forwarded
            event_id=msg["id"], seq=msg["seq"], channel=msg["channel"],
            terminal_id=msg["terminalId"], name=msg["event"], timestamp=msg["timestamp"],
            data=msg["data"],
        )

    def _terminal_action_reply(self, conn: _TerminalConn, msg: dict[str, Any]) -> None:
        if msg["terminalId"] != conn.terminal_id:
            raise WireError(ErrorCode.FORBIDDEN, f"may only answer as {conn.terminal_id}",
                            msg["id"])
        stored = self.store.get_action(msg["id"])
        if stored is None or stored.terminal_id != conn.terminal_id:
            raise WireError(ErrorCode.NOT_FOUND, "no such action for this terminal", msg["id"])
        if stored.result is not None:
            # Settled: every final status is written together with its actionResult. The
            # status alone is not enough, since an actionAck may say "rejected" too and one
            # actionResult still follows it (docs/protocol.md, action flow).
            return  # a re-sent answer to an action already settled
        if msg["type"] == MessageType.ACTION_ACK:
            if msg["status"] not in (ActionAckStatus.ACCEPTED, ActionAckStatus.REJECTED):
                raise WireError(ErrorCode.BAD_MESSAGE,
                                "a terminal acks with accepted or rejected", msg["id"])
            self.store.set_action_status(stored.id, msg["status"])
            relay = wire.action_ack(stored.id, stored.terminal_id,
                                    ActionAckStatus(msg["status"]), msg.get("error"),
                                    action=stored.name)
        else:
            relay = wire.action_result(
                stored.id, stored.terminal_id, ActionStatus(msg["status"]),
                error=msg.get("error"), result=msg.get("result"), action=stored.name,
            )
            self.store.set_action_status(stored.id, msg["status"], relay)
            self._cancel_expiry(stored.id)
            state = self.floor.action_settled(stored.terminal_id, stored.name, msg["status"],
                                              msg.get("result"), self._now())
            if state is not None:
                self._broadcast_terminal(state)
        self._audit_action(stored.id, msg["status"], relay)
        self._to_operators(relay)

    # ------------------------------------------------------------------ actions

    def _deliver_queued(self, conn: _TerminalConn) -> None:
        now = self._now()
        for stored in self.store.queued_actions(conn.terminal_id):
            if stored.deadline is not None and stored.deadline <= now:
                self._expire_action(stored.id)
                continue
            if not self.store.claim_action(stored.id, ActionAckStatus.QUEUED,
                                           ActionAckStatus.SENT):
                continue  # another hub instance sent or expired it meanwhile
            self._cancel_expiry(stored.id)
            self._audit_action(stored.id, ActionAckStatus.SENT)
            conn.peer.send(stored.message)
            self._to_operators(wire.action_ack(stored.id, stored.terminal_id,
                                               ActionAckStatus.SENT, action=stored.name))

    def _schedule_expiry(self, action_id: str, deadline: float | None) -> None:
        if deadline is None:
            return
        delay = max(0.0, deadline - self._now())
        loop = asyncio.get_running_loop()
        self._timers[action_id] = loop.call_later(delay, self._expire_action, action_id)

    def _cancel_expiry(self, action_id: str) -> None:
        handle = self._timers.pop(action_id, None)
        if handle is not None:
            handle.cancel()

    def _expire_action(self, action_id: str) -> None:
        self._timers.pop(action_id, None)
        stored = self.store.get_action(action_id)
        if stored is None or stored.status != ActionAckStatus.QUEUED:
            return
        result = wire.action_result(action_id, stored.terminal_id, ActionStatus.EXPIRED,
                                    error="expired before the terminal came back",
                                    action=stored.name)
        if not self.store.claim_action(action_id, ActionAckStatus.QUEUED,
                                       ActionStatus.EXPIRED, result):
            return  # sent meanwhile (by another hub instance)
        self._audit_action(action_id, ActionStatus.EXPIRED, result)
        log.info("action %s for %s expired in the queue", action_id, stored.terminal_id)
        self._to_operators(result)

    def _client_action(self, client: _Client, msg: dict[str, Any]) -> None:
        action_id = msg["id"]
        if client.role is not Role.OPERATOR:
            raise WireError(ErrorCode.FORBIDDEN, "only an operator may send actions", action_id)
        terminal_id = msg["terminalId"]
        if terminal_id not in self.tokens.terminals():
            raise WireError(ErrorCode.UNKNOWN_TERMINAL, f"no terminal {terminal_id}", action_id)
        if self.store.get_action(action_id) is not None:
            raise WireError(ErrorCode.DUPLICATE, f"action id {action_id} was already used",
                            action_id)
        now = self._now()
        expires_at = msg.get("expiresAt")
        deadline = wire.parse_timestamp(expires_at) if expires_at else None
        if deadline is not None and deadline <= now:
            raise WireError(ErrorCode.EXPIRED, f"expiresAt {expires_at} has passed", action_id)
        out = wire.action(action_id, terminal_id, msg["action"], msg.get("params"),
                          expires_at=expires_at, issued_at=msg.get("issuedAt"),
                          sender=client.peer.principal.name, reason=msg.get("reason"))
        if msg.get("signature") is not None:
            out["signature"] = msg["signature"]
            if self._action_key is not None:
                wire.verify_action(self._action_key, out, now, self.config.signature_window)
        elif self._action_key is not None:
            out["issuedAt"] = out.get("issuedAt") or wire.format_timestamp(now)
            out = wire.sign_action(self._action_key, out)
        conn = self._terminals.get(terminal_id)
        status = ActionAckStatus.SENT if conn is not None else ActionAckStatus.QUEUED
        if deadline is None and conn is None:
            deadline = now + self.config.action_queue_ttl
        self.store.add_action(out, sender=client.peer.principal.name, status=status.value,
                              deadline=deadline, created_at=now)
        self.audit.record(at=wire.format_timestamp(now), who=client.peer.principal.name,
                          role=client.role.value, kind="action", terminal_id=terminal_id,
                          subject=action_id, what=msg["action"], reason=msg.get("reason"),
                          result=status.value, detail={"params": out["params"]})
        log.info("action %s (%s) for %s from %s: %s", action_id, msg["action"], terminal_id,
                 client.peer.principal.name, status.value)
        if conn is not None:
            conn.peer.send(out)
        else:
            self._schedule_expiry(action_id, deadline)
        ack = wire.action_ack(action_id, terminal_id, status, action=msg["action"])
        self._to_operators(ack)
        if conn is None and self.cluster is not None and self.floor.get(terminal_id, now).online:
            # Connected to another instance: that one claims it and sends it (then `sent`).
            self.cluster.publish(OFFER, action_id)

    # ------------------------------------------------------------------ clients

    async def _client_session(self, ws: ServerConnection, principal: Principal | None) -> None:
        if principal is None:
            try:
                principal = await self._await_auth(ws)
            except TimeoutError:
                await self._send_and_close(ws, WireError(
                    ErrorCode.UNAUTHORIZED, "no auth message in time"),
                    CloseCode.POLICY_VIOLATION)
                return
            if principal is None:
                return
        self.audit.record(at=wire.format_timestamp(self._now()), who=principal.name,
                          role=principal.role.value, kind="login",
                          detail={"remote": str(ws.remote_address[0])
                                  if ws.remote_address else None})
        client = _Client(_Peer(ws, principal, self.config.client_queue, self._dropped),
                         TokenBucket(self.config.get_state_burst,
                                     self.config.get_state_per_second))
        self._clients.add(client)
        log.info("client %s (%s) connected", principal.name, principal.role.value)
        client.peer.send(wire.auth_ok(principal.role, principal.name))
        try:
            client.peer.send(self._snapshot(client, None))
        except Exception:
            # The store skips rows it cannot read; whatever else fails here must not close
            # every new client (issue 13): say so, and serve the live stream.
            log.exception("snapshot for %s failed", principal.name)
            self._reply_error(client.peer, WireError(ErrorCode.INTERNAL, "snapshot failed"))
        try:
            async for text in ws:
                self._client_message(client, text)
                await _let_writers_run()
        finally:
            self._clients.discard(client)
            for task in list(client.replays):
                task.cancel()
            await client.peer.finish()

    async def _await_auth(self, ws: ServerConnection) -> Principal | None:
        text = await self._receive(ws, self.config.auth_timeout)
        try:
            msg = self._parse(text, wire.CLIENT_TO_HUB)
            if msg["type"] != MessageType.AUTH:
                raise WireError(ErrorCode.UNAUTHORIZED, "the first message must be auth",
                                msg.get("id"))
        except WireError as exc:
            code = ErrorCode.UNAUTHORIZED if exc.code != ErrorCode.UNAUTHORIZED else exc.code
            await self._send_and_close(ws, WireError(code, f"authenticate first: {exc.message}",
                                                     exc.ref_id), CloseCode.POLICY_VIOLATION)
            return None
        protocol = msg.get("protocol")
        if protocol is not None and protocol != wire.PROTOCOL_VERSION:
            await self._send_and_close(ws, WireError(
                ErrorCode.UNSUPPORTED_VERSION, f"protocol {protocol} not supported"),
                CloseCode.UNSUPPORTED_VERSION)
            return None
        principal = self.tokens.lookup(msg["token"])
        if principal is None:
            log.warning("client auth refused from %s: unknown token", ws.remote_address)
            self.audit.record(at=wire.format_timestamp(self._now()), who="(unknown token)",
                              role="none", kind="loginRefused", result="unauthorized",
                              detail={"remote": str(ws.remote_address[0])
                                      if ws.remote_address else None})
            await self._send_and_close(ws, WireError(ErrorCode.UNAUTHORIZED, "unknown token"),
                                       CloseCode.POLICY_VIOLATION)
            return None
        if principal.role is Role.TERMINAL:
            await self._send_and_close(ws, WireError(
                ErrorCode.FORBIDDEN, "terminal tokens connect to /ws/terminal"),
                CloseCode.POLICY_VIOLATION)
            return None
        return principal

    def _client_message(self, client: _Client, text: str | bytes) -> None:
        try:
            msg = self._parse(text, wire.CLIENT_TO_HUB)
            kind = msg["type"]
            request_id = msg.get("id")
            if kind in (MessageType.SUBSCRIBE, MessageType.UNSUBSCRIBE):
                flt = Filter.from_message(msg)
                start = msg.get("from") if kind == MessageType.SUBSCRIBE else None
                if kind == MessageType.SUBSCRIBE:
                    self._check_filter_limits(client, flt, request_id)
                if kind == MessageType.UNSUBSCRIBE:
                    client.subscription.unsubscribe(flt)
                elif start is None:
                    client.subscription.subscribe(flt)
                else:
                    self._start_replay(client, flt, start, request_id)
                client.peer.send(wire.subscribed(client.subscription.to_wire(), request_id))
            elif kind == MessageType.GET_STATE:
                if not client.get_state.take(self._now()):
                    raise WireError(ErrorCode.RATE_LIMITED,
                                    f"getState: at most {self.config.get_state_burst} at once, "
                                    f"then {self.config.get_state_per_second:g} per second",
                                    request_id)
                client.peer.send(self._snapshot(client, request_id))
            elif kind == MessageType.ACK:
                self._client_alert_ack(client, msg)
            elif kind == MessageType.ACTION:
                self._client_action(client, msg)
            elif kind == MessageType.PING:
                client.peer.send(wire.pong(request_id))
            elif kind == MessageType.AUTH:
                raise WireError(ErrorCode.BAD_MESSAGE, "already authenticated", request_id)
        except WireError as exc:
            self._reply_error(client.peer, exc)
        except Exception:
            log.exception("client %s: internal error", client.peer.principal.name)
            self._reply_error(client.peer, WireError(ErrorCode.INTERNAL, "internal error"))

    def _check_filter_limits(self, client: _Client, flt: Filter, request_id: str | None
                             ) -> None:
        """Per-client subscription limits (protocol.md §5): ``too_large`` over them."""
        names = len(flt.channels) + len(flt.events) + len(flt.terminals)
        limit = self.config.client_max_filter_names
        if names > limit:
            raise WireError(ErrorCode.TOO_LARGE,
                            f"a filter may name at most {limit} channels, events and "
                            f"terminals together; this one names {names}", request_id)
        filters = client.subscription.filters
        if flt not in filters and len(filters) >= self.config.client_max_filters:
            raise WireError(ErrorCode.TOO_LARGE,
                            f"at most {self.config.client_max_filters} filters per client; "
                            "unsubscribe one first", request_id)

    def _start_replay(self, client: _Client, flt: Filter, start: int | str,
                      request_id: str | None) -> None:
        """``subscribe`` with ``from``: register ``flt`` replaying, then send the stored
        events and go live (hub.replay)."""
        after = replay.start_cursor(self.store.reader, start, self._now())
        client.subscription.subscribe(flt, replaying=True)
        task = asyncio.create_task(replay.replay(self.store.reader, client.peer,
                                                 client.subscription, flt, after, request_id))
        client.replays.add(task)
        task.add_done_callback(client.replays.discard)

    def _audit_action(self, action_id: str, status: str,
                      message: dict[str, Any] | None = None) -> None:
        detail: dict[str, Any] | None = None
        if message is not None:
            detail = {k: message[k] for k in ("error", "result") if k in message}
        self.audit.action_status(action_id, str(status), detail)

    def _client_alert_ack(self, client: _Client, msg: dict[str, Any]) -> None:
        request_id = msg.get("id")
        if msg.get("upTo") is not None:
            raise WireError(ErrorCode.BAD_MESSAGE, "clients acknowledge alerts by eventId",
                            request_id)
        if client.role is not Role.OPERATOR:
            raise WireError(ErrorCode.FORBIDDEN, "only an operator may acknowledge alerts",
                            request_id)
        if "eventId" not in msg:
            self._client_alert_ack_many(client, msg)
            return
        event_id = msg["eventId"]
        frame = self.store.get_event(event_id)
        if frame is None or (frame["channel"] != "alerts"
                             and not wire.needs_ack(frame["channel"], frame["event"])):
            raise WireError(ErrorCode.NOT_FOUND, f"no alert {event_id}", request_id)
        if not wire.needs_ack(frame["channel"], frame["event"]):
            raise WireError(ErrorCode.NOT_FOUND,
                            f"{event_id} ({frame['event']}) needs no acknowledgement",
                            request_id)
        previous = self.store.alert_ack(event_id)
        if previous is not None:
            raise WireError(ErrorCode.DUPLICATE,
                            f"{event_id} was acknowledged by {previous[0]} at {previous[1]}",
                            request_id)
        now = self._now()
        at = wire.format_timestamp(now)
        name = client.peer.principal.name
        if not self.store.add_alert_ack(event_id, frame["terminalId"], name, at):
            # Acknowledged on another hub instance a moment ago: one acknowledgement wins.
            by, when = self.store.alert_ack(event_id) or ("?", "?")
            raise WireError(ErrorCode.DUPLICATE, f"{event_id} was acknowledged by {by} at "
                            f"{when}", request_id)
        self.audit.record(at=at, who=name, role=client.role.value, kind="alertAck",
                          terminal_id=frame["terminalId"], subject=event_id,
                          what=frame["event"])
        log.info("alert %s acknowledged by %s", event_id, name)
        text = wire.encode(wire.alert_ack(event_id, frame["terminalId"], name, at))
        self._alert_acked(text, frame["terminalId"], now)
        if self.cluster is not None:
            self.cluster.publish(ALERT_ACK, text)

    def _alert_acked(self, text: str, terminal_id: str, now: float) -> None:
        for other in list(self._clients):
            other.peer.send_text(text)
        self._broadcast_terminal(self.floor.alert_acked(terminal_id, now))

    def _client_alert_ack_many(self, client: _Client, msg: dict[str, Any]) -> None:
        """``ack`` with ``terminalId`` (that terminal's open alerts) or ``all``: each open
        alert is acknowledged, recorded and broadcast as if acknowledged one by one."""
        terminal_id = msg.get("terminalId")
        if terminal_id is not None and terminal_id not in self.floor.terminals:
            raise WireError(ErrorCode.UNKNOWN_TERMINAL, f"no terminal {terminal_id}",
                            msg.get("id"))
        scope = None if terminal_id is None else [terminal_id]
        now = self._now()
        at = wire.format_timestamp(now)
        name = client.peer.principal.name
        open_alerts = self.store.unacked_alerts(1_000_000, scope)
        # Beyond this many, one alertAck each could overflow the clients' queues: they get
        # a fresh snapshot instead (protocol.md §5, ack).
        one_by_one = len(open_alerts) <= BULK_ACK_BROADCAST
        for frame in reversed(open_alerts):  # oldest first
            if not self.store.add_alert_ack(frame["id"], frame["terminalId"], name, at):
                continue
            self.audit.record(at=at, who=name, role=client.role.value, kind="alertAck",
                              terminal_id=frame["terminalId"], subject=frame["id"],
                              what=frame["event"],
                              detail={"bulk": "all" if terminal_id is None else "terminal"})
            if one_by_one:
                text = wire.encode(wire.alert_ack(frame["id"], frame["terminalId"], name, at))
                for other in list(self._clients):
                    other.peer.send_text(text)
        log.info("%d alerts acknowledged by %s (%s)", len(open_alerts), name,
                 terminal_id or "all terminals")
        changed = self.floor.recount_alerts()
        if one_by_one:
            for state in changed:
                self._broadcast_terminal(state)
        else:
            for other in list(self._clients):
                other.peer.send(self._snapshot(other, None))

    def _snapshot(self, client: _Client, request_id: str | None) -> dict[str, Any]:
        now = self._now()
        scope = client.subscription.terminal_scope()
        msg = wire.snapshot(
            at=wire.format_timestamp(now),
            terminals=self.floor.snapshot_terminals(scope, now),
            alerts=self.store.unacked_alerts(wire.MAX_SNAPSHOT_ALERTS, scope),
            recent=self.store.recent(self.config.recent_events, scope),
            coin_in_per_minute=self.floor.coin_in_per_minute(scope, now),
            request_id=request_id,
        )
        # The casino's time (hub.gaming_day): the page shows local time and the gaming day.
        msg.update(timezone=self.gaming_day.timezone,
                   gamingDayStart=self.gaming_day.start_hour,
                   gamingDay=self.gaming_day.day_of(now),
                   utcOffsetMinutes=self.gaming_day.utc_offset_minutes(now))
        return msg


class RunningHub:
    """A hub serving on its own thread and event loop (the CLI demo composes it)."""

    def __init__(self, hub: Hub, loop: asyncio.AbstractEventLoop, thread: threading.Thread,
                 done: asyncio.Event) -> None:
        self.hub = hub
        self._loop = loop
        self._thread = thread
        self._done = done

    @property
    def port(self) -> int:
        return self.hub.port

    @property
    def url(self) -> str:
        return self.hub.url

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the hub (connections close with 1001) and join its thread."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._done.set)
        self._thread.join(timeout)


def run_in_thread(config: HubConfig, *, tokens: TokenTable | None = None,
                  timeout: float = 10.0) -> RunningHub:
    """Start a :class:`Hub` on a daemon thread; return once it listens."""
    started = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        try:
            hub = Hub(config, tokens=tokens)
            await hub.start()
        except BaseException as exc:
            box["error"] = exc
            started.set()
            return
        done = asyncio.Event()
        box.update(hub=hub, loop=asyncio.get_running_loop(), done=done)
        started.set()
        await done.wait()
        await hub.stop()

    thread = threading.Thread(target=asyncio.run, args=(main(),), name="hub", daemon=True)
    thread.start()
    if not started.wait(timeout):
        raise TimeoutError("hub did not start in time")
    if "error" in box:
        raise box["error"]
    return RunningHub(box["hub"], box["loop"], thread, box["done"])
