"""Meter codes, names, widths and the delta rule (rollover, decrease).

Meter codes are the SAS Table C-7 codes used by LP 2F/6F/AF (reference: sas-protocol.md
§3.10). Credit meters count accounting-denomination credits in 4-byte BCD; money-in-cents
meters (0D-10, 80-BD) are 5-byte BCD. The agent keys meters by these codes everywhere.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Meter(enum.IntEnum):
    """The Table C-7 meter codes the interpreter derives events from (SAS §3.10)."""

    COIN_IN = 0x00  # credits wagered
    COIN_OUT = 0x01  # machine-paid wins (not cash-outs)
    JACKPOT = 0x02  # hand-paid wins
    HANDPAID_CANCELLED_CREDITS = 0x03
    CANCELLED_CREDITS = 0x04  # cash-outs
    GAMES_PLAYED = 0x05
    GAMES_WON = 0x06
    GAMES_LOST = 0x07
    COINS_TO_DROP = 0x0A  # credits from coins to drop
    BILLS = 0x0B  # credits from bills accepted
    CURRENT_CREDITS = 0x0C
    TICKET_IN_CASHABLE = 0x0D  # cents, 5 bytes
    TICKET_OUT_CASHABLE = 0x0E  # cents, 5 bytes
    TICKET_IN_RESTRICTED = 0x0F  # cents, 5 bytes
    TICKET_OUT_RESTRICTED = 0x10  # cents, 5 bytes
    CURRENT_RESTRICTED_CREDITS = 0x1B
    MACHINE_PAID_PAYTABLE_WIN = 0x1C
    MACHINE_PAID_PROGRESSIVE_WIN = 0x1D
    MACHINE_PAID_EXTERNAL_BONUS = 0x1E
    ATTENDANT_PAID_PAYTABLE_WIN = 0x1F
    ATTENDANT_PAID_PROGRESSIVE_WIN = 0x20
    ATTENDANT_PAID_EXTERNAL_BONUS = 0x21
    TOTAL_DROP = 0x24  # credits: coins and bills to the drop (LP 0F/13/19/1C on legacy)
    GAMES_SINCE_POWER_RESET = 0x25
    GAMES_SINCE_DOOR_CLOSE = 0x26
    BILLS_IN_STACKER_COUNT = 0x3E
    BILLS_IN_STACKER_AMOUNT = 0x3F
    AFT_CASHABLE_IN = 0xA0  # in-house cashable transfers to the machine, cents
    AFT_CASHABLE_OUT = 0xB8  # in-house cashable transfers to the host, cents
    # Not a Table C-7 code: LP 20's total value of bills accepted, in whole dollars
    # (reference §3.9b). Keyed above the 16-bit C-7 range so it never meets a real code.
    BILL_DOLLARS = 0x10020


_NAMES: dict[int, str] = {
    Meter.COIN_IN: "coinIn",
    Meter.COIN_OUT: "coinOut",
    Meter.JACKPOT: "jackpot",
    Meter.HANDPAID_CANCELLED_CREDITS: "handpaidCancelledCredits",
    Meter.CANCELLED_CREDITS: "cancelledCredits",
    Meter.GAMES_PLAYED: "gamesPlayed",
    Meter.GAMES_WON: "gamesWon",
    Meter.GAMES_LOST: "gamesLost",
    0x08: "coinAcceptorCredits",
    0x09: "hopperPaidCredits",
    0x0A: "coinsToDropCredits",
    Meter.BILLS: "billsAccepted",
    Meter.CURRENT_CREDITS: "currentCredits",
    Meter.TICKET_IN_CASHABLE: "ticketInCashable",
    Meter.TICKET_OUT_CASHABLE: "ticketOutCashable",
    Meter.TICKET_IN_RESTRICTED: "ticketInRestricted",
    Meter.TICKET_OUT_RESTRICTED: "ticketOutRestricted",
    0x15: "totalTicketIn",
    0x16: "totalTicketOut",
    0x17: "electronicTransfersIn",
    0x18: "electronicTransfersOut",
    Meter.CURRENT_RESTRICTED_CREDITS: "currentRestrictedCredits",
    Meter.MACHINE_PAID_PAYTABLE_WIN: "machinePaidPaytableWin",
    Meter.MACHINE_PAID_PROGRESSIVE_WIN: "machinePaidProgressiveWin",
    Meter.MACHINE_PAID_EXTERNAL_BONUS: "machinePaidExternalBonus",
    Meter.ATTENDANT_PAID_PAYTABLE_WIN: "attendantPaidPaytableWin",
    Meter.ATTENDANT_PAID_PROGRESSIVE_WIN: "attendantPaidProgressiveWin",
    Meter.ATTENDANT_PAID_EXTERNAL_BONUS: "attendantPaidExternalBonus",
    0x22: "totalWon",
    0x23: "totalHandPaid",
    0x24: "totalDrop",
    Meter.GAMES_SINCE_POWER_RESET: "gamesSincePowerReset",
    Meter.GAMES_SINCE_DOOR_CLOSE: "gamesSinceDoorClose",
    Meter.BILLS_IN_STACKER_COUNT: "billsInStackerCount",
    Meter.BILLS_IN_STACKER_AMOUNT: "billsInStackerAmount",
    Meter.AFT_CASHABLE_IN: "aftCashableIn",
    Meter.AFT_CASHABLE_OUT: "aftCashableOut",
    Meter.BILL_DOLLARS: "billDollars",
}

#: Bill count meters 40-57: face value in cents of each (SAS §3.10, "$1 ... $1,000,000").
BILL_COUNT_VALUES_CENTS: dict[int, int] = {
    0x40 + i: dollars * 100
    for i, dollars in enumerate(
        (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1_000, 2_000, 2_500, 5_000, 10_000,
         20_000, 25_000, 50_000, 100_000, 200_000, 250_000, 500_000, 1_000_000)
    )
}
for _code, _cents in BILL_COUNT_VALUES_CENTS.items():
    _NAMES[_code] = f"bills{_cents // 100}"

#: Meters that are not lifetime counters: they go down in normal operation, so a decrease is
#: neither a reset nor a rollback (current credits, period and since-event counters, SAS §3.10).
NON_CUMULATIVE = frozenset({
    Meter.CURRENT_CREDITS, Meter.CURRENT_RESTRICTED_CREDITS, Meter.GAMES_SINCE_POWER_RESET,
    Meter.GAMES_SINCE_DOOR_CLOSE, Meter.BILLS_IN_STACKER_COUNT, Meter.BILLS_IN_STACKER_AMOUNT,
    0x7F,  # weighted average theoretical payback
})

#: A drop from at least this share of the range to below ROLLOVER_LOW is a BCD wrap.
ROLLOVER_HIGH = 0.9
ROLLOVER_LOW = 0.1


def meter_name(code: int) -> str:
    """The camelCase name used in event ``meters`` maps; ``meterXX`` for codes we don't name."""
    return _NAMES.get(code, f"meter{code:02X}")


def is_cents_meter(code: int) -> bool:
    """Money-in-cents meters (SAS §3.8: 0D-10 and the 80-BD range)."""
    return 0x0D <= code <= 0x10 or 0x80 <= code <= 0xBD


def default_width(code: int) -> int:
    """BCD width in bytes when the read did not say (SAS §3.8: credits 4, cents 5)."""
    return 5 if is_cents_meter(code) else 4


class Change(enum.Enum):
    SAME = "same"
    UP = "up"
    ROLLOVER = "rollover"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class Delta:
    """How a cumulative meter moved between two reads. ``amount`` is >= 0 for UP/ROLLOVER/SAME
    and 0 for DOWN (a decrease is never money)."""

    change: Change
    amount: int


def meter_delta(before: int, after: int, width: int) -> Delta:
    """Classify a move of a cumulative BCD meter of ``width`` bytes.

    SAS §3.8/§4.3 pitfall 2: a 4-byte meter wraps after 99,999,999 (10^8), a 5-byte one after
    10^10. A decrease is a rollover only when ``before`` was in the top 10 % of the range and
    ``after`` is in the bottom 10 %; the delta is then taken modulo 10^(2*width). Any other
    decrease is DOWN: a reset (if the machine announced one) or a rollback.
    """
    if after == before:
        return Delta(Change.SAME, 0)
    if after > before:
        return Delta(Change.UP, after - before)
    modulus = 10 ** (2 * width)
    if before >= ROLLOVER_HIGH * modulus and after < ROLLOVER_LOW * modulus:
        return Delta(Change.ROLLOVER, (after - before) % modulus)
    return Delta(Change.DOWN, 0)
