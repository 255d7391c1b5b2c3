"""The audit trail: who signed in, who sent which action (and why, and with what result),
who acknowledged which alert. docs/protocol.md §12 (``GET /api/audit``).

One table in the hub's database, created if missing (an additive migration: a database
from an older hub gains it at start and keeps everything else). Rows are written on the
event-loop connection, a few per operator click, never on the event ingest path.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
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
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        db.executescript(_SCHEMA)

    def record(self, *, at: str, who: str, role: str, kind: str,
               terminal_id: str | None = None, subject: str | None = None,
               what: str | None = None, reason: str | None = None, result: str = "ok",
               detail: dict[str, Any] | None = None) -> int:
        cur = self._db.execute(
            "INSERT INTO audit (at, who, role, kind, terminal_id, subject, what, reason, result,"
            " detail) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (at, who, role, kind, terminal_id, subject, what, reason, result,
             json.dumps(detail, ensure_ascii=False) if detail else None))
        return int(cur.lastrowid or 0)

    def action_status(self, action_id: str, status: str,
                      detail: dict[str, Any] | None = None) -> None:
        """The action's newest status (sent, queued, accepted, ..., succeeded) on its row."""
        if detail:
            self._db.execute(
                "UPDATE audit SET result = ?, detail = json_patch(coalesce(detail, '{}'), ?)"
                " WHERE kind = 'action' AND subject = ?",
                (status, json.dumps(detail, ensure_ascii=False), action_id))
        else:
            self._db.execute("UPDATE audit SET result = ? WHERE kind = 'action' AND subject = ?",
                             (status, action_id))

    def query(self, q: AuditQuery) -> tuple[list[dict[str, Any]], int | None]:
        """One page, oldest first, and the cursor to continue after (None: no more)."""
        return query_audit(self._db, q)


def query_audit(db: sqlite3.Connection, q: AuditQuery) -> tuple[list[dict[str, Any]],
                                                                 int | None]:
    """:meth:`AuditLog.query` on any connection to the hub's database (the history API runs
    it on a worker thread's own, hub.history_runner)."""
    where: list[str] = []
    args: list[Any] = []
    for column, values in (("kind", q.kinds), ("who", q.who), ("terminal_id", q.terminals)):
        if values:
            where.append(f"{column} IN ({','.join('?' * len(values))})")
            args.extend(values)
    for clause, value in (("at >= ?", q.since), ("at < ?", q.until), ("n > ?", q.after)):
        if value is not None:
            where.append(clause)
            args.append(value)
    sql = "SELECT * FROM audit" + (" WHERE " + " AND ".join(where) if where else "")
    limit = max(1, min(q.limit, MAX_PAGE))
    rows = db.execute(sql + " ORDER BY n LIMIT ?", (*args, limit + 1)).fetchall()
    entries = [_entry(r) for r in rows[:limit]]
    return entries, (entries[-1]["cursor"] if len(rows) > limit else None)


def _entry(row: sqlite3.Row) -> dict[str, Any]:
    return {"cursor": row["n"], "at": row["at"], "who": row["who"], "role": row["role"],
            "kind": row["kind"], "terminalId": row["terminal_id"], "subject": row["subject"],
            "what": row["what"], "reason": row["reason"], "result": row["result"],
            "detail": json.loads(row["detail"]) if row["detail"] else None}
