"""The card reader's line parser: pure, fed any split of the stream."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.card_format import CardEvent, CardLineParser


def parser(**options: object) -> CardLineParser:
    return CardLineParser(
        player_prefixes=options.pop("player_prefixes", ("P",)),  # type: ignore[arg-type]
        employee_prefixes=options.pop("employee_prefixes", ("E", "EX9")),  # type: ignore[arg-type]
        **options,  # type: ignore[arg-type]
    )


def test_insert_then_empty_line_removes() -> None:
    p = parser()
    assert p.feed(b";P12345?\r\n") == [CardEvent("inserted", "P12345", "player", ";P12345?")]
    assert p.current == CardEvent("inserted", "P12345", "player", ";P12345?")
    assert p.feed(b"\r\n") == [CardEvent("removed", "P12345", "player", "")]
    assert p.current is None


@pytest.mark.parametrize("terminator", [b"\r", b"\n", b"\r\n"])
def test_each_terminator_ends_one_line(terminator: bytes) -> None:
    p = parser()
    events = p.feed(b"E0042" + terminator + b"REMOVED" + terminator)
    assert [(e.kind, e.card_id, e.holder) for e in events] == [
        ("inserted", "E0042", "employee"),
        ("removed", "E0042", "employee"),
    ]
    assert p.garbage_lines == 0


def test_longest_prefix_decides_the_holder() -> None:
    p = parser(player_prefixes=("EX",), employee_prefixes=("E",))
    assert p.feed_line("EX123")[0].holder == "player"
    assert p.feed_line("OUT")[0].kind == "removed"
    assert p.feed_line("E9999")[0].holder == "employee"


def test_without_player_prefixes_every_non_employee_card_is_a_player() -> None:
    p = CardLineParser(employee_prefixes=("9",))
    assert p.feed_line("12345678")[0].holder == "player"
    p2 = CardLineParser(employee_prefixes=("9",))
    assert p2.feed_line("98765432")[0].holder == "employee"


def test_unknown_prefix_is_garbage() -> None:
    p = parser()
    assert p.feed_line("X12345") == []
    assert p.garbage_lines == 1 and p.current is None


def test_repeat_is_ignored_and_a_new_card_implies_removal() -> None:
    p = parser()
    p.feed_line("P1111")
    assert p.feed_line("P1111") == []
    assert [(e.kind, e.card_id) for e in p.feed_line("E2222")] == [
        ("removed", "P1111"),
        ("inserted", "E2222"),
    ]


def test_removal_without_a_card_is_ignored() -> None:
    p = parser()
    assert p.feed(b"\r\nNOCARD\r\n") == []
    assert p.garbage_lines == 0


def test_garbage_is_counted_never_raised() -> None:
    p = parser()
    assert p.feed(b"\xff\xfe\r\n") == []  # not ASCII
    assert p.feed(b"!!\r\n") == []  # no pattern
    assert p.feed(b"P" * 1000 + b"\r\n") == []  # too long
    assert p.garbage_lines == 3
    assert p.feed(b"\x02P7777\x03\r\n")[0].card_id == "P7777"  # STX/ETX framing stripped


def test_custom_pattern_group_and_removal() -> None:
    p = CardLineParser(pattern=r"CARD=(\d+)", removal_pattern=r"^GONE$")
    assert p.feed_line("CARD=0042 ok")[0].card_id == "0042"
    assert p.feed_line("") == []  # not a removal with this pattern: garbage
    assert p.garbage_lines == 1
    assert p.feed_line("GONE")[0].kind == "removed"


@pytest.mark.parametrize(
    ("line", "card_id"),
    [
        (";P0012345?", "P0012345"),  # track 2 sentinels (docs/sas-serial.md)
        ("%P0099999?", "P0099999"),  # track 1 sentinels (the documented form)
        ("P0012345", "P0012345"),  # no sentinels
        ("\x02E0042\x03", "E0042"),  # STX/ETX framing stripped
        ("P" + "1" * 31, "P" + "1" * 31),  # 32 characters: the longest id
        ("P123", "P123"),  # 4 characters: the shortest
    ],
)
def test_the_default_pattern_reads_the_documented_forms(line: str, card_id: str) -> None:
    assert parser().feed_line(line)[0].card_id == card_id


@pytest.mark.parametrize("line", ["P12", ";P12?", "P" + "1" * 32, "P-1001", "%P00 999?"])
def test_ids_outside_4_to_32_letters_or_digits_are_garbage(line: str) -> None:
    p = parser()
    assert p.feed_line(line) == []
    assert p.garbage_lines == 1 and p.current is None


def test_a_custom_pattern_still_gets_the_4_to_32_rule() -> None:
    p = CardLineParser(pattern=r"CARD=(?P<id>[0-9-]+)")
    assert p.feed_line("CARD=12") == [] and p.garbage_lines == 1
    assert p.feed_line("CARD=12-34")[0].card_id == "12-34"


def test_config_example_and_driver_share_the_one_default_pattern() -> None:
    from pathlib import Path

    import yaml

    from agent.config import CardReaderConfig
    from drivers.card_format import DEFAULT_CARD_PATTERN, DEFAULT_REMOVAL_PATTERN

    root = Path(__file__).resolve().parents[2]
    example = yaml.safe_load((root / "config.example.yaml").read_text())["card_reader"]
    assert example["pattern"] == CardReaderConfig().pattern == DEFAULT_CARD_PATTERN
    assert example["removal_pattern"] == DEFAULT_REMOVAL_PATTERN
    doc = (root / "docs" / "sas-serial.md").read_text()
    assert f"`pattern`, default `{DEFAULT_CARD_PATTERN}`" in doc
    assert f"`removal_pattern`, default `{DEFAULT_REMOVAL_PATTERN}`" in doc


def test_bad_options_name_the_key() -> None:
    with pytest.raises(ValueError, match="removal_pattern"):
        CardLineParser(removal_pattern="(")
    with pytest.raises(ValueError, match="pattern"):
        CardLineParser(pattern="[")
    with pytest.raises(ValueError, match="share"):
        CardLineParser(player_prefixes=("1",), employee_prefixes=("1",))


lines_st = st.lists(
    st.one_of(
        st.sampled_from(
            ["P123456", "E000111", "P999999", "", "REMOVED", "junk!", "\x02E55555\x03"]
        ),
        st.text(alphabet="PE0123456789;?!\x02 ", max_size=12),
    ),
    max_size=30,
)


@given(lines_st, st.lists(st.integers(0, 500), max_size=10), st.sampled_from(["\r", "\n", "\r\n"]))
def test_splits_do_not_change_events(lines: list[str], cuts: list[int], end: str) -> None:
    data = "".join(line + end for line in lines).encode()
    whole = parser()
    expected = whole.feed(data)
    split = parser()
    got: list[CardEvent] = []
    start = 0
    for point in [*sorted({c % (len(data) + 1) for c in cuts}), len(data)]:
        got += split.feed(data[start:point])
        start = point
    assert got == expected
    assert split.garbage_lines == whole.garbage_lines
    # Events alternate sensibly: never two inserts of the same card in a row.
    inside: str | None = None
    for event in got:
        if event.kind == "inserted":
            assert event.card_id != inside
            inside = event.card_id
        else:
            assert event.card_id == inside
            inside = None


@given(st.binary(max_size=400))
def test_any_bytes_never_crash(data: bytes) -> None:
    p = parser()
    for event in p.feed(data):
        assert event.holder in ("player", "employee")
