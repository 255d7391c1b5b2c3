"""LP 2F replies read guided by the codes asked for (reference §3.9, §3.10).

A 2F reply carries no size bytes, and the reference gives sizes only for codes 00-24: a
machine built from it may send 25/26 in two bytes (as LP 18 does) or a bill count in five.
The host must then still read every meter right, or reject the frame; never misread one.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import sas_protocol as sp
from sas_protocol.messages.meters import MAX_METER_SIZE, MAX_SPLIT_TRIES, SURE_SIZE_CODES


def _reply(entries: list[tuple[int, int, int]], game: int = 0) -> bytes:
    """``addr 2F len game {code value}... CRC`` with each value at the size given."""
    body = sp.encode_bcd(game, 2) + b"".join(
        bytes((code,)) + sp.encode_bcd(value, size) for code, value, size in entries)
    return sp.append_crc(bytes((1, 0x2F, len(body))) + body)


def _read(codes: tuple[int, ...], frame: bytes) -> list[tuple[int, int, int]]:
    reply = sp.decode_reply(sp.SelectedMetersRequest(0, codes), frame, address=1)
    assert isinstance(reply, sp.MeterReply)
    return [(v.code, v.value, v.size) for v in reply.values]


def test_games_since_power_up_in_two_bytes_do_not_shift_coin_in() -> None:
    """25/26 in two bytes (LP 18's width): without the guide, coin in was read from the
    wrong bytes (or the whole read failed, so no meter was ever read)."""
    entries = [(0x24, 1234, 4), (0x25, 12, 2), (0x26, 3, 2), (0x00, 5000, 4)]
    assert _read((0x24, 0x25, 0x26, 0x00), _reply(entries)) == entries


def test_a_five_byte_bill_count_and_left_out_meters() -> None:
    entries = [(0x40, 7, 5), (0x0B, 700, 4), (0xA0, 12_345, 5)]
    asked = (0x40, 0x41, 0x0B, 0xA0, 0xB8)
    assert _read(asked, _reply(entries)) == entries


def test_the_table_sizes_come_first() -> None:
    entries = [(0x25, 0x1, 4), (0x26, 0x2, 4)]
    assert _read((0x25, 0x26), _reply(entries)) == entries


@pytest.mark.parametrize("entries", [
    [(0x00, 5, 5)],  # coin in has a sure size (§3.10): five bytes is no reply to this
    [(0x01, 5, 4)],  # a code that was not asked for
    [(0x00, 5, 4), (0x00, 5, 4)],  # the same code twice
])
def test_a_reply_that_does_not_split_is_rejected(entries: list[tuple[int, int, int]]) -> None:
    with pytest.raises(sp.LengthError, match="does not split"):
        _read((0x00, 0x25), _reply(entries))


def test_a_value_that_is_not_bcd_is_rejected() -> None:
    frame = sp.append_crc(bytes.fromhex("01 2F 07 00 00 25 00 00 00 0A"))
    with pytest.raises(sp.LengthError):
        _read((0x25,), frame)


def test_hostile_bytes_end_quickly() -> None:
    """Ten asked codes that are all BCD digits, in a body of zeros: the search is bounded."""
    frame = sp.append_crc(bytes((1, 0x2F, 252)) + bytes(252))
    with pytest.raises(sp.LengthError):
        _read(tuple(range(10)), frame)


def test_bytes_made_of_asked_codes_stop_the_search_at_its_bound() -> None:
    """Every byte an asked code of no sure size, and every one valid BCD: the memoised search
    could take a million steps (about a second of CPU per reply); it gives up at
    ``MAX_SPLIT_TRIES``."""
    asked = tuple(range(0x40, 0x4A))
    body = bytes(2) + bytes(asked[(i * 7) % 10] for i in range(120))
    frame = sp.append_crc(bytes((1, 0x2F, len(body))) + body)
    with pytest.raises(sp.LengthError, match=f"no split found in {MAX_SPLIT_TRIES} tries"):
        _read(asked, frame)


_CODES = st.sampled_from((0x00, 0x01, 0x02, 0x0B, 0x0D, 0x24, 0x25, 0x26, 0x40, 0x47, 0xA0,
                          0xB8, 0x3E))


@given(st.lists(st.tuples(_CODES, st.integers(0, 10**18 - 1), st.integers(1, MAX_METER_SIZE)),
                min_size=1, max_size=10, unique_by=lambda e: e[0]))
def test_any_sizing_reads_back_as_the_same_bytes(raw: list[tuple[int, int, int]]) -> None:
    """Codes 00-24 at their table size, the others at any size: the reply is read (never
    rejected), sure meters are exact, and what is read re-encodes to the same bytes."""
    entries = []
    for code, value, size in raw:
        if code in SURE_SIZE_CODES:
            size = sp.meter_spec(code).size
        entries.append((code, value % 10 ** (2 * size), size))
    asked = tuple(code for code, _, _ in entries)
    frame = _reply(entries)
    got = _read(asked, frame)
    assert _reply(got) == frame
    if all(size == sp.meter_spec(code).size for code, _, size in entries):
        assert got == entries
