"""The uplink's action dispatch: each ``action`` frame from the hub to the actions handler.

Each ``action`` frame is handed to the handler (:meth:`agent.uplink.actions.Actions.handle`)
on a task of its own, so the uplink's reader keeps reading. An ``action`` frame that
``api.decode`` refuses (a missing field, a lone surrogate...) never reaches the
handler; it is answered ``rejected`` with the parser's code (``bad_message: ...``) when its
id can be echoed. Without a handler (remote actions not enabled) every action is rejected.
The answers go through ``reply`` (:meth:`agent.uplink.window.SendWindow.reply`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from api import messages, wire
from api.wire import ActionAckStatus, ActionStatus, MessageType

__all__ = ["ActionDispatch", "ActionHandler"]

log = logging.getLogger("agent.uplink.client")

Reply = Callable[[dict[str, Any]], None]
#: ``Actions.handle``: takes an ``action`` (as :mod:`api.decode` read it) and a reply callable.
ActionHandler = Callable[[messages.Action, Reply], Awaitable[object]]


class ActionDispatch:
    """Runs the ``action`` frames of one uplink, each on a task; answers refused ones."""

    def __init__(self, terminal_id: str, handler: ActionHandler | None, reply: Reply) -> None:
        self._terminal_id = terminal_id
        self._handler = handler
        self._reply = reply
        #: the actions still running
        self.tasks: set[asyncio.Task[object]] = set()

    def start(self, msg: messages.Action) -> None:
        """Hand an ``action`` to the handler, on a task of its own."""
        if self._handler is None:
            self._reject(msg.id, "forbidden: remote actions are not enabled on this terminal")
            return
        task: asyncio.Task[object] = asyncio.create_task(
            self._run(self._handler, msg), name=f"action-{msg.id[:32]}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def refuse(self, text: str | bytes, exc: wire.WireError) -> None:
        """Answer an ``action`` frame the parser refused: ``actionAck`` rejected and an
        ``actionResult`` rejected whose error starts with the code (e.g. ``bad_message:``).

        Only when the frame is a JSON object of type ``action`` with an id that can be echoed
        (``exc.ref_id``). Like a refused signature, nothing is recorded under the id and
        nothing reaches the machine.
        """
        if exc.ref_id is None or not isinstance(text, str):
            return
        try:
            msg = json.loads(text)
        except (ValueError, RecursionError):
            return
        if not isinstance(msg, dict) or msg.get("type") != MessageType.ACTION:
            return
        self._reject(exc.ref_id, f"{exc.code.value}: {exc.message}")

    async def cancel_all(self) -> None:
        """Cancel the actions still running and wait for them to end."""
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)

    def _reject(self, action_id: str, error: str) -> None:
        self._reply(wire.action_ack(action_id, self._terminal_id, ActionAckStatus.REJECTED,
                                    error))
        self._reply(wire.action_result(action_id, self._terminal_id, ActionStatus.REJECTED,
                                       error=error))

    async def _run(self, handler: ActionHandler, msg: messages.Action) -> object:
        try:
            return await handler(msg, self._reply)
        except Exception:
            log.exception("uplink: action %s failed in its handler", msg.id)
            return None
