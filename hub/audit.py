"""The audit trail: who signed in, who sent which action (and why, and with what result),
who acknowledged which alert. docs/protocol.md §12 (``GET /api/audit``).

One table in the hub's database, created if missing (an additive migration: a database
from an older hub gains it at start and keeps everything else). Rows are written on the
event-loop connection, a few per operator click, never on the event ingest path. The same
queries run on SQLite and PostgreSQL (hub/store_sql.py ``Db``); only the table's
definition differs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hub.sql_dialect import conditions
from hub.store_sql import Db, Row, one

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    n {serial},
    at TEXT NOT NULL,              -- UTC timestamp, the hub's clock
    who TEXT NOT NULL,             -- the token's name
    role TEXT NOT NULL,
    kind TEXT NOT NULL,            -- login, loginRefused, action, alertAck
    terminal_id TEXT,
    subject TEXT,                  -- the action id, or the acknowledged event id
    what TEXT,                     -- the action's name, or the alert's event name
    reason TEXT,                   -- the operator's reason for an action
    result TEXT,                   -- an action's last status; "ok" otherwise
    detail TEXT                    -- JSON: params, error, the action's result
);
CREATE INDEX IF NOT EXISTS audit_by_subject ON audit (subject);
"""


KINDS = ("login", "loginRefused", "action", "alertAck")
MAX_PAGE = 1000


@dataclass(frozen=True, slots=True)
class AuditQuery:
    kinds: Sequence[str] = ()
    who: Sequence[str] = ()
    terminals: Sequence[str] = ()
    since: str | None = None
    until: str | None = None
    after: int | None = None
    limit: int = 100


class AuditLog:
    def __init__(self, db: Db) -> None:
        self._db = db
        db.schema(_SCHEMA.format(serial=db.dialect.serial))

    def record(self, *, at: str, who: str, role: str, kind: str,
               terminal_id: str | None = None, subject: str | None = None,
               what: str | None = None, reason: str | None = None, result: str = "ok",
               detail: dict[str, Any] | None = None) -> int:
        row = one(self._db,
                  "INSERT INTO audit (at, who, role, kind, terminal_id, subject, what, reason,"
                  " result, detail) VALUES (?,?,?,?,?,?,?,?,?,?) RETURNING n",
                  (at, who, role, kind, terminal_id, subject, what, reason, result,
                   json.dumps(detail, ensure_ascii=False) if detail else None))
        return int(row["n"]) if row else 0

    def login_refused(self, at: str, remote_address: Any) -> None:
        """An unknown token at ``/ws/client``, in an ``auth`` message or the upgrade's
        ``Authorization`` header (protocol.md §12): who it was is not known, only where from
        (the peer's address, a ``(host, port)`` pair, or None)."""
        self.record(at=at, who="(unknown token)", role="none", kind="loginRefused",
                    result="unauthorized",
                    detail={"remote": str(remote_address[0]) if remote_address else None})

    def action_status(self, action_id: str, status: str,
                      detail: dict[str, Any] | None = None) -> None:
        """The action's newest status (sent, queued, accepted, ..., succeeded) on its row;
        the top-level keys of ``detail`` (params, error, result) replace the row's."""
        if detail:
            self._db.run(
                f"UPDATE audit SET result = ?, detail = {self._db.dialect.merge('detail', '?')}"
                " WHERE kind = 'action' AND subject = ?",
                (status, json.dumps(detail, ensure_ascii=False), action_id))
        else:
            self._db.run("UPDATE audit SET result = ? WHERE kind = 'action' AND subject = ?",
                         (status, action_id))

    def query(self, q: AuditQuery) -> tuple[list[dict[str, Any]], int | None]:
        """One page, oldest first, and the cursor to continue after (None: no more)."""
        return query_audit(self._db, q)


def query_audit(db: Db, q: AuditQuery) -> tuple[list[dict[str, Any]], int | None]:
    """:meth:`AuditLog.query` on any connection to the hub's database (the history API runs
    it on a worker thread's own, hub.history_runner)."""
    where, args = conditions(
        db.dialect, [("kind", q.kinds), ("who", q.who), ("terminal_id", q.terminals)],
        [("at >= ?", q.since), ("at < ?", q.until), ("n > ?", q.after)])
    sql = "SELECT * FROM audit" + (" WHERE " + " AND ".join(where) if where else "")
    limit = max(1, min(q.limit, MAX_PAGE))
    rows = db.rows(sql + " ORDER BY n LIMIT ?", (*args, limit + 1))
    entries = [_entry(r) for r in rows[:limit]]
    return entries, (entries[-1]["cursor"] if len(rows) > limit else None)


def _entry(row: Row) -> dict[str, Any]:
    return {"cursor": row["n"], "at": row["at"], "who": row["who"], "role": row["role"],
            "kind": row["kind"], "terminalId": row["terminal_id"], "subject": row["subject"],
            "what": row["what"], "reason": row["reason"], "result": row["result"],
            "detail": json.loads(row["detail"]) if row["detail"] else None}
