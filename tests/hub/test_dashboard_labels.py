"""The dashboard names every catalog event in words (hub/static/app.js ``LABELS``).

An event without a label is shown by its raw name; two catalog events (the
``unexplainedMeterChange`` alert and the generic ``machineException``) once had none.
"""

from __future__ import annotations

import re

from api.events import CATALOG
from tests.support import ROOT


def test_every_catalog_event_has_a_label_and_no_label_is_stale() -> None:
    app = (ROOT / "hub" / "static" / "app.js").read_text()
    block = app[app.index("const LABELS = {"):]
    block = block[:block.index("};")]
    labelled = set(re.findall(r"(\w+): \"", block))
    assert labelled == set(CATALOG)
