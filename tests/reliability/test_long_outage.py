"""Long hub outage: the hub is down while events pile up in the outbox (5,000 in CI, 100,000
with SLOT_AGENT_LONG=1), the uplink retrying all along; when the hub returns, every event is
delivered in seq order, none twice, and the outbox cursor reaches the end.

The events are committed straight into the outbox (as the pipeline would, in batches) so the
test measures the uplink and the hub, not the pace of a machine.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.config import UplinkConfig
from agent.store.outbox import Outbox
from agent.uplink.client import Uplink
from api.events import Event, utc_timestamp
from tests.reliability.reliability_kit import LONG, long_or_short
from tests.support.hub import HubHarness
from tests.support.tokens import TERMINAL_TOKENS
from tests.support.waits import wait_for

EVENTS = long_or_short(100_000, 5_000)
BATCH = 250

pytestmark = pytest.mark.timeout(900 if LONG else 120)


def batch_of(start: int, n: int) -> list[Event]:
    stamp = utc_timestamp(time.time())
    return [Event("betPlaced" if (start + i) % 2 else "gameStarted", stamp,
                  {"amount": 100, "credits": 100, "denomination": 1} if (start + i) % 2
                  else {"gameNumber": start + i}) for i in range(n)]


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[HubHarness]:
    async with HubHarness(tmp_path) as rig:
        yield rig


async def test_backlog_after_a_long_outage_arrives_in_order_once(tmp_path: Path,
                                                                 hub: HubHarness) -> None:
    outbox = Outbox.open(tmp_path / "outbox.db", terminal_id="T1")
    config = UplinkConfig(url=hub.terminal_url, allow_insecure=True,
                          token_env="UNUSED", window=500, batch=200,
                          reconnect_max_delay_s=0.2, heartbeat_interval_s=5.0,
                          heartbeat_timeout_s=5.0)
    uplink = Uplink(config, terminal_id="T1", outbox=outbox, token=lambda: TERMINAL_TOKENS["T1"],
                    min_reconnect_delay_s=0.05)
    uplink.start()
    try:
        # Some events go through while the hub is up ...
        outbox.commit(batch_of(0, 100), None)
        uplink.notify_new_events()
        await wait_for(lambda: outbox.acked_seq == 100, 30, "the first 100 events acked")
        # ... then the hub goes away and the backlog accumulates while the uplink retries.
        await hub.stop()
        await wait_for(lambda: not uplink.connected, 10, "the uplink to notice the outage")
        for start in range(100, EVENTS, BATCH):
            outbox.commit(batch_of(start, min(BATCH, EVENTS - start)), None)
            uplink.notify_new_events()
        assert outbox.depth == EVENTS - 100
        attempts = uplink.state.reconnects
        await wait_for(lambda: uplink.state.reconnects > attempts, 10, "retries during the outage")
        # The hub returns on the same port with its database.
        restarted = await hub.start()
        await wait_for(lambda: outbox.acked_seq == EVENTS, 300 if LONG else 60,
                       f"all {EVENTS} events acknowledged")
        stored = [f for f in restarted.store.events("T1") if not f["id"].startswith("hub-")]
        seqs = [int(f["seq"]) for f in stored]
        assert seqs == list(range(1, EVENTS + 1)), "delivered out of order, twice or not at all"
        assert len({f["id"] for f in stored}) == EVENTS
        assert outbox.depth == 0
    finally:
        await uplink.stop()
        outbox.close()
