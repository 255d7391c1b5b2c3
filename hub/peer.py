"""One open WebSocket connection of the hub, terminal or client, with its own writer.

Each peer has a bounded outgoing queue drained by its own task, so one slow client cannot
slow the rest: a peer whose queue is full is dropped as a slow consumer (docs/protocol.md §5).

The queue is bounded in frames (``client_queue``), and one item may be a run of frames joined
once for many peers (hub/fanout.py). A frame for a peer with nothing queued, nothing being
written and nothing buffered in its transport is written at once, without waking the writer
task: an ``ack`` per terminal burst costs one system call and no task switch. Anything else
goes through the queue, whose writer applies the socket's flow control.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from api import wire
from api.wire import CloseCode
from hub.tokens import Principal
from hub.wsio import Framed, can_write_now, send_frames, write_now

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


Item = str | bytes  # one frame's text, or Framed (one frame or a run of them)


def frames_in(item: Item) -> int:
    return item.frame_count if isinstance(item, Framed) else 1


class FrameQueue:
    """A peer's outgoing items, bounded in frames (``maxsize``); the writer takes them all."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: deque[Item] = deque()
        self._frames = 0  # queued, not yet taken by the writer
        self._unfinished = 0  # queued or being written
        self._ready = asyncio.Event()
        self._finished = asyncio.Event()
        self._finished.set()

    def qsize(self) -> int:
        """Frames queued and not yet taken by the writer."""
        return self._frames

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: Item) -> None:
        """Queue ``item``; :class:`asyncio.QueueFull` if its frames do not fit."""
        n = frames_in(item)
        if self._frames + n > self.maxsize:
            raise asyncio.QueueFull
        self._items.append(item)
        self._frames += n
        self._unfinished += n
        self._finished.clear()
        self._ready.set()

    async def take(self) -> tuple[list[Item], int]:
        """Every queued item (waiting for one), and how many frames they hold."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        items = list(self._items)
        self._items.clear()
        n, self._frames = self._frames, 0
        return items, n

    def task_done(self, n: int) -> None:
        """``n`` frames taken by the writer were written."""
        self._unfinished -= n
        if self._unfinished <= 0:
            self._unfinished = 0
            self._finished.set()

    async def join(self) -> None:
        """Until everything queued has been written."""
        await self._finished.wait()


class Peer:
    """One open connection with a bounded outgoing queue drained by its own task."""

    def __init__(self, ws: ServerConnection, principal: Principal, limit: int,
                 on_drop: Callable[[Peer], None]) -> None:
        self.ws = ws
        self.principal = principal
        self._on_drop = on_drop
        self.queue = FrameQueue(limit)
        self.dropped = False
        self.closing_code: int | None = None
        self._closer: asyncio.Task[None] | None = None
        self._writing = False
        self.writer = asyncio.create_task(self._write())

    async def _write(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                items, n = await self.queue.take()
                self._writing = True
                try:
                    await send_frames(self.ws, items)
                finally:
                    self._writing = False
                self.queue.task_done(n)

    def send(self, msg: dict[str, Any]) -> None:
        self.send_text(wire.encode(msg))

    def send_text(self, text: Item) -> bool:
        """Send or queue a frame (or a :class:`Framed` run); False (and the peer is being
        dropped) if its queue is full."""
        if self.dropped:
            return False
        if (not self._writing and self.queue.empty() and self.closing_code is None
                and can_write_now(self.ws)):
            write_now(self.ws, [text])
            return True
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
