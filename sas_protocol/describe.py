"""Human-readable decoding of one captured SAS frame (a host poll or a machine reply).

Used by ``slot-agent decode``. A captured frame has no wakeup bits, so one-byte frames are
ambiguous (general poll / NACK vs ACK / exception) and are described with every reading."""

from __future__ import annotations

import dataclasses
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

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "address": self.address,
            "command": None if self.command is None else f"{self.command:02X}",
            "crc_ok": self.crc_ok,
            "meaning": self.meaning,
        }
        if self.message is not None:
            out["type"] = type(self.message).__name__
            out["fields"] = jsonable_fields(self.message)
        if self.meters is not None:
            out["meters"] = {f"{code:02X}": value for code, value in self.meters.items()}
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


def parse_hex(text: str) -> bytes:
    """Bytes from hex with optional spaces, colons or 0x prefixes; LengthError if invalid."""
    cleaned = text.replace("0x", "").replace("0X", "")
    for sep in (" ", ":", ",", "-", "\t", "\n"):
        cleaned = cleaned.replace(sep, "")
    try:
        data = bytes.fromhex(cleaned)
    except ValueError:
        raise LengthError("not a hex byte string", text.encode("latin-1", "replace")) from None
    if not data:
        raise LengthError("empty frame", b"")
    return data


def _poll_name(command: int) -> str:
    # Only called for commands that decoded, so every one has a LongPoll meaning.
    return f"LP {command:02X} {LONG_POLL_MEANING[LongPoll(command)]}"


def _exception_name(code: int) -> str:
    try:
        return f"{EXCEPTION_MEANING[ExceptionCode(code)]} ({category_of(code).value})"
    except ValueError:
        return "unknown exception code"


def describe_frame(data: bytes) -> FrameDescription:
    """Describe ``data``; raises RemoteProtocolError if it is no valid SAS frame."""
    data = bytes(data)
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
