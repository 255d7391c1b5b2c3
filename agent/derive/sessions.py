"""Player sessions and the employee card, from card reader events and remote actions. Pure.

A session opens when a player card is inserted (or by a remote ``startPlayerSession``) and
closes when that card is removed, another player's card is inserted, or a remote
``endPlayerSession`` arrives. While it is open, money events carry its ``playerId`` and add
to its totals: ``coinIn`` and ``coinOut`` in cents (bets and wins), ``games`` (games-played
meter delta). The state is part of the agent state, so a restart keeps the open session.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from agent.observations import CardInserted, CardRemoved, SessionCommand
from api.events import Event, utc_timestamp


@dataclass(frozen=True, slots=True)
class PlayerSession:
    player_id: str
    started_at: float
    source: str  # "card" or "action"
    coin_in_cents: int = 0
    coin_out_cents: int = 0
    games: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "playerId": self.player_id, "startedAt": self.started_at, "source": self.source,
            "coinIn": self.coin_in_cents, "coinOut": self.coin_out_cents, "games": self.games,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlayerSession:
        return cls(
            player_id=str(data["playerId"]), started_at=float(data["startedAt"]),
            source=str(data["source"]), coin_in_cents=int(data["coinIn"]),
            coin_out_cents=int(data["coinOut"]), games=int(data["games"]),
        )


@dataclass(frozen=True, slots=True)
class CardState:
    """The open player session (if any) and the employee card in the reader (if any)."""

    session: PlayerSession | None = None
    employee_id: str | None = None

    @property
    def player_id(self) -> str | None:
        return self.session.player_id if self.session else None

    def to_json(self) -> dict[str, Any]:
        return {
            "session": self.session.to_json() if self.session else None,
            "employeeId": self.employee_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CardState:
        session = data.get("session")
        employee = data.get("employeeId")
        return cls(
            session=PlayerSession.from_json(session) if session else None,
            employee_id=str(employee) if employee is not None else None,
        )


Result = tuple[list[Event], CardState]


def _start(cards: CardState, player_id: str, at: float, source: str,
           action_id: str | None) -> Result:
    events, cards = _end(cards, at, "replaced")
    data: dict[str, Any] = {"playerId": player_id, "source": source}
    if action_id is not None:
        data["actionId"] = action_id
    events.append(Event("playerSessionStarted", utc_timestamp(at), data))
    return events, replace(cards, session=PlayerSession(player_id, at, source))


def _end(cards: CardState, at: float, reason: str,
         action_id: str | None = None) -> Result:
    session = cards.session
    if session is None:
        return [], cards
    data: dict[str, Any] = {
        "playerId": session.player_id,
        "reason": reason,
        "totals": {
            "coinIn": session.coin_in_cents,
            "coinOut": session.coin_out_cents,
            "games": session.games,
            "duration": round(max(0.0, at - session.started_at), 3),
        },
    }
    if action_id is not None:
        data["actionId"] = action_id
    return [Event("playerSessionEnded", utc_timestamp(at), data)], replace(cards, session=None)


def card_inserted(cards: CardState, obs: CardInserted) -> Result:
    ts = utc_timestamp(obs.at)
    if obs.kind == "employee":
        event = Event("cardInserted", ts, {"kind": "employee", "employeeId": obs.card_id})
        return [event], replace(cards, employee_id=obs.card_id)
    events = [Event("cardInserted", ts, {"kind": "player", "playerId": obs.card_id})]
    if cards.player_id == obs.card_id:
        return events, cards  # the same card again: the session goes on
    more, cards = _start(cards, obs.card_id, obs.at, "card", None)
    return events + more, cards


def card_removed(cards: CardState, obs: CardRemoved) -> Result:
    """The card left the reader, or the reader was lost with it (``obs.reason``
    ``readerLost``: the event carries that reason, and so does the session's end)."""
    ts = utc_timestamp(obs.at)
    extra = {"reason": obs.reason} if obs.reason is not None else {}
    if obs.kind == "employee":
        event = Event("cardRemoved", ts,
                      {"kind": "employee", "employeeId": obs.card_id, **extra})
        return [event], replace(cards, employee_id=None)
    events = [Event("cardRemoved", ts, {"kind": "player", "playerId": obs.card_id, **extra})]
    if cards.session and cards.session.source == "card" and cards.player_id == obs.card_id:
        more, cards = _end(cards, obs.at, obs.reason or "cardRemoved")
        events += more
    return events, cards


def session_command(cards: CardState, obs: SessionCommand) -> Result:
    """A remote start/endPlayerSession. Starting without a player id is ignored (nothing to
    attribute money to); ending with no open session emits nothing."""
    if obs.start:
        if not obs.player_id:
            return [], cards
        return _start(cards, obs.player_id, obs.at, "action", obs.action_id)
    return _end(cards, obs.at, "action", obs.action_id)


def account(cards: CardState, *, coin_in_cents: int = 0, coin_out_cents: int = 0,
            games: int = 0) -> CardState:
    """Add money to the open session's totals (no-op without a session)."""
    session = cards.session
    if session is None:
        return cards
    return replace(cards, session=replace(
        session,
        coin_in_cents=session.coin_in_cents + coin_in_cents,
        coin_out_cents=session.coin_out_cents + coin_out_cents,
        games=session.games + games,
    ))
