"""Why a frame failed to decode: truncated, too long, or a bad CRC (for ``describe_frame``).

A CRC check over a frame that lost its last bytes always fails, so "bad CRC" alone sends a
technician to the cable when the real cause is a reply cut short (a timeout, a serial server
that flushed early). The length a frame needs is known before its CRC is looked at: from the
poll's layout (``request_length``), the reply's (length byte of a variable reply, the legacy
meter layouts, otherwise the nearest length the reply decoder takes) or the RTE event's
(reference §3.3 poll types and lengths, §3.12 RTE layouts; the CRC covers the whole frame
and is sent low byte first, §3.7). Only a frame of a length some reading accepts can have a
bad CRC.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sas_protocol.codes import meter_spec
from sas_protocol.crc import append_crc, crc_ok
from sas_protocol.errors import FramingError, LengthError, RemoteProtocolError
from sas_protocol.messages.meters import legacy_reply_length
from sas_protocol.messages.requests import (
    LEGACY_METER_POLLS,
    decode_request,
    is_known_command,
    request_length,
)
from sas_protocol.messages.responses import decode_reply_frame, is_variable_reply
from sas_protocol.rte import RTE_MARKER, decode_rte_frame, rte_frame_length

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
    return _judged_reply_length(data)


#: How far from a frame's length the reply decoder is asked for one it takes (a reply body
#: is at most 255 bytes).
_SEARCH = 260


def _judged_reply_length(data: bytes) -> int | bool:
    """The reply length nearest ``data``'s that the reply decoder takes, the missing bytes
    taken as zeros (a longer one first: a cut reply is the likelier); False when the
    decoder has no layout for the command. The decoders are the one source of the layouts,
    so a layout added to them is judged here without a special case."""
    size = len(data)
    candidates = (*range(max(size, 4), size + _SEARCH), *range(size - 1, 3, -1))
    verdicts = ((length, _reply_verdict(data, length)) for length in candidates)
    length, verdict = next(((n, v) for n, v in verdicts if v != "length"), (0, "none"))
    return length if verdict == "fits" else False


def _reply_verdict(data: bytes, length: int) -> str:
    """``fits``, ``length`` (the decoder refuses the length) or ``none`` (no layout)."""
    frame = append_crc((data + bytes(length))[:length - 2])
    error: RemoteProtocolError | None = None
    try:
        decode_reply_frame(frame)
    except RemoteProtocolError as exc:
        error = exc
    if isinstance(error, FramingError) and error.reason.startswith("no reply layout"):
        return "none"
    return "length" if isinstance(error, LengthError) else "fits"


def _length_fits(frame: bytes) -> bool:
    """True when a decoder of a layout this frame may have takes its length (it decodes, or
    fails on something else than the length): the decoders judge the layouts they know,
    also a reply with more than one valid length (LP 3D's short and long validation
    numbers). Decoders without a layout for the command are not asked."""
    decoders: list[Callable[[bytes], object]] = []
    if frame[1] == RTE_MARKER:
        decoders.append(decode_rte_frame)
    else:
        if is_known_command(frame[1]):
            decoders.append(decode_request)
        if _reply_length(frame) is not False:
            decoders.append(decode_reply_frame)
    return any(_takes_length(decode, frame) for decode in decoders)


def _takes_length(decode: Callable[[bytes], object], frame: bytes) -> bool:
    error: RemoteProtocolError | None = None
    try:
        decode(frame)
    except RemoteProtocolError as exc:
        error = exc
    return not isinstance(error, LengthError)


def check_frame(data: bytes) -> LengthError | CrcMismatch | None:
    """Why ``data`` (a frame that failed to decode) failed, when its length tells.

    A :class:`CrcMismatch` when the CRC is wrong on a frame of a length some reading takes
    (its layout, or its decoder with the right CRC in place); a LengthError saying
    "truncated" (shorter than every reading) or "too long"; None when neither applies (the
    decoder's own error stands)."""
    lengths = _merged(expected_lengths(data))
    size = len(data)
    if size >= 3 and not crc_ok(data):
        fixed = append_crc(data[:-2])
        # no reading at all (an unknown command): the CRC is all that can be judged
        if not lengths or size in lengths.values() or _length_fits(fixed):
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
    """(name, unit) of meter ``code`` from the one meter table (table C-7, reference §3.10):
    the name the events' ``meters`` maps use (``coinIn``), and ``credits``, ``cents``,
    ``count`` or ``hundredths-percent``; ``meterXX`` for a code the table does not name."""
    spec = meter_spec(code)
    return spec.name, spec.unit.value
