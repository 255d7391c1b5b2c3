"""The 9-bit encoding: golden vectors, and round trips across any split of the stream."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.base import Word
from drivers.ninebit import NineBitDecoder, encode

VECTORS = json.loads((Path(__file__).parent / "data" / "ninebit_vectors.json").read_text())

words_st = st.lists(st.builds(Word, st.integers(0, 255), st.booleans()), max_size=200)


def _words(spec: list[list[object]]) -> list[Word]:
    return [Word(int(str(v), 16), bool(w)) for v, w in spec]


@pytest.mark.parametrize("case", VECTORS, ids=[c["name"] for c in VECTORS])
def test_golden_vectors(case: dict[str, object]) -> None:
    words = _words(case["words"])  # type: ignore[arg-type]
    data = bytes.fromhex(str(case["bytes"]))
    assert encode(words) == data
    assert NineBitDecoder().feed(data) == words


@given(words_st, st.lists(st.integers(0, 600), max_size=20))
def test_round_trip_across_random_splits(words: list[Word], cuts: list[int]) -> None:
    data = encode(words)
    points = sorted({c % (len(data) + 1) for c in cuts})
    decoder = NineBitDecoder()
    got: list[Word] = []
    start = 0
    for p in [*points, len(data)]:
        got += decoder.feed(data[start:p])
        start = p
    assert got == words
    assert decoder.at_boundary and decoder.errors == 0


@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=10))
def test_any_bytes_decode_without_crashing_and_splits_do_not_matter(
    data: bytes, cuts: list[int]
) -> None:
    whole = NineBitDecoder()
    expected = whole.feed(data)
    split = NineBitDecoder()
    got: list[Word] = []
    start = 0
    for p in [*sorted({c % (len(data) + 1) for c in cuts}), len(data)]:
        got += split.feed(data[start:p])
        start = p
    assert got == expected and split.errors == whole.errors


def test_invalid_escape_is_counted_logged_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    decoder = NineBitDecoder("pty:/dev/pts/9")
    with caplog.at_level(logging.WARNING, logger="drivers.ninebit"):
        assert decoder.feed(bytes.fromhex("01 ff 41 02")) == [
            Word(1, False),
            Word(0x41, False),
            Word(2, False),
        ]
    assert decoder.errors == 1
    assert "pty:/dev/pts/9" in caplog.text and "FF 41" in caplog.text


def test_reset_forgets_a_half_sequence() -> None:
    decoder = NineBitDecoder()
    assert decoder.feed(b"\xff\x00") == []
    assert not decoder.at_boundary
    decoder.reset()
    assert decoder.feed(b"\x05") == [Word(5, False)]
