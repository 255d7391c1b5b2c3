"""Retention: events older than ``retention_days`` are pruned on a timer; nothing else is lost.

The hub's clock is an input, so "91 days later" is a number, not a wait.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from api import wire
from configkit import ConfigError
from hub.config import parse_config
from hub.server import Hub
from tests.support.hub import HubHarness, event_frame
from tests.support.waits import wait_for

DAY = 86400.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def _hub(harness: HubHarness, clock: Clock, **kwargs: float) -> Hub:
    harness.hub_options = {"clock": clock, **kwargs}
    return await harness.restart()


def _seqs(hub: Hub, terminal_id: str) -> list[int]:
    """Seqs of the terminal's own events."""
    return [e["seq"] for e in hub.store.events(terminal_id) if not e["id"].startswith("hub-")]


def _hub_events(hub: Hub) -> list[dict[str, Any]]:
    return [e for e in hub.store.events() if e["id"].startswith("hub-")]


def test_retention_days_config(tmp_path: Path) -> None:
    base = {"plain": True, "tokens": "t", "database": "d"}
    assert parse_config(base, tmp_path).retention_days == 90.0
    assert parse_config(base | {"retention_days": 30}, tmp_path).retention_days == 30.0
    assert parse_config(base | {"retention_days": None}, tmp_path).retention_days is None
    for bad in (0.5, 0, -3, "forever", True):
        with pytest.raises(ConfigError) as info:
            parse_config(base | {"retention_days": bad}, tmp_path)
        assert [p.path for p in info.value.problems] == ["retention_days"], bad


async def test_prune_deletes_old_events_acks_and_settled_actions_only(
    harness: HubHarness,
) -> None:
    clock = Clock(1_780_000_000.0)
    hub = await _hub(harness, clock)
    alice, _ = await harness.client("tok-alice")
    term, _ = await harness.terminal("T1")
    frames = [event_frame("T1", 1, "doorOpened", data={"door": "main"}, timestamp=clock.now),
              event_frame("T1", 2, "betPlaced", timestamp=clock.now),
              event_frame("T1", 3, "tilt", data={"code": 32}, timestamp=clock.now)]
    for frame in frames:
        await term.send(frame)
    await term.recv_until(lambda m: m.get("upTo") == 3)
    await alice.send(wire.ack_alert("T1-1"))
    await alice.recv_type("alertAck")
    await alice.send(wire.action("a1", "T1", "lock"))
    await term.recv_type("action")
    await term.send(wire.action_result("a1", "T1", wire.ActionStatus.SUCCEEDED))
    await alice.recv_type("actionResult")
    await alice.send(wire.action("q1", "T3", "unlock"))  # T3 is offline: queued, kept
    await alice.recv_type("actionAck")
    assert hub.floor.terminals["T1"].unacked_alerts == 1  # the tilt

    clock.now += 91 * DAY
    await term.send(event_frame("T1", 4, "betPlaced", timestamp=clock.now))
    await term.recv_until(lambda m: m.get("upTo") == 4)
    await alice.sync()
    assert await hub.prune() == 4  # hub-1 (deviceOnline), T1-1..3
    assert _seqs(hub, "T1") == [4]
    assert _hub_events(hub) == []
    assert hub.store.alert_ack("T1-1") is None
    assert hub.store.get_action("a1") is None
    queued = hub.store.get_action("q1")
    assert queued is not None and queued.status == "queued"
    # The open alert went with its event: the count follows and is broadcast.
    states = [m["terminal"] for m in await alice.sync() if m["type"] == "terminal"]
    assert states and states[-1]["terminalId"] == "T1" and states[-1]["unackedAlerts"] == 0
    assert await hub.prune() == 0  # nothing more is old

    # Terminals resume where they were, and the hub's own seqs go on (no id reused).
    await term.close()
    await wait_for(lambda: bool(_hub_events(hub)))
    offline = _hub_events(hub)[0]
    assert (offline["event"], offline["seq"]) == ("deviceOffline", 2)  # hub-1 was pruned
    hub = await _hub(harness, clock)
    term2, welcome = await harness.terminal("T1", last_seq=4)
    assert welcome["ackedSeq"] == 4
    await wait_for(lambda: len(_hub_events(hub)) == 2)
    hub_events = _hub_events(hub)
    assert [e["event"] for e in hub_events] == ["deviceOffline", "deviceOnline"]
    assert hub_events[-1]["seq"] == offline["seq"] + 1
    # Even with every hub event pruned, a restarted hub does not number from 1 again.
    last_hub_seq = hub_events[-1]["seq"]
    await term2.close()
    await wait_for(lambda: len(_hub_events(hub)) == 3)  # + deviceOffline
    clock.now += 91 * DAY
    await hub.prune()
    assert _hub_events(hub) == [] and _seqs(hub, "T1") == []
    hub = await _hub(harness, clock)
    await harness.terminal("T1", last_seq=4)
    await wait_for(lambda: bool(_hub_events(hub)))
    assert _hub_events(hub)[0]["seq"] == last_hub_seq + 2


async def test_the_timer_prunes_without_being_asked(harness: HubHarness) -> None:
    clock = Clock(1_780_000_000.0)
    hub = await _hub(harness, clock, prune_interval=0.02)
    term, _ = await harness.terminal("T1")
    await term.send(event_frame("T1", 1, timestamp=clock.now))
    await term.recv_until(lambda m: m.get("upTo") == 1)
    assert _seqs(hub, "T1") == [1]
    clock.now += 90 * DAY + 1
    await wait_for(lambda: _seqs(hub, "T1") == [], timeout=10)
    assert hub.store.acked_seq("T1") == 1


async def test_retention_none_keeps_everything(harness: HubHarness) -> None:
    harness.config = replace(harness.config, retention_days=None)
    clock = Clock(1_780_000_000.0)
    hub = await _hub(harness, clock, prune_interval=0.02)
    term, _ = await harness.terminal("T1")
    await term.send(event_frame("T1", 1, timestamp=clock.now))
    await term.recv_until(lambda m: m.get("upTo") == 1)
    clock.now += 1000 * DAY
    assert await hub.prune() == 0
    assert _seqs(hub, "T1") == [1]
