"""run_in_thread: the hub on its own thread and loop, as the CLI demo composes it."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from websockets.sync.client import connect

from api import wire
from hub.config import HubConfig
from hub.running import run_in_thread
from tests.support.tokens import write_token_file


def test_run_in_thread_serves_and_stops(tmp_path: Path) -> None:
    config = HubConfig(tokens=write_token_file(tmp_path), database=tmp_path / "hub.db",
                       port=0, plain=True)
    running = run_in_thread(config)
    try:
        assert running.port > 0 and running.url == f"http://127.0.0.1:{running.port}/"
        with urllib.request.urlopen(running.url + "healthz", timeout=5) as resp:
            assert resp.status == 200
        with connect(f"ws://127.0.0.1:{running.port}/ws/terminal",
                     additional_headers={"Authorization": "Bearer tok-t1"}) as ws:
            ws.send(wire.encode(wire.hello("T1", "test", 0)))
            assert json.loads(ws.recv(timeout=5))["type"] == "welcome"
    finally:
        running.stop()
    assert not running.running
