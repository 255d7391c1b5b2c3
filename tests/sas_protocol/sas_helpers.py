"""Shared helpers for the sas_protocol tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VECTORS_PATH = Path(__file__).resolve().parent.parent / "vectors" / "sas_frames.json"


def load_vectors(kind: str | None = None) -> list[dict[str, Any]]:
    vectors: list[dict[str, Any]] = json.loads(VECTORS_PATH.read_text())["vectors"]
    return [v for v in vectors if kind is None or v["kind"] == kind]


def words(frame: bytes) -> list[tuple[int, bool]]:
    """A host frame as 9-bit words: wakeup on the first byte only (SAS §3.1)."""
    return [(b, i == 0) for i, b in enumerate(frame)]
