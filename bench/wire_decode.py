"""Decode + validate per event batch: the hub's ``parse_message`` against a msgspec prototype.

Issue 14 asked whether msgspec (``msgspec.Struct(frozen=True)`` and ``msgspec.json`` decoding
with a tagged union) makes the reading of a frame clearly faster than the standard ``json``
module plus the hand checker (:mod:`api.checks`). This measures the one operation both would
do, on the frames a backlog drain is made of: ``betPlaced`` event texts as the uplink sends
them (``api.events.wire_text``), in batches of ``--batch`` (the agent's default window).

The prototype holds the same rules as :mod:`api.checks` for an event (lengths, patterns,
64-bit seq, channel enum, real timestamps, ``id`` = terminalId-seq, catalog channel,
``data.amount`` in whole cents) and the same pre-checks as :func:`api.parse.parse_message`
(size, depth, lone surrogates fall back to the hand path). It is a measurement only; the
product reads frames with :mod:`api.decode`. Runs interleave the two paths (A, B, A, B, ...)
so both see the same load. Run: ``python bench/wire_decode.py [--help]`` (needs msgspec,
which the project does not depend on: ``pip install msgspec`` first). Figures and the
verdict: docs/architecture.md, "api".
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime
from typing import Annotated, Any, Literal

from benchlib import HelpDefaults, header, load_average, median

try:
    import msgspec
except ImportError:  # not a dependency of the project (docs/architecture.md, "api")
    raise SystemExit("wire_decode.py measures msgspec: pip install msgspec") from None

from api import wire
from api.codes import MAX_AMOUNT_CENTS, MAX_JSON_DEPTH, ErrorCode, WireError
from api.events import channels_of, wire_text
from api.parse import too_deep

_TS = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z\Z"
_TID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}\Z"
_NAME = r"^[a-z][A-Za-z0-9]{0,63}\Z"


class EventMsg(msgspec.Struct, frozen=True, tag_field="type", tag="event"):
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    seq: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
    channel: Literal["game", "cash", "alerts", "system", "player"]
    terminalId: Annotated[str, msgspec.Meta(max_length=1024, pattern=_TID)]
    event: Annotated[str, msgspec.Meta(max_length=1024, pattern=_NAME)]
    timestamp: Annotated[str, msgspec.Meta(pattern=_TS)]
    data: dict[str, Any]

    def __post_init__(self) -> None:
        datetime.fromisoformat(self.timestamp[:-1])  # a real date (ValueError otherwise)
        if self.id != f"{self.terminalId}-{self.seq}" and self.id != f"hub-{self.seq}":
            raise ValueError("id is not terminalId-seq")
        known = channels_of(self.event)
        if known is not None and self.channel not in known:
            raise ValueError("wrong channel")
        amount = self.data.get("amount")
        if amount is not None and not (type(amount) is int and 0 <= amount <= MAX_AMOUNT_CENTS):
            raise ValueError("bad amount")


class Ping(msgspec.Struct, frozen=True, tag_field="type", tag="ping"):
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None


_DECODER = msgspec.json.Decoder(EventMsg | Ping)


def msgspec_parse(text: str, max_bytes: int) -> EventMsg | Ping:
    """The prototype: the same pre-checks, then one msgspec decode; any refusal falls back
    to the hand path (which names the field and picks the code)."""
    size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise WireError(ErrorCode.TOO_LARGE, "too large")
    if too_deep(text):
        raise WireError(ErrorCode.BAD_MESSAGE, f"deeper than {MAX_JSON_DEPTH}")
    if "\\ud" in text or "\\uD" in text:
        wire.parse_message(text, max_bytes=max_bytes)
    try:
        return _DECODER.decode(text)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
        wire.parse_message(text, max_bytes=max_bytes)  # raises the documented error
        raise


def frames(count: int) -> list[str]:
    data = {"amount": 100, "credits": 100, "denomination": 1, "games": 1, "gameNumber": 3,
            "meters": {"coinIn": [1520000, 1520100]}}
    return [wire_text(seq, "BENCH-1", "betPlaced", "game", "2026-05-11T11:10:00.123Z",
                      json.dumps(data, separators=(",", ":")))
            for seq in range(1, count + 1)]


def per_event_us(parse: Any, batch: list[str], rounds: int) -> float:
    start = time.process_time()
    for _ in range(rounds):
        for text in batch:
            parse(text, 262_144)
    return (time.process_time() - start) / (rounds * len(batch)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpDefaults)
    parser.add_argument("--batch", type=int, default=1000, help="events per batch")
    parser.add_argument("--rounds", type=int, default=50, help="batches per run")
    parser.add_argument("--runs", type=int, default=7, help="interleaved runs of each path")
    args = parser.parse_args()
    header("wire decode + validate per event")
    batch = frames(args.batch)
    for text in batch:  # both accept the same frames, with the same values
        typed = msgspec_parse(text, 262_144)
        assert isinstance(typed, EventMsg)
        assert msgspec.structs.asdict(typed) | {"type": "event"} == wire.parse_message(
            text, max_bytes=262_144)

    def hand(text: str, max_bytes: int) -> object:
        return wire.parse_message(text, max_bytes=max_bytes)

    a: list[float] = []
    b: list[float] = []
    for i in range(args.runs):
        a.append(per_event_us(hand, batch, args.rounds))
        b.append(per_event_us(msgspec_parse, batch, args.rounds))
        print(f"  run {i + 1}/{args.runs}: json + hand checker {a[-1]:.2f} µs/event, "
              f"msgspec {b[-1]:.2f} µs/event (load average {load_average()})", flush=True)
    print(f"median: json + hand checker {median(a):.2f} µs/event, msgspec {median(b):.2f} "
          f"µs/event, ratio {median(a) / median(b):.2f}x  (CPU time, batches of {args.batch}; "
          f"load average {load_average()})")


if __name__ == "__main__":
    main()
