"""The SAS protocol, pure: codecs and the host and machine state machines (no I/O)."""

from __future__ import annotations

from sas_protocol.bcd import decode_bcd, encode_bcd
from sas_protocol.codes import (
    EXCEPTION_MEANING,
    IDLE_EXCEPTIONS,
    LONG_POLL_MEANING,
    ExceptionCategory,
    ExceptionCode,
    LongPoll,
    MeterCode,
    MeterSpec,
    MeterUnit,
    category_of,
    meter_spec,
)
from sas_protocol.crc import append_crc, crc16_kermit, crc_ok
from sas_protocol.denominations import DENOMINATION_CENTS, denomination_cents
from sas_protocol.errors import (
    CrcError,
    FramingError,
    LengthError,
    LocalProtocolError,
    RemoteProtocolError,
    SasProtocolError,
    UnexpectedAddressError,
)

__all__ = [
    "DENOMINATION_CENTS",
    "EXCEPTION_MEANING",
    "IDLE_EXCEPTIONS",
    "LONG_POLL_MEANING",
    "CrcError",
    "ExceptionCategory",
    "ExceptionCode",
    "FramingError",
    "LengthError",
    "LocalProtocolError",
    "LongPoll",
    "MeterCode",
    "MeterSpec",
    "MeterUnit",
    "RemoteProtocolError",
    "SasProtocolError",
    "UnexpectedAddressError",
    "append_crc",
    "category_of",
    "crc16_kermit",
    "crc_ok",
    "decode_bcd",
    "denomination_cents",
    "encode_bcd",
    "meter_spec",
]
