"""Per-terminal state for dashboards: online, link, lock, machine state, the gaming day's money.

Built from the store at start-up and updated from each new event and action result;
``snapshot`` and ``terminal`` messages carry it (docs/protocol.md §5).

Lock state is derived, never guessed: the machine is locked while the host has locked it
(the last ``machineLocked`` / ``machineUnlocked``, or a succeeded ``lock`` / ``unlock``
action), while the machine is game-locked (the last ``gameLocked`` / ``gameUnlocked``: the
agent reads LP 74 after exception 6F until it reads not locked) or while a handpay is pending
(the machine locks itself up until an attendant pays: ``handpayPending`` until
``handpayReset``). Every host lock the agent applies and every game lock it reads is
reported, so a terminal the hub has events from and no lock event is unlocked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from api.wire import LinkState, format_timestamp, needs_ack
from hub.gaming_day import GamingDay
from hub.history import hold_percent
from hub.store_api import Store

_LINK_EVENTS = {"machineLinkUp": LinkState.UP, "machineLinkDown": LinkState.DOWN}
_LOCK_EVENTS = {"machineLocked": True, "machineUnlocked": False}
_GAME_LOCK_EVENTS = {"gameLocked": True, "gameUnlocked": False}
_HANDPAY_EVENTS = ("handpayPending", "handpayReset")
_DOOR_EVENTS = {"doorOpened": True, "doorClosed": False}
_PLAY_EVENTS = frozenset({"gameStarted", "betPlaced"})


def _amount(frame: dict[str, Any]) -> int:
    value = frame["data"].get("amount")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _games(frame: dict[str, Any]) -> int:
    value = frame["data"].get("games")
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 1


@dataclass(slots=True)
class TerminalState:
    terminal_id: str
    day: str
    online: bool = False
    since: str | None = None
    link: LinkState = LinkState.UNKNOWN
    host_locked: bool | None = None
    game_locked: bool = False
    acked_seq: int = 0
    last_event: dict[str, Any] | None = None
    coin_in: int = 0
    coin_out: int = 0
    games: int = 0
    unacked_alerts: int = 0
    balance: int | None = None
    doors_open: set[str] = field(default_factory=set)
    tilt: dict[str, Any] | None = None
    handpay: dict[str, Any] | None = None
    bank: str | None = None
    area: str | None = None
    day_span: tuple[float, float] = (0.0, 0.0)  # epoch seconds of ``day`` (cached)
    day_stamps: tuple[str, str] = ("", "")  # the same as timestamps

    @property
    def locked(self) -> bool | None:
        if self.handpay is not None or self.game_locked:
            return True
        return self.host_locked

    def lock_reasons(self) -> list[str]:
        reasons = ["host"] if self.host_locked else []
        if self.game_locked:
            reasons.append("game")
        if self.handpay is not None:
            reasons.append("handpay")
        return reasons

    def to_wire(self) -> dict[str, Any]:
        return {"terminalId": self.terminal_id, "online": self.online, "since": self.since,
                "link": self.link.value, "locked": self.locked,
                "lockReasons": self.lock_reasons(), "ackedSeq": self.acked_seq,
                "lastEvent": self.last_event, "day": self.day, "coinInToday": self.coin_in,
                "coinOutToday": self.coin_out, "netWinToday": self.coin_in - self.coin_out,
                "holdPercentToday": hold_percent(self.coin_in, self.coin_out),
                "gamesToday": self.games, "unackedAlerts": self.unacked_alerts,
                "balance": self.balance, "doorsOpen": sorted(self.doors_open),
                "tilt": self.tilt, "handpay": self.handpay, "bank": self.bank,
                "area": self.area}


class Floor:
    """The state of every known terminal."""

    def __init__(self, store: Store, terminal_ids: list[str], now: float, *,
                 gaming_day: GamingDay | None = None,
                 registry: dict[str, dict[str, str]] | None = None) -> None:
        self._store = store
        self.gaming_day = gaming_day if gaming_day is not None else GamingDay()
        self._registry = registry or {}
        self.terminals: dict[str, TerminalState] = {}
        for tid in sorted(set(terminal_ids) | set(store.known_terminals())):
            self.terminals[tid] = self._load(tid, now)

    def _new(self, tid: str, now: float) -> TerminalState:
        info = self._registry.get(tid, {})
        state = TerminalState(tid, "", bank=info.get("bank"), area=info.get("area"))
        self._set_day(state, now)
        return state

    def _load(self, tid: str, now: float) -> TerminalState:
        store = self._store
        state = self._new(tid, now)
        state.acked_seq = store.acked_seq(tid)
        last = store.last_event(tid)
        if last is not None:
            state.last_event = _summary(last)
            state.host_locked = False  # seen, never host-locked (module docstring)
        link = store.last_event(tid, _LINK_EVENTS)
        if link is not None:
            state.link = _LINK_EVENTS[link["event"]]
        lock = store.last_event(tid, _LOCK_EVENTS)
        if lock is not None:
            state.host_locked = _LOCK_EVENTS[lock["event"]]
        game_lock = store.last_event(tid, _GAME_LOCK_EVENTS)
        if game_lock is not None:
            state.game_locked = _GAME_LOCK_EVENTS[game_lock["event"]]
        handpay = store.last_event(tid, _HANDPAY_EVENTS)
        if handpay is not None and handpay["event"] == "handpayPending":
            state.handpay = _handpay(handpay)
        balance = store.last_event(tid, ["balanceChanged"])
        if balance is not None:
            state.balance = _amount(balance)
        tilt = store.last_event(tid, ["tilt", *_PLAY_EVENTS])
        if tilt is not None and tilt["event"] == "tilt":
            state.tilt = _tilt(tilt)
        for frame in store.last_door_events(tid):
            if frame["event"] == "doorOpened":
                state.doors_open.add(str(frame["data"].get("door")))
        self._recount_money(state)
        state.unacked_alerts = store.count_unacked_alerts(tid)
        return state

    def _set_day(self, state: TerminalState, now: float) -> None:
        state.day = self.gaming_day.day_of(now)
        state.day_span = self.gaming_day.bounds(state.day)
        state.day_stamps = (format_timestamp(state.day_span[0]),
                            format_timestamp(state.day_span[1]))

    def _recount_money(self, state: TerminalState) -> None:
        since, until = state.day_stamps
        row = self._store.day_money(state.terminal_id, since, until)
        cap = 2**63 - 1
        state.coin_in, state.coin_out, state.games = (min(int(v), cap) for v in row)

    def get(self, tid: str, now: float) -> TerminalState:
        state = self.terminals.get(tid)
        if state is None:
            state = self.terminals[tid] = self._new(tid, now)
        start, end = state.day_span
        if not start <= now < end:  # formatting the day for every event would cost more
            today = self.gaming_day.day_of(now)
            if state.day != today:  # the gaming day turned: today's sums start again
                self._set_day(state, now)
                self._recount_money(state)
        return state

    def apply(self, frame: dict[str, Any], now: float) -> TerminalState:
        """Account for one newly stored event."""
        state = self.terminals.get(frame["terminalId"])
        if state is None or not state.day_span[0] <= now < state.day_span[1]:
            state = self.get(frame["terminalId"], now)  # new, or the gaming day may turn
        name = frame["event"]
        state.last_event = _summary(frame)
        if state.host_locked is None:
            state.host_locked = False
        if name in _LINK_EVENTS:
            state.link = _LINK_EVENTS[name]
        elif name in _LOCK_EVENTS:
            state.host_locked = _LOCK_EVENTS[name]
        elif name in _GAME_LOCK_EVENTS:
            state.game_locked = _GAME_LOCK_EVENTS[name]
        elif name == "handpayPending":
            state.handpay = _handpay(frame)
        elif name == "handpayReset":
            state.handpay = None
        elif name == "balanceChanged":
            state.balance = _amount(frame)
        elif name == "tilt":
            state.tilt = _tilt(frame)
        elif name in _DOOR_EVENTS and not frame["data"].get("powerOff"):
            door = str(frame["data"].get("door"))
            if _DOOR_EVENTS[name]:
                state.doors_open.add(door)
            else:
                state.doors_open.discard(door)
        if name in _PLAY_EVENTS:
            state.tilt = None  # the machine plays again: the tilt is cleared
        if name in ("betPlaced", "winPaid"):
            since, until = state.day_stamps
            if since <= frame["timestamp"] < until:
                if name == "betPlaced":
                    state.coin_in = min(state.coin_in + _amount(frame), 2**63 - 1)
                    state.games = min(state.games + _games(frame), 2**63 - 1)
                else:
                    state.coin_out = min(state.coin_out + _amount(frame), 2**63 - 1)
        if needs_ack(frame["channel"], name):
            state.unacked_alerts += 1
        return state

    def action_settled(self, tid: str, action: str, status: str, result: dict[str, Any] | None,
                       now: float) -> TerminalState | None:
        """A terminal's ``actionResult``: a succeeded lock / unlock is the host lock state
        (before its ``machineLocked`` event arrives); None when nothing changed."""
        if status != "succeeded":
            return None
        locked = (result or {}).get("locked")
        if not isinstance(locked, bool):
            locked = {"lock": True, "unlock": False}.get(action)
        if locked is None:
            return None
        state = self.get(tid, now)
        if state.host_locked == locked:
            return None
        state.host_locked = locked
        return state

    def machine_reported(self, tid: str, machine: dict[str, Any] | None, now: float
                         ) -> TerminalState:
        """The ``hello``'s ``machine`` state: the host lock and the game lock the agent holds
        now (events still in its outbox follow and end in the same state)."""
        state = self.get(tid, now)
        if machine is not None and isinstance(machine.get("hostLocked"), bool):
            state.host_locked = machine["hostLocked"]
        if machine is not None and isinstance(machine.get("gameLocked"), bool):
            state.game_locked = machine["gameLocked"]
        return state

    def set_online(self, tid: str, online: bool, now: float) -> TerminalState:
        state = self.get(tid, now)
        state.online = online
        state.since = format_timestamp(now)
        if online and state.host_locked is None:
            state.host_locked = False  # connected and never host-locked
        return state

    def recount_alerts(self) -> list[TerminalState]:
        """Count the open alerts again from the store (after a prune or a bulk
        acknowledgement); the changed states."""
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


def _handpay(frame: dict[str, Any]) -> dict[str, Any]:
    data = frame["data"]
    return {"eventId": frame["id"], "amount": data.get("amount"), "kind": data.get("kind"),
            "at": frame["timestamp"]}


def _tilt(frame: dict[str, Any]) -> dict[str, Any]:
    return {"eventId": frame["id"], "kind": frame["data"].get("kind"),
            "at": frame["timestamp"]}
