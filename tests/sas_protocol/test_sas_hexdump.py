from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sas_protocol.hexdump import elided_hex


def test_short_data_is_shown_whole() -> None:
    assert elided_hex(b"\x01\xff\x00") == "01 ff 00"
    assert elided_hex(b"") == "(empty)"


def test_long_data_keeps_head_and_tail() -> None:
    text = elided_hex(bytes(range(100)), limit=8)
    assert text == "00 01 02 03 … (92 bytes elided) … 60 61 62 63"


def test_limit_must_leave_room() -> None:
    with pytest.raises(ValueError, match="limit"):
        elided_hex(b"abc", limit=1)


@given(st.binary(max_size=100), st.integers(min_value=2, max_value=40))
def test_bounded_and_exact(data: bytes, limit: int) -> None:
    """At most ``limit`` bytes are shown, head and tail exactly, with the count left out."""
    text = elided_hex(data, limit)
    if not data:
        assert text == "(empty)"
    elif len(data) <= limit:
        assert bytes.fromhex(text) == data
    else:
        head, middle, tail = text.split(" … ")
        assert bytes.fromhex(head) + bytes.fromhex(tail) == data[: limit // 2] + data[
            len(data) - (limit - limit // 2):]
        assert middle == f"({len(data) - limit} bytes elided)"
