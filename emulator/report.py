"""The emulator's final report: meters (true and wrapped) and lifetime money totals, as JSON.

``meters`` holds every meter's true, unwrapped value since the last soft meter reset (so a
delta across a BCD rollover is plain subtraction); ``wrapped_meters`` what the machine
reports on the wire; ``totals_cents`` the lifetime totals of ``Machine.totals()`` (never
reset). Keys are meter codes as two-digit uppercase hex.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from emulator.model import Machine


def build_report(machine: Machine, *, scenario: str = "", finished: bool = False) -> dict[str, Any]:
    meters = machine.meters()
    return {
        "denomination": machine.denomination_cents,
        "meters": {f"{code:02X}": value for code, value in sorted(meters.items())},
        "wrapped_meters": {f"{code:02X}": value
                           for code, value in sorted(machine.reported_meters().items())},
        "totals_cents": dataclasses.asdict(machine.totals()),
        "credits": machine.credits,
        "games": {
            str(number): {f"{code:02X}": value
                          for code, value in sorted(machine.meters(number).items())}
            for number in sorted(machine.games)
        },
        "scenario": scenario,
        "finished": finished,
    }


def write_report(path: str | os.PathLike[str], report: dict[str, Any]) -> None:
    """Write atomically (temporary file, then rename), so a reader never sees half a file."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2, sort_keys=False)
            f.write("\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
