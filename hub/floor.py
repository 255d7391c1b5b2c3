"""Per-terminal state for dashboards: online, link, lock, last event, today's money, alerts.

Built from the store at start-up and updated from each new event; ``snapshot`` and
``terminal`` messages carry it (docs/protocol.md §5).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from api.wire import LinkState, format_timestamp, needs_ack
from hub.store_api import Store

_LINK_EVENTS = {"machineLinkUp": LinkState.UP, "machineLinkDown": LinkState.DOWN}
_LOCK_EVENTS = {"machineLocked": True, "machineUnlocked": False}
_MONEY_EVENTS = {"betPlaced": "coin_in", "winPaid": "coin_out"}


def utc_day(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, tz=UTC).strftime("%Y-%m-%d")


def _day_bounds(day: str) -> tuple[float, float]:
    start = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
    return start, start + 86400.0


def _next_day(day: str) -> str:
    return (datetime.strptime(day, "%Y-%m-%d") + timedelta(days=1)).strftime("%Y-%m-%d")


def _amount(frame: dict[str, Any]) -> int:
    value = frame["data"].get("amount")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass(slots=True)
class TerminalState:
    terminal_id: str
    day: str
    online: bool = False
    since: str | None = None
    link: LinkState = LinkState.UNKNOWN
    locked: bool | None = None
    acked_seq: int = 0
    last_event: dict[str, Any] | None = None
    coin_in: int = 0
    coin_out: int = 0
    unacked_alerts: int = 0
    day_span: tuple[float, float] = (0.0, 0.0)  # epoch seconds of ``day`` (cached)

    def to_wire(self) -> dict[str, Any]:
        return {"terminalId": self.terminal_id, "online": self.online, "since": self.since,
                "link": self.link.value, "locked": self.locked, "ackedSeq": self.acked_seq,
                "lastEvent": self.last_event, "coinInToday": self.coin_in,
                "coinOutToday": self.coin_out, "unackedAlerts": self.unacked_alerts}


class Floor:
    """The state of every known terminal."""

    def __init__(self, store: Store, terminal_ids: list[str], now: float) -> None:
        self._store = store
        self.terminals: dict[str, TerminalState] = {}
        for tid in sorted(set(terminal_ids) | set(store.known_terminals())):
            self.terminals[tid] = self._load(tid, now)

    def _load(self, tid: str, now: float) -> TerminalState:
        store = self._store
        state = TerminalState(tid, utc_day(now), acked_seq=store.acked_seq(tid))
        last = store.last_event(tid)
        if last is not None:
            state.last_event = _summary(last)
        link = store.last_event(tid, _LINK_EVENTS)
        if link is not None:
            state.link = _LINK_EVENTS[link["event"]]
        lock = store.last_event(tid, _LOCK_EVENTS)
        if lock is not None:
            state.locked = _LOCK_EVENTS[lock["event"]]
        self._recount_money(state)
        state.unacked_alerts = store.count_unacked_alerts(tid)
        return state

    def _recount_money(self, state: TerminalState) -> None:
        since, until = state.day, _next_day(state.day)
        state.coin_in = self._store.amount_sum(state.terminal_id, "betPlaced", since, until)
        state.coin_out = self._store.amount_sum(state.terminal_id, "winPaid", since, until)

    def get(self, tid: str, now: float) -> TerminalState:
        state = self.terminals.get(tid)
        if state is None:
            state = self.terminals[tid] = TerminalState(tid, utc_day(now))
        start, end = state.day_span
        if not start <= now < end:  # formatting the day for every event would cost more
            today = utc_day(now)
            state.day_span = _day_bounds(today)
            if state.day != today:  # the UTC day turned: today's sums start again
                state.day = today
                self._recount_money(state)
        return state

    def apply(self, frame: dict[str, Any], now: float) -> TerminalState:
        """Account for one newly stored event."""
        state = self.get(frame["terminalId"], now)
        name = frame["event"]
        state.last_event = _summary(frame)
        if name in _LINK_EVENTS:
            state.link = _LINK_EVENTS[name]
        elif name in _LOCK_EVENTS:
            state.locked = _LOCK_EVENTS[name]
        elif name in _MONEY_EVENTS and frame["timestamp"][:10] == state.day:
            if name == "betPlaced":
                state.coin_in = min(state.coin_in + _amount(frame), 2**63 - 1)
            else:
                state.coin_out = min(state.coin_out + _amount(frame), 2**63 - 1)
        if needs_ack(frame["channel"], name):
            state.unacked_alerts += 1
        return state

    def set_online(self, tid: str, online: bool, now: float) -> TerminalState:
        state = self.get(tid, now)
        state.online = online
        state.since = format_timestamp(now)
        return state

    def recount_alerts(self) -> list[TerminalState]:
        """Count the open alerts again from the store (after a prune); the changed states."""
        changed = []
        for state in self.terminals.values():
            count = self._store.count_unacked_alerts(state.terminal_id)
            if count != state.unacked_alerts:
                state.unacked_alerts = count
                changed.append(state)
        return changed

    def alert_acked(self, tid: str, now: float) -> TerminalState:
        state = self.get(tid, now)
        state.unacked_alerts = max(0, state.unacked_alerts - 1)
        return state

    def snapshot_terminals(self, scope: frozenset[str] | None, now: float
                           ) -> list[dict[str, Any]]:
        ids = sorted(self.terminals) if scope is None else sorted(scope)
        return [self.get(tid, now).to_wire() for tid in ids if tid in self.terminals]

    def coin_in_per_minute(self, scope: frozenset[str] | None, now: float
                           ) -> list[dict[str, Any]]:
        """``betPlaced`` amounts per UTC minute, the last 60 minutes, oldest first."""
        current = int(now // 60) * 60
        first = current - 59 * 60
        totals = self._store.amounts_by_minute(
            "betPlaced", format_timestamp(first), None if scope is None else sorted(scope)
        )
        series = []
        for minute in range(first, current + 60, 60):
            stamp = format_timestamp(minute)
            series.append({"minute": stamp, "amount": totals.get(stamp[:16], 0)})
        return series


def _summary(frame: dict[str, Any]) -> dict[str, Any]:
    return {"id": frame["id"], "event": frame["event"], "timestamp": frame["timestamp"]}
