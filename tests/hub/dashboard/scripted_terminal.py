"""The dashboard browser tests' terminal: a scripted terminal connection.

The scripted terminal speaks the terminal side of docs/protocol.md §4 over a real WebSocket:
``hello``, ``event`` frames with increasing ``seq``, and the answer to ``lock`` / ``unlock``
(``actionAck``, ``actionResult``, then ``machineLocked`` / ``machineUnlocked``). It stands in
for the emulator + agent uplink behind the :class:`TerminalSide` interface, so the browser
test can later run against the real pair without changing its assertions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any, Protocol

from websockets.asyncio.client import ClientConnection, connect

from api import wire
from api.events import CATALOG, utc_timestamp


class TerminalSide(Protocol):
    """What the browser test needs from whatever plays the terminal."""

    terminal_id: str

    async def publish(self, name: str, data: dict[str, Any]) -> dict[str, Any]:
        """Make the terminal emit event ``name``; returns the frame sent (its ``id`` is used)."""
        ...

    async def close(self) -> None: ...


class ScriptedTerminal:
    """A terminal connection driven by the test (protocol.md §4)."""

    def __init__(self, url: str, token: str, terminal_id: str) -> None:
        self.url = url
        self.token = token
        self.terminal_id = terminal_id
        self.seq = 0
        self.acked = 0
        self.actions: list[dict[str, Any]] = []
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._acked = asyncio.Condition()

    async def start(self) -> None:
        self._ws = await connect(
            self.url, additional_headers={"Authorization": f"Bearer {self.token}"},
            open_timeout=5,
        )
        await self._ws.send(wire.encode(wire.hello(self.terminal_id, "test-0", self.seq)))
        welcome = json.loads(await asyncio.wait_for(self._ws.recv(), 5))
        assert welcome["type"] == "welcome", welcome
        self.seq = max(self.seq, welcome["ackedSeq"])
        self.acked = welcome["ackedSeq"]
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._ws is not None
        async for text in self._ws:
            msg = json.loads(text)
            if msg["type"] == "ack":
                async with self._acked:
                    self.acked = max(self.acked, msg["upTo"])
                    self._acked.notify_all()
            elif msg["type"] == "action":
                self.actions.append(msg)
                await self._execute(msg)

    async def _execute(self, msg: dict[str, Any]) -> None:
        """Play the machine: lock/unlock succeed and are reported as the agent would."""
        assert self._ws is not None
        action_id, name = msg["id"], msg["action"]
        if name not in ("lock", "unlock"):
            await self._ws.send(wire.encode(wire.action_ack(
                action_id, self.terminal_id, wire.ActionAckStatus.REJECTED,
                error=f"unknown action {name!r}")))
            await self._ws.send(wire.encode(wire.action_result(
                action_id, self.terminal_id, wire.ActionStatus.REJECTED,
                error=f"unknown action {name!r}")))
            return
        await self._ws.send(wire.encode(wire.action_ack(
            action_id, self.terminal_id, wire.ActionAckStatus.ACCEPTED)))
        locked = name == "lock"
        await self.publish("machineLocked" if locked else "machineUnlocked", {"by": action_id})
        await self._ws.send(wire.encode(wire.action_result(
            action_id, self.terminal_id, wire.ActionStatus.SUCCEEDED, result={"locked": locked})))
        await self.publish("actionCompleted", {"actionId": action_id, "action": name,
                                               "status": "succeeded"})

    async def publish(self, name: str, data: dict[str, Any]) -> dict[str, Any]:
        """Send one event and wait until the hub has acknowledged (stored) it."""
        return (await self.publish_many([(name, data)]))[0]

    async def publish_many(self, events: list[tuple[str, dict[str, Any]]]
                           ) -> list[dict[str, Any]]:
        """Send events pipelined, as an agent drains its outbox; wait for the last ack."""
        assert self._ws is not None
        frames = []
        for name, data in events:
            self.seq += 1
            frames.append(wire.event(
                event_id=f"{self.terminal_id}-{self.seq}", seq=self.seq,
                channel=CATALOG[name].value, terminal_id=self.terminal_id, name=name,
                timestamp=utc_timestamp(time.time()), data=data,
            ))
        for frame in frames:
            await self._ws.send(wire.encode(frame))  # one message each (a list would fragment)
        last = frames[-1]["seq"]
        if asyncio.current_task() is not self._reader:
            # From the reader task itself (answering an action) the ack cannot be awaited.
            async with self._acked:
                await asyncio.wait_for(self._acked.wait_for(lambda: self.acked >= last), 10)
        return frames

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
