"""The machine's meters: true values, their SAS units and BCD widths, and rollover.

A meter on a real machine is a packed-BCD counter of a fixed width (SAS table C-7): credit and
count meters are 4 bytes (8 digits, wrapping at 10**8), money-in-cents meters (tickets, AFT,
validated handpays) are 5 bytes (wrapping at 10**10). The bank stores each meter's *true*
unwrapped value since the last soft reset, so tests and the report can check money invariants
across a rollover; ``reported()`` gives what the machine puts on the wire (value modulo
10**(2*width)).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum


class Unit(Enum):
    CREDITS = "credits"  # accounting-denomination credits
    CENTS = "cents"
    COUNT = "count"


@dataclass(frozen=True, slots=True)
class MeterDef:
    code: int
    name: str
    unit: Unit
    width: int  # packed-BCD bytes on the wire (SAS table C-7 minimum size)

    @property
    def modulus(self) -> int:
        modulus: int = 10 ** (2 * self.width)
        return modulus


def _c(code: int, name: str) -> MeterDef:
    return MeterDef(code, name, Unit.CREDITS, 4)


def _n(code: int, name: str) -> MeterDef:
    return MeterDef(code, name, Unit.COUNT, 4)


def _m(code: int, name: str) -> MeterDef:
    return MeterDef(code, name, Unit.CENTS, 5)


#: Bill denominations (dollars) with a "bills accepted" count meter: SAS meters 40..57.
BILL_METERS: dict[int, int] = {
    1: 0x40, 2: 0x41, 5: 0x42, 10: 0x43, 20: 0x44, 25: 0x45, 50: 0x46, 100: 0x47,
    200: 0x48, 250: 0x49, 500: 0x4A, 1000: 0x4B, 2000: 0x4C, 2500: 0x4D, 5000: 0x4E,
    10000: 0x4F, 20000: 0x50, 25000: 0x51, 50000: 0x52, 100000: 0x53, 200000: 0x54,
    250000: 0x55, 500000: 0x56, 1000000: 0x57,
}

METERS: dict[int, MeterDef] = {
    m.code: m
    for m in (
        _c(0x00, "total coin in"),
        _c(0x01, "total coin out"),
        _c(0x02, "total jackpot"),
        _c(0x03, "total hand-paid cancelled credits"),
        _c(0x04, "total cancelled credits"),
        _n(0x05, "games played"),
        _n(0x06, "games won"),
        _n(0x07, "games lost"),
        _c(0x08, "credits from coin acceptor"),
        _c(0x09, "credits paid from hopper"),
        _c(0x0A, "credits from coins to drop"),
        _c(0x0B, "credits from bills accepted"),
        _c(0x0C, "current credits"),
        _m(0x0D, "SAS cashable ticket in"),
        _m(0x0E, "SAS cashable ticket out"),
        _m(0x0F, "SAS restricted ticket in"),
        _m(0x10, "SAS restricted ticket out"),
        _n(0x11, "SAS cashable ticket in count"),
        _n(0x12, "SAS cashable ticket out count"),
        _n(0x13, "SAS restricted ticket in count"),
        _n(0x14, "SAS restricted ticket out count"),
        _c(0x15, "total ticket in"),
        _c(0x16, "total ticket out"),
        _c(0x17, "total electronic transfers to machine"),
        _c(0x18, "total electronic transfers to host"),
        _c(0x1C, "machine-paid paytable win"),
        _c(0x1D, "machine-paid progressive win"),
        _c(0x1E, "machine-paid external bonus win"),
        _c(0x1F, "attendant-paid paytable win"),
        _c(0x20, "attendant-paid progressive win"),
        _c(0x21, "attendant-paid external bonus win"),
        _c(0x22, "total won"),
        _c(0x23, "total hand paid"),
        _c(0x24, "total drop"),
        _n(0x25, "games since last power reset"),
        _n(0x26, "games since slot door closure"),
        *(_n(code, f"${dollars} bills accepted") for dollars, code in BILL_METERS.items()),
        _m(0x80, "regular cashable ticket in"),
        _n(0x81, "regular cashable ticket in count"),
        _m(0x86, "regular cashable ticket out"),
        _n(0x87, "regular cashable ticket out count"),
        _m(0xA0, "in-house cashable transfers to machine"),
        _n(0xA1, "in-house cashable transfers to machine count"),
        _m(0xB8, "in-house cashable transfers to host"),
        _n(0xB9, "in-house cashable transfers to host count"),
    )
}

#: Meters computed from others (never stored).
DERIVED = frozenset({0x0C, 0x22, 0x23, 0x24})

#: Per-game meters (SAS LP 2F/6F/52 with a game number other than 0000).
GAME_METERS = (0x00, 0x01, 0x02, 0x05, 0x06, 0x07, 0x1C, 0x1F, 0x22)


class UnknownMeterError(KeyError):
    """The machine does not keep this meter code."""


def meter_def(code: int) -> MeterDef:
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
