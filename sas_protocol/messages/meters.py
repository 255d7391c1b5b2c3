"""Meter replies: the legacy fixed polls, LP 52, LP 2F and LP 6F/AF, all as {meter code: value}.

Legacy polls map onto table C-7 codes (LP 11 coin in -> meter 00, LP 1E's $1 bills -> meter
40) so callers can treat every meter read alike; values stay in each meter's own unit (see
``meter_spec``). Values with no table C-7 code (LP 1C's door opens, LP 20's whole dollars of
bills) are kept in ``other``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from sas_protocol.bcd import decode_bcd, encode_bcd
from sas_protocol.codes import BILL_METER_DOLLARS, meter_spec
from sas_protocol.crc import append_crc
from sas_protocol.errors import FramingError, LengthError, LocalProtocolError

#: LP 31-45 single bill meters: the bill (dollars) each counts (reference §3.9b). 3D is not
#: a bill meter (it is the cash-out ticket information).
SINGLE_BILL_POLLS: dict[int, int] = {
    0x31: 1, 0x32: 2, 0x33: 5, 0x34: 10, 0x35: 20, 0x36: 50, 0x37: 100, 0x38: 500,
    0x39: 1_000, 0x3A: 200, 0x3B: 25, 0x3C: 2_000, 0x3E: 2_500, 0x3F: 5_000, 0x40: 10_000,
    0x41: 20_000, 0x42: 25_000, 0x43: 50_000, 0x44: 100_000, 0x45: 250,
}
_BILL_METER_CODES = {dollars: code for code, dollars in BILL_METER_DOLLARS.items()}

#: Legacy meter polls: layout of (meter code or extra-field name, BCD size) in reply order.
LEGACY_METER_LAYOUTS: dict[int, tuple[tuple[int | str, int], ...]] = {
    0x0F: ((0x04, 4), (0x00, 4), (0x01, 4), (0x24, 4), (0x02, 4), (0x05, 4)),
    0x10: ((0x04, 4),),
    0x11: ((0x00, 4),),
    0x12: ((0x01, 4),),
    0x13: ((0x24, 4),),
    0x14: ((0x02, 4),),
    0x15: ((0x05, 4),),
    0x16: ((0x06, 4),),
    0x17: ((0x07, 4),),
    0x18: ((0x25, 2), (0x26, 2)),
    0x19: ((0x00, 4), (0x01, 4), (0x24, 4), (0x02, 4), (0x05, 4)),
    0x1A: ((0x0C, 4),),
    0x1C: (
        (0x00, 4),
        (0x01, 4),
        (0x24, 4),
        (0x02, 4),
        (0x05, 4),
        (0x06, 4),
        ("slot_door_opened", 4),
        ("power_resets", 4),
    ),
    # Reference §3.9b: LP 1E counts bills ($1, $5, $10, $20, $50, $100), not money; the
    # table C-7 "bills accepted" count meters have those meanings (§3.10: 40, 42-44, 46, 47).
    0x1E: ((0x40, 4), (0x42, 4), (0x43, 4), (0x44, 4), (0x46, 4), (0x47, 4)),
    # Reference §3.9b: LP 20 is the whole dollars of all bills accepted: no C-7 code has
    # that unit (0B counts credits), so it is an ``other`` value.
    0x20: (("total_bill_dollars", 4),),
    # Reference §3.9b: LP 46 is the credits-from-bills-accepted meter (0B).
    0x46: ((0x0B, 4),),
    # Reference §3.9b: LP 31-45 (but 3D) each count the bills of one value; the table C-7
    # count meter of that bill carries the same number (the two run in different orders).
    **{poll: ((_BILL_METER_CODES[dollars], 4),) for poll, dollars in SINGLE_BILL_POLLS.items()},
}

#: LP 52 game N meters after the 2-byte BCD game number (reference §3.9).
GAME_METER_LAYOUT: tuple[tuple[int, int], ...] = ((0x00, 4), (0x01, 4), (0x02, 4), (0x05, 4))


def legacy_reply_length(command: int) -> int:
    """Whole reply frame length of a legacy meter poll: addr cmd meters CRC."""
    return 4 + sum(size for _, size in LEGACY_METER_LAYOUTS[command])


@dataclass(frozen=True, slots=True)
class MeterValue:
    """One meter: table C-7 code, value in the meter's unit, BCD width in bytes."""

    code: int
    value: int
    size: int


@dataclass(frozen=True, slots=True)
class MeterReply:
    """A meter read reply (legacy polls, 2F, 6F/AF). ``game`` is 0 for the whole machine;
    ``other`` holds legacy values with no table C-7 code (LP 1C door opens, power resets);
    ``unsupported`` lists 6F/AF codes the machine answered with size 0."""

    command: int
    game: int
    values: tuple[MeterValue, ...]
    other: tuple[tuple[str, int], ...] = ()
    unsupported: tuple[int, ...] = ()
    VARIABLE: ClassVar[frozenset[int]] = frozenset({0x2F, 0x6F, 0xAF})

    @property
    def meters(self) -> dict[int, int]:
        """{meter code: value}."""
        return {m.code: m.value for m in self.values}

    @property
    def widths(self) -> dict[int, int]:
        """{meter code: BCD width in bytes}, for rollover arithmetic."""
        return {m.code: m.size for m in self.values}

    def body(self) -> bytes:
        if self.command in LEGACY_METER_LAYOUTS:
            if self.game != 0:
                raise LocalProtocolError("legacy meter polls report whole-machine meters (game 0)")
            return self._fixed_body(LEGACY_METER_LAYOUTS[self.command])
        if self.command == 0x52:
            return encode_bcd(self.game, 2) + self._fixed_body(GAME_METER_LAYOUT)
        if self.command not in self.VARIABLE:
            raise LocalProtocolError(f"LP {self.command:02X} is not a meter poll")
        parts = [encode_bcd(self.game, 2)]
        for m in self.values:
            if self.command == 0x2F:
                if m.size != meter_spec(m.code).size or not 0 <= m.code <= 0xFF:
                    raise LocalProtocolError(
                        f"LP 2F meter {m.code:02X} must be {meter_spec(m.code).size} bytes"
                    )
                parts.append(bytes((m.code,)) + encode_bcd(m.value, m.size))
            else:
                parts.append(_code16(m.code) + bytes((m.size,)) + encode_bcd(m.value, m.size))
        if self.command != 0x2F:
            parts.extend(_code16(code) + b"\x00" for code in self.unsupported)
        data = b"".join(parts)
        if len(data) > 255:
            raise LocalProtocolError("meter reply longer than 255 bytes")
        return bytes((len(data),)) + data

    def _fixed_body(self, layout: tuple[tuple[int | str, int], ...]) -> bytes:
        meters, other = self.meters, dict(self.other)
        out = []
        for key, size in layout:
            source: dict[int, int] | dict[str, int] = meters if isinstance(key, int) else other
            if key not in source:
                raise LocalProtocolError(f"LP {self.command:02X} reply needs meter {key!r}")
            out.append(encode_bcd(source[key], size))  # type: ignore[index]
        return b"".join(out)

    def encode(self, address: int) -> bytes:
        return append_crc(bytes((address, self.command)) + self.body())


def _code16(code: int) -> bytes:
    if not 0 <= code <= 0xFFFF:
        raise LocalProtocolError(f"meter code {code} does not fit in two bytes")
    return code.to_bytes(2, "little")


#: Reference §3.8: a meter is at most 9 BCD bytes (Monaco ``MaxMeterLength`` = 18 digits).
MAX_METER_SIZE = 9
#: Reference §3.10 gives a size for every code 00-24 (the credit and cents meters money is
#: made of); the sizes of 25 on are missing or [unsure]. A 2F reply is read with 00-24 at
#: their table size, the rest at whatever size makes the reply split (:func:`_decode_selected`).
SURE_SIZE_CODES = range(0x00, 0x25)


#: Places :func:`_decode_selected` tries at most. A real reply splits in a few dozen (each
#: code once, most of a known size; none of 20,000 ten-meter replies with unsure sizes and
#: values made of code-like digits needed the bound), while bytes made of nothing but
#: asked-for codes in BCD could take the memoised search a million steps (about a second of
#: CPU per reply; some 50 ms with the bound).
MAX_SPLIT_TRIES = 10_000


def decode_meter_body(command: int, body: bytes, frame: bytes,
                      asked: tuple[int, ...] | None = None) -> MeterReply:
    """Decode a meter reply body (after ``addr cmd``, and after the length byte for
    2F/6F/AF, without CRC). Raises RemoteProtocolError subclasses carrying ``frame``.

    ``asked``: the meter codes of the LP 2F request this replies to, when known; the 2F
    reply is then read guided by them (:func:`_decode_selected`)."""
    if command in LEGACY_METER_LAYOUTS:
        return _decode_fixed(command, 0, LEGACY_METER_LAYOUTS[command], body, frame)
    if len(body) < 2:
        raise LengthError("meter reply shorter than its game number", frame)
    game = _bcd(body[:2], frame)
    if command == 0x52:
        return _decode_fixed(command, game, GAME_METER_LAYOUT, body[2:], frame)
    if command == 0x2F and asked is not None:
        return MeterReply(command, game, _decode_selected(body, asked, frame), ())
    values: list[MeterValue] = []
    unsupported: list[int] = []
    offset = 2
    while offset < len(body):
        if command == 0x2F:
            # SAS 2F sizes come from the meter code (table C-7 minimum sizes).
            code = body[offset]
            size = meter_spec(code).size
            offset += 1
        else:
            if offset + 3 > len(body):
                raise LengthError("truncated 6F meter header", frame)
            code = int.from_bytes(body[offset : offset + 2], "little")
            size = body[offset + 2]
            offset += 3
            if size == 0:
                unsupported.append(code)
                continue
        if offset + size > len(body):
            raise LengthError(f"truncated value of meter {code:02X}", frame)
        values.append(MeterValue(code, _bcd(body[offset : offset + size], frame), size))
        offset += size
    return MeterReply(command, game, tuple(values), (), tuple(unsupported))


def _decode_selected(body: bytes, asked: tuple[int, ...], frame: bytes) -> tuple[MeterValue, ...]:
    """An LP 2F reply read with the codes that were asked for.

    A 2F reply has no size bytes: each value has its meter's table C-7 size, and the
    reference gives those as minimum sizes, several of them [unsure] (§3.9 "min size",
    §3.10: 25/26 and 28-39 have no size, 3E-62 are unsure; LP 18 sends 25/26 as 2 bytes).
    A machine that sizes one of them otherwise would have every later code and value read
    from the wrong bytes, so the reply is read as the one split where every code is one that
    was asked for (each once; the machine leaves out those it does not keep), every value
    is BCD, and the codes of :data:`SURE_SIZE_CODES` have their table size; the others try
    their table size first, then the other sizes up to :data:`MAX_METER_SIZE`. No such
    split: ``LengthError`` (never a misread meter)."""
    wanted = set(asked)
    dead_ends: set[tuple[int, frozenset[int]]] = set()  # bounds the search on hostile bytes
    tries = 0

    def split(offset: int, seen: frozenset[int]) -> list[MeterValue] | None:
        nonlocal tries
        if offset == len(body):
            return []
        tries += 1
        if tries > MAX_SPLIT_TRIES:
            raise LengthError(f"LP 2F reply: no split found in {MAX_SPLIT_TRIES} tries", frame)
        code = body[offset]
        if code not in wanted or code in seen or (offset, seen) in dead_ends:
            return None
        table = meter_spec(code).size
        sizes = (table,) if code in SURE_SIZE_CODES else (
            table, *(s for s in range(1, MAX_METER_SIZE + 1) if s != table))
        for size in sizes:
            end = offset + 1 + size
            if end > len(body) or not _is_bcd(body[offset + 1 : end]):
                continue
            rest = split(end, seen | {code})
            if rest is not None:
                return [MeterValue(code, decode_bcd(body[offset + 1 : end]), size), *rest]
        dead_ends.add((offset, seen))
        return None

    values = split(2, frozenset())
    if values is None:
        raise LengthError("LP 2F reply does not split into the meters asked for", frame)
    return tuple(values)


def _is_bcd(data: bytes) -> bool:
    return all(b >> 4 <= 9 and b & 0x0F <= 9 for b in data)


def _decode_fixed(
    command: int, game: int, layout: tuple[tuple[int | str, int], ...], body: bytes, frame: bytes
) -> MeterReply:
    if len(body) != sum(size for _, size in layout):
        raise LengthError(f"LP {command:02X} reply has the wrong length", frame)
    values: list[MeterValue] = []
    other: list[tuple[str, int]] = []
    offset = 0
    for key, size in layout:
        value = _bcd(body[offset : offset + size], frame)
        offset += size
        if isinstance(key, int):
            values.append(MeterValue(key, value, size))
        else:
            other.append((key, value))
    return MeterReply(command, game, tuple(values), tuple(other))


def _bcd(data: bytes, frame: bytes) -> int:
    try:
        return decode_bcd(data)
    except FramingError:
        raise FramingError("meter value is not BCD", frame) from None
