"""How meters are read: the stepdown 6F/AF -> 2F -> legacy polls, and the full snapshot set.

Pure: :class:`MeterRead` plans the polls for one read and collects the replies; the line
owner sends the polls and feeds back what came. Machines differ in what they implement, and an
unsupported long poll is simply never answered (SAS §3.5), so the planner asks the caller's
``ignored`` set (polls the machine is known to ignore) before each poll and steps down:

1. LP 6F (alternating with its twin AF, so two chunks in a row need no sync poll, SAS §3.5):
   up to 12 two-byte codes, explicit sizes, a size of 0 marks a meter the machine lacks;
2. LP 2F: up to 10 one-byte codes, sizes from table C-7;
3. the legacy fixed polls (1C, 0F, 19, 18, single 10-17, 1A), chosen greedily to cover the
   wanted codes with the fewest polls. Meters no legacy poll carries cannot be read then.

Values stay in each meter's own unit; ``widths`` keep the BCD width each value came with (the
interpreter unwraps rollover with it).
"""

from __future__ import annotations

from collections.abc import Iterable, Set

from sas_protocol.messages.meters import LEGACY_METER_LAYOUTS, MeterReply
from sas_protocol.messages.requests import (
    ExtendedMetersRequest,
    MetersRequest,
    Request,
    SelectedMetersRequest,
)

#: LP 6F / AF / 2F command bytes.
EXTENDED = 0x6F
EXTENDED_ALT = 0xAF
SELECTED = 0x2F

#: SAS §7.21 / §3.9: meter codes per request.
EXTENDED_CHUNK = 12
SELECTED_CHUNK = 10

_BILL_COUNTS = tuple(range(0x40, 0x58))

#: Legacy values that no table C-7 code carries but the money rules count, keyed by a
#: stand-in code above the 16-bit C-7 range so it never meets a real one (nor a 6F/2F
#: request): LP 20's whole dollars of all bills accepted (reference §3.9b).
STAND_INS: dict[str, int] = {"total_bill_dollars": 0x10020}
#: The highest code a 6F request can carry (two bytes, SAS §7.21).
MAX_TABLE_CODE = 0xFFFF

#: Every meter the interpreter turns into events or keeps for diagnostics (table C-7).
FULL_SNAPSHOT_CODES: tuple[int, ...] = (
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,  # coin in/out, jackpot, cash-outs, games
    0x0B, 0x0C,  # bills (credits), current credits
    0x0D, 0x0E, 0x0F, 0x10,  # SAS ticket in/out, cashable and restricted (cents)
    0x1B,  # current restricted credits
    0x1C, 0x1D, 0x1E, 0x1F, 0x20, 0x21,  # win split: paytable, progressive, bonus
    0x22, 0x23, 0x24, 0x25, 0x26,  # totals, games since power reset / door close
    0xA0, 0xB8,  # AFT cashable in / out (cents)
    *_BILL_COUNTS,
    *STAND_INS.values(),  # read only on a machine with no 6F/2F (see MeterRead.next_poll)
)

#: Legacy polls in the order the greedy plan prefers them on a tie (bigger first): the meter
#: polls, then the bill meters of a machine with no 2F/6F (reference §3.9b: LP 1E counts
#: bills by face value, LP 46 the credits from bills (0B), LP 20 their whole dollars).
_LEGACY_ORDER = (0x1C, 0x0F, 0x19, 0x18, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x1A,
                 0x1E, 0x46, 0x20)

#: meter codes each legacy poll carries (LP 1C also carries two counters without a C-7 code;
#: LP 20's dollars count under their stand-in code).
LEGACY_CODES: dict[int, frozenset[int]] = {
    poll: frozenset(key if isinstance(key, int) else STAND_INS[key]
                    for key, _ in LEGACY_METER_LAYOUTS[poll]
                    if isinstance(key, int) or key in STAND_INS)
    for poll in _LEGACY_ORDER
}


def legacy_poll_for(wanted: Set[int], ignored: Set[int]) -> int | None:
    """The legacy poll that carries most of ``wanted`` (None when none carries any)."""
    best, best_cover = None, 0
    for poll in _LEGACY_ORDER:
        if poll in ignored:
            continue
        cover = len(LEGACY_CODES[poll] & wanted)
        if cover > best_cover:
            best, best_cover = poll, cover
    return best


def meter_key(code: int) -> str:
    """Two-digit hex (``"0C"``), the key of meters in command results and state JSON."""
    return f"{code:02X}"


class MeterRead:
    """One meter read of ``codes`` for ``game`` (0: the whole machine), by stepdown.

    Use: ``poll = read.next_poll(ignored)``; send it; then ``read.reply(reply)`` or
    ``read.unsupported(poll)`` (after adding the command to ``ignored``) or ``read.failed()``;
    repeat until ``next_poll`` returns None. ``meters`` / ``widths`` hold what was read and
    ``unreadable`` what this machine cannot give with the polls it supports.
    """

    def __init__(self, codes: Iterable[int], *, game: int = 0,
                 lacking: Set[int] = frozenset()) -> None:
        wanted = [c for c in dict.fromkeys(codes) if c not in lacking]
        self.game = game
        self.meters: dict[int, int] = {}
        self.widths: dict[int, int] = {}
        #: codes the machine said it does not keep (6F size 0, missing from a 2F reply)
        self.lacking: set[int] = set()
        self.unreadable: set[int] = set()
        self.aborted = False
        self._remaining: list[int] = wanted
        self._in_flight: Request | None = None
        self._alternate = False
        #: a 6F or 2F answered during this read: the machine counts by its meter table
        self._table_answered = False

    @property
    def done(self) -> bool:
        return self.aborted or (not self._remaining and self._in_flight is None)

    def next_poll(self, ignored: Set[int]) -> Request | None:
        """The next poll to send, or None when the read is complete."""
        if self._in_flight is not None:
            return self._in_flight  # not answered yet: the caller re-sends it
        if self.aborted or not self._remaining:
            return None
        poll: Request | None = None
        table = [c for c in self._remaining if c <= MAX_TABLE_CODE]
        if (EXTENDED not in ignored or SELECTED not in ignored) and (
                self._table_answered or not table):
            # stand-ins are legacy values: a machine with 6F or 2F counts the same money by
            # its table meters (0B for bills), so they are not read there. Only once one of
            # them answered (or nothing else is left): at discovery neither is known yet,
            # and on a machine that ignores both (SAS §3.5) the stand-ins are the legacy
            # polls' meters the read then steps down to (LP 20's bill dollars)
            self.unreadable.update(c for c in self._remaining if c > MAX_TABLE_CODE)
            self._remaining = table
            if not self._remaining:
                return None
        if EXTENDED not in ignored:
            chunk = tuple(table[:EXTENDED_CHUNK])
            alternate = self._alternate and EXTENDED_ALT not in ignored
            poll = ExtendedMetersRequest(self.game, chunk, alternate=alternate)
            self._alternate = not self._alternate
        elif SELECTED not in ignored:
            small = [c for c in table if c <= 0xFF]
            # 2F carries one-byte codes: the rest of the table is unreadable by it; the
            # stand-ins wait for the step down to the legacy polls (above)
            self.unreadable.update(c for c in table if c > 0xFF)
            self._remaining = [c for c in self._remaining if c <= 0xFF or c > MAX_TABLE_CODE]
            if small:
                poll = SelectedMetersRequest(self.game, tuple(small[:SELECTED_CHUNK]))
        elif self.game == 0:
            legacy = legacy_poll_for(set(self._remaining), ignored)
            if legacy is not None:
                poll = MetersRequest(legacy)
        if poll is None:
            # SAS §3.5: nothing this machine answers carries these meters
            self.unreadable.update(self._remaining)
            self._remaining = []
            return None
        self._in_flight = poll
        return poll

    def reply(self, reply: MeterReply) -> None:
        """The machine answered the poll in flight."""
        poll, self._in_flight = self._in_flight, None
        for value in reply.values:
            self.meters[value.code] = value.value
            self.widths[value.code] = value.size
        for key, amount in reply.other:
            if key in STAND_INS:
                self.meters[STAND_INS[key]] = amount
                self.widths[STAND_INS[key]] = 4  # reference §3.9b: LP 20 is four BCD bytes
        self.lacking.update(reply.unsupported)
        asked: set[int]
        if isinstance(poll, (ExtendedMetersRequest, SelectedMetersRequest)):
            self._table_answered = True
            asked = set(poll.codes)
            if isinstance(poll, SelectedMetersRequest):
                # 2F leaves out the meters the machine does not keep
                self.lacking.update(asked - set(reply.meters))
        elif isinstance(poll, MetersRequest):
            asked = set(LEGACY_CODES[poll.poll])
        else:
            asked = set()
        self._remaining = [c for c in self._remaining if c not in asked]

    def unsupported(self) -> None:
        """The poll in flight met silence every time (SAS §3.5: it is not implemented).

        The caller has added its command to ``ignored``; the next poll steps down."""
        poll, self._in_flight = self._in_flight, None
        if isinstance(poll, ExtendedMetersRequest) and poll.alternate:
            self._alternate = False

    def failed(self) -> None:
        """The poll in flight failed (timeout, bad replies): give the read up."""
        self._in_flight = None
        self.aborted = True


def full_snapshot(lacking: Set[int] = frozenset()) -> MeterRead:
    """A read of every meter in :data:`FULL_SNAPSHOT_CODES` the machine may keep."""
    return MeterRead(FULL_SNAPSHOT_CODES, lacking=lacking)
