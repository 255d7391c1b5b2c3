"""The hub's side of several instances on one PostgreSQL (hub/cluster.py does the LISTEN):
what an instance does with another instance's events and notices, and with the presence of
terminals across instances. A mixin of :class:`hub.server.Hub`, so the hub's modules keep
only the calls that publish (``cluster.publish``, ``cluster.present``) where things happen.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from api.wire import CloseCode
from hub.store import HUB_SOURCE, EventWrite

if TYPE_CHECKING:
    from hub.actions import ActionRouter
    from hub.client_sessions import ClientSessions
    from hub.cluster import Cluster
    from hub.floor import Floor
    from hub.store_api import Store
    from hub.terminal_sessions import TerminalSessions

log = logging.getLogger("hub")

#: Notice kinds (``notices.kind``; hub/cluster.py).
OPERATORS, ALERT_ACK, OFFER = "operators", "alertAck", "offer"
#: More alerts acknowledged at once than are broadcast one by one: recount, send snapshots.
ALERTS_RECOUNT = "alertsRecount"


class ClusterHooks:
    """Called by :class:`hub.cluster.Cluster`; the attributes are the hub's."""

    cluster: Cluster | None
    floor: Floor
    store: Store
    terminals: TerminalSessions
    clients: ClientSessions
    actions: ActionRouter

    if TYPE_CHECKING:
        def now(self) -> float: ...

        async def publish(self, group: Sequence[tuple[Sequence[EventWrite], Sequence[bool]]],
                          *, elsewhere: bool = False) -> None: ...

        def emit_hub_event(self, name: str, terminal_id: str, data: dict[str, Any]
                           ) -> None: ...

    async def cluster_events(self, writes: Sequence[EventWrite]) -> None:
        """Events another instance stored (hub/cluster.py): published like our own."""
        now = self.now()
        for write in writes:
            if write.source == HUB_SOURCE:
                self._remote_presence(write.frame, now)
        await self.publish([(writes, [True] * len(writes))], elsewhere=True)

    async def cluster_publish(self, writes: Sequence[EventWrite], inserted: Sequence[bool]
                              ) -> None:
        """This instance's own stored events, at their turn in cursor order
        (hub/cluster.py ``publish_own``)."""
        await self.publish([(writes, inserted)])

    def _remote_presence(self, frame: dict[str, Any], now: float) -> None:
        """Another instance's ``deviceOnline`` / ``deviceOffline``: the online state here,
        and one connection per terminal across instances."""
        name, terminal_id = frame["event"], frame["terminalId"]
        local = self.terminals.connections.get(terminal_id)
        data = frame["data"]
        if name == "deviceOnline":
            if local is not None and not local.replaced \
                    and str(data.get("since", "")) > local.connected_at:
                local.replaced = True
                local.peer.close(CloseCode.REPLACED,
                                 "replaced by a newer connection to another hub instance")
                log.info("terminal %s: connected to another instance; closing this one",
                         terminal_id)
            state = self.floor.set_online(terminal_id, True, now)
            state.since = str(data.get("since") or state.since)
        elif name == "deviceOffline":
            if local is not None and not local.replaced:
                # Its old connection elsewhere ended; it is connected here: say so again.
                self.emit_hub_event("deviceOnline", terminal_id,
                                     {"terminalId": terminal_id, "since": local.connected_at})
                return
            state = self.floor.set_online(terminal_id, False, now)
            state.since = str(data.get("lostAt") or state.since)

    def _online_elsewhere(self) -> None:
        """At start: the terminals connected to the other instances are online."""
        assert self.cluster is not None
        now = self.now()
        for terminal_id in self.cluster.present_terminals():
            state = self.floor.set_online(terminal_id, True, now)
            last = self.store.last_event(terminal_id, ["deviceOnline"])
            if last is not None:
                state.since = str(last["data"].get("since") or state.since)

    def cluster_orphan(self, terminal_id: str) -> None:
        """Its instance died and it has not connected elsewhere: offline, for everyone."""
        if terminal_id in self.terminals.connections:
            assert self.cluster is not None
            self.cluster.present(terminal_id, True)  # ours after all
            return
        state = self.floor.set_online(terminal_id, False, self.now())
        log.info("terminal %s: its hub instance is gone; offline", terminal_id)
        self.emit_hub_event("deviceOffline", terminal_id,
                             {"terminalId": terminal_id, "lostAt": state.since})

    def cluster_revived(self) -> None:
        assert self.cluster is not None
        for terminal_id, conn in list(self.terminals.connections.items()):
            if not conn.replaced:
                self.cluster.present(terminal_id, True)
                self.emit_hub_event("deviceOnline", terminal_id,
                                     {"terminalId": terminal_id, "since": conn.connected_at})

    def cluster_notice(self, kind: str, body: str) -> None:
        """A notice another instance sent (hub/cluster.py)."""
        if kind == OPERATORS:
            self.clients.to_local_operators(body)
        elif kind == ALERT_ACK:
            msg = json.loads(body)
            self.clients.alert_acked(body, msg["terminalId"], self.now())
        elif kind == ALERTS_RECOUNT:
            self.clients.alerts_recounted()
        elif kind == OFFER:
            stored = self.store.get_action(body)
            conn = None if stored is None else self.terminals.connections.get(stored.terminal_id)
            if conn is not None:
                self.actions.deliver_queued(conn)
