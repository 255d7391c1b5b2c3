"""Denomination codes (SAS table C-4) and their value in cents per credit."""

from __future__ import annotations

from sas_protocol.errors import LocalProtocolError

#: SAS table C-4: denomination code -> cents per credit.
DENOMINATION_CENTS: dict[int, int] = {
    0x01: 1,
    0x17: 2,
    0x18: 3,
    0x02: 5,
    0x03: 10,
    0x19: 15,
    0x0B: 20,
    0x04: 25,
    0x1A: 40,
    0x05: 50,
    0x06: 100,
    0x0C: 200,
    0x0D: 250,
    0x07: 500,
    0x08: 1_000,
    0x09: 2_000,
    0x0E: 2_500,
    0x0F: 5_000,
    0x0A: 10_000,
    0x10: 20_000,
    0x11: 25_000,
    0x12: 50_000,
    0x13: 100_000,
    0x14: 200_000,
    0x15: 250_000,
    0x16: 500_000,
}


def denomination_cents(code: int) -> int:
    """Cents per credit for denomination ``code``; LocalProtocolError for unknown codes."""
    try:
        return DENOMINATION_CENTS[code]
    except KeyError:
        raise LocalProtocolError(f"unknown denomination code {code:#04x}") from None
