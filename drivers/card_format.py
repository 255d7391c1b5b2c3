"""The line format of serial player/employee card readers, parsed without any I/O.

A reader sends one ASCII line per event, ended by CR, LF or CR LF:

- a card line: the ``pattern`` (a regular expression, searched in the line with surrounding
  whitespace and STX/ETX framing removed) finds the card id — its group ``id`` if it has
  one, else its first group, else the whole match. Whatever the pattern, an id must be 4 to
  32 characters long (``MIN_ID_CHARS``..``MAX_ID_CHARS``): it becomes the ``playerId`` or
  ``employeeId`` on the wire, and a shorter match is a misread, not a card;
- a removal line: the ``removal_pattern`` matches (by default an empty line, ``REMOVED``,
  ``OUT`` or ``NOCARD``). Removal is checked first, so ``REMOVED`` is never read as a card.

The holder comes from the id's prefix: the longest matching prefix of ``employee_prefixes``
and ``player_prefixes`` decides; with no player prefixes configured, every card that is not
an employee card is a player card. Anything else is a garbage line: counted, logged with its
bytes elided, and ignored.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from sas_protocol.hexdump import elided_hex

__all__ = [
    "DEFAULT_CARD_PATTERN",
    "DEFAULT_REMOVAL_PATTERN",
    "MAX_ID_CHARS",
    "MIN_ID_CHARS",
    "CardEvent",
    "CardLineParser",
    "Holder",
]

log = logging.getLogger(__name__)

# Optional magnetic-stripe sentinels (";" start of track 2, "%" of track 1, "?" end), then
# 4..32 letters or digits: ";P0012345?" and "%P0099999?" give P0012345 and P0099999. The one
# default: agent.config and config.example.yaml use this constant, docs/sas-serial.md shows it.
DEFAULT_CARD_PATTERN = r"^[;%]?(?P<id>[0-9A-Za-z]{4,32})\??$"
MIN_ID_CHARS = 4
MAX_ID_CHARS = 32
DEFAULT_REMOVAL_PATTERN = r"^(?:REMOVED|OUT|NOCARD)?$"
MAX_LINE_BYTES = 256
_FRAMING = " \t\x02\x03"

Holder = Literal["player", "employee"]


@dataclass(frozen=True, slots=True)
class CardEvent:
    kind: Literal["inserted", "removed"]
    card_id: str
    holder: Holder
    raw: str  # the line that caused it


class CardLineParser:
    """Turns the reader's byte stream into insert/remove events, tracking the card inside.

    A card line while the same card is in is a repeat and ignored; a different card implies
    the first one left (a ``removed`` event comes first). A removal line with no card in is
    ignored.
    """

    def __init__(
        self,
        *,
        pattern: str = DEFAULT_CARD_PATTERN,
        player_prefixes: Iterable[str] = (),
        employee_prefixes: Iterable[str] = (),
        removal_pattern: str = DEFAULT_REMOVAL_PATTERN,
        device: str = "card reader",
    ) -> None:
        self.device = device
        self._pattern = _compile("pattern", pattern)
        self._removal = _compile("removal_pattern", removal_pattern)
        players = tuple(player_prefixes)
        employees = tuple(employee_prefixes)
        both = set(players) & set(employees)
        if both:
            raise ValueError(
                f"player_prefixes and employee_prefixes share {sorted(both)}: "
                "a card could not be told apart"
            )
        self._prefixes: list[tuple[str, Holder]] = sorted(
            [(p, "player") for p in players] + [(p, "employee") for p in employees],
            key=lambda item: len(item[0]),
            reverse=True,
        )
        self._any_player = not players
        self._buffer = bytearray()
        self._overlong = False
        self._after_cr = False
        self.current: CardEvent | None = None
        self.garbage_lines = 0

    def feed(self, data: bytes) -> list[CardEvent]:
        """Events completed by ``data`` (any split of the stream)."""
        events: list[CardEvent] = []
        for b in data:
            if b in (0x0D, 0x0A):
                if b == 0x0A and self._after_cr:
                    self._after_cr = False  # the LF of CR LF
                    continue
                self._after_cr = b == 0x0D
                events += self._end_line()
                continue
            self._after_cr = False
            if len(self._buffer) >= MAX_LINE_BYTES:
                self._overlong = True
                continue
            self._buffer.append(b)
        return events

    def _end_line(self) -> list[CardEvent]:
        raw = bytes(self._buffer)
        self._buffer.clear()
        if self._overlong:
            self._overlong = False
            self._garbage(raw, f"line longer than {MAX_LINE_BYTES} bytes")
            return []
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            self._garbage(raw, "not ASCII")
            return []
        return self.feed_line(text)

    def feed_line(self, line: str) -> list[CardEvent]:
        """Events for one complete line (without its terminator)."""
        text = line.strip(_FRAMING)
        if self._removal.search(text):
            if self.current is None:
                log.debug("%s: removal line %r with no card in", self.device, line)
                return []
            gone = self.current
            self.current = None
            return [CardEvent("removed", gone.card_id, gone.holder, line)]
        found = self._pattern.search(text)
        if not found:
            self._garbage(line.encode("ascii", "replace"), "matches neither pattern")
            return []
        card_id = _card_id(found)
        if not MIN_ID_CHARS <= len(card_id) <= MAX_ID_CHARS:
            self._garbage(line.encode("ascii", "replace"),
                          f"card id of {len(card_id)} characters ({MIN_ID_CHARS} to "
                          f"{MAX_ID_CHARS} allowed)")
            return []
        holder = self._holder(card_id)
        if holder is None:
            self._garbage(line.encode("ascii", "replace"), "card id has no known prefix")
            return []
        if self.current is not None and self.current.card_id == card_id:
            return []  # the reader repeats the card it holds
        events: list[CardEvent] = []
        if self.current is not None:
            gone = self.current
            events.append(CardEvent("removed", gone.card_id, gone.holder, line))
        self.current = CardEvent("inserted", card_id, holder, line)
        events.append(self.current)
        return events

    def _holder(self, card_id: str) -> Holder | None:
        for prefix, holder in self._prefixes:
            if card_id.startswith(prefix):
                return holder
        return "player" if self._any_player else None

    def _garbage(self, raw: bytes, why: str) -> None:
        self.garbage_lines += 1
        log.warning("%s: ignored card reader line (%s): %s", self.device, why, elided_hex(raw))


def _compile(key: str, pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{key}: not a valid regular expression: {exc}") from exc


def _card_id(found: re.Match[str]) -> str:
    if "id" in found.re.groupindex:
        return found.group("id") or ""
    if found.re.groups:
        return found.group(1) or ""
    return found.group(0)
