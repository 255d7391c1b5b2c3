"""The capture file: one field conversation a technician can mail (docs/operations.md).

No I/O here (the ``api`` rule): the commands open the file and hand over its lines.

JSON lines, UTF-8. The first line is the header::

    {"format": "slot-agent-capture", "version": 1, "terminalId": "T-1", "port": "/dev/ttyUSB0",
     "addresses": [1], "syncAddress": 0, "rte": false, "linkDownAfter": 5,
     "startedAt": "2026-...Z", "seconds": 30.0, "agentVersion": "0.1.0", "dropped": 0}

every other line one frame as the line owner wrote or read it::

    {"t": 0.0123, "dir": "tx", "address": 1, "hex": "81", "wakeup": [0]}

``t`` is seconds since ``startedAt``; ``dir`` is ``tx`` (host to machine) or ``rx``;
``address`` the machine the poll was for (a sync poll to ``syncAddress`` is written while
polling that machine); ``hex`` every byte; ``wakeup`` the indexes of the words that carried
the 9th bit (reference §3.1: a host sets it on a poll's address byte only). ``rte`` and
``linkDownAfter`` are the agent's settings that shape how it reads the conversation
(``machines[].rte``, ``poll.link_down_after``); ``dropped`` counts frames beyond the
capture's limit (not in the file). ``machines`` (by address) is what the agent knew when
the capture began: ``linkUp`` and ``identity`` (LP 54 / LP 1F: ``sasVersion``,
``serialNumber``, ``gameId``, ``denomination`` in cents, ``games``), so a replay of a
conversation caught mid-session knows the machine's denomination. An ``rx`` line holds
what one read returned: a reply may span several lines (decode and replay join them).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["FORMAT", "VERSION", "Capture", "CaptureFileError", "Frame", "build_header",
           "capture_lines", "conversations", "frames_from_line", "parse_capture"]

FORMAT = "slot-agent-capture"
VERSION = 1


class CaptureFileError(ValueError):
    """The file is not a capture this version can read (the message says where)."""


@dataclass(frozen=True, slots=True)
class Frame:
    t: float
    direction: str  # "tx" or "rx"
    address: int
    data: bytes
    wakeup: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"t": round(self.t, 6), "dir": self.direction, "address": self.address,
                "hex": self.data.hex().upper(), "wakeup": list(self.wakeup)}


@dataclass(frozen=True, slots=True)
class Capture:
    header: Mapping[str, Any]
    frames: tuple[Frame, ...]

    @property
    def started_at(self) -> float:
        """The header's ``startedAt`` as a POSIX time."""
        text = str(self.header.get("startedAt", ""))
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def build_header(*, terminal_id: str, port: str, addresses: Iterable[int], sync_address: int,
                 started_at: float, seconds: float, agent_version: str, rte: bool = False,
                 link_down_after: int = 5, dropped: int = 0) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "terminalId": terminal_id, "port": port,
            "addresses": sorted(addresses), "syncAddress": sync_address, "rte": rte,
            "linkDownAfter": link_down_after,
            "startedAt": datetime.fromtimestamp(started_at, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "seconds": seconds, "agentVersion": agent_version, "dropped": dropped}


def frames_from_line(raw: Iterable[Mapping[str, Any]], started_at: float) -> list[Frame]:
    """Frames as the line owner's capture gives them (``at`` POSIX time, full hex)."""
    return [Frame(float(f["at"]) - started_at, str(f["dir"]), int(f["address"]),
                  bytes.fromhex(str(f["hex"])), tuple(int(i) for i in f.get("wakeup", ())))
            for f in raw]


def capture_lines(header: Mapping[str, Any], frames: Iterable[Frame]) -> Iterator[str]:
    """The file's lines (each ending in a newline): the header, then one per frame."""
    yield json.dumps(dict(header)) + "\n"
    for frame in frames:
        yield json.dumps(frame.to_json()) + "\n"


def parse_capture(lines: Iterable[str], source: str = "capture") -> Capture:
    """Check and read a capture's lines; CaptureFileError names ``source:line`` when wrong."""
    numbered = list(_lines(lines, source))
    if not numbered:
        raise CaptureFileError(f"{source}: empty file, not a capture")
    header = _json(source, *numbered[0])
    if header.get("format") != FORMAT:
        raise CaptureFileError(f"{source}:1: not a slot-agent capture (no \"format\": "
                               f"\"{FORMAT}\" header)")
    if header.get("version") != VERSION:
        raise CaptureFileError(f"{source}:1: capture version {header.get('version')!r}; "
                               f"this slot-agent reads version {VERSION}")
    try:
        _ = Capture(header, ()).started_at  # checked once here: every reader uses it
    except (TypeError, ValueError):
        raise CaptureFileError(f"{source}:1: startedAt {header.get('startedAt')!r} is not an "
                               "ISO 8601 UTC time") from None
    frames = []
    for number, text in numbered[1:]:
        item = _json(source, number, text)
        try:
            direction = item["dir"]
            if direction not in ("tx", "rx"):
                raise ValueError(f"dir must be tx or rx, not {direction!r}")
            frames.append(Frame(float(item["t"]), direction, int(item["address"]),
                                bytes.fromhex(item["hex"]),
                                tuple(int(i) for i in item.get("wakeup", []))))
        except (KeyError, TypeError, ValueError) as exc:
            raise CaptureFileError(f"{source}:{number}: bad frame: {exc}") from None
    return Capture(header, tuple(frames))


def _lines(lines: Iterable[str], source: str) -> Iterator[tuple[int, str]]:
    try:
        for number, text in enumerate(lines, 1):
            if text.strip():
                yield number, text
    except UnicodeDecodeError:  # a file opened as UTF-8 text is decoded as it is read
        raise CaptureFileError(f"{source}: not UTF-8 text, not a capture") from None


def _json(path: str, number: int, text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CaptureFileError(f"{path}:{number}: not JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise CaptureFileError(f"{path}:{number}: not a JSON object")
    return value


def conversations(frames: Iterable[Frame]) -> Iterator[Frame]:
    """The frames with consecutive ``rx`` reads for one address joined into one reply."""
    pending: Frame | None = None
    for frame in frames:
        if (pending is not None and frame.direction == "rx" == pending.direction
                and frame.address == pending.address):
            shift = len(pending.data)
            pending = Frame(pending.t, "rx", pending.address, pending.data + frame.data,
                            pending.wakeup + tuple(i + shift for i in frame.wakeup))
            continue
        if pending is not None:
            yield pending
        pending = frame
    if pending is not None:
        yield pending
