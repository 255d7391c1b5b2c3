"""SAS general-poll exception codes and what each one means to the interpreter.

Codes are from SAS Appendix A Table A-1 (reference: sas-protocol.md §3.11). The tables map a
code to the business event it produces and that event's ``data``; codes that only signal
"money moved" (bills, tickets, transfers, game start/end) are triggers for a meter read.
"""

from __future__ import annotations

import enum
from typing import Any


class Exc(enum.IntEnum):
    """The exception codes the interpreter treats specially (SAS §3.11, Table A-1)."""

    NO_ACTIVITY = 0x00
    POWER_RESTORED = 0x17  # AC power applied
    POWER_LOST = 0x18
    CASHBOX_REMOVED = 0x1B
    CASHBOX_INSTALLED = 0x1C
    MEMORY_ERROR_RESET = 0x3A
    OPTIONS_CHANGED = 0x3C
    TICKET_PRINTED = 0x3D  # read LP 4D
    HANDPAY_VALIDATED = 0x3E  # read LP 4D
    BILL_ACCEPTED_OTHER = 0x4F  # every denomination in RTE mode
    HANDPAY_PENDING = 0x51  # re-issued every 15 s until LP 1B is read
    HANDPAY_RESET = 0x52
    PROGRESSIVE_WIN_CREDIT_PAID = 0x54
    SAS_PROGRESSIVE_HIT = 0x56
    NON_SAS_PROGRESSIVE_HIT = 0x59
    CASHOUT_PRESSED = 0x66
    TICKET_INSERTED = 0x67
    TICKET_TRANSFER_COMPLETE = 0x68
    AFT_TRANSFER_COMPLETE = 0x69
    QUEUE_OVERFLOW = 0x70
    SOFT_METERS_RESET = 0x7A
    GAME_STARTED = 0x7E
    GAME_ENDED = 0x7F
    GAME_SELECTED = 0x8C
    GAMES_CHANGED = 0xA2  # 6.03: enabled games / denominations changed


#: door exceptions -> (door, opened, powerOff). 98-9B are accesses while the power was off,
#: reported after power-up (SAS §3.11).
DOORS: dict[int, tuple[str, bool, bool]] = {
    0x11: ("slot", True, False), 0x12: ("slot", False, False),
    0x13: ("drop", True, False), 0x14: ("drop", False, False),
    0x15: ("cardCage", True, False), 0x16: ("cardCage", False, False),
    0x19: ("cashbox", True, False), 0x1A: ("cashbox", False, False),
    0x1D: ("belly", True, False), 0x1E: ("belly", False, False),
    0x98: ("cardCage", True, True), 0x99: ("slot", True, True),
    0x9A: ("cashbox", True, True), 0x9B: ("drop", True, True),
}

#: tilt exceptions -> data of the ``tilt`` event.
TILTS: dict[int, dict[str, Any]] = {
    0x20: {"kind": "general"},
    0x21: {"kind": "coinIn"},
    0x22: {"kind": "coinOut"},
    0x23: {"kind": "hopperEmpty"},
    0x24: {"kind": "extraCoinPaid"},
    0x25: {"kind": "diverterMalfunction"},
    0x40: {"kind": "reel"},
    0x41: {"kind": "reel", "reel": 1},
    0x42: {"kind": "reel", "reel": 2},
    0x43: {"kind": "reel", "reel": 3},
    0x44: {"kind": "reel", "reel": 4},
    0x45: {"kind": "reel", "reel": 5},
    0x46: {"kind": "reelDisconnected"},
    0x79: {"kind": "coinInLockout"},
}

BILL_ACCEPTOR_FAULTS: dict[int, str] = {
    0x27: "full",
    0x28: "jam",
    0x29: "hardware",
    0x2A: "reverseBill",
    0x2B: "rejected",
    0x2C: "counterfeit",
    0x2E: "nearFull",
}

PRINTER_FAULTS: dict[int, str] = {
    0x60: "commError",
    0x61: "paperOut",
    0x74: "paperLow",
    0x75: "powerOff",
    0x76: "powerOn",
    0x77: "replaceRibbon",
    0x78: "carriageJam",
}

#: memory errors 31-39 and the operator's memory error reset 3A. Each one may have cleared
#: the meters (SAS §4.3 pitfall 3), so the next meter read re-baselines.
MEMORY_ERRORS: dict[int, str] = {
    0x31: "ramRecovered",
    0x32: "ramNotRecovered",
    0x33: "ramBadDevice",
    0x34: "eepromData",
    0x35: "eepromBadDevice",
    0x36: "epromVersionChanged",
    0x37: "epromChecksum",
    0x38: "partitionedEpromVersionChanged",
    0x39: "partitionedEpromChecksum",
    0x3A: "memoryReset",
}

#: exceptions after which a meter decrease is a reset, not a rollback (SAS §4.3 pitfall 3).
RESET_CODES = frozenset({*MEMORY_ERRORS, Exc.SOFT_METERS_RESET, Exc.OPTIONS_CHANGED})

OPERATOR_MENU: dict[int, tuple[str, str]] = {
    0x82: ("attendant", "entered"),
    0x83: ("attendant", "exited"),
    0x84: ("operator", "entered"),
    0x85: ("operator", "exited"),
}

PROGRESSIVE_HITS: dict[int, str] = {
    Exc.PROGRESSIVE_WIN_CREDIT_PAID: "creditPaid",
    Exc.SAS_PROGRESSIVE_HIT: "sas",
    Exc.NON_SAS_PROGRESSIVE_HIT: "nonSas",
}

#: bill accepted: 47-4E and 50 by denomination (non-RTE), 4F others / all in RTE. Only a
#: trigger: the amount comes from the bills meter (SAS §3.11).
BILL_ACCEPTED = frozenset({*range(0x47, 0x51)})


def code_text(code: int) -> str:
    """The code as it is written in the SAS tables, e.g. ``"0x2B"``."""
    return f"0x{code:02X}"

#: Codes that raise an alert or change what the floor sees (doors, tilts, faults, power,
#: resets, menus, progressives). In non-RTE mode their one-byte answer to a general poll has
#: no CRC (SAS §3.4), so the line owner has them confirmed by an implied NACK before they
#: count (``HostProtocol(confirm_exceptions=...)``, docs/sas.md). Game, bill and ticket codes
#: only trigger CRC-checked meter reads and are not confirmed.
CONFIRMED_CODES = frozenset({
    *DOORS, *TILTS, *BILL_ACCEPTOR_FAULTS, *PRINTER_FAULTS, *MEMORY_ERRORS, *RESET_CODES,
    *OPERATOR_MENU, *PROGRESSIVE_HITS, Exc.POWER_RESTORED, Exc.POWER_LOST,
    Exc.CASHBOX_REMOVED, Exc.CASHBOX_INSTALLED, Exc.QUEUE_OVERFLOW, Exc.GAMES_CHANGED,
})
