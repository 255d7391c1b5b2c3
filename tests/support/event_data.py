"""An event's ``data`` against docs/schemas/events/data.json (the typed form of docs/events.md).

``data_problems(name, data)`` lists what is wrong (empty: it is what the docs say);
``assert_documented(frames)`` checks event frames (``StoredEvent.to_wire`` form, or as a hub
client receives them): each on a channel the catalog allows, with documented data. The
schemas forbid fields they do not name, so a field the code adds without documenting it fails
the test that checks it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from jsonschema import Draft202012Validator

from api.events import CATALOG, channels_of
from tests.support import ROOT

#: docs/events.md, the page a consumer codes from.
EVENTS_DOC = (ROOT / "docs" / "events.md").read_text()

SCHEMA: dict[str, Any] = json.loads(
    (ROOT / "docs" / "schemas" / "events" / "data.json").read_text())

_VALIDATORS = {
    name: Draft202012Validator({**SCHEMA, "$ref": f"#/events/{name}"})
    for name in SCHEMA["events"]}


def data_problems(name: str, data: Mapping[str, Any]) -> list[str]:
    """What is wrong with ``data`` for event ``name`` (empty: it is what the docs say)."""
    validator = _VALIDATORS.get(name)
    if validator is None or name not in CATALOG:
        return [f"{name} is not in the catalog or has no schema"]
    return [f"{name}: {'/'.join(map(str, e.absolute_path)) or 'data'}: {e.message}"
            for e in validator.iter_errors(dict(data))]


def assert_documented(frames: Iterable[Mapping[str, Any]]) -> None:
    """Each event frame is on its documented channel with documented data."""
    problems = []
    for frame in frames:
        name = frame["event"]
        problems += data_problems(name, frame["data"])
        if frame["channel"] not in {c.value for c in channels_of(name) or ()}:
            problems.append(f"{name} on channel {frame['channel']}")
    assert problems == [], "\n".join(problems)


def doc_sections() -> dict[str, str]:
    """Each event name -> the text of its ``### `name` `` section(s) of docs/events.md (to
    the next heading)."""
    found: dict[str, str] = {}
    for part in re.split(r"^### ", EVENTS_DOC, flags=re.M)[1:]:
        head, _, body = part.partition("\n")
        body = re.split(r"^## ", body, flags=re.M)[0]
        for name in re.findall(r"`([a-zA-Z]+)`", head):
            found[name] = found.get(name, "") + body
    return found


def field_rows(section: str) -> Iterator[tuple[list[str], str]]:
    """The field rows of a section's table: (the fields a row names, nested ``a.b`` ones
    too, and its type cell). Rows of exception codes (`` `0x..` ``) are not field rows."""
    for line in section.splitlines():
        if not line.startswith("| `") or line.startswith("| `0x"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) > 1:
            yield re.findall(r"`([A-Za-z0-9_.]+)`", cells[0]), cells[1]
