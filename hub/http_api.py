"""The history API over plain HTTP on the hub's port: events, day summaries, meters, audit.

``GET /api/...`` with ``Authorization: Bearer <token>`` (viewer or operator; the audit
trail is for operators), answered before any WebSocket upgrade (``process_request``, like
the dashboard's files). JSON by default, CSV with ``format=csv``. docs/protocol.md §12.

The queries run off the event loop, on the hub's history workers (hub.history_runner): the
parameters are read here on the loop, the query runs on a worker thread with its own read
connection, and the answer is built back here. When every worker is busy the request gets
503 ``rate_limited`` at once (with ``Retry-After``), never a wait that would pile up; a query
stopped for running too long gets 504 ``timeout``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from websockets.http11 import Request, Response

from api.wire import MAX_ID_LENGTH, Role, format_timestamp, parse_timestamp
from hub.audit import KINDS, AuditQuery, query_audit
from hub.gaming_day import GamingDayError
from hub.history import (
    DEFAULT_PAGE,
    MAX_PAGE,
    EventQuery,
    day_summary,
    latest_meters,
    query_events,
)
from hub.history_runner import HistoryBusyError, HistoryTooSlowError
from hub.http_answers import response
from hub.store_sql import Db, database_errors

if TYPE_CHECKING:
    from hub.server import Hub

PREFIX = "/api/"

#: Seconds a client is told to wait after a 503 ``rate_limited`` (every worker busy).
RETRY_AFTER_S = 1

T = TypeVar("T")

#: The largest integer parameter (cursors are 64-bit).
_INT64_MAX = 2**63 - 1

_CHANNELS = {"game", "cash", "alerts", "system", "player"}


class _BadRequestError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _json(status: int, body: Any) -> Response:
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return response(status, text.encode("utf-8"), "application/json")


def _csv(rows: list[list[Any]], header: list[str], filename: str) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180
    writer.writerow(header)
    writer.writerows(rows)
    resp = response(200, out.getvalue().encode("utf-8"), "text/csv; charset=utf-8")
    resp.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return resp


class _Params:
    def __init__(self, query: str) -> None:
        try:
            self._q = parse_qs(query, keep_blank_values=False, strict_parsing=False,
                               max_num_fields=200)
        except ValueError as exc:
            raise _BadRequestError(400, "bad_request", str(exc)) from None

    def many(self, name: str, allowed: set[str] | None = None) -> list[str]:
        values = [v for item in self._q.get(name, []) for v in item.split(",") if v]
        for v in values:
            if len(v) > MAX_ID_LENGTH or (allowed is not None and v not in allowed):
                raise _BadRequestError(400, "bad_request", f"{name}: bad value {v[:40]!r}")
        return values

    def one(self, name: str) -> str | None:
        values = self._q.get(name)
        if not values:
            return None
        if len(values) > 1:
            raise _BadRequestError(400, "bad_request", f"{name}: given more than once")
        return values[0]

    def timestamp(self, name: str) -> str | None:
        value = self.one(name)
        if value is None:
            return None
        try:
            return format_timestamp(parse_timestamp(value))
        except ValueError:
            raise _BadRequestError(400, "bad_request",
                                   f"{name}: must be UTC ISO-8601 with Z") from None

    def integer(self, name: str, default: int | None, minimum: int = 0,
                maximum: int = _INT64_MAX) -> int | None:
        value = self.one(name)
        if value is None:
            return default
        if not value.isdigit() or int(value) < minimum or int(value) > maximum:
            bound = f">= {minimum}" if maximum == _INT64_MAX else f"from {minimum} to {maximum}"
            raise _BadRequestError(400, "bad_request", f"{name}: must be an integer {bound}")
        return int(value)

    def csv(self) -> bool:
        fmt = self.one("format") or "json"
        if fmt not in ("json", "csv"):
            raise _BadRequestError(400, "bad_request", "format: json or csv")
        return fmt == "csv"


def refusal(hub: Hub, request: Request, *, operators_only: bool = False) -> Response | None:
    """401 or 403 for a request without the bearer token of a viewer (or, with
    ``operators_only``, an operator); None when it may be answered. Also ``GET /metrics``'s
    (hub/metrics.py)."""
    principal = hub.bearer(request.headers.get("Authorization"))  # the WebSocket paths' tokens
    if principal is None:
        resp = _json(401, {"error": "unauthorized", "message": "missing or unknown token"})
        resp.headers["WWW-Authenticate"] = "Bearer"
        return resp
    if principal.role is Role.TERMINAL or (operators_only
                                           and principal.role is not Role.OPERATOR):
        return _json(403, {"error": "forbidden",
                           "message": f"a {principal.role.value} token may not read this"})
    return None


async def answer(hub: Hub, request: Request) -> Response:
    """The answer to ``GET /api/...``."""
    parts = urlsplit(request.path)
    handler = _ROUTES.get(parts.path)
    if handler is None:
        return _json(404, {"error": "not_found", "message": f"no API {parts.path[:80]}"})
    refused = refusal(hub, request, operators_only=parts.path == "/api/audit")
    if refused is not None:
        return refused
    try:
        return await handler(hub, _Params(parts.query))
    except _BadRequestError as exc:
        return _json(exc.status, {"error": exc.code, "message": exc.message})
    except HistoryBusyError as exc:
        resp = _json(503, {"error": "rate_limited", "message": str(exc)})
        resp.headers["Retry-After"] = str(RETRY_AFTER_S)
        return resp
    except HistoryTooSlowError as exc:
        return _json(504, {"error": "timeout", "message": str(exc)})
    except database_errors() as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return _json(500, {"error": "internal", "message": f"store: {first}"})


def _query(hub: Hub, query: Callable[[Db], T]) -> Awaitable[T]:
    """``query`` run on a history worker's read connection to the store (either engine)."""
    return hub.history.run(query)


async def _events(hub: Hub, p: _Params) -> Response:
    q = EventQuery(
        terminals=p.many("terminal"), events=p.many("event"),
        channels=p.many("channel", _CHANNELS), since=p.timestamp("since"),
        until=p.timestamp("until"), after=p.integer("after", None),
        before=p.integer("before", None, minimum=1),
        limit=p.integer("limit", DEFAULT_PAGE, minimum=1, maximum=MAX_PAGE) or DEFAULT_PAGE)
    as_csv = p.csv()
    frames, nxt = await _query(hub, lambda db: query_events(db, q))
    if as_csv:
        return _csv([[f["cursor"], f["id"], f["terminalId"], f["seq"], f["channel"],
                      f["event"], f["timestamp"], f["data"].get("amount"),
                      json.dumps(f["data"], ensure_ascii=False, separators=(",", ":"))]
                     for f in frames],
                    ["cursor", "id", "terminalId", "seq", "channel", "event", "timestamp",
                     "amount", "data"], "events.csv")
    return _json(200, {"events": frames, "next": nxt,
                       "order": "newest-first" if q.newest_first else "oldest-first"})


async def _summary(hub: Hub, p: _Params) -> Response:
    day = p.one("day") or hub.gaming_day.day_of(hub.clock())
    terminals = p.many("terminal") or sorted(hub.floor.terminals)
    as_csv = p.csv()
    gaming_day, registry = hub.gaming_day, hub.tokens.registry()
    try:
        body = await _query(hub, lambda db: day_summary(db, gaming_day, day, terminals,
                                                        registry))
    except GamingDayError as exc:
        raise _BadRequestError(400, "bad_request", str(exc)) from None
    if as_csv:
        rows = [[r["terminalId"], r.get("bank", ""), r.get("area", ""), r["coinIn"],
                 r["coinOut"], r["netWin"], "" if r["holdPercent"] is None else r["holdPercent"],
                 r["games"], r["bills"]["count"], r["bills"]["amount"], r["ticketsIn"]["count"],
                 r["ticketsIn"]["amount"], r["ticketsOut"]["count"], r["ticketsOut"]["amount"],
                 r["handpays"]["count"], r["handpays"]["amount"]] for r in body["terminals"]]
        return _csv(rows, ["terminalId", "bank", "area", "coinIn", "coinOut", "netWin",
                           "holdPercent", "games", "billsCount", "billsAmount",
                           "ticketsInCount", "ticketsInAmount", "ticketsOutCount",
                           "ticketsOutAmount", "handpaysCount", "handpaysAmount"],
                    f"summary-{day}.csv")
    return _json(200, body)


async def _meters(hub: Hub, p: _Params) -> Response:
    terminals = p.many("terminal") or sorted(hub.floor.terminals)
    return _json(200, {"terminals": await _query(hub, lambda db: latest_meters(db, terminals))})


async def _audit(hub: Hub, p: _Params) -> Response:
    q = AuditQuery(kinds=p.many("kind", set(KINDS)), who=p.many("who"),
                   terminals=p.many("terminal"), since=p.timestamp("since"),
                   until=p.timestamp("until"), after=p.integer("after", None),
                   limit=p.integer("limit", DEFAULT_PAGE, minimum=1, maximum=MAX_PAGE)
                   or DEFAULT_PAGE)
    as_csv = p.csv()
    entries, nxt = await _query(hub, lambda db: query_audit(db, q))
    if as_csv:
        keys = ["cursor", "at", "who", "role", "kind", "terminalId", "subject", "what",
                "reason", "result"]
        return _csv([[e[k] if e[k] is not None else "" for k in keys]
                     + [json.dumps(e["detail"], ensure_ascii=False) if e["detail"] else ""]
                     for e in entries], [*keys, "detail"], "audit.csv")
    return _json(200, {"entries": entries, "next": nxt})


_ROUTES: dict[str, Callable[[Hub, _Params], Awaitable[Response]]] = {
    "/api/history/events": _events,
    "/api/summary": _summary,
    "/api/meters": _meters,
    "/api/audit": _audit,
}
