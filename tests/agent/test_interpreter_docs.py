"""docs/events.md documents every catalog event, and its JSON examples are real output."""

from __future__ import annotations

import json
import re
from pathlib import Path

from api.events import CATALOG, channels_of
from tests.support.event_data import EVENTS_DOC, doc_sections, field_rows

DOC = EVENTS_DOC
GOLDEN = json.loads((Path(__file__).parent / "data" / "interpreter_golden_events.json")
                    .read_text())


def test_every_catalog_event_is_in_the_table_and_has_a_section() -> None:
    table_rows = [line for line in DOC.splitlines() if line.startswith("| ")]
    headings = [line for line in DOC.splitlines() if line.startswith("### ")]
    for name in CATALOG:
        row = next((r for r in table_rows if f"`{name}`" in r), None)
        assert row is not None, f"{name} missing from the catalog table"
        channels = {channel.value for channel in channels_of(name) or ()}
        assert set(row.split("|")[1].strip().split(" / ")) == channels, (
            f"{name}: wrong channel in the table")
        assert any(f"`{name}`" in h for h in headings), f"{name} has no section"


def test_json_examples_are_interpreter_output() -> None:
    blocks = re.findall(r"```json\n(.*?)```", DOC, flags=re.S)
    examples = [json.loads(block) for block in blocks]
    assert len(examples) >= 10
    for example in examples:
        assert example in GOLDEN, f"example {example['id']} is not in the golden output"
        assert CATALOG[example["event"]].value == example["channel"]


def test_every_data_field_the_interpreter_emits_is_named_in_its_section() -> None:
    """A consumer written from docs/events.md knows every key of ``data``: each key of every
    golden event (the interpreter's real output over the scripted sessions) is named, in
    backticks, in its event's section (a nested one as ``totals.coinIn``)."""
    sections = doc_sections()
    missing = set()
    for event in GOLDEN:
        body = sections[event["event"]]
        for key, value in event["data"].items():
            named = f"`{key}`" in body or (isinstance(value, dict) and all(
                f"`{key}.{sub}`" in body for sub in value))
            if not named:
                missing.add((event["event"], key))
    assert missing == set()


def test_the_money_events_the_envelope_names_carry_player_id() -> None:
    """events.md, the envelope: ``playerId`` (the session's or null) is on every money event
    it lists, each of which the golden shift produces; a metered ``billAccepted`` once had
    none."""
    bullet = DOC[DOC.index("- `playerId` is present on"):]
    bullet = bullet[:bullet.index(": the open player")]
    names = set(re.findall(r"`([a-zA-Z]+)`", bullet)) - {"playerId"}
    assert len(names) == 12
    produced = {e["event"] for e in GOLDEN}
    assert names <= produced, names - produced
    lacking = {e["event"] for e in GOLDEN if e["event"] in names and "playerId" not in e["data"]}
    assert lacking == set()


def test_every_field_a_table_does_not_mark_optional_is_always_there() -> None:
    """events.md: "every other listed field is always present". Each field row of a
    section's table (a row may list several) without *optional* in its type cell is in the
    ``data`` of every golden event of that section (nested ``a.b`` rows are not checked)."""
    absent = set()
    for name, body in doc_sections().items():
        required = {f for fields, kind in field_rows(body) if "optional" not in kind
                    for f in fields if "." not in f}
        for event in GOLDEN:
            if event["event"] == name:
                absent |= {(name, event["id"], f) for f in required - set(event["data"])}
    assert absent == set()
