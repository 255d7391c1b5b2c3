"""Reads the interpreter asks the line owner for.

The interpreter is pure: it cannot poll the machine. When an observation means "something
must be read now" (a game ended, exception 51 asks for LP 1B, exception 70 lost events), it
returns one of these requests next to the events; the line owner turns them into long polls
and feeds the answers back as observations (``MetersRead``, ``HandpayInfoRead``, ...).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from agent.derive.meters import Meter
from agent.observations import MeterReason
from agent.retry import doubling


@dataclass(frozen=True, slots=True)
class ReadMeters:
    """Read meters and answer with ``MetersRead(reason=reason)``.

    ``codes`` lists the Table C-7 meters that matter for this reason; empty means a full
    snapshot (every meter the machine supports). Reading more than asked is always fine.
    """

    address: int
    reason: MeterReason
    codes: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class ReadHandpay:
    """Read LP 1B (handpay info); answer with ``HandpayInfoRead``."""

    address: int


@dataclass(frozen=True, slots=True)
class ReadTicket:
    """Read LP 4D (enhanced validation, current), or LP 3D where the machine ignores LP 4D;
    answer with ``TicketValidationRead``."""

    address: int


@dataclass(frozen=True, slots=True)
class ReadLastBill:
    """Read LP 48 (last accepted bill, reference §3.9); answer with ``LastBillRead``. Asked
    for after a bill exception on a machine whose only bill meter is the drop."""

    address: int


@dataclass(frozen=True, slots=True)
class ReadIdentity:
    """Re-run identification (LP 54, 1F, 51...); answer with ``MachineIdentified``."""

    address: int


@dataclass(frozen=True, slots=True)
class ReadGameLock:
    """Read LP 74 interrogate (AFT lock status) after a game-locked exception 6F; answer
    with ``GameLockRead``. While it reads locked or pending the line owner reads it again
    every ``poll.game_lock_recheck_s``: 6F has no "unlocked" counterpart (SAS §3.11)."""

    address: int


ReadRequest = (ReadMeters | ReadHandpay | ReadTicket | ReadLastBill | ReadIdentity
               | ReadGameLock)

#: A failed read (meters, LP 1B, LP 4D) is tried again after this wait, then after twice
#: that, up to READ_RETRY_MAX_S, for as long as the link is up (issue 12: money reaches the
#: hub within 5 s after the line is clean again). Exponential, no jitter: one line owner per
#: line, nothing to spread out.
READ_RETRY_FIRST_S = 0.25
READ_RETRY_MAX_S = 1.5


def read_retry_delays() -> Iterator[float]:
    """The waits before the retries of one failed read: tenacity's exponential schedule
    (:func:`agent.retry.doubling`), asked for times instead of sleeping: the line owner's
    scheduler turns each into the next attempt's earliest time and polls on meanwhile."""
    return doubling(READ_RETRY_FIRST_S, READ_RETRY_MAX_S)


_BILL_COUNTS = tuple(range(0x40, 0x58))

#: the meters each kind of read needs (SAS §4.2 recommended derivation).
GAME_START_METERS: tuple[int, ...] = (Meter.COIN_IN, Meter.GAMES_PLAYED, Meter.CURRENT_CREDITS)
GAME_END_METERS: tuple[int, ...] = (
    Meter.COIN_IN, Meter.COIN_OUT, Meter.JACKPOT, Meter.GAMES_PLAYED, Meter.GAMES_WON,
    Meter.CURRENT_CREDITS, Meter.MACHINE_PAID_PROGRESSIVE_WIN, Meter.MACHINE_PAID_EXTERNAL_BONUS,
    Meter.ATTENDANT_PAID_PROGRESSIVE_WIN, Meter.ATTENDANT_PAID_EXTERNAL_BONUS,
)
#: bills: 0B (LP 46 on a legacy machine), the count meters (LP 1E's six), LP 20's dollars
#: (legacy only: agent.line.meter_reads never puts the stand-in in a 6F/2F request), and the total
#: drop, the only bill meter of a machine that answers just the meter polls (agent/derive/bills.py).
BILL_METERS: tuple[int, ...] = (Meter.BILLS, Meter.CURRENT_CREDITS, *_BILL_COUNTS,
                                Meter.BILL_DOLLARS, Meter.TOTAL_DROP)
TICKET_METERS: tuple[int, ...] = (
    Meter.CANCELLED_CREDITS, Meter.CURRENT_CREDITS, Meter.TICKET_IN_CASHABLE,
    Meter.TICKET_OUT_CASHABLE, Meter.TICKET_IN_RESTRICTED, Meter.TICKET_OUT_RESTRICTED,
)
HANDPAY_METERS: tuple[int, ...] = (
    Meter.JACKPOT, Meter.HANDPAID_CANCELLED_CREDITS, Meter.CANCELLED_CREDITS,
    Meter.CURRENT_CREDITS, Meter.ATTENDANT_PAID_PROGRESSIVE_WIN,
    Meter.ATTENDANT_PAID_EXTERNAL_BONUS,
)
CASHOUT_METERS: tuple[int, ...] = (
    Meter.HANDPAID_CANCELLED_CREDITS, Meter.CANCELLED_CREDITS, Meter.CURRENT_CREDITS,
    Meter.TICKET_OUT_CASHABLE, Meter.TICKET_OUT_RESTRICTED, Meter.AFT_CASHABLE_OUT,
)
TRANSFER_METERS: tuple[int, ...] = (
    Meter.CURRENT_CREDITS, Meter.CANCELLED_CREDITS, Meter.AFT_CASHABLE_IN, Meter.AFT_CASHABLE_OUT,
)
