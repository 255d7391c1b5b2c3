"""A hub on its own thread and event loop, for the CLI demo and in-process tests."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from hub.config import HubConfig
from hub.server import Hub
from hub.tokens import TokenTable


class RunningHub:
    """A hub serving on its own thread and event loop (the CLI demo composes it)."""

    def __init__(self, hub: Hub, loop: asyncio.AbstractEventLoop, thread: threading.Thread,
                 done: asyncio.Event) -> None:
        self.hub = hub
        self._loop = loop
        self._thread = thread
        self._done = done

    @property
    def port(self) -> int:
        return self.hub.port

    @property
    def url(self) -> str:
        return self.hub.url

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the hub (connections close with 1001) and join its thread."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._done.set)
        self._thread.join(timeout)


def run_in_thread(config: HubConfig, *, tokens: TokenTable | None = None,
                  timeout: float = 10.0) -> RunningHub:
    """Start a :class:`Hub` on a daemon thread; return once it listens."""
    started = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        try:
            hub = Hub(config, tokens=tokens)
            await hub.start()
        except BaseException as exc:
            box["error"] = exc
            started.set()
            return
        done = asyncio.Event()
        box.update(hub=hub, loop=asyncio.get_running_loop(), done=done)
        started.set()
        await done.wait()
        await hub.stop()

    thread = threading.Thread(target=asyncio.run, args=(main(),), name="hub", daemon=True)
    thread.start()
    if not started.wait(timeout):
        raise TimeoutError("hub did not start in time")
    if "error" in box:
        raise box["error"]
    return RunningHub(box["hub"], box["loop"], thread, box["done"])
