"""Field layouts: a declarative description of fixed message bodies.

Binary fields are little-endian (LSB first) and BCD fields MSB first (SAS §2.2.3);
ASCII fields use latin-1 so that decoding any byte string cannot fail."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from sas_protocol.bcd import decode_bcd, encode_bcd
from sas_protocol.errors import (
    FramingError,
    LengthError,
    LocalProtocolError,
    RemoteProtocolError,
)


class Kind(Enum):
    BCD = "bcd"
    BINARY = "binary"
    ASCII = "ascii"
    RAW = "raw"


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    kind: Kind
    size: int


def bcd(name: str, size: int) -> Field:
    return Field(name, Kind.BCD, size)


def binary(name: str, size: int) -> Field:
    return Field(name, Kind.BINARY, size)


def ascii_(name: str, size: int) -> Field:
    return Field(name, Kind.ASCII, size)


def raw(name: str, size: int) -> Field:
    return Field(name, Kind.RAW, size)


def layout_size(layout: tuple[Field, ...]) -> int:
    return sum(f.size for f in layout)


def encode_field(f: Field, value: Any) -> bytes:
    """One field's bytes; LocalProtocolError when the value does not fit."""
    if f.kind is Kind.BCD:
        return encode_bcd(int(value), f.size)
    if f.kind is Kind.BINARY:
        if not 0 <= int(value) < 256**f.size:
            raise LocalProtocolError(f"{f.name}={value} does not fit in {f.size} binary bytes")
        return int(value).to_bytes(f.size, "little")
    data = str(value).encode("latin-1") if f.kind is Kind.ASCII else bytes(value)
    if len(data) != f.size:
        raise LocalProtocolError(f"{f.name} must be {f.size} bytes, got {len(data)}")
    return data


def decode_field(f: Field, data: bytes) -> Any:
    if f.kind is Kind.BCD:
        return decode_bcd(data)
    if f.kind is Kind.BINARY:
        return int.from_bytes(data, "little")
    if f.kind is Kind.ASCII:
        return data.decode("latin-1")
    return bytes(data)


def encode_layout(layout: tuple[Field, ...], obj: object) -> bytes:
    return b"".join(encode_field(f, getattr(obj, f.name)) for f in layout)


def decode_layout(layout: tuple[Field, ...], body: bytes, frame: bytes) -> dict[str, Any]:
    """Field values by name; LengthError (carrying ``frame``) unless ``body`` fits exactly."""
    if len(body) != layout_size(layout):
        raise LengthError(f"body is {len(body)} bytes, layout needs {layout_size(layout)}", frame)
    values: dict[str, Any] = {}
    offset = 0
    for f in layout:
        chunk = body[offset : offset + f.size]
        try:
            values[f.name] = decode_field(f, chunk)
        except RemoteProtocolError as exc:
            raise FramingError(f"{f.name}: {exc.reason}", frame) from None
        offset += f.size
    return values


def check_date_time(month: int, day: int, year: int, hour: int, minute: int, second: int) -> None:
    """LocalProtocolError unless the fields fit MMDDYYYY HHMMSS (LP 7E / 7F)."""
    if not (1 <= month <= 12 and 1 <= day <= 31 and 0 <= year <= 9999):
        raise LocalProtocolError(f"invalid date {month:02d}/{day:02d}/{year:04d}")
    if not (0 <= hour <= 23 and 0 <= minute <= 59 and 0 <= second <= 59):
        raise LocalProtocolError(f"invalid time {hour:02d}:{minute:02d}:{second:02d}")


def encode_date_time(month: int, day: int, year: int, hour: int, minute: int, second: int) -> bytes:
    """MMDDYYYY (4 BCD bytes) + HHMMSS (3 BCD bytes)."""
    return encode_bcd(month * 1_000_000 + day * 10_000 + year, 4) + encode_bcd(
        hour * 10_000 + minute * 100 + second, 3
    )


def decode_date_time(data: bytes) -> tuple[int, int, int, int, int, int]:
    """(month, day, year, hour, minute, second) from 7 BCD bytes; FramingError if not BCD."""
    date, clock = decode_bcd(data[:4]), decode_bcd(data[4:7])
    return (
        date // 1_000_000,
        date // 10_000 % 100,
        date % 10_000,
        clock // 10_000,
        clock // 100 % 100,
        clock % 100,
    )
