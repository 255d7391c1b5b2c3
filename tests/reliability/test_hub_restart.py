"""Hub crash and restart with its database: ``slot-agent hub`` is SIGKILLed while an agent
streams autoplay events and a dashboard-like subscriber watches. After the restart (same
database, same port) the terminal resumes where the hub's database says, the subscriber
reconnects by itself, and no event reaches the subscriber twice, whatever was in flight."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import connect

from api import wire
from tests.reliability.reliability_kit import LONG, long_or_short
from tests.reliability.system_rig import TERMINAL, AgentProc, EmulatorProc, HubProc, assert_identity
from tests.support.waits import wait_until

CRASHES = long_or_short(10, 2)
pytestmark = pytest.mark.timeout(900 if LONG else 120)


class Subscriber:
    """A client of ``/ws/client`` on a thread that reconnects whenever the hub goes away."""

    def __init__(self, hub: HubProc) -> None:
        self.hub = hub
        self.events: list[dict[str, Any]] = []
        self.connections = 0
        self._stop = threading.Event()
        self._pause = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with connect(self.hub.client_url, open_timeout=2,
                             additional_headers={"Authorization":
                                                 f"Bearer {self.hub.operator_token}"}) as ws:
                    ws.send(wire.encode(wire.subscribe(terminals=[TERMINAL])))
                    self.connections += 1
                    while not self._stop.is_set():
                        try:
                            text = ws.recv(timeout=0.2)
                        except TimeoutError:
                            continue
                        msg = json.loads(text)
                        if msg["type"] == "event" and msg["terminalId"] == TERMINAL \
                                and not msg["id"].startswith("hub-"):
                            self.events.append(msg)
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError):
                self._pause.wait(0.1)  # the hub is down: try again shortly

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def test_hub_crash_and_restart(tmp_path: Path) -> None:
    hub = HubProc(tmp_path)
    # Seed 10 plays some 380 games (40 s) before its first door, tilt or handpay, each of
    # which stops the play for 8 to 20 s (emulator/autoplay.py): events stream throughout.
    emulator = EmulatorProc(tmp_path, steps=[{"autoplay": "forever"}], seed=10,
                            games_per_minute=600)
    agent = AgentProc(tmp_path, serial_url=emulator.url, hub=hub)
    subscriber = Subscriber(hub)
    try:
        agent.start()
        for crash in range(CRASHES):
            before = hub.count()
            wait_until(lambda b=before: hub.count() >= b + 20, 30,
                       "events flowing to the hub")
            wait_until(lambda c=crash: subscriber.connections >= c + 1, 30,
                       "the subscriber connected")
            hub.kill()
            hub.start()  # same database, same port
        # After the last restart: the terminal resumes and the subscriber is back.
        after = hub.count()
        wait_until(lambda: hub.count() >= after + 20, 30, "the terminal resumed")
        wait_until(lambda: subscriber.connections >= CRASHES + 1, 30, "the subscriber is back")
        seen = len(subscriber.events)
        wait_until(lambda: len(subscriber.events) >= seen + 10, 30,
                   "live events to the reconnected subscriber")
        assert agent.alive(), "the agent must ride through hub crashes"
        assert agent.stop() == 0
    finally:
        subscriber.stop()
        agent.kill()
        emulator.proc.kill()
        hub.stop()
    ids = [e["id"] for e in subscriber.events]
    assert len(ids) == len(set(ids)), "an event reached the subscriber twice"
    assert_identity(hub.events())
    # Every event the agent produced is at the hub (it was stopped cleanly: agentStopping).
    assert hub.events()[-1]["event"] == "agentStopping"
