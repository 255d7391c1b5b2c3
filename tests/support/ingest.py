"""Doubles for the hub's group commit (hub/ingest.py): a store whose transactions wait."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

from hub.store import EventWrite
from tests.support.hub import event_frame


class HeldStore:
    """Records each transaction's seqs; every transaction waits for ``release``."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.committed: list[list[int]] = []

    async def write_events(self, writes: Sequence[EventWrite], received_at: float
                           ) -> list[bool]:
        await self.release.wait()
        self.committed.append([w.frame["seq"] for w in writes])
        return [True] * len(writes)


def one_event_batch(seq: int, terminal_id: str = "T1") -> list[EventWrite]:
    """A terminal's batch of one event, ``seq``, as the terminal sessions hand it over."""
    frame = event_frame(terminal_id, seq)
    return [EventWrite(frame, terminal_id, acked_seq=seq,
                       data_text=json.dumps(frame["data"]))]
