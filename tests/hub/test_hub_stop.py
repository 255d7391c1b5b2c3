"""Stopping a hub that is behind: many terminals flooding it, SIGTERM or ``Hub.stop``.

docs/operations.md ("Stopping the hub"): nothing more is read or stored once the hub stops
(beyond the transaction being committed), terminal connections with unread messages are
closed without their backlog being parsed, and nothing acknowledged is lost: every seq up
to a terminal's last ``ack`` is in the database. How long the stop takes is measured by
bench/hub_stop.py (a starved hub with 3,000 terminals); here the waits are only bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect

from api import wire
from hub.ingest import GroupCommitter
from hub.store import EventWrite
from tests.support import ROOT
from tests.support.hub import HubHarness, event_frame, stored_events
from tests.support.ingest import HeldStore, one_event_batch
from tests.support.tokens import Token, write_token_file
from tests.support.waits import wait_for

TERMINALS = [f"F{i:02d}" for i in range(24)]
TOKENS = [Token(f"tok-{t}", "terminal", t) for t in TERMINALS]


class _Flooder:
    """A terminal that sends events as fast as it can and records the acks it reads."""

    def __init__(self, terminal_id: str, ws: ClientConnection) -> None:
        self.terminal_id = terminal_id
        self.ws = ws
        self.acked = 0
        self.sent = 0

    async def run(self) -> None:
        reader = asyncio.create_task(self._read())
        with contextlib.suppress(Exception):
            while True:
                self.sent += 1
                await self.ws.send(wire.encode(event_frame(
                    self.terminal_id, self.sent, data={"amount": 1, "pad": "x" * 300})))
                if self.sent % 20 == 0:
                    await asyncio.sleep(0)  # send returns at once until the socket is full
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for text in self.ws:
                msg = json.loads(text)
                if msg.get("type") == "ack":
                    self.acked = max(self.acked, msg["upTo"])


async def _flooders(base: str, terminals: Sequence[str]) -> list[_Flooder]:
    out = []
    for tid in terminals:
        ws = await connect(base + "/ws/terminal",
                           additional_headers={"Authorization": f"Bearer tok-{tid}"})
        await ws.send(wire.encode(wire.hello(tid, "test", 0)))
        welcome = json.loads(await ws.recv())
        assert welcome["type"] == "welcome", welcome
        out.append(_Flooder(tid, ws))
    return out


def _assert_nothing_acked_lost(database: Path, flooders: Sequence[_Flooder]) -> None:
    """Every acknowledged seq is stored, and nothing is stored past a gap (a terminal sends
    oldest first: the stored seqs are 1..n)."""
    acked_somewhere = 0
    for f in flooders:
        seqs = {int(e["seq"]) for e in stored_events(database, f.terminal_id)}
        missing = [s for s in range(1, f.acked + 1) if s not in seqs]
        assert not missing, (f.terminal_id, f.acked, missing[:5])
        assert seqs == set(range(1, len(seqs) + 1)), (f.terminal_id, sorted(seqs)[-5:])
        acked_somewhere += f.acked > 0
    assert acked_somewhere, "no terminal got an ack: the hub was not storing"


async def test_a_flooded_hub_stops_and_keeps_all_it_acknowledged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with HubHarness(tmp_path, tokens=TOKENS, max_inflight_events=2000) as harness:
        hub = harness.hub
        assert hub is not None
        flooders = await _flooders(harness.base, TERMINALS)
        tasks = [asyncio.create_task(f.run()) for f in flooders]
        await wait_for(lambda: hub.ingest.stats.events >= 2000, 60, "events stored")
        await wait_for(lambda: hub.gate.waits > 0, 60, "backpressure (the hub is behind)")
        async with asyncio.timeout(30):
            await harness.stop()
        async with asyncio.timeout(30):
            await asyncio.gather(*tasks)
        for f in flooders:
            # The going-away close frame, or an abort after it (a connection the hub was
            # behind on is not read again, so its close handshake cannot finish).
            assert f.ws.close_code in (1001, 1006), (f.terminal_id, f.ws.close_code)
        assert harness.config.database is not None
        _assert_nothing_acked_lost(harness.config.database, flooders)
    # A batch the stop cancelled leaves the terminal's cursor behind the next one, which the
    # stop does not store either: that is no gap in what the terminal sent.
    assert not [r.message for r in caplog.records if "never arrived" in r.message]


async def test_sigterm_ends_a_hub_flooded_by_many_terminals(tmp_path: Path) -> None:
    """The CLI hub, many terminals flooding it: SIGTERM ends it (exit code 0), and every
    seq a terminal saw acknowledged is stored."""
    tokens = write_token_file(tmp_path, TOKENS)
    (tmp_path / "hub.yaml").write_text(
        f"listen: {{host: 127.0.0.1, port: 0}}\nplain: true\ntokens: {tokens.name}\n"
        "database: hub.db\nsynchronous: NORMAL\nmax_inflight_events: 2000\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "hub", "--config", str(tmp_path / "hub.yaml"),
         "--log-level", "WARNING"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        url = (await asyncio.to_thread(proc.stdout.readline)).strip()
        base = "ws://" + url.split("://", 1)[1].rstrip("/")
        flooders = await _flooders(base, TERMINALS)
        tasks = [asyncio.create_task(f.run()) for f in flooders]
        await wait_for(lambda: sum(f.acked for f in flooders) >= 1000, 60, "acks")
        await wait_for(lambda: sum(f.sent - f.acked for f in flooders) >= 3000, 60,
                       "the hub behind the terminals")
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 30)
        assert code == 0
        async with asyncio.timeout(30):
            await asyncio.gather(*tasks)
        _assert_nothing_acked_lost(tmp_path / "hub.db", flooders)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_close_intake_lets_the_transaction_finish_and_stores_nothing_more() -> None:
    store = HeldStore()
    published: list[int] = []

    async def publish(group: Sequence[tuple[Sequence[EventWrite], Sequence[bool]]]) -> None:
        published.extend(w.frame["seq"] for writes, _ in group for w in writes)

    ingest = GroupCommitter(store, publish)
    ingest.start()
    try:
        first = ingest.submit(one_event_batch(1))
        await wait_for(lambda: ingest.queued == 0, 5, "the first batch in a transaction")
        queued = ingest.submit(one_event_batch(2))
        ingest.close_intake()
        late = ingest.submit(one_event_batch(3))
        assert queued.cancelled() and late.cancelled()
        store.release.set()
        assert await asyncio.wait_for(first, 5) == [True]
        assert store.committed == [[1]] and published == [1]
    finally:
        await ingest.stop()


async def test_a_batch_the_stop_cancelled_is_no_gap_for_the_next(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A terminal's batch cancelled in the ingest's queue by the stop (close_intake), and its
    next burst, parsed already and waiting on that batch: the next is not stored either, and
    the hub does not report seqs the terminal "dropped" (it dropped none)."""
    tokens = [Token("tok-X", "terminal", "X"), Token("tok-Y", "terminal", "Y")]
    async with HubHarness(tmp_path, tokens=tokens) as harness:
        hub = harness.hub
        assert hub is not None
        x, y = await _flooders(harness.base, ["X", "Y"])
        await wait_for(lambda: hub.ingest.stats.events >= 2 and hub.ingest.queued == 0, 10,
                       "both hellos' deviceOnline stored")
        store = hub.ingest._store  # held, to order the commit loop
        held = asyncio.Event()
        write_events = store.write_events

        async def held_write(writes: Sequence[EventWrite], received_at: float) -> list[bool]:
            await held.wait()
            return await write_events(writes, received_at)

        store.write_events = held_write  # type: ignore[method-assign]
        await x.ws.send(wire.encode(event_frame("X", 1)))
        await wait_for(lambda: hub.ingest.queued == 0
                       and hub.terminals.connections["X"].unsettled is not None,
                       10, "X's batch in the held transaction")
        await y.ws.send(wire.encode(event_frame("Y", 1)))
        await wait_for(lambda: hub.ingest.queued == 1, 10, "Y's first batch queued")
        await y.ws.send(wire.encode(event_frame("Y", 2)))
        conn = hub.terminals.connections["Y"]
        await wait_for(lambda: conn.storing is None and conn.unsettled is not None, 10,
                       "Y's second burst waiting on its first batch")
        hub.request_stop()
        hub.ingest.close_intake()
        held.set()
        async with asyncio.timeout(30):
            await harness.stop()
        assert harness.config.database is not None
        assert [int(e["seq"]) for e in stored_events(harness.config.database, "X")] == [1]
        assert stored_events(harness.config.database, "Y") == []
    assert not [r.message for r in caplog.records if "never arrived" in r.message]
