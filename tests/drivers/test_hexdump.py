from __future__ import annotations

import pytest

from drivers.hexdump import elided_hex


def test_short_data_is_shown_whole() -> None:
    assert elided_hex(b"\x01\xff\x00") == "01 ff 00"
    assert elided_hex(b"") == ""


def test_long_data_keeps_head_and_tail() -> None:
    text = elided_hex(bytes(range(100)), limit=8)
    assert text == "00 01 02 03 … (92 bytes elided) … 60 61 62 63"


def test_limit_must_leave_room() -> None:
    with pytest.raises(ValueError, match="limit"):
        elided_hex(b"abc", limit=1)
