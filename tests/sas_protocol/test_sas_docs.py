"""docs/sas.md lists every supported long poll and exception code with the enums' meaning."""

from __future__ import annotations

import re
from pathlib import Path

import sas_protocol as sp

DOC = Path(__file__).resolve().parents[2] / "docs" / "sas.md"


def _section(title: str) -> str:
    text = DOC.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def _rows(section: str) -> dict[int, list[str]]:
    rows = {}
    for line in section.splitlines():
        match = re.match(r"\| ([0-9A-F]{2}) \| (.*) \|$", line)
        if match:
            rows[int(match.group(1), 16)] = [c.strip() for c in match.group(2).split(" | ")]
    return rows


def test_every_long_poll_is_documented() -> None:
    rows = _rows(_section("Supported long polls"))
    assert set(rows) == {int(lp) for lp in sp.LongPoll}
    for lp in sp.LongPoll:
        assert rows[int(lp)][0] == sp.LONG_POLL_MEANING[lp]


def test_every_exception_code_is_documented() -> None:
    rows = _rows(_section("Exception codes"))
    assert set(rows) == {int(code) for code in sp.ExceptionCode}
    for code in sp.ExceptionCode:
        assert rows[int(code)] == [sp.EXCEPTION_MEANING[code], sp.category_of(code).value]


def test_serial_line_section_points_to_its_own_page_and_lists_the_quirk_flags() -> None:
    import dataclasses

    from agent.config import SerialConfig

    body = _section("Serial line and the wakeup bit")
    assert "[sas-serial.md](sas-serial.md)" in body
    quirks = {f.name for f in dataclasses.fields(SerialConfig)} - {"port", "baudrate"}
    assert quirks, "SerialConfig has no quirk flags"
    for name in quirks:
        assert f"`{name}`" in body, f"quirk flag {name} is not documented in docs/sas.md"


def test_rte_layout_table_matches_the_codec() -> None:
    section = _section("Frames")
    for code in sp.RTE_LAYOUTS:
        match = re.search(rf"\| {code:02X} [^|]*\|[^|]*\| (\d+) \|", section)
        assert match, f"RTE {code:02X} missing"
        assert int(match.group(1)) == sp.rte_frame_length(code)


def test_disputed_layouts_table_names_every_choice_and_its_default() -> None:
    import dataclasses

    section = _section("Disputed layouts")
    for f in dataclasses.fields(sp.PollLayouts):
        default = getattr(sp.DEFAULT_LAYOUTS, f.name)
        row = next((line for line in section.splitlines() if line.startswith(f"| `{f.name}` |")),
                   None)
        assert row is not None, f"PollLayouts.{f.name} is not documented"
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        assert cells[2].startswith(f"`{default.value}`"), f.name
        others = [member for member in type(default) if member is not default]
        assert all(f"`{member.value}`" in cells[3] for member in others), f.name


def test_the_long_poll_table_gives_each_polls_type_and_reply_length() -> None:
    """What an independent machine implements from the table: R polls are ``addr cmd`` (2
    bytes), S and M polls carry data; an "N bytes" reply is a length the reply decoder
    takes, a "length byte" reply is a variable one."""
    from sas_protocol.frame_check import _reply_verdict, expected_lengths

    for lp, (_, kind, reply) in _rows(_section("Supported long polls")).items():
        lengths = expected_lengths(bytes([1, lp]))
        poll = lengths[f"LP {lp:02X} poll"]
        assert (poll == 2) == (kind == "R"), (f"{lp:02X}", kind, poll)
        if match := re.search(r"(\d+) bytes", reply):
            assert _reply_verdict(bytes([1, lp]), int(match.group(1))) == "fits", f"{lp:02X}"
        elif "length byte" in reply:
            assert lengths[f"LP {lp:02X} reply"] is None, f"{lp:02X}"
        else:
            assert reply.startswith("ACK"), f"{lp:02X}"
