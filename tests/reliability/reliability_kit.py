"""Shared helpers of the reliability suite: the long-run switch, bounded waits, temp files.

Long variants run only with ``SLOT_AGENT_LONG=1`` in the environment (docs/reliability.md);
the short variants are what CI runs.
"""

from __future__ import annotations

import os

#: True when the long variants were asked for (``SLOT_AGENT_LONG=1``).
LONG = os.environ.get("SLOT_AGENT_LONG", "") not in ("", "0")


def long_or_short(long: int, short: int) -> int:
    """The size of a run: ``long`` with ``SLOT_AGENT_LONG=1``, else ``short``."""
    return long if LONG else short


def hypothesis_examples(short: int) -> int:
    """Hypothesis examples: ``short`` in CI, 25 x as many in a long run."""
    return short * 25 if LONG else short


