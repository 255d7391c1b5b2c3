"""The machine's meters: which ones it keeps, their true values, and rollover.

A meter on a real machine is a packed-BCD counter of a fixed width: credit and count meters
are 4 bytes (8 digits, wrapping at 10**8), money-in-cents meters (tickets, AFT, validated
handpays) are 5 bytes (wrapping at 10**10). Units, widths and names come from the one meter
table, ``sas_protocol.meter_codes`` (reference §3.10); this module picks the codes the
emulated machine keeps. The bank stores each meter's *true* unwrapped value since the last
soft reset, so tests and the report can check money invariants across a rollover;
``wrap()`` gives what the machine puts on the wire (value modulo 10**(2*size)).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sas_protocol.meter_codes import BILL_METER_DOLLARS, MeterSpec
from sas_protocol.meter_codes import METERS as METER_TABLE

#: Bill denominations (dollars) with a "bills accepted" count meter: SAS meters 40..57.
BILL_METERS: dict[int, int] = {dollars: code for code, dollars in BILL_METER_DOLLARS.items()}

#: The meter codes this machine keeps (table C-7, reference §3.10).
KEPT_CODES: tuple[int, ...] = (
    *range(0x00, 0x19),  # coin in/out ... electronic transfers to host
    *range(0x1C, 0x27),  # win split, totals, games since power reset / door close
    *BILL_METER_DOLLARS,  # bills accepted by denomination
    0x80, 0x81, 0x86, 0x87,  # regular cashable ticket in / out: cents and counts
    0xA0, 0xA1, 0xB8, 0xB9,  # in-house cashable AFT to machine / to host: cents and counts
)

METERS: dict[int, MeterSpec] = {code: METER_TABLE[code] for code in KEPT_CODES}

#: Meters computed from others (never stored).
DERIVED = frozenset({0x0C, 0x22, 0x23, 0x24})

#: Per-game meters (SAS LP 2F/6F/52 with a game number other than 0000).
GAME_METERS = (0x00, 0x01, 0x02, 0x05, 0x06, 0x07, 0x1C, 0x1F, 0x22)


class UnknownMeterError(KeyError):
    """The machine does not keep this meter code."""


def meter_def(code: int) -> MeterSpec:
    try:
        return METERS[code]
    except KeyError:
        raise UnknownMeterError(code) from None


class MeterBank:
    """True (unwrapped) meter values for one scope: the whole machine or one game."""

    def __init__(self, codes: Iterable[int]) -> None:
        self._values: dict[int, int] = {c: 0 for c in codes if c not in DERIVED}

    def __contains__(self, code: object) -> bool:
        return code in self._values

    def add(self, code: int, amount: int) -> None:
        if amount < 0:
            raise ValueError(f"meter {code:02X}: meters only go up (got {amount})")
        self._values[code] += amount

    def get(self, code: int) -> int:
        return self._values[code]

    def set(self, code: int, value: int) -> None:
        if value < 0:
            raise ValueError(f"meter {code:02X}: negative value {value}")
        self._values[code] = value

    def stored(self) -> Mapping[int, int]:
        return dict(self._values)

    def reset(self) -> None:
        for code in self._values:
            self._values[code] = 0


def wrap(code: int, value: int) -> int:
    """What a meter of this code shows on the wire for a true value (BCD rollover)."""
    return value % meter_def(code).modulus
