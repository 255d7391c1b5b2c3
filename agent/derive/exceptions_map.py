"""SAS general-poll exception codes and what each one means to the interpreter.

Codes are from SAS Appendix A Table A-1 (reference: sas-protocol.md §3.11). The tables map a
code to the business event it produces and that event's ``data``; codes that only signal
"money moved" (bills, tickets, transfers, game start/end) are triggers for a meter read.
"""

from __future__ import annotations

import enum
from typing import Any

from api.events import CATALOG, Channel
from sas_protocol.codes import (
    EXCEPTION_MEANING,
    IDLE_EXCEPTIONS,
    ExceptionCategory,
    ExceptionCode,
    category_of,
)


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
    GAME_LOCKED = 0x6F  # read LP 74: no "unlocked" counterpart (SAS §3.11)
    QUEUE_OVERFLOW = 0x70
    SOFT_METERS_RESET = 0x7A
    LEGACY_BONUS = 0x7C  # the bonus itself reaches the win meters (SAS §3.12)
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


#: Priority exceptions a machine reports again and again until the interaction they start is
#: over (reference §3.4: "flags ... persist until the interaction finishes"; Monaco's
#: priority list), whose events are not de-duplicated by other state: 67 ticket inserted,
#: 57 system validation request, 3F validation id not configured, 6A/6B AFT cash-out
#: requests, 6C/6D AFT registration, 6F game locked, 8F authentication complete, 56 SAS
#: progressive level hit. (51/52 are the handpay's state, 3D/3E the ticket records', 68/69
#: only trigger meter reads, 70 is a data gap.) One interaction, one event: the interpreter
#: takes a repeat within ``REPEAT_WINDOW_S`` of the last as the same one (reference §4.3
#: pitfall 5: de-duplicate interactive exceptions by state).
REPEATED_UNTIL_SERVICED: frozenset[int] = frozenset({
    Exc.TICKET_INSERTED, ExceptionCode.SYSTEM_VALIDATION_REQUEST,
    ExceptionCode.VALIDATION_ID_NOT_CONFIGURED, ExceptionCode.AFT_REQUEST_HOST_CASHOUT,
    ExceptionCode.AFT_REQUEST_HOST_CASHOUT_WIN, ExceptionCode.AFT_REGISTRATION_REQUEST,
    ExceptionCode.AFT_REGISTRATION_ACKNOWLEDGED, Exc.GAME_LOCKED,
    ExceptionCode.AUTHENTICATION_COMPLETE, Exc.SAS_PROGRESSIVE_HIT,
})

#: Seconds within which a repeat of a ``REPEATED_UNTIL_SERVICED`` code is the same interaction.
#: A machine re-reports such a flag at every general poll (well under a second apart); a
#: new interaction (a ticket the machine returned, inserted again) comes later.
REPEAT_WINDOW_S = 5.0


def code_text(code: int) -> str:
    """The code as it is written in the SAS tables, e.g. ``"0x2B"``."""
    return f"0x{code:02X}"


# -- every code of the reference's table -> the events it yields ----------------------------

#: Channel of the generic ``machineException`` event, by the code's category (SAS §3.11 as
#: classified in sas_protocol.codes). Faults and conditions an attendant must look at go to
#: ``alerts`` (so do undefined bytes: category ``other``); handpay, ticket and AFT conditions
#: to ``cash``; game-play detail to ``game``; attendant actions to ``system``.
CATEGORY_CHANNEL: dict[ExceptionCategory, Channel] = {
    ExceptionCategory.DOOR: Channel.ALERTS,
    ExceptionCategory.POWER: Channel.ALERTS,
    ExceptionCategory.TILT: Channel.ALERTS,
    ExceptionCategory.BILL: Channel.ALERTS,
    ExceptionCategory.PRINTER: Channel.ALERTS,
    ExceptionCategory.MEMORY: Channel.ALERTS,
    ExceptionCategory.OTHER: Channel.ALERTS,
    ExceptionCategory.HANDPAY: Channel.CASH,
    ExceptionCategory.TICKET: Channel.CASH,
    ExceptionCategory.AFT: Channel.CASH,
    ExceptionCategory.GAME: Channel.GAME,
    ExceptionCategory.PROGRESSIVE: Channel.GAME,
    ExceptionCategory.OPERATOR: Channel.SYSTEM,
}

#: Generic codes that end or report a condition rather than raise one (the change lamp went
#: off, a pending meter change was cancelled, an authentication finished): nobody needs to
#: act, so they go to ``system`` and need no acknowledgement, whatever their category.
ALL_CLEAR_CODES: frozenset[int] = frozenset({
    ExceptionCode.CHANGE_LAMP_OFF, ExceptionCode.METER_CHANGE_CANCELLED,
    ExceptionCode.AUTHENTICATION_COMPLETE,
})

#: Codes whose event comes from the read they trigger (a meter read, LP 1B, LP 4D, a
#: re-identification), not from the exception itself: the events that read yields.
_READ_EVENTS: dict[int, tuple[str, ...]] = {
    **{code: ("billAccepted",) for code in BILL_ACCEPTED},
    Exc.OPTIONS_CHANGED: ("optionsChanged",),
    Exc.GAMES_CHANGED: ("optionsChanged",),
    Exc.TICKET_PRINTED: ("ticketPrinted",),
    Exc.HANDPAY_VALIDATED: ("ticketPrinted",),
    Exc.HANDPAY_PENDING: ("handpayPending",),
    Exc.CASHOUT_PRESSED: ("cashout",),
    Exc.TICKET_TRANSFER_COMPLETE: ("ticketRedeemed",),
    Exc.AFT_TRANSFER_COMPLETE: ("transferIn", "transferOut"),
    Exc.SOFT_METERS_RESET: ("metersReset",),
}

#: Codes with an event of their own, straight from the exception.
_DIRECT_EVENTS: dict[int, tuple[str, ...]] = {
    **{code: ("doorOpened" if opened else "doorClosed",)
       for code, (_, opened, _) in DOORS.items()},
    **dict.fromkeys(TILTS, ("tilt",)),
    **dict.fromkeys(BILL_ACCEPTOR_FAULTS, ("billAcceptorFault",)),
    **dict.fromkeys(PRINTER_FAULTS, ("printerFault",)),
    **dict.fromkeys(MEMORY_ERRORS, ("memoryError",)),
    **dict.fromkeys(OPERATOR_MENU, ("operatorMenu",)),
    **dict.fromkeys(PROGRESSIVE_HITS, ("progressiveHit",)),
    Exc.POWER_RESTORED: ("powerRestored",),
    Exc.POWER_LOST: ("powerLost",),
    Exc.CASHBOX_REMOVED: ("cashboxRemoved",),
    Exc.CASHBOX_INSTALLED: ("cashboxInstalled",),
    Exc.QUEUE_OVERFLOW: ("dataGap",),
    Exc.HANDPAY_RESET: ("handpayReset",),
    Exc.TICKET_INSERTED: ("ticketInserted",),
    Exc.GAME_STARTED: ("gameStarted",),
    Exc.GAME_ENDED: ("gameEnded",),
    Exc.GAME_SELECTED: ("gameSelected",),
}

#: Every code of SAS Table A-1; any other byte is undefined.
DEFINED_CODES: frozenset[int] = frozenset(int(code) for code in ExceptionCode)

#: Defined, non-idle codes with no specific event: each becomes ``machineException``.
GENERIC_CODES: frozenset[int] = frozenset(
    int(code) for code in ExceptionCode
    if code not in IDLE_EXCEPTIONS and code not in _DIRECT_EVENTS and code not in _READ_EVENTS
)

#: Every code of SAS Table A-1 (sas_protocol.codes.ExceptionCode) -> the events it yields,
#: directly or through the read it triggers; idle codes (00, 1F) yield none. docs/events.md,
#: "Exception codes", is this table.
EXCEPTION_EVENTS: dict[int, tuple[str, ...]] = {
    int(code): (() if code in IDLE_EXCEPTIONS
                else _DIRECT_EVENTS.get(code) or _READ_EVENTS.get(code) or ("machineException",))
    for code in ExceptionCode
}

#: Codes whose events come from a read (``EXCEPTION_EVENTS`` gives the events).
READ_TRIGGERED: frozenset[int] = frozenset(_READ_EVENTS)


def exception_channel(code: int, *, defined: bool = True) -> Channel:
    """The channel of the events ``code`` yields (that of ``machineException`` for a generic
    or undefined code, and of its category for an idle one)."""
    if not defined or code not in DEFINED_CODES:
        return CATEGORY_CHANNEL[ExceptionCategory.OTHER]
    events = EXCEPTION_EVENTS[code]
    if events in ((), ("machineException",)):
        return _generic_channel(code)
    return CATALOG[events[0]]


def _camel(member: str) -> str:
    head, *rest = member.lower().split("_")
    return head + "".join(part.capitalize() for part in rest)


def machine_exception(code: int, *, defined: bool = True) -> tuple[dict[str, Any], Channel]:
    """Data and channel of the generic ``machineException`` event for ``code``.

    ``defined`` is False for a byte that is not in SAS Table A-1 (or that the line owner
    flagged as undefined after its implied-NACK confirmation, docs/sas.md): it is reported
    as it came, with category ``other`` on ``alerts``.
    """
    if not defined or code not in DEFINED_CODES:
        return ({"code": code_text(code), "name": "undefined", "description": None,
                 "category": ExceptionCategory.OTHER.value, "defined": False},
                CATEGORY_CHANNEL[ExceptionCategory.OTHER])
    member = ExceptionCode(code)
    category = category_of(code)
    return ({"code": code_text(code), "name": _camel(member.name),
             "description": EXCEPTION_MEANING.get(member), "category": category.value,
             "defined": True}, _generic_channel(code))


def _generic_channel(code: int) -> Channel:
    if code in ALL_CLEAR_CODES:
        return Channel.SYSTEM
    return CATEGORY_CHANNEL[category_of(code)]


#: Codes that raise an alert or change what the floor sees (doors, tilts, faults, power,
#: resets, menus, progressives). In non-RTE mode their one-byte answer to a general poll has
#: no CRC (SAS §3.4), so the line owner has them confirmed by an implied NACK before they
#: count (``HostProtocol(confirm_exceptions=...)``, docs/sas.md). So are the generic codes
#: (``machineException``) and every byte outside Table A-1 (issue 12: a belly-door-closed 1E
#: flipped to 5E must not be taken as it came; one that reads the same twice is reported
#: with ``defined: false``). Game, bill and ticket codes only trigger CRC-checked meter
#: reads and are not confirmed.
CONFIRMED_CODES = frozenset({
    *DOORS, *TILTS, *BILL_ACCEPTOR_FAULTS, *PRINTER_FAULTS, *MEMORY_ERRORS, *RESET_CODES,
    *OPERATOR_MENU, *PROGRESSIVE_HITS, Exc.POWER_RESTORED, Exc.POWER_LOST,
    Exc.CASHBOX_REMOVED, Exc.CASHBOX_INSTALLED, Exc.QUEUE_OVERFLOW, Exc.GAMES_CHANGED,
    *GENERIC_CODES, *(byte for byte in range(0x100) if byte not in DEFINED_CODES),
})
