"""What the hub needs from a store: the interface SQLite (hub/store.py) and PostgreSQL
(hub/store_pg.py) both implement, and :func:`open_store`, which picks one from the config.

The conformance suite (tests/hub/test_store_conformance.py) holds both to the same behaviour.
Reads and the few small writes (alert acknowledgements, actions) run on the event loop
thread; event batches go through :meth:`Store.write_events` on the store's own writer thread
(hub/ingest.py). Both stores keep the same tables and columns (docs/scaling.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from hub.store_sql import Db, EventWrite, StoredAction

if TYPE_CHECKING:
    from hub.audit import AuditLog
    from hub.config import HubConfig

__all__ = ["EventWrite", "Store", "StoreError", "StoredAction", "open_audit", "open_store"]


class StoreError(Exception):
    """The store cannot be opened (the message says why; it never holds the URL, which may
    hold a password)."""


class Store(Protocol):
    """The hub's store. Every method is what :class:`hub.store_sql.SqlStore` (the shared
    queries) or :class:`hub.store.HubStore` documents."""

    @property
    def reader(self) -> Db:
        """The event-loop connection, for hub.history, hub.replay and hub.audit."""
        ...

    def close(self) -> None: ...

    def open_history_db(self, query_limit_s: float, over_time: Callable[[], bool]) -> Db:
        """A read-only connection for a history worker thread (hub.history_runner)."""
        ...

    async def write_events(self, writes: Sequence[EventWrite], received_at: float
                           ) -> list[bool]: ...

    def insert_event(self, frame: dict[str, Any], *, source: str, received_at: float,
                     acked_seq: int | None = None) -> bool: ...

    def acked_seq(self, terminal_id: str) -> int: ...

    def set_acked_seq(self, terminal_id: str, acked_seq: int) -> None: ...

    def next_hub_seq(self) -> int: ...

    def reserve_hub_seqs(self, count: int) -> int:
        """The first of ``count`` hub event seqs no other hub instance will use."""
        ...

    def known_terminals(self) -> list[str]: ...

    def get_event(self, event_id: str) -> dict[str, Any] | None: ...

    def events(self, terminal_id: str | None = None) -> list[dict[str, Any]]: ...

    def recent(self, limit: int, terminals: Iterable[str] | None) -> list[dict[str, Any]]: ...

    def unacked_alerts(self, limit: int, terminals: Iterable[str] | None
                       ) -> list[dict[str, Any]]: ...

    def count_unacked_alerts(self, terminal_id: str) -> int: ...

    def last_door_events(self, terminal_id: str) -> list[dict[str, Any]]: ...

    def day_money(self, terminal_id: str, since: str, until: str) -> tuple[int, int, int]: ...

    def last_event(self, terminal_id: str, names: Iterable[str] | None = None
                   ) -> dict[str, Any] | None: ...

    def amount_sum(self, terminal_id: str, event: str, since: str, until: str) -> int: ...

    def amounts_by_minute(self, event: str, since: str, terminals: Iterable[str] | None
                          ) -> dict[str, int]: ...

    async def prune(self, cutoff: float, final_statuses: Iterable[str], *,
                    chunk: int = 5000) -> int: ...

    def alert_ack(self, event_id: str) -> tuple[str, str] | None: ...

    def add_alert_ack(self, event_id: str, terminal_id: str, by: str, at: str) -> bool: ...

    def add_action(self, message: dict[str, Any], *, sender: str, status: str,
                   deadline: float | None, created_at: float) -> bool: ...

    def set_action_status(self, action_id: str, status: str,
                          result: dict[str, Any] | None = None) -> None: ...

    def claim_action(self, action_id: str, expected: str, status: str,
                     result: dict[str, Any] | None = None) -> bool:
        """Move an action from ``expected`` to ``status`` atomically; False if it was not in
        ``expected`` (another hub instance delivered or expired it first)."""
        ...

    def get_action(self, action_id: str) -> StoredAction | None: ...

    def queued_actions(self, terminal_id: str | None = None) -> list[StoredAction]: ...


def open_audit(store: Store) -> AuditLog:
    """The audit trail (hub/audit.py) in the store's database."""
    from hub.audit import AuditLog

    return AuditLog(store.reader)


def open_store(config: HubConfig, *, origin: str = "") -> Store:
    """The store the config names: ``store: postgresql://…``, else SQLite at ``database``.

    ``origin`` names this hub instance in the notifications a PostgreSQL store sends
    (hub/cluster.py), so an instance can tell its own from the others'.
    """
    if config.store is not None:
        try:
            import psycopg

            from hub.store_pg import PgStore  # psycopg is needed only here
        except ImportError as exc:
            raise StoreError("store: a postgresql:// store needs psycopg 3: pip install "
                             f"'slot-agent[postgresql]' ({exc})") from None
        try:
            return PgStore(config.store, synchronous=config.synchronous, origin=origin)
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StoreError(f"store: cannot open the PostgreSQL database: {first}") from None
    import sqlite3

    from hub.store import HubStore

    assert config.database is not None
    try:
        return HubStore(config.database, synchronous=config.synchronous)
    except sqlite3.Error as exc:
        # e.g. its directory missing or not writable: a reason, not a traceback (exit 1)
        raise StoreError(f"database: cannot open the SQLite database {config.database}: "
                         f"{exc}") from None
