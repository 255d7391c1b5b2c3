"""Why a frame failed to decode: truncated, too long, or a bad CRC (for ``describe_frame``).

A CRC check over a frame that lost its last bytes always fails, so "bad CRC" alone sends a
technician to the cable when the real cause is a reply cut short (a timeout, a serial server
that flushed early). The length a frame needs is known before its CRC is looked at: from the
poll's layout (``request_length``), the reply's (length byte of a variable reply, the legacy
meter layouts, the reply length the poll declares, the ``LAYOUT`` of a fixed reply) or the
RTE event's (reference §3.3 poll types and lengths, §3.12 RTE layouts; the CRC covers the
whole frame and is sent low byte first, §3.7). Only a frame of a length some reading
accepts can have a bad CRC.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sas_protocol.codes import MeterCode, meter_spec
from sas_protocol.crc import append_crc, crc_ok
from sas_protocol.errors import LengthError
from sas_protocol.messages.layout import layout_size
from sas_protocol.messages.meters import legacy_reply_length
from sas_protocol.messages.requests import (
    LEGACY_METER_POLLS,
    decode_request,
    is_known_command,
    request_length,
)
from sas_protocol.messages.responses import REPLY_TYPES, is_variable_reply
from sas_protocol.rte import RTE_MARKER, rte_frame_length

__all__ = ["CrcMismatch", "check_frame", "expected_lengths", "meter_label"]


@dataclass(frozen=True, slots=True)
class CrcMismatch:
    """A frame of the right length whose CRC does not match. CRCs are shown as on the wire
    (low byte first, reference §3.7), so they can be compared with a hex dump."""

    expected: bytes
    found: bytes
    corrected: bytes  # the frame with the expected CRC: its fields can be decoded, unverified

    def to_json(self) -> dict[str, Any]:
        return {"expected": self.expected.hex().upper(), "found": self.found.hex().upper()}


def expected_lengths(data: bytes) -> dict[str, int | None]:
    """The whole-frame length each reading of ``data`` needs, by reading ("LP 2F poll",
    "LP 2F reply", "RTE 7E frame"); None when more bytes are needed to tell."""
    out: dict[str, int | None] = {}
    if len(data) < 2:
        return out
    command = data[1]
    if command == RTE_MARKER:
        out["RTE frame" if len(data) < 3 else f"RTE {data[2]:02X} frame"] = (
            None if len(data) < 3 else rte_frame_length(data[2]))
        return out
    if is_known_command(command):
        out[f"LP {command:02X} poll"] = request_length(data)
    reply = _reply_length(data)
    if reply is not False:
        out[f"LP {command:02X} reply"] = reply
    return out


def _merged(lengths: dict[str, int | None]) -> dict[str, int | None]:
    """Readings that need the same length named once: "LP 2F poll or reply"."""
    by_length: dict[int | None, list[str]] = {}
    for name, length in lengths.items():
        by_length.setdefault(length, []).append(name)
    return {_join(names): length for length, names in by_length.items()}


def _join(names: list[str]) -> str:
    if len(names) == 1:
        return names[0]
    head, _, _ = names[0].rpartition(" ")
    return f"{head} " + " or ".join(name.rpartition(" ")[2] for name in names)


def _reply_length(data: bytes) -> int | bool | None:
    """The reply's length, None (need the length byte) or False (no known reply layout)."""
    command = data[1]
    if is_variable_reply(command):
        return None if len(data) < 3 else 3 + data[2] + 2
    if command in LEGACY_METER_POLLS:
        return legacy_reply_length(command)
    from_poll = _reply_length_of_poll(command)
    if from_poll is not None:
        return from_poll  # what the host role waits for (HostProtocol._expected_length)
    cls = REPLY_TYPES.get(command)
    layout = getattr(cls, "LAYOUT", ())
    if not layout:
        return False  # a reply decoded by its own code: its decoder judges the length
    return 2 + layout_size(layout) + 2


def _reply_length_of_poll(command: int) -> int | None:
    """The reply length a poll without data declares (``Request.REPLY_LENGTH``), found
    through the public decoder: the poll is built from its command alone."""
    head = bytes((1, command))
    size = request_length(head)
    if size not in (2, 4):
        return None  # a poll with data: its reply is judged by the reply's layout
    # a known poll without data always decodes (an unknown one as UnknownRequest)
    _, request = decode_request(head if size == 2 else append_crc(head))
    length = request.reply_length
    return length if length is not None and length > 2 else None


def check_frame(data: bytes) -> LengthError | CrcMismatch | None:
    """Why ``data`` (a frame that failed to decode) failed, when its length tells.

    A LengthError saying "truncated" (shorter than every reading) or "too long"; a
    :class:`CrcMismatch` when some reading has exactly this length and the CRC is wrong;
    None when neither applies (the decoder's own error stands)."""
    lengths = _merged(expected_lengths(data))
    size = len(data)
    if size >= 3 and not crc_ok(data) and (size in lengths.values() or not lengths):
        fixed = append_crc(data[:-2])
        return CrcMismatch(expected=fixed[-2:], found=data[-2:], corrected=fixed)
    if not lengths or size in lengths.values():
        return None
    longer = {name: n for name, n in lengths.items() if n is None or n > size}
    if len(longer) == len(lengths):
        name, need = min(longer.items(), key=lambda item: item[1] or 0)
        needs = "a length byte" if need is None else f"{need} bytes"
        return LengthError(f"truncated frame: {name} needs {needs}, got {size}", data)
    shorter = {name: n for name, n in lengths.items() if n is not None and n < size}
    if len(shorter) == len(lengths):
        name, need_n = max(shorter.items(), key=lambda item: item[1] or 0)
        return LengthError(f"frame too long: {name} is {need_n} bytes, got {size} "
                           f"({size - (need_n or 0)} extra)", data)
    # Between a shorter and a longer reading: cut short is the likelier (a reply that lost
    # its tail), named by the shortest reading still longer than the frame.
    name, need = min(((k, v) for k, v in longer.items() if v is not None),
                     key=lambda item: item[1], default=next(iter(longer.items())))
    needs = "a length byte" if need is None else f"{need} bytes"
    return LengthError(f"truncated frame: {name} needs {needs}, got {size}", data)


def meter_label(code: int) -> tuple[str, str]:
    """(name, unit) of meter ``code`` (table C-7, reference §3.10): "coin in", "credits"."""
    try:
        name = MeterCode(code).name.lower().replace("_", " ")
    except ValueError:
        name = f"meter {code:02X}"
    return name, meter_spec(code).unit.value
