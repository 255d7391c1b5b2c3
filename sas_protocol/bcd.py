"""Packed BCD, most significant digit first (SAS §2.2.3)."""

from __future__ import annotations

from sas_protocol.errors import FramingError, LocalProtocolError


def encode_bcd(value: int, width: int) -> bytes:
    """``value`` as ``width`` bytes of packed BCD; raises LocalProtocolError if it does not fit."""
    if width < 1:
        raise LocalProtocolError(f"BCD width must be >= 1, got {width}")
    if value < 0 or value >= 10 ** (2 * width):
        raise LocalProtocolError(f"{value} does not fit in {width} BCD bytes")
    digits = f"{value:0{2 * width}d}"
    return bytes.fromhex(digits)


def decode_bcd(data: bytes) -> int:
    """The integer in packed BCD ``data``; raises FramingError on a nibble above 9."""
    text = bytes(data).hex()
    if text and not text.isdigit():
        raise FramingError("invalid BCD digit", bytes(data))
    return int(text) if text else 0
