"""The agent's meter vocabulary and the delta rule (rollover, decrease).

Meter codes are the SAS Table C-7 codes used by LP 2F/6F/AF (reference: sas-protocol.md
§3.10); the agent keys meters by these codes everywhere. Units, BCD widths and names come
from the one meter table, ``sas_protocol.meter_codes``: this module only names the codes the
interpreter derives events from and adds the delta rule.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from agent.line.meter_reads import STAND_INS
from sas_protocol.meter_codes import BILL_METER_DOLLARS, MeterCode, MeterUnit, meter_spec
from sas_protocol.meter_codes import meter_name as _table_name


class Meter(enum.IntEnum):
    """The Table C-7 meter codes the interpreter derives events from (SAS §3.10)."""

    COIN_IN = MeterCode.COIN_IN  # credits wagered
    COIN_OUT = MeterCode.COIN_OUT  # machine-paid wins (not cash-outs)
    JACKPOT = MeterCode.JACKPOT  # hand-paid wins
    HANDPAID_CANCELLED_CREDITS = MeterCode.HANDPAID_CANCELLED_CREDITS
    CANCELLED_CREDITS = MeterCode.CANCELLED_CREDITS  # cash-outs
    GAMES_PLAYED = MeterCode.GAMES_PLAYED
    GAMES_WON = MeterCode.GAMES_WON
    GAMES_LOST = MeterCode.GAMES_LOST
    COINS_TO_DROP = MeterCode.COINS_TO_DROP_CREDITS  # credits from coins to drop
    BILLS = MeterCode.BILLS_ACCEPTED_CREDITS  # credits from bills accepted
    CURRENT_CREDITS = MeterCode.CURRENT_CREDITS
    TICKET_IN_CASHABLE = MeterCode.SAS_CASHABLE_TICKET_IN_CENTS
    TICKET_OUT_CASHABLE = MeterCode.SAS_CASHABLE_TICKET_OUT_CENTS
    TICKET_IN_RESTRICTED = MeterCode.SAS_RESTRICTED_TICKET_IN_CENTS
    TICKET_OUT_RESTRICTED = MeterCode.SAS_RESTRICTED_TICKET_OUT_CENTS
    CURRENT_RESTRICTED_CREDITS = MeterCode.CURRENT_RESTRICTED_CREDITS
    MACHINE_PAID_PAYTABLE_WIN = MeterCode.MACHINE_PAID_PAYTABLE_WIN
    MACHINE_PAID_PROGRESSIVE_WIN = MeterCode.MACHINE_PAID_PROGRESSIVE_WIN
    MACHINE_PAID_EXTERNAL_BONUS = MeterCode.MACHINE_PAID_EXTERNAL_BONUS
    ATTENDANT_PAID_PAYTABLE_WIN = MeterCode.ATTENDANT_PAID_PAYTABLE_WIN
    ATTENDANT_PAID_PROGRESSIVE_WIN = MeterCode.ATTENDANT_PAID_PROGRESSIVE_WIN
    ATTENDANT_PAID_EXTERNAL_BONUS = MeterCode.ATTENDANT_PAID_EXTERNAL_BONUS
    # credits: coins and bills to the drop (LP 0F/13/19/1C on legacy)
    TOTAL_DROP = MeterCode.TOTAL_DROP
    GAMES_SINCE_POWER_RESET = MeterCode.GAMES_SINCE_POWER_RESET
    GAMES_SINCE_DOOR_CLOSE = MeterCode.GAMES_SINCE_SLOT_DOOR_CLOSURE
    BILLS_IN_STACKER_COUNT = MeterCode.BILLS_IN_STACKER_COUNT
    BILLS_IN_STACKER_AMOUNT = MeterCode.BILLS_IN_STACKER_CREDITS
    AFT_CASHABLE_IN = MeterCode.AFT_IN_HOUSE_CASHABLE_TO_MACHINE_CENTS
    AFT_CASHABLE_OUT = MeterCode.AFT_IN_HOUSE_CASHABLE_TO_HOST_CENTS
    # Not a Table C-7 code: LP 20's total value of bills accepted, in whole dollars
    # (reference §3.9b; sas_protocol reads it as MeterReply.other "total_bill_dollars"),
    # under the stand-in code agent.line.meter_reads gives it.
    BILL_DOLLARS = STAND_INS["total_bill_dollars"]


#: Bill count meters 40-57: face value in cents of each (SAS §3.10, "$1 ... $1,000,000").
BILL_COUNT_VALUES_CENTS: dict[int, int] = {
    code: dollars * 100 for code, dollars in BILL_METER_DOLLARS.items()
}

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
    """The camelCase name used in event ``meters`` maps (the meter table's, ``meterXX`` for
    codes it does not name), and ``billDollars`` for LP 20's dollars."""
    return "billDollars" if code == Meter.BILL_DOLLARS else _table_name(code)


def is_cents_meter(code: int) -> bool:
    """Money-in-cents meters (SAS §3.8/§3.10: 0D-10 and the even codes of 80-93, A0-BD)."""
    return meter_spec(code).unit is MeterUnit.CENTS


def default_width(code: int) -> int:
    """BCD width in bytes when the read did not say (SAS §3.8: cents 5, every other 4)."""
    return meter_spec(code).size


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
