"""Terminal connections on ``/ws/terminal``: hello, event bursts, acks (docs/protocol.md §4).

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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from api import decode, messages, wire
from api.wire import CloseCode, ErrorCode, MessageType, WireError
from hub.fanout import ack_frame
from hub.ingest import Credits
from hub.peer import DRAIN_TIMEOUT, Peer, let_writers_run
from hub.store import EventWrite, data_text
from hub.tokens import Principal
from hub.wsio import message_ready, read_burst

if TYPE_CHECKING:
    from hub.server import Hub

log = logging.getLogger("hub")

#: Most messages handled as one burst, so at most this many events are stored in one
#: transaction and acknowledged by one ``ack``.
MAX_BATCH = 500

#: Events only the hub generates (protocol.md §3): a terminal's would read as the hub's word
#: on its connection (an agent reports its machine's link as machineLinkDown / machineLinkUp).
HUB_ONLY_EVENTS = frozenset({"deviceOnline", "deviceOffline"})

#: The fields of an ``event`` frame (``type`` included).
_EVENT_FIELDS = len(wire.event(event_id="-", seq=1, channel="", terminal_id="", name="",
                               timestamp="", data={}))


class StoreFailedError(Exception):
    """A batch of events could not be committed; the terminal must resend from ackedSeq."""


@dataclass(eq=False)
class TerminalConn:
    peer: Peer
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


class TerminalSessions:
    """Every terminal connection of one hub; ``connections`` by terminal id."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self.connections: dict[str, TerminalConn] = {}

    async def serve(self, ws: ServerConnection, principal: Principal) -> None:
        """One terminal connection, from ``hello`` to its close."""
        hub = self._hub
        terminal_id = principal.terminal_id
        assert terminal_id is not None
        try:
            hello = await self._await_hello(ws, principal)
        except TimeoutError:
            await ws.close(CloseCode.POLICY_VIOLATION, "no hello in time")
            return
        if hello is None:
            return
        now = hub.now()
        acked = hub.store.acked_seq(terminal_id)
        previous = self.connections.get(terminal_id)
        peer = Peer(ws, principal, hub.config.client_queue, hub.dropped)
        conn = TerminalConn(peer, terminal_id, acked, hub.gate.join(),
                            connected_at=wire.format_timestamp(now))
        self.connections[terminal_id] = conn
        if previous is not None:
            previous.replaced = True
            previous.peer.close(CloseCode.REPLACED, "replaced by a newer connection")
            log.info("terminal %s: new connection replaces the old one", terminal_id)
        if hello.last_seq < acked:
            log.warning("terminal %s: lastSeq %d is below ackedSeq %d; its store was reset",
                        terminal_id, hello.last_seq, acked)
        conn.peer.send(wire.welcome(terminal_id, acked, wire.format_timestamp(now)))
        log.info("terminal %s connected (lastSeq %d, ackedSeq %d)", terminal_id,
                 hello.last_seq, acked)
        if hub.cluster is not None:
            hub.cluster.present(terminal_id, True)
        machine = None if hello.machine is None else dict(hello.machine)
        reported = hub.floor.machine_reported(terminal_id, machine, now)
        if previous is None:
            state = hub.floor.set_online(terminal_id, True, now)
            state.acked_seq = acked
            # Its state is broadcast when the event is published (hub/ingest.py).
            hub.emit_hub_event("deviceOnline", terminal_id,
                               {"terminalId": terminal_id, "since": state.since})
        else:  # a replacing connection: the reported state may still have changed
            hub.clients.broadcast_terminal(reported)
        hub.actions.deliver_queued(conn)
        try:
            while not hub.stopping:
                # Backpressure: over its share, the connection is not read from (its
                # socket fills, then the terminal's window).
                await hub.gate.wait_for_room(conn.credits)
                if hub.stopping:
                    break
                await self._burst(conn, await ws.recv())
                if message_ready(ws) is not False:
                    # More is waiting (the burst was cut at its limit): let the other
                    # connections and the writers run first. Otherwise the next recv
                    # suspends anyway, and a yield here would cost a loop turn per burst.
                    await let_writers_run()
            # The hub stops (Hub.stop): nothing more is read or parsed, so an overloaded hub
            # does not work through its backlog first; what was not acknowledged is sent
            # again by the terminal. The close handshake or the abort ends the connection.
            await self._settle(conn)
            await ws.wait_closed()
        except StoreFailedError:
            await self._close_store_failed(conn)
        finally:
            # What arrived is kept, also when the connection is gone (the ack is lost).
            with contextlib.suppress(StoreFailedError, ConnectionClosed,
                                     asyncio.CancelledError):
                await self._settle(conn)
            hub.gate.leave(conn.credits)
            await conn.peer.finish()
            if self.connections.get(terminal_id) is conn:
                del self.connections[terminal_id]
            if not conn.replaced and not hub.stopping:
                if hub.cluster is not None:
                    hub.cluster.present(terminal_id, False)
                state = hub.floor.set_online(terminal_id, False, hub.now())
                log.info("terminal %s disconnected", terminal_id)
                hub.emit_hub_event("deviceOffline", terminal_id,
                                   {"terminalId": terminal_id, "lostAt": state.since})

    async def _await_hello(self, ws: ServerConnection, principal: Principal
                           ) -> messages.Hello | None:
        """Read until a valid ``hello``; None when the connection was refused and closed."""
        hub = self._hub
        while True:
            text = await hub.receive(ws, hub.config.auth_timeout)
            try:
                msg = decode.from_terminal(text, max_bytes=hub.config.max_message_bytes)
                if not isinstance(msg, messages.Hello):
                    raise WireError(ErrorCode.BAD_MESSAGE, "send hello first",
                                    getattr(msg, "id", None))
            except WireError as exc:
                hub.stats.error_sent(exc.code)
                await ws.send(wire.encode(wire.error_from(exc)))
                continue
            if msg.protocol != wire.PROTOCOL_VERSION:
                await hub.send_and_close(ws, WireError(
                    ErrorCode.UNSUPPORTED_VERSION,
                    f"protocol {msg.protocol} not supported; this hub speaks "
                    f"{wire.PROTOCOL_VERSION}"), CloseCode.UNSUPPORTED_VERSION)
                return None
            if msg.terminal_id != principal.terminal_id:
                log.warning("terminal token of %s said hello as %s", principal.name,
                            msg.terminal_id)
                await hub.send_and_close(ws, WireError(
                    ErrorCode.FORBIDDEN, f"this token may only connect as {principal.name}"),
                    CloseCode.POLICY_VIOLATION)
                return None
            return msg

    async def _burst(self, conn: TerminalConn, first: str | bytes) -> None:
        """Handle ``first`` and every message already received behind it (group commit).

        Events are collected and stored in one transaction; any
        other message (or a refused one) first stores the events before it, so replies keep
        the order of the messages they answer. The burst's last events are committed and
        acknowledged while the next burst is read (:meth:`_store_events`). Raises
        :class:`StoreFailedError` after replying ``internal`` when a batch could not be
        stored.
        """
        hub = self._hub
        limit = max(1, min(MAX_BATCH, hub.gate.allowance(conn.credits)))
        texts, closed = await read_burst(conn.peer.ws, first, limit)
        hub.gate.take(conn.credits, len(texts))
        pending: list[dict[str, Any]] = []
        answered = 0  # messages other than stored events: their credit is returned now
        for text in texts:
            if hub.stopping:
                break  # not parsed, not stored, not acknowledged: the terminal resends them
            try:
                msg = hub.parse(text, wire.TERMINAL_TO_HUB)
                if msg["type"] == MessageType.EVENT:
                    # Events stay the checked objects (api.parse): the ingest stores and
                    # forwards them as they are, and a class per event would cost the drain
                    # (docs/performance.md); every other message is typed (api.decode).
                    pending.append(self._event(conn, msg))
                    continue
                await self._store_events(conn, pending)
                self._message(conn, decode.from_checked(msg))
            except WireError as exc:
                await self._store_events(conn, pending)
                hub.reply_error(conn.peer, exc)
            answered += 1
        hub.gate.release(conn.credits, answered)
        # Also when the connection closed behind them: what arrived is kept (the ack is lost).
        await self._store_events(conn, pending, wait=closed is not None)
        if closed is not None:
            raise closed

    async def _settle(self, conn: TerminalConn) -> None:
        """Wait for the batch in :attr:`TerminalConn.storing`: committed and acknowledged,
        or :class:`StoreFailedError`."""
        batch, conn.storing = conn.storing, None
        if batch is None:
            return
        try:
            await batch
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not batch.cancelled() or (task is not None and task.cancelling()):
                raise
            # The hub stops (GroupCommitter.close_intake): not stored, not acknowledged.
        except Exception as exc:
            raise StoreFailedError(str(exc)) from exc
        finally:
            # An already settled future returns at once, maybe before its done-callbacks
            # ran: acknowledge now (the callback then finds nothing left to do).
            if batch.done():
                self._batch_done(conn, batch)

    async def _store_events(self, conn: TerminalConn, pending: list[dict[str, Any]],
                            *, wait: bool = True) -> None:
        """Hand the collected events to the ingest as one batch; one cumulative ack follows
        its commit (:meth:`_batch_done`).

        One batch per connection is in the ingest at a time, in order: the previous one is
        settled first, so an ack never passes a batch that failed and nothing after a failed
        batch is stored. ``wait=False`` (the end of a burst) lets the commit and its ack run
        while the next burst is read and parsed; any other message waits for them (its reply
        follows the ack of the events before it).
        """
        if conn.storing is not None:  # (a coroutine per burst for nothing, otherwise)
            await self._settle(conn)
        if pending and self._hub.stopping:
            # Not stored, not acknowledged: the terminal sends them again (Hub.request_stop).
            # Not handed to the ingest either: the batch before them may have been cancelled
            # by the stop, leaving the cursor behind them, which is no gap the terminal made.
            self._hub.gate.release(conn.credits, len(pending))
            pending.clear()
        if pending:
            writes, cursor = self._writes(conn, pending)
            batch = self._hub.ingest.submit(writes)
            # A done-callback, not a task per batch: it runs before the task that awaits the
            # batch in _settle, so the ack goes out before any later reply.
            conn.unsettled = (cursor, len(pending), pending[0]["id"], pending[-1]["id"])
            batch.add_done_callback(functools.partial(self._batch_done, conn))
            conn.storing = batch
            pending.clear()
        if wait and conn.storing is not None:
            await self._settle(conn)

    @staticmethod
    def _writes(conn: TerminalConn, frames: list[dict[str, Any]]
                ) -> tuple[list[EventWrite], int]:
        """The batch's writes, and the cursor once it is stored."""
        cursor = conn.cursor
        source = conn.terminal_id
        writes: list[EventWrite] = []
        append = writes.append
        for frame in frames:
            seq = frame["seq"]
            if seq > cursor:
                if seq > cursor + 1:
                    # The terminal sends oldest first; a skipped seq is one it no longer holds.
                    log.warning("terminal %s: seqs %d..%d never arrived (dropped by the terminal)",
                                source, cursor + 1, seq - 1)
                # Positional: the cheapest way to make the one tuple per event (EventWrite).
                append(EventWrite(frame, source, seq, data_text(frame["data"])))
                cursor = seq
            else:
                append(EventWrite(frame, source, None, data_text(frame["data"])))
        return writes, cursor

    def _batch_done(self, conn: TerminalConn, batch: asyncio.Future[list[bool]]) -> None:
        """Acknowledge (or fail) the connection's batch once it is settled; once."""
        if conn.unsettled is None:
            return
        (cursor, count, first_id, last_id), conn.unsettled = conn.unsettled, None
        self._hub.gate.release(conn.credits, count)
        if batch.cancelled():
            return  # the hub stops
        exc = batch.exception()
        if exc is not None:
            log.error("terminal %s: cannot store events %s..%s", conn.terminal_id, first_id,
                      last_id, exc_info=exc)
            self._hub.reply_error(conn.peer, WireError(
                ErrorCode.INTERNAL, "events not stored; send them again", first_id))
            # Events after these would be acknowledged past the gap: stop this connection
            # now, also if the terminal sends nothing more while it waits for the ack.
            conn.failing = asyncio.ensure_future(self._close_store_failed(conn))
            return
        # Only now, with the transaction committed, may the ack cover these seqs.
        conn.cursor = max(conn.cursor, cursor)
        conn.peer.send_text(ack_frame(conn.cursor))

    @staticmethod
    async def _close_store_failed(conn: TerminalConn) -> None:
        await conn.peer.drain(DRAIN_TIMEOUT)  # the `internal` error goes out first
        await conn.peer.ws.close(CloseCode.INTERNAL_ERROR,
                                 "events not stored; resend from ackedSeq")

    def _message(self, conn: TerminalConn, msg: messages.Message) -> None:
        """A message other than ``event``; WireError becomes the error reply."""
        try:
            match msg:
                case messages.ActionAck() | messages.ActionResult():
                    self._hub.actions.from_terminal(conn, msg)
                case messages.Ping(id=request_id):
                    conn.peer.send(wire.pong(request_id))
                case messages.Hello():
                    raise WireError(ErrorCode.BAD_MESSAGE, "hello was already received")
        except WireError:
            raise
        except Exception:
            log.exception("terminal %s: internal error", conn.terminal_id)
            raise WireError(ErrorCode.INTERNAL, "internal error") from None

    @staticmethod
    def _event(conn: TerminalConn, msg: dict[str, Any]) -> dict[str, Any]:
        """Check an ``event`` from this connection; the frame to store."""
        if msg["terminalId"] != conn.terminal_id:
            raise WireError(ErrorCode.FORBIDDEN,
                            f"may only publish as {conn.terminal_id}", msg["id"])
        if msg["id"] != f"{msg['terminalId']}-{msg['seq']}":
            raise WireError(ErrorCode.BAD_MESSAGE, "event ids must be terminalId-seq", msg["id"])
        if msg["event"] in HUB_ONLY_EVENTS:
            raise WireError(ErrorCode.FORBIDDEN,
                            f"{msg['event']} is the hub's own event", msg["id"])
        if len(msg) == _EVENT_FIELDS:
            return msg  # exactly the frame's fields (parse_message checked each): as it is
        return wire.event(  # without the unknown fields, which are not stored or forwarded
            event_id=msg["id"], seq=msg["seq"], channel=msg["channel"],
            terminal_id=msg["terminalId"], name=msg["event"], timestamp=msg["timestamp"],
            data=msg["data"],
        )
