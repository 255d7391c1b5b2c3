"""What the line owner (and the card reader, and the action runner) saw on the machine.

Observations are the only input of the pure interpreter. They carry plain values (SAS codes
as ints, meters keyed by their table C-7 meter code) so the interpreter needs nothing from the
I/O side. ``at`` is wall-clock epoch seconds, taken by the I/O layer when the reply arrived.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True, slots=True, kw_only=True)
class Observation:
    at: float
    address: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkUp(Observation):
    """The first good reply after the link was down (or at start)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkDown(Observation):
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ExceptionObserved(Observation):
    """A general-poll exception code (non-RTE), or an RTE event with no data.

    ``defined`` is False when the line owner saw a byte that is not in SAS Table A-1 (after
    its implied-NACK confirmation: read the same twice): the interpreter reports it as a
    ``machineException`` with ``defined: false`` and takes no other action on it
    (docs/events.md)."""

    code: int
    defined: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class RealTimeEventObserved(Observation):
    """An RTE frame ``addr FF code data``; ``fields`` holds its decoded data layout
    (for 7E: credits_wagered, coin_in_meter, wager_type, progressive_group; 7F: game_win;
    8C: game_number; 4F: country_code, denomination_code, bill_count; ...)."""

    code: int
    fields: Mapping[str, Any] = field(default_factory=dict)


MeterReason = Literal["discovery", "snapshot", "game_start", "game_end", "bill", "ticket",
                      "handpay", "cashout", "transfer", "timer", "gap", "reset", "action"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MetersRead(Observation):
    """Meter values read from the machine, in each meter's own unit (table C-7).

    ``meters`` maps meter code -> value; ``widths`` maps meter code -> BCD width in bytes
    (4 for credit meters, 5 for cents meters unless 6F said otherwise), used to unwrap rollover.
    ``game`` is 0 for whole-machine meters. ``started_at`` is when the read's first poll went
    out: a read spans several polls (and cycles), so a meter in it may be older than a value
    that arrived meanwhile by another path (the coin-in of an RTE 7E, SAS §3.12).
    """

    meters: Mapping[int, int]
    widths: Mapping[int, int]
    reason: MeterReason
    game: int = 0
    started_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MachineIdentified(Observation):
    sas_version: str
    serial_number: str
    game_id: str
    denomination_cents: int
    games: int
    info: Mapping[str, Any] = field(default_factory=dict)
    unsupported_polls: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class HandpayInfoRead(Observation):
    """LP 1B. ``amount_cents`` is already converted: the machine reports cents for a
    progressive level and accounting credits otherwise (sas-protocol.md §3.9)."""

    progressive_group: int
    level: int
    amount_cents: int
    partial_pay_credits: int
    reset_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TicketValidationRead(Observation):
    """LP 4D after exception 3D/3E; on a machine that does not answer LP 4D, LP 3D (standard
    validation, reference §3.9b: validation number and amount only, a cash-out ticket, so
    ``validation_type`` 00 and ``ticket_number`` None). ``poll`` says which one answered."""

    validation_type: int
    validation_number: str
    amount_cents: int
    ticket_number: int | None
    poll: str = "LP 4D"


@dataclass(frozen=True, slots=True, kw_only=True)
class LastBillRead(Observation):
    """LP 48 after a bill-accepted exception (reference §3.9): the bill acceptor's report of
    the last bill it accepted, its denomination code and the lifetime count of that bill."""

    country_code: int
    denomination_code: int
    bill_count: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ClockRead(Observation):
    """LP 7E: the machine's clock against ours."""

    machine_epoch: float
    skew_seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CardInserted(Observation):
    card_id: str
    kind: Literal["player", "employee"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CardRemoved(Observation):
    card_id: str
    kind: Literal["player", "employee"]
    #: None for a removal the reader reported; "readerLost" when the reader itself was lost
    #: with the card in it (agent.card_poller).
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HostLockChanged(Observation):
    """LP 01/02 acknowledged by the machine."""

    locked: bool
    action_id: str | None = None


#: LP 74 lock status bytes (reference §3.9): 00 locked, 40 lock pending, FF not locked.
GAME_LOCKED = 0x00
GAME_LOCK_PENDING = 0x40


@dataclass(frozen=True, slots=True, kw_only=True)
class GameLockRead(Observation):
    """LP 74 interrogate answered: the machine's AFT game lock status byte."""

    lock_status: int

    @property
    def locked(self) -> bool:
        return self.lock_status == GAME_LOCKED


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionCommand(Observation):
    """A remote start/endPlayerSession (card-less check-in)."""

    start: bool
    player_id: str | None
    action_id: str | None = None
