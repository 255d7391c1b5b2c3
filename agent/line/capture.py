"""The line owner's capture buffer: every word on the line, for ``slot-agent capture``.

A technician records the live conversation from the running daemon (the line has one owner:
the capture never opens the port a second time). While no capture runs the line owner pays
one attribute test per frame; while one runs, each frame is appended under a lock with its
full bytes, direction, address, time and the positions of words carrying the wakeup bit
(reference §3.1: the 9th bit marks the address byte of a host poll). The buffer holds at most
``limit`` frames; frames beyond are counted, not kept, so a long capture cannot exhaust memory.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from drivers.base import Word

__all__ = ["CAPTURE_MAX_FRAMES", "CaptureBuffer", "CaptureError"]

#: Frames one capture keeps: at 40 frames a second (two machines polled every 100 ms, each
#: with a reply) ten minutes of line fit.
CAPTURE_MAX_FRAMES = 50_000


class CaptureError(RuntimeError):
    """A capture cannot start: one already runs on this line (one at a time), or the line
    process does not answer."""


class CaptureBuffer:
    """Frames recorded between :meth:`start` and :meth:`take` (thread-safe)."""

    def __init__(self, limit: int = CAPTURE_MAX_FRAMES) -> None:
        self.limit = limit
        self._frames: list[dict[str, Any]] = []
        self.dropped = 0
        self._lock = threading.Lock()

    def add(self, at: float, direction: str, address: int, data: bytes,
            wakeup: Sequence[int]) -> None:
        with self._lock:
            if len(self._frames) >= self.limit:
                self.dropped += 1
                return
            self._frames.append({"at": at, "dir": direction, "address": address,
                                 "hex": data.hex().upper(), "wakeup": list(wakeup)})

    def take(self) -> dict[str, Any]:
        """The frames and how many were dropped over the limit."""
        with self._lock:
            frames, self._frames = self._frames, []
            return {"frames": frames, "dropped": self.dropped}


def wakeup_positions(words: Sequence[Word]) -> list[int]:
    """Indexes of the words that carry the 9th bit."""
    return [i for i, word in enumerate(words) if word.wakeup]
