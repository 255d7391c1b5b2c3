"""Human-readable decoding of one captured SAS frame (a host poll or a machine reply).

Used by ``slot-agent decode``. A captured frame has no wakeup bits, so one-byte frames are
ambiguous (general poll / NACK vs ACK / exception) and are described with every reading.

A technician must be able to tell a line problem from a machine problem, so a frame that fails
is told apart (:mod:`sas_protocol.frame_check`): *truncated* (fewer bytes than its layout; the
CRC is not even looked at), *too long*, or *bad CRC* with the expected and found CRC and the
fields decoded anyway, marked unverified. Replies and polls are decoded by the generic
``decode_request`` / ``decode_reply_frame``, so every layout they know is described here."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from sas_protocol.codes import (
    EXCEPTION_MEANING,
    LONG_POLL_MEANING,
    ExceptionCode,
    LongPoll,
    category_of,
)
from sas_protocol.crc import crc_ok
from sas_protocol.errors import CrcError, LengthError, RemoteProtocolError
from sas_protocol.frame_check import CrcMismatch, check_frame, meter_label
from sas_protocol.messages.features import (
    EnabledFeaturesReply,
    Features1,
    Features2,
    Features3,
    Features4,
)
from sas_protocol.messages.meters import MeterReply
from sas_protocol.messages.multidenom import MultiDenomReply
from sas_protocol.messages.requests import decode_request, is_known_command, request_length
from sas_protocol.messages.responses import decode_reply_frame
from sas_protocol.rte import RTE_MARKER, decode_rte_frame


@dataclass(frozen=True, slots=True)
class FrameDescription:
    """What a frame means. ``crc_ok`` is None for frames that carry no CRC."""

    kind: str
    address: int | None
    command: int | None
    crc_ok: bool | None
    meaning: str
    message: Any = None
    meters: dict[int, int] | None = field(default=None)
    #: Set when ``crc_ok`` is False: the fields were decoded from bytes the CRC rejects.
    crc_mismatch: CrcMismatch | None = None

    @property
    def unverified(self) -> bool:
        """True when the fields come from a frame whose CRC does not match."""
        return self.crc_mismatch is not None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "address": self.address,
            "command": None if self.command is None else f"{self.command:02X}",
            "crc_ok": self.crc_ok,
            "meaning": self.meaning,
        }
        if self.crc_mismatch is not None:
            out["crc"] = self.crc_mismatch.to_json()
            out["unverified"] = True
        if self.message is not None:
            out["type"] = type(self.message).__name__
            out["fields"] = jsonable_fields(self.message)
        if self.meters is not None:
            out["meters"] = {f"{code:02X}": value for code, value in self.meters.items()}
            out["meterNames"] = {f"{code:02X}": dict(zip(("name", "unit"), meter_label(code),
                                                         strict=True))
                                 for code in self.meters}
        return out


def jsonable_fields(message: Any) -> dict[str, Any]:
    """A message's fields as JSON-friendly values (bytes as hex, tuples as lists)."""
    if hasattr(message, "fields") and callable(message.fields):
        return {k: _jsonable(v) for k, v in message.fields().items()}
    return {f.name: _jsonable(getattr(message, f.name)) for f in dataclasses.fields(message)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value  # layout choices (sas_protocol.variants)
    if isinstance(value, bytes):
        return value.hex().upper()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if hasattr(value, "encode"):
            out["type"] = type(value).__name__  # a message wrapped in another (LP B0)
        return out
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


class HexInputError(RemoteProtocolError):
    """The text given as a frame is not hex bytes (``raw`` is empty: text is not echoed
    as if it were bytes)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, b"")

    def __str__(self) -> str:
        return self.reason


_HEX_SEPARATORS = re.compile(r"0[xX]|[\s:,\-]")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def parse_hex(text: str) -> bytes:
    """Bytes from hex with optional spaces, colons or 0x prefixes.

    :class:`HexInputError` names the first character that is not a hex digit (and where it
    is), an odd number of digits, or empty input."""
    cleaned = _HEX_SEPARATORS.sub("", text)
    for char in cleaned:
        if char not in _HEX_DIGITS:
            raise HexInputError(f"not hex: {char!r} is not a hex digit (character "
                                f"{text.find(char) + 1} of the input)")
    if len(cleaned) % 2:
        raise HexInputError(f"not hex: {len(cleaned)} hex digits, an odd number (each byte "
                            "is two digits, e.g. 01 not 1)")
    if not cleaned:
        raise HexInputError("not hex: no bytes given")
    return bytes.fromhex(cleaned)


def _poll_name(command: int) -> str:
    # Only called for commands that decoded, so every one has a LongPoll meaning.
    return f"LP {command:02X} {LONG_POLL_MEANING[LongPoll(command)]}"


def _exception_name(code: int) -> str:
    try:
        return f"{EXCEPTION_MEANING[ExceptionCode(code)]} ({category_of(code).value})"
    except ValueError:
        return "unknown exception code"


def describe_frame(data: bytes) -> FrameDescription:
    """Describe ``data``; raises RemoteProtocolError if it is no SAS frame.

    A frame of the right length for its layout whose CRC is wrong is still described, with
    ``crc_ok`` False, the expected and found CRC and its fields (unverified); a frame shorter
    than its layout raises :class:`~sas_protocol.errors.LengthError` saying "truncated"."""
    data = bytes(data)
    try:
        return _describe(data)
    except RemoteProtocolError:
        verdict = check_frame(data)
        if verdict is None:
            raise
        if isinstance(verdict, LengthError):
            raise verdict from None
    expected, found = verdict.expected.hex(" ").upper(), verdict.found.hex(" ").upper()
    try:
        description = _describe(verdict.corrected)
    except RemoteProtocolError as exc:
        raise CrcError(f"bad CRC (expected {expected}, found {found}), and even with the "
                       f"expected CRC: {exc.reason}", data) from None
    return dataclasses.replace(description, crc_ok=False, crc_mismatch=verdict)


def _describe(data: bytes) -> FrameDescription:
    if not data:
        raise LengthError("empty frame", data)
    first = data[0]
    if len(data) == 1:
        if first & 0x80:
            address = first & 0x7F
            return FrameDescription(
                "general poll",
                address,
                None,
                None,
                f"general poll to address {address}"
                f" (or, from a machine, NACK from address {address})",
            )
        return FrameDescription(
            "one-byte reply",
            first,
            None,
            None,
            f"ACK from address {first}, or general-poll exception {first:02X}: "
            f"{_exception_name(first)}",
        )
    if len(data) == 2:
        if data[1] == 0x00:
            return FrameDescription("busy", first, None, None, f"busy reply from address {first}")
        if request_length(data) == 2 and is_known_command(data[1]):
            _, request = decode_request(data)
            return FrameDescription(
                "long poll", first, data[1], None, _poll_name(data[1]), message=request
            )
        raise LengthError(f"two-byte frame with unknown command {data[1]:02X}", data)
    if data[1] == RTE_MARKER:
        event = decode_rte_frame(data)
        return FrameDescription(
            "real-time event",
            first,
            data[2],
            True,
            f"RTE {data[2]:02X}: {_exception_name(data[2])}",
            message=event,
        )
    command = data[1]
    errors: list[RemoteProtocolError] = []
    if is_known_command(command) and request_length(data) == len(data):
        try:
            _, request = decode_request(data)
        except RemoteProtocolError as exc:
            errors.append(exc)
        else:
            meaning = _poll_name(command)
            try:
                decode_reply_frame(data)
            except RemoteProtocolError:
                pass
            else:
                meaning += " (the same bytes are also a valid reply to this poll)"
            return FrameDescription(
                "long poll",
                first,
                command,
                crc_ok(data) if len(data) > 2 else None,
                meaning,
                message=request,
            )
    try:
        reply = decode_reply_frame(data)
    except RemoteProtocolError as exc:
        errors.append(exc)
    else:
        return FrameDescription(
            "reply",
            first,
            command,
            True,
            f"reply to {_poll_name(command)}{_detail(reply)}",
            message=reply,
            meters=_meters_of(reply),
        )
    crc_errors = [e for e in errors if isinstance(e, CrcError)]
    raise (crc_errors or errors)[0]


def _meters_of(reply: object) -> dict[int, int] | None:
    """The meters a reply carries, also inside a B0 multi-denomination wrapper."""
    if isinstance(reply, MultiDenomReply):
        reply = reply.reply
    return reply.meters if isinstance(reply, MeterReply) else None


def _detail(reply: object) -> str:
    """The set A0 feature bits by name (reference §3.9b), so a capture reads at a glance;
    reserved bits have no name and are left out."""
    if not isinstance(reply, EnabledFeaturesReply):
        return ""
    names = [
        str(flag.name).lower()
        for flags in (Features1(reply.features1), Features2(reply.features2),
                      Features3(reply.features3), Features4(reply.features4))
        for flag in flags
    ]
    return ": " + (", ".join(names) if names else "no features")
