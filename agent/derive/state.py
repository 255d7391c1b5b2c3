"""The interpreter's state: what it must remember between observations, across restarts.

The outbox stores ``AgentState.to_json()`` in the same SQLite transaction as the events
derived with it, so after a crash the meter baseline and the events always agree (meters are
the truth for money: the next read emits exactly the missing delta).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from agent.derive.sessions import CardState

STATE_VERSION = 1


def _codes_to_json(values: Mapping[int, int]) -> dict[str, int]:
    return {f"{code:02X}": int(value) for code, value in sorted(values.items())}


def _codes_from_json(values: Mapping[str, Any]) -> dict[int, int]:
    return {int(code, 16): int(value) for code, value in values.items()}


@dataclass(frozen=True, slots=True)
class MachineState:
    """Everything known about one machine (one SAS address) on the line.

    ``baseline`` holds the last accepted value of every meter read (Table C-7 code -> value,
    the meter's own unit) and ``widths`` their BCD widths. The flags record triggers whose
    effect lands on a later observation: a reset announced (``reset_pending``), options
    changed (``options_pending``), a backlog to reconcile by one delta
    (``reconcile_pending``), and the window in which queued 7E/7F are backlog
    (``backlog_until``, epoch seconds).
    """

    address: int
    baseline: Mapping[int, int] = field(default_factory=dict)
    widths: Mapping[int, int] = field(default_factory=dict)
    denomination_cents: int | None = None
    identity: Mapping[str, Any] | None = None
    link_up: bool = False
    host_locked: bool = False
    game_locked: bool = False  # LP 74 read locked after a 6F (SAS §3.11)
    doors: Mapping[str, bool] = field(default_factory=dict)  # door -> open
    handpay: Mapping[str, Any] | None = None  # the pending handpay, from LP 1B
    game_in_progress: bool | None = None  # None: unknown (fresh start)
    selected_game: int | None = None
    reset_pending: bool = False
    options_pending: bool = False
    reconcile_pending: bool = False
    backlog_until: float | None = None
    backlog_read_requested: bool = False
    last_ticket: str | None = None  # validation number of the last ticketPrinted
    clock_skewed: bool = False
    # The ticket ledger (docs/events.md, "Tickets"): ticket-out meter cents not yet matched
    # by an LP 4D record, since when and from which meter values, the 4D records waiting for
    # a meter read that covers them, and when a 3D asked for an LP 4D answer not yet come.
    ticket_credit: int = 0
    ticket_credit_since: float | None = None
    ticket_credit_from: Mapping[int, int] = field(default_factory=dict)
    tickets_waiting: tuple[Mapping[str, Any], ...] = ()
    ticket_asked_at: float | None = None
    # When an RTE 7E last moved the coin-in baseline: a meter read started before then may
    # carry an older coin-in (SAS §3.12).
    rte_coin_in_at: float | None = None
    # The bill ledger of a machine whose only bill meter is the total drop (agent/derive/bills.py):
    # bill exceptions waiting for drop movement, and drop movement (cents) no bill claimed
    # yet, since when and from which drop meter value.
    bills_pending: tuple[Mapping[str, Any], ...] = ()
    drop_credit: int = 0
    drop_credit_since: float | None = None
    drop_credit_from: int | None = None
    # LP 48 (last accepted bill, reference §3.9): the lifetime count of each bill
    # denomination code as last reported, so a repeated report values no bill twice.
    bill_counts: Mapping[int, int] = field(default_factory=dict)
    # When each exception a machine repeats until serviced (67, 57, 6F, ...) was last seen:
    # one interaction gives one event (reference §3.4, §4.3 pitfall 5; interpreter).
    repeats_seen: Mapping[int, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "baseline": _codes_to_json(self.baseline),
            "widths": _codes_to_json(self.widths),
            "denominationCents": self.denomination_cents,
            "identity": dict(self.identity) if self.identity is not None else None,
            "linkUp": self.link_up,
            "hostLocked": self.host_locked,
            "gameLocked": self.game_locked,
            "doors": dict(sorted(self.doors.items())),
            "handpay": dict(self.handpay) if self.handpay is not None else None,
            "gameInProgress": self.game_in_progress,
            "selectedGame": self.selected_game,
            "resetPending": self.reset_pending,
            "optionsPending": self.options_pending,
            "reconcilePending": self.reconcile_pending,
            "backlogUntil": self.backlog_until,
            "backlogReadRequested": self.backlog_read_requested,
            "lastTicket": self.last_ticket,
            "clockSkewed": self.clock_skewed,
            "ticketCredit": self.ticket_credit,
            "ticketCreditSince": self.ticket_credit_since,
            "ticketCreditFrom": _codes_to_json(self.ticket_credit_from),
            "ticketsWaiting": [dict(t) for t in self.tickets_waiting],
            "ticketAskedAt": self.ticket_asked_at,
            "rteCoinInAt": self.rte_coin_in_at,
            "billsPending": [dict(b) for b in self.bills_pending],
            "dropCredit": self.drop_credit,
            "dropCreditSince": self.drop_credit_since,
            "dropCreditFrom": self.drop_credit_from,
            "billCounts": _codes_to_json(self.bill_counts),
            "repeatsSeen": {f"{code:02X}": at for code, at in sorted(self.repeats_seen.items())},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MachineState:
        identity = data.get("identity")
        handpay = data.get("handpay")
        denomination = data.get("denominationCents")
        selected = data.get("selectedGame")
        backlog = data.get("backlogUntil")
        game = data.get("gameInProgress")
        since = data.get("ticketCreditSince")
        asked = data.get("ticketAskedAt")
        rte = data.get("rteCoinInAt")
        drop_since = data.get("dropCreditSince")
        drop_from = data.get("dropCreditFrom")
        return cls(
            address=int(data["address"]),
            baseline=_codes_from_json(data.get("baseline", {})),
            widths=_codes_from_json(data.get("widths", {})),
            denomination_cents=int(denomination) if denomination is not None else None,
            identity=dict(identity) if identity is not None else None,
            link_up=bool(data.get("linkUp", False)),
            host_locked=bool(data.get("hostLocked", False)),
            game_locked=bool(data.get("gameLocked", False)),
            doors={str(k): bool(v) for k, v in data.get("doors", {}).items()},
            handpay=dict(handpay) if handpay is not None else None,
            game_in_progress=bool(game) if game is not None else None,
            selected_game=int(selected) if selected is not None else None,
            reset_pending=bool(data.get("resetPending", False)),
            options_pending=bool(data.get("optionsPending", False)),
            reconcile_pending=bool(data.get("reconcilePending", False)),
            backlog_until=float(backlog) if backlog is not None else None,
            backlog_read_requested=bool(data.get("backlogReadRequested", False)),
            last_ticket=data.get("lastTicket"),
            clock_skewed=bool(data.get("clockSkewed", False)),
            ticket_credit=int(data.get("ticketCredit", 0)),
            ticket_credit_since=float(since) if since is not None else None,
            ticket_credit_from=_codes_from_json(data.get("ticketCreditFrom", {})),
            tickets_waiting=tuple(dict(t) for t in data.get("ticketsWaiting", [])),
            ticket_asked_at=float(asked) if asked is not None else None,
            rte_coin_in_at=float(rte) if rte is not None else None,
            bills_pending=tuple(dict(b) for b in data.get("billsPending", [])),
            drop_credit=int(data.get("dropCredit", 0)),
            drop_credit_since=float(drop_since) if drop_since is not None else None,
            drop_credit_from=int(drop_from) if drop_from is not None else None,
            bill_counts=_codes_from_json(data.get("billCounts", {})),
            repeats_seen={int(code, 16): float(at)
                          for code, at in data.get("repeatsSeen", {}).items()},
        )


@dataclass(frozen=True, slots=True)
class AgentState:
    """The whole interpreter state: one :class:`MachineState` per address, plus the card
    reader (player session, employee card), which belongs to the terminal."""

    machines: Mapping[int, MachineState] = field(default_factory=dict)
    cards: CardState = field(default_factory=CardState)

    def machine(self, address: int) -> MachineState:
        return self.machines.get(address) or MachineState(address=address)

    def with_machine(self, machine: MachineState) -> AgentState:
        return replace(self, machines={**self.machines, machine.address: machine})

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "machines": [m.to_json() for _, m in sorted(self.machines.items())],
            "cards": self.cards.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AgentState:
        version = data.get("version")
        if version != STATE_VERSION:
            raise ValueError(f"unsupported agent state version {version!r}")
        machines = [MachineState.from_json(m) for m in data.get("machines", [])]
        return cls(
            machines={m.address: m for m in machines},
            cards=CardState.from_json(data.get("cards", {})),
        )
