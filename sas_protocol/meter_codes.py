"""The one meter table: SAS table C-7 codes with their unit, BCD size and name.

Every package takes meter facts from here: the agent (event ``meters`` maps, rollover
widths), the emulator (what it keeps and reports) and the LP 2F codec (2F replies carry no
sizes). Source: reference §3.10 (Monaco SASMeterId.cs / SASMeterCollection.cs) and §3.8:
credit and count meters are 4 bytes, money-in-cents meters 5 bytes.

Codes 80-93 and A0-BD (reference §3.10: "cents 5 and counts") come in pairs: the even code
is the amount in cents (5 bytes), the odd code its transaction count (4 bytes), as Monaco
sizes every cents meter 5 and every other meter 4. The sizes of the less common meters are
marked [unsure] in the reference; LP 6F/AF replies carry their own sizes and win over these.

``name`` is the camelCase key of the meter in event ``meters`` maps (docs/events.md); codes
without an entry are named ``meterXX`` and sized by their range."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, IntEnum
from types import MappingProxyType


class MeterUnit(Enum):
    """What a meter counts."""

    CREDITS = "credits"  # accounting-denomination credits
    CENTS = "cents"
    COUNT = "count"
    HUNDREDTHS_PERCENT = "hundredths-percent"  # 7F weighted average theoretical payback


@dataclass(frozen=True, slots=True)
class MeterSpec:
    """A meter's unit, its default (minimum) BCD size in bytes, and its name."""

    unit: MeterUnit
    size: int
    name: str

    @property
    def modulus(self) -> int:
        """Where the BCD counter wraps: 10 ** (2 * size) (reference §3.8)."""
        modulus: int = 10 ** (2 * self.size)
        return modulus


class MeterCode(IntEnum):
    """Meter codes of SAS table C-7 (reference §3.10) that have names here."""

    COIN_IN = 0x00
    COIN_OUT = 0x01
    JACKPOT = 0x02
    HANDPAID_CANCELLED_CREDITS = 0x03
    CANCELLED_CREDITS = 0x04
    GAMES_PLAYED = 0x05
    GAMES_WON = 0x06
    GAMES_LOST = 0x07
    COIN_ACCEPTOR_CREDITS = 0x08
    HOPPER_PAID_CREDITS = 0x09
    COINS_TO_DROP_CREDITS = 0x0A
    BILLS_ACCEPTED_CREDITS = 0x0B
    CURRENT_CREDITS = 0x0C
    SAS_CASHABLE_TICKET_IN_CENTS = 0x0D
    SAS_CASHABLE_TICKET_OUT_CENTS = 0x0E
    SAS_RESTRICTED_TICKET_IN_CENTS = 0x0F
    SAS_RESTRICTED_TICKET_OUT_CENTS = 0x10
    SAS_CASHABLE_TICKET_IN_COUNT = 0x11
    SAS_CASHABLE_TICKET_OUT_COUNT = 0x12
    SAS_RESTRICTED_TICKET_IN_COUNT = 0x13
    SAS_RESTRICTED_TICKET_OUT_COUNT = 0x14
    TICKET_IN_CREDITS = 0x15
    TICKET_OUT_CREDITS = 0x16
    ELECTRONIC_TRANSFERS_TO_MACHINE = 0x17
    ELECTRONIC_TRANSFERS_TO_HOST = 0x18
    RESTRICTED_CREDITS_PLAYED = 0x19
    NONRESTRICTED_CREDITS_PLAYED = 0x1A
    CURRENT_RESTRICTED_CREDITS = 0x1B
    MACHINE_PAID_PAYTABLE_WIN = 0x1C
    MACHINE_PAID_PROGRESSIVE_WIN = 0x1D
    MACHINE_PAID_EXTERNAL_BONUS = 0x1E
    ATTENDANT_PAID_PAYTABLE_WIN = 0x1F
    ATTENDANT_PAID_PROGRESSIVE_WIN = 0x20
    ATTENDANT_PAID_EXTERNAL_BONUS = 0x21
    TOTAL_WON = 0x22
    TOTAL_HAND_PAID = 0x23
    TOTAL_DROP = 0x24
    GAMES_SINCE_POWER_RESET = 0x25
    GAMES_SINCE_SLOT_DOOR_CLOSURE = 0x26
    BILLS_IN_STACKER_COUNT = 0x3E
    BILLS_IN_STACKER_CREDITS = 0x3F
    BILLS_TO_DROP_CREDITS = 0x58
    WEIGHTED_AVERAGE_PAYBACK = 0x7F
    REGULAR_CASHABLE_TICKET_IN_CENTS = 0x80
    REGULAR_CASHABLE_TICKET_IN_COUNT = 0x81
    RESTRICTED_TICKET_IN_CENTS = 0x82
    RESTRICTED_TICKET_IN_COUNT = 0x83
    NONRESTRICTED_TICKET_IN_CENTS = 0x84
    NONRESTRICTED_TICKET_IN_COUNT = 0x85
    REGULAR_CASHABLE_TICKET_OUT_CENTS = 0x86
    REGULAR_CASHABLE_TICKET_OUT_COUNT = 0x87
    RESTRICTED_TICKET_OUT_CENTS = 0x88
    RESTRICTED_TICKET_OUT_COUNT = 0x89
    DEBIT_TICKET_OUT_CENTS = 0x8A
    DEBIT_TICKET_OUT_COUNT = 0x8B
    VALIDATED_CANCELLED_CREDIT_HANDPAY_RECEIPT_CENTS = 0x8C
    VALIDATED_CANCELLED_CREDIT_HANDPAY_RECEIPT_COUNT = 0x8D
    VALIDATED_JACKPOT_HANDPAY_RECEIPT_CENTS = 0x8E
    VALIDATED_JACKPOT_HANDPAY_RECEIPT_COUNT = 0x8F
    VALIDATED_CANCELLED_CREDIT_HANDPAY_NO_RECEIPT_CENTS = 0x90
    VALIDATED_CANCELLED_CREDIT_HANDPAY_NO_RECEIPT_COUNT = 0x91
    VALIDATED_JACKPOT_HANDPAY_NO_RECEIPT_CENTS = 0x92
    VALIDATED_JACKPOT_HANDPAY_NO_RECEIPT_COUNT = 0x93
    AFT_IN_HOUSE_CASHABLE_TO_MACHINE_CENTS = 0xA0
    AFT_IN_HOUSE_CASHABLE_TO_MACHINE_COUNT = 0xA1
    AFT_IN_HOUSE_RESTRICTED_TO_MACHINE_CENTS = 0xA2
    AFT_IN_HOUSE_RESTRICTED_TO_MACHINE_COUNT = 0xA3
    AFT_IN_HOUSE_NONRESTRICTED_TO_MACHINE_CENTS = 0xA4
    AFT_IN_HOUSE_NONRESTRICTED_TO_MACHINE_COUNT = 0xA5
    AFT_DEBIT_TO_MACHINE_CENTS = 0xA6
    AFT_DEBIT_TO_MACHINE_COUNT = 0xA7
    AFT_IN_HOUSE_CASHABLE_TO_TICKET_CENTS = 0xA8
    AFT_IN_HOUSE_CASHABLE_TO_TICKET_COUNT = 0xA9
    AFT_IN_HOUSE_RESTRICTED_TO_TICKET_CENTS = 0xAA
    AFT_IN_HOUSE_RESTRICTED_TO_TICKET_COUNT = 0xAB
    AFT_DEBIT_TO_TICKET_CENTS = 0xAC
    AFT_DEBIT_TO_TICKET_COUNT = 0xAD
    AFT_BONUS_CASHABLE_TO_MACHINE_CENTS = 0xAE
    AFT_BONUS_CASHABLE_TO_MACHINE_COUNT = 0xAF
    AFT_BONUS_NONRESTRICTED_TO_MACHINE_CENTS = 0xB0
    AFT_BONUS_NONRESTRICTED_TO_MACHINE_COUNT = 0xB1
    AFT_IN_HOUSE_CASHABLE_TO_HOST_CENTS = 0xB8
    AFT_IN_HOUSE_CASHABLE_TO_HOST_COUNT = 0xB9
    AFT_IN_HOUSE_RESTRICTED_TO_HOST_CENTS = 0xBA
    AFT_IN_HOUSE_RESTRICTED_TO_HOST_COUNT = 0xBB
    AFT_IN_HOUSE_NONRESTRICTED_TO_HOST_CENTS = 0xBC
    AFT_IN_HOUSE_NONRESTRICTED_TO_HOST_COUNT = 0xBD
    REGULAR_CASHABLE_KEYED_ON = 0xFA
    RESTRICTED_KEYED_ON = 0xFB
    NONRESTRICTED_KEYED_ON = 0xFC
    REGULAR_CASHABLE_KEYED_OFF = 0xFD
    RESTRICTED_KEYED_OFF = 0xFE
    NONRESTRICTED_KEYED_OFF = 0xFF


#: "Number of bills accepted" meters 40-57 and the bill each counts, in dollars (§3.10).
#: They run in value order, unlike the single-bill polls 31-45 and bill exceptions 47-50.
BILL_METER_DOLLARS: Mapping[int, int] = MappingProxyType({
    0x40 + i: dollars
    for i, dollars in enumerate((
        1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1_000, 2_000, 2_500, 5_000, 10_000,
        20_000, 25_000, 50_000, 100_000, 200_000, 250_000, 500_000, 1_000_000,
    ))
})

#: "Number of bills to drop" meters 59-62 and their bill in dollars (§3.10).
BILLS_TO_DROP_DOLLARS: Mapping[int, int] = MappingProxyType({
    0x59 + i: dollars
    for i, dollars in enumerate((1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000))
})

_CR, _CT, _CN = MeterUnit.CREDITS, MeterUnit.CENTS, MeterUnit.COUNT

#: code: (name, unit). Names of the meters the agent reports are part of docs/events.md.
_NAMED: dict[int, tuple[str, MeterUnit]] = {
    0x00: ("coinIn", _CR),  # credits wagered
    0x01: ("coinOut", _CR),  # machine-paid wins, not cash-outs (§3.10)
    0x02: ("jackpot", _CR),  # hand-paid wins
    0x03: ("handpaidCancelledCredits", _CR),
    0x04: ("cancelledCredits", _CR),  # cash-outs
    0x05: ("gamesPlayed", _CN),
    0x06: ("gamesWon", _CN),
    0x07: ("gamesLost", _CN),
    0x08: ("coinAcceptorCredits", _CR),
    0x09: ("hopperPaidCredits", _CR),
    0x0A: ("coinsToDropCredits", _CR),
    0x0B: ("billsAccepted", _CR),
    0x0C: ("currentCredits", _CR),
    0x0D: ("ticketInCashable", _CT),
    0x0E: ("ticketOutCashable", _CT),
    0x0F: ("ticketInRestricted", _CT),
    0x10: ("ticketOutRestricted", _CT),
    0x11: ("ticketInCashableCount", _CN),
    0x12: ("ticketOutCashableCount", _CN),
    0x13: ("ticketInRestrictedCount", _CN),
    0x14: ("ticketOutRestrictedCount", _CN),
    0x15: ("totalTicketIn", _CR),
    0x16: ("totalTicketOut", _CR),
    0x17: ("electronicTransfersIn", _CR),
    0x18: ("electronicTransfersOut", _CR),
    0x19: ("restrictedCreditsPlayed", _CR),
    0x1A: ("nonrestrictedCreditsPlayed", _CR),
    0x1B: ("currentRestrictedCredits", _CR),
    0x1C: ("machinePaidPaytableWin", _CR),
    0x1D: ("machinePaidProgressiveWin", _CR),
    0x1E: ("machinePaidExternalBonus", _CR),
    0x1F: ("attendantPaidPaytableWin", _CR),
    0x20: ("attendantPaidProgressiveWin", _CR),
    0x21: ("attendantPaidExternalBonus", _CR),
    0x22: ("totalWon", _CR),
    0x23: ("totalHandPaid", _CR),
    0x24: ("totalDrop", _CR),
    0x25: ("gamesSincePowerReset", _CN),
    0x26: ("gamesSinceDoorClose", _CN),
    0x3E: ("billsInStackerCount", _CN),
    0x3F: ("billsInStackerAmount", _CR),
    **{code: (f"bills{dollars}", _CN) for code, dollars in BILL_METER_DOLLARS.items()},
    0x58: ("billsToDropCredits", _CR),
    **{code: (f"billsToDrop{dollars}", _CN) for code, dollars in BILLS_TO_DROP_DOLLARS.items()},
    0x7F: ("weightedAveragePayback", MeterUnit.HUNDREDTHS_PERCENT),
    0x80: ("regularCashableTicketIn", _CT),
    0x82: ("restrictedTicketIn", _CT),
    0x84: ("nonrestrictedTicketIn", _CT),
    0x86: ("regularCashableTicketOut", _CT),
    0x88: ("restrictedTicketOut", _CT),
    0x8A: ("debitTicketOut", _CT),
    0x8C: ("validatedCancelledCreditHandpayReceipt", _CT),
    0x8E: ("validatedJackpotHandpayReceipt", _CT),
    0x90: ("validatedCancelledCreditHandpayNoReceipt", _CT),
    0x92: ("validatedJackpotHandpayNoReceipt", _CT),
    0xA0: ("aftCashableIn", _CT),  # in-house cashable transfers to the machine
    0xA2: ("aftRestrictedIn", _CT),
    0xA4: ("aftNonrestrictedIn", _CT),
    0xA6: ("aftDebitIn", _CT),
    0xA8: ("aftCashableToTicket", _CT),
    0xAA: ("aftRestrictedToTicket", _CT),
    0xAC: ("aftDebitToTicket", _CT),
    0xAE: ("aftBonusCashableIn", _CT),
    0xB0: ("aftBonusNonrestrictedIn", _CT),
    0xB8: ("aftCashableOut", _CT),  # in-house cashable transfers to the host
    0xBA: ("aftRestrictedOut", _CT),
    0xBC: ("aftNonrestrictedOut", _CT),
    0xFA: ("regularCashableKeyedOn", _CR),
    0xFB: ("restrictedKeyedOn", _CR),
    0xFC: ("nonrestrictedKeyedOn", _CR),
    0xFD: ("regularCashableKeyedOff", _CR),
    0xFE: ("restrictedKeyedOff", _CR),
    0xFF: ("nonrestrictedKeyedOff", _CR),
}
# §3.10 pairs: each cents meter of 80-93 / A0-BD is followed by its transaction count.
for _code in [c for c in _NAMED if 0x80 <= c <= 0x93 or 0xA0 <= c <= 0xBD]:
    _NAMED[_code + 1] = (_NAMED[_code][0] + "Count", _CN)


def _size(unit: MeterUnit) -> int:
    # §3.8: money-in-cents meters are 5 bytes, every other meter 4 (Monaco's default).
    return 5 if unit is MeterUnit.CENTS else 4


#: The table: every named meter code and its spec.
METERS: Mapping[int, MeterSpec] = MappingProxyType({
    code: MeterSpec(unit, _size(unit), name) for code, (name, unit) in sorted(_NAMED.items())
})


def meter_spec(code: int) -> MeterSpec:
    """Unit, default size and name of meter ``code`` (reference §3.8/§3.10).

    Codes outside the table are named ``meterXX``: 35-39 (ticket transaction counts) and the
    rest of 80-93 / A0-BD (cents on even codes, counts on odd ones) by their range, anything
    else as a 4-byte credit meter."""
    if code in METERS:
        return METERS[code]
    name = f"meter{code:02X}"
    if 0x35 <= code <= 0x39:
        return MeterSpec(_CN, 4, name)
    if 0x80 <= code <= 0x93 or 0xA0 <= code <= 0xBD:
        return MeterSpec(_CT, 5, name) if code % 2 == 0 else MeterSpec(_CN, 4, name)
    return MeterSpec(_CR, 4, name)


def meter_name(code: int) -> str:
    """The camelCase name used in event ``meters`` maps; ``meterXX`` for unnamed codes."""
    return meter_spec(code).name
