"""The audit trail (hub/audit.py) in a PostgreSQL store: the same table, rows and queries.

Kept beside hub/audit.py rather than inside it so that module stays free of psycopg; the
hub picks one with :func:`hub.store_api.open_audit`.
"""

from __future__ import annotations

import json
from typing import Any, cast

from hub.audit import MAX_PAGE, AuditQuery, _entry
from hub.store_pg import PgStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    n BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at TEXT NOT NULL,
    who TEXT NOT NULL,
    role TEXT NOT NULL,
    kind TEXT NOT NULL,
    terminal_id TEXT,
    subject TEXT,
    what TEXT,
    reason TEXT,
    result TEXT,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS audit_by_subject ON audit (subject);
"""


class PgAuditLog:
    """:class:`hub.audit.AuditLog` on the store's loop connection."""

    def __init__(self, store: PgStore) -> None:
        self._store = store
        store.create_schema(_SCHEMA)

    def record(self, *, at: str, who: str, role: str, kind: str,
               terminal_id: str | None = None, subject: str | None = None,
               what: str | None = None, reason: str | None = None, result: str = "ok",
               detail: dict[str, Any] | None = None) -> int:
        row = self._store.execute(
            "INSERT INTO audit (at, who, role, kind, terminal_id, subject, what, reason, result,"
            " detail) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) RETURNING n",
            (at, who, role, kind, terminal_id, subject, what, reason, result,
             json.dumps(detail, ensure_ascii=False) if detail else None)).fetchone()
        return int(row["n"]) if row else 0

    def action_status(self, action_id: str, status: str,
                      detail: dict[str, Any] | None = None) -> None:
        if detail:
            # The top-level keys of ``detail`` replace the row's (the values hold no
            # nested objects to merge: params, error, result).
            self._store.execute(
                "UPDATE audit SET result = %s, detail = (coalesce(detail, '{}')::jsonb"
                " || %s::jsonb)::text WHERE kind = 'action' AND subject = %s",
                (status, json.dumps(detail, ensure_ascii=False), action_id))
        else:
            self._store.execute(
                "UPDATE audit SET result = %s WHERE kind = 'action' AND subject = %s",
                (status, action_id))

    def query(self, q: AuditQuery) -> tuple[list[dict[str, Any]], int | None]:
        where: list[str] = []
        args: list[Any] = []
        for column, values in (("kind", q.kinds), ("who", q.who), ("terminal_id", q.terminals)):
            if values:
                where.append(f"{column} = ANY(%s)")
                args.append(list(values))
        for clause, value in (("at >= %s", q.since), ("at < %s", q.until),
                              ("n > %s", q.after)):
            if value is not None:
                where.append(clause)
                args.append(value)
        sql = "SELECT * FROM audit" + (" WHERE " + " AND ".join(where) if where else "")
        limit = max(1, min(q.limit, MAX_PAGE))
        rows = self._store.execute(sql + " ORDER BY n LIMIT %s", (*args, limit + 1)).fetchall()
        entries = [_entry(cast(Any, r)) for r in rows[:limit]]
        return entries, (entries[-1]["cursor"] if len(rows) > limit else None)
