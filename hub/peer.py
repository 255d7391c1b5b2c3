"""One open WebSocket connection of the hub, terminal or client, with its own writer.

Each peer has a bounded outgoing queue drained by its own task, so one slow client cannot
slow the rest: a peer whose queue is full is dropped as a slow consumer (docs/protocol.md §5).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from api import wire
from api.wire import CloseCode
from hub.tokens import Principal
from hub.wsio import send_frames

#: Most frames a peer's writer joins into one write.
WRITE_BATCH = 256

#: Seconds a peer's queued frames may take to go out before a close the hub initiates.
DRAIN_TIMEOUT = 5.0


async def let_writers_run() -> None:
    """Yield once to the loop after handling a message.

    ``recv`` returns buffered frames without suspending, so a burst from one peer would
    otherwise be handled entirely before any writer task sends a byte, and the bounded
    queues would overflow with frames the peers could well take (slow consumers are those
    that do not read, not those that receive a burst).
    """
    await asyncio.sleep(0)


class Peer:
    """One open connection with a bounded outgoing queue drained by its own task."""

    def __init__(self, ws: ServerConnection, principal: Principal, limit: int,
                 on_drop: Callable[[Peer], None]) -> None:
        self.ws = ws
        self.principal = principal
        self._on_drop = on_drop
        self.queue: asyncio.Queue[str | bytes] = asyncio.Queue(maxsize=limit)
        self.dropped = False
        self.closing_code: int | None = None
        self._closer: asyncio.Task[None] | None = None
        self.writer = asyncio.create_task(self._write())

    async def _write(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                frames = [await self.queue.get()]
                while len(frames) < WRITE_BATCH and not self.queue.empty():
                    frames.append(self.queue.get_nowait())
                await send_frames(self.ws, frames)
                for _ in frames:
                    self.queue.task_done()

    def send(self, msg: dict[str, Any]) -> None:
        self.send_text(wire.encode(msg))

    def send_text(self, text: str | bytes) -> bool:
        """Queue a frame; False (and the peer is being dropped) if its queue is full."""
        if self.dropped:
            return False
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.dropped = True
            self._on_drop(self)
            self.close(CloseCode.SLOW_CONSUMER, "slow consumer: outgoing queue full")
            return False
        return True

    def filling(self) -> bool:
        """True if the outgoing queue is half full or more."""
        return self.queue.qsize() * 2 >= self.queue.maxsize

    def close(self, code: int, reason: str) -> None:
        """Stop writing and close with ``code`` (queued frames are abandoned)."""
        self.closing_code = code
        self.writer.cancel()
        # Keep a reference: a task nobody holds may be garbage-collected before it runs.
        self._closer = asyncio.get_running_loop().create_task(
            self.ws.close(code, reason.encode()[:120].decode("utf-8", "ignore")))

    async def drain(self, timeout: float) -> None:
        """Wait (at most ``timeout`` seconds) until everything queued has been sent."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.queue.join()

    async def finish(self) -> None:
        self.writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.writer
