"""Player sessions: card in/out and remote actions, totals, playerId on money events."""

from __future__ import annotations

from agent.derive.interpreter import Interpreter
from agent.derive.sessions import CardState, account, card_inserted, card_removed, session_command
from agent.derive.state import AgentState
from agent.observations import (
    CardInserted,
    CardRemoved,
    LinkUp,
    MachineIdentified,
    MetersRead,
    Observation,
    SessionCommand,
)
from api.events import Event

T0 = 1_700_000_000.0


def test_player_card_opens_and_closes_a_session_with_totals() -> None:
    cards = CardState()
    events, cards = card_inserted(cards, CardInserted(at=T0, card_id="P42", kind="player"))
    assert [(e.name, e.data) for e in events] == [
        ("cardInserted", {"kind": "player", "playerId": "P42"}),
        ("playerSessionStarted", {"playerId": "P42", "source": "card"}),
    ]
    cards = account(cards, coin_in_cents=500, coin_out_cents=200, games=3)
    cards = account(cards, coin_in_cents=100, games=1)
    events, cards = card_removed(cards, CardRemoved(at=T0 + 95.5, card_id="P42", kind="player"))
    assert [e.name for e in events] == ["cardRemoved", "playerSessionEnded"]
    assert events[1].data == {
        "playerId": "P42", "reason": "cardRemoved",
        "totals": {"coinIn": 600, "coinOut": 200, "games": 4, "duration": 95.5},
    }
    assert cards.session is None


def test_another_player_card_replaces_the_session() -> None:
    _, cards = card_inserted(CardState(), CardInserted(at=T0, card_id="P1", kind="player"))
    events, cards = card_inserted(cards, CardInserted(at=T0 + 5, card_id="P2", kind="player"))
    assert [e.name for e in events] == ["cardInserted", "playerSessionEnded",
                                        "playerSessionStarted"]
    assert events[1].data["reason"] == "replaced"
    assert cards.player_id == "P2"
    # removing the first card no longer ends anything
    events, cards = card_removed(cards, CardRemoved(at=T0 + 6, card_id="P1", kind="player"))
    assert [e.name for e in events] == ["cardRemoved"]
    assert cards.player_id == "P2"


def test_employee_card_is_tracked_and_opens_no_session() -> None:
    events, cards = card_inserted(CardState(), CardInserted(at=T0, card_id="E7",
                                                            kind="employee"))
    assert [(e.name, e.data) for e in events] == [
        ("cardInserted", {"kind": "employee", "employeeId": "E7"})]
    assert cards.employee_id == "E7" and cards.session is None
    _, cards = card_removed(cards, CardRemoved(at=T0 + 1, card_id="E7", kind="employee"))
    assert cards.employee_id is None


def test_remote_session_commands() -> None:
    start = SessionCommand(at=T0, start=True, player_id="P9", action_id="act-1")
    events, cards = session_command(CardState(), start)
    assert events[0].data == {"playerId": "P9", "source": "action", "actionId": "act-1"}
    events, same = session_command(cards, SessionCommand(at=T0, start=True, player_id=None))
    assert (events, same) == ([], cards)
    # a card-less session is not ended by some card being pulled
    events, cards = card_removed(cards, CardRemoved(at=T0 + 1, card_id="P9", kind="player"))
    assert cards.player_id == "P9"
    end = SessionCommand(at=T0 + 10, start=False, player_id=None, action_id="act-2")
    events, cards = session_command(cards, end)
    assert events[0].data["reason"] == "action" and events[0].data["actionId"] == "act-2"
    assert events[0].data["totals"]["duration"] == 10.0
    assert session_command(cards, end) == ([], cards)


def test_money_events_carry_the_player_and_feed_the_totals() -> None:
    interp = Interpreter("T1")
    state = interp.initial_state()
    out: list[Event] = []

    def feed(obs: Observation) -> None:
        nonlocal state
        events, state, _ = interp.observe(state, obs)
        out.extend(events)

    def meters(at: float, coin_in: int, coin_out: int, games: int) -> MetersRead:
        return MetersRead(at=at, meters={0: coin_in, 1: coin_out, 5: games},
                          widths={0: 4, 1: 4, 5: 4}, reason="timer")

    feed(LinkUp(at=T0))
    feed(MachineIdentified(at=T0, sas_version="602", serial_number="S", game_id="AB",
                           denomination_cents=10, games=1))
    feed(meters(T0 + 1, 100, 50, 7))
    feed(meters(T0 + 2, 110, 50, 8))  # no session: playerId None
    feed(CardInserted(at=T0 + 3, card_id="P1", kind="player"))
    feed(meters(T0 + 4, 130, 70, 10))
    # a restart keeps the open session
    state = AgentState.from_json(state.to_json())
    feed(meters(T0 + 5, 135, 70, 11))
    feed(CardRemoved(at=T0 + 63, card_id="P1", kind="player"))
    bets = [e.data["playerId"] for e in out if e.name == "betPlaced"]
    assert bets == [None, "P1", "P1"]
    assert [e.data["playerId"] for e in out if e.name == "winPaid"] == ["P1"]
    ended = next(e for e in out if e.name == "playerSessionEnded")
    assert ended.data["totals"] == {"coinIn": 250, "coinOut": 200, "games": 3, "duration": 60.0}


def test_a_lost_reader_ends_the_card_and_the_session_with_reason_reader_lost() -> None:
    cards = CardState()
    _, cards = card_inserted(cards, CardInserted(at=T0, card_id="P0012345", kind="player"))
    _, cards = card_inserted(cards, CardInserted(at=T0, card_id="E0042", kind="employee"))
    events, cards = card_removed(cards, CardRemoved(at=T0 + 10, card_id="P0012345",
                                                    kind="player", reason="readerLost"))
    assert [(e.name, e.data) for e in events] == [
        ("cardRemoved", {"kind": "player", "playerId": "P0012345", "reason": "readerLost"}),
        ("playerSessionEnded", {"playerId": "P0012345", "reason": "readerLost",
                                "totals": {"coinIn": 0, "coinOut": 0, "games": 0,
                                           "duration": 10.0}}),
    ]
    assert cards.session is None and cards.employee_id == "E0042"
    events, cards = card_removed(cards, CardRemoved(at=T0 + 10, card_id="E0042",
                                                    kind="employee", reason="readerLost"))
    assert [(e.name, e.data) for e in events] == [
        ("cardRemoved", {"kind": "employee", "employeeId": "E0042", "reason": "readerLost"})]
    assert cards.employee_id is None
