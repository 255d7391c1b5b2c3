"""The uplink against the real hub: delivery, acks, resume after hub/agent restarts and
network drops, the send window, refused tokens, TLS, and the URL rules."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import generate_latest
from websockets.asyncio.server import ServerConnection, serve

from agent.config import ConfigError
from agent.ops.logs import RedactingFilter
from agent.ops.metrics import AgentMetrics
from agent.retry import jittered_doubling
from agent.store.outbox import EventFrame, Outbox, OutboxReader
from agent.uplink.client import Uplink
from api import wire
from api.events import Event
from tests.agent.uplink_kit import (
    TERMINAL,
    TERMINAL_TOKEN,
    Operator,
    Proxy,
    bet,
    make_uplink,
    open_outbox,
    running,
    uplink_config,
)
from tests.support.hub import HubHarness
from tests.support.waits import wait_for


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = open_outbox(tmp_path / "outbox.db")
    yield box
    box.close()


def metric(metrics: AgentMetrics, name: str) -> float:
    for line in generate_latest(metrics.registry).decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


# --------------------------------------------------------------------------- delivery


async def test_events_reach_the_hub_and_advance_the_outbox_cursor(
        hub: HubHarness, outbox: Outbox) -> None:
    outbox.commit(bet(45), None)
    metrics = AgentMetrics()
    op = await Operator.connect(hub.port)
    # A fallback timer far beyond the test's bounds: only notify_new_events can deliver the
    # later events in time.
    uplink = make_uplink(hub.terminal_url, outbox, metrics=metrics, fallback_poll_s=3600.0)
    async with running(uplink):
        await wait_for(lambda: outbox.acked_seq == 45, what="first 45 acked")
        assert hub.seqs(TERMINAL) == list(range(1, 46))
        assert uplink.state.connected and uplink.state.in_flight == 0
        assert metric(metrics, "slot_agent_uplink_connected") == 1.0

        stored = await asyncio.to_thread(outbox.commit, bet(5), None)
        uplink.notify_new_events()
        await wait_for(lambda: outbox.acked_seq == 50, what="new events after notify")
        assert [s.seq for s in stored] == [46, 47, 48, 49, 50]
        assert hub.seqs(TERMINAL) == list(range(1, 51))

        # From another thread, as the pipeline does it.
        def commit_and_notify() -> None:
            outbox.commit(bet(3), None)
            uplink.notify_new_events()

        await asyncio.to_thread(commit_and_notify)
        await wait_for(lambda: outbox.acked_seq == 53, what="notify from a thread")
        state = uplink.state
        assert state.hub_acked_seq == 53 and state.sent_seq == 53
        assert state.last_ack_at is not None and state.sessions == 1
        await wait_for(lambda: len(op.events()) == 53, what="subscriber got all")
    ids = [e["id"] for e in op.events()]
    assert ids == [f"{TERMINAL}-{n}" for n in range(1, 54)]
    first = op.events()[0]
    assert first["event"] == "betPlaced" and first["channel"] == "game"
    assert first["data"] == {"amount": 100, "credits": 100, "denomination": 1}
    assert outbox.depth == 0
    assert metric(metrics, "slot_agent_uplink_connected") == 0.0
    assert metric(metrics, "slot_agent_uplink_ack_latency_seconds_count") == 53.0
    await op.close()


async def test_frames_are_the_stored_events_uncompressed(outbox: Outbox) -> None:
    """What the hub receives is each stored event's wire frame (the spliced text decodes to
    ``to_wire()``), on a connection that did not offer permessage-deflate."""
    offered: list[str | None] = []
    received: list[dict[str, Any]] = []

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        offered.append(ws.request.headers.get("Sec-WebSocket-Extensions"))
        hello = json.loads(await ws.recv())
        await ws.send(wire.encode(wire.welcome(TERMINAL, 0, "2026-01-01T00:00:00Z")))
        async for text in ws:
            msg = wire.parse_message(text, max_bytes=1 << 20, accept=wire.TERMINAL_TO_HUB)
            received.append(msg)
            await ws.send(wire.encode(wire.ack(msg["seq"])))
        assert hello["type"] == "hello"

    outbox.commit([*bet(2), Event("billAccepted", "2026-01-01T00:00:00.000Z",
                                  {"amount": 500, "currency": "€"})], None)
    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with running(make_uplink(f"ws://127.0.0.1:{port}/ws/terminal", outbox)):
            await wait_for(lambda: outbox.acked_seq == 3, what="all acked")
    assert offered == [None]
    assert received == [s.to_wire() for s in outbox.tail(3)]


async def test_events_committed_while_a_backlog_drains_are_never_left_waiting(
        hub: HubHarness, outbox: Outbox) -> None:
    """The sender reads the next batch while it sends one; events committed meanwhile (from
    another thread, with a wake-up each) all arrive without the fallback timer."""
    outbox.commit(bet(600), None)
    uplink = make_uplink(hub.terminal_url, outbox, fallback_poll_s=3600.0, window=100, batch=40)

    def trickle() -> None:
        for _ in range(60):
            outbox.commit(bet(3), None)
            uplink.notify_new_events()

    async with running(uplink):
        await asyncio.to_thread(trickle)
        await wait_for(lambda: outbox.acked_seq == 780, timeout=30, what="all acked")
    assert hub.seqs(TERMINAL) == list(range(1, 781))


async def test_an_event_alone_costs_two_reads_and_acks_do_not_wake_the_sender(
        hub: HubHarness, outbox: Outbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """A game's events come one commit at a time: each is read once (less than a batch: no
    read ahead, no read again), and the sender waits; the hub's ack does not wake it again
    while the window has room (docs/performance.md, "The daemon's wake-ups and the uplink's
    reads")."""
    reads: list[int] = []
    pending_frames = OutboxReader.pending_frames

    def counting(self: OutboxReader, after_seq: int, limit: int, *, acked_too: bool = False
                 ) -> list[EventFrame]:
        reads.append(after_seq)
        return pending_frames(self, after_seq, limit, acked_too=acked_too)

    monkeypatch.setattr(OutboxReader, "pending_frames", counting)
    uplink = make_uplink(hub.terminal_url, outbox, fallback_poll_s=3600.0)
    async with running(uplink):
        await wait_for(lambda: uplink.connected and reads, what="connected, first read")
        before = len(reads)
        for seq in range(1, 6):
            outbox.commit(bet(1), None)
            uplink.notify_new_events()
            await wait_for(lambda s=seq: uplink.state.hub_acked_seq == s, what=f"ack {seq}")
        assert len(reads) - before == 5  # before: 4 an event (ahead, again, one per ack)
    assert hub.seqs(TERMINAL) == [1, 2, 3, 4, 5]


async def test_acks_are_persisted_at_most_once_a_delay_and_at_stop(
        hub: HubHarness, outbox: Outbox) -> None:
    """The hub acks every event; the outbox cursor is written once per
    ``ack_persist_delay_s`` (an fsync each), and at stop whatever the hub acked last."""
    outbox.commit(bet(10), None)
    uplink = make_uplink(hub.terminal_url, outbox, ack_persist_delay_s=3600.0)
    async with running(uplink):
        await wait_for(lambda: uplink.state.hub_acked_seq == 10, what="the hub's ack")
        outbox.commit(bet(5), None)
        uplink.notify_new_events()
        await wait_for(lambda: uplink.state.hub_acked_seq == 15, what="the hub's next ack")
        assert outbox.acked_seq == 0  # within the delay: not written yet
    assert outbox.acked_seq == 15  # the stop persisted the last ack


async def test_resume_after_the_hub_restarts_on_the_same_database(
        hub: HubHarness, outbox: Outbox) -> None:
    outbox.commit(bet(20), None)
    metrics = AgentMetrics()
    async with running(make_uplink(hub.terminal_url, outbox, metrics=metrics)) as uplink:
        await wait_for(lambda: outbox.acked_seq == 20, what="first 20")
        await hub.stop()
        await wait_for(lambda: not uplink.connected, what="disconnect seen")
        outbox.commit(bet(15), None)  # produced while the hub is away
        uplink.notify_new_events()
        await hub.start()
        op = await Operator.connect(hub.port)
        outbox.commit(bet(5), None)
        uplink.notify_new_events()
        await wait_for(lambda: outbox.acked_seq == 40, what="resumed to 40")
        assert hub.seqs(TERMINAL) == list(range(1, 41))  # nothing lost, nothing stored twice
        assert uplink.state.sessions == 2 and uplink.state.reconnects >= 1
        assert metric(metrics, "slot_agent_uplink_reconnects_total") >= 1
        # The operator subscribed at some point during the resume: it sees a tail of it,
        # each event once and in order, including everything committed after it subscribed.
        await wait_for(lambda: any(e["seq"] == 40 for e in op.events()), what="subscriber")
        seen = [e["seq"] for e in op.events()]
        assert seen == list(range(seen[0], 41)) and seen[0] <= 36
        await op.close()


async def test_resume_after_the_agent_restarts(hub: HubHarness, tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    first = open_outbox(path)
    first.commit(bet(10), None)
    async with running(make_uplink(hub.terminal_url, first)):
        await wait_for(lambda: first.acked_seq == 10, what="first run")
    first.commit(bet(7), None)  # committed after the uplink stopped
    first.close()

    second = open_outbox(path)  # a new process: new outbox object, new uplink
    try:
        assert second.acked_seq == 10
        async with running(make_uplink(hub.terminal_url, second)):
            await wait_for(lambda: second.acked_seq == 17, what="second run")
        assert hub.seqs(TERMINAL) == list(range(1, 18))
    finally:
        second.close()


async def test_network_drop_mid_window_resends_only_what_the_hub_lacks(
        hub: HubHarness, outbox: Outbox) -> None:
    proxy = Proxy(hub.port)
    await proxy.start()
    op = await Operator.connect(hub.port)
    url = f"ws://127.0.0.1:{proxy.port}/ws/terminal"
    async with running(make_uplink(url, outbox, window=10, batch=4)) as uplink:
        await wait_for(lambda: uplink.connected, what="connected")
        proxy.hold_downstream = True  # the hub stores events, its acks never arrive
        outbox.commit(bet(30), None)
        uplink.notify_new_events()
        await wait_for(lambda: len(hub.seqs(TERMINAL)) == 10 and uplink.state.in_flight == 10,
                       what="a full window in flight")
        assert outbox.acked_seq == 0  # no ack arrived: nothing may be deleted
        proxy.hold_downstream = False
        proxy.cut()
        await wait_for(lambda: outbox.acked_seq == 30, what="resumed after the drop")
        assert proxy.connections >= 2
        assert uplink.state.last_error is not None
    assert hub.seqs(TERMINAL) == list(range(1, 31))
    await wait_for(lambda: len(op.events()) == 30, what="subscriber")
    assert [e["seq"] for e in op.events()] == list(range(1, 31))  # no duplicate delivered
    await op.close()
    await proxy.stop()


async def test_a_silent_dead_connection_is_detected_by_heartbeats(
        hub: HubHarness, outbox: Outbox) -> None:
    proxy = Proxy(hub.port)
    await proxy.start()
    url = f"ws://127.0.0.1:{proxy.port}/ws/terminal"
    uplink = make_uplink(url, outbox, heartbeat_interval_s=0.05, heartbeat_timeout_s=0.1)
    async with running(uplink):
        await wait_for(lambda: uplink.connected, what="connected")
        proxy.hold_downstream = True  # pongs vanish: the connection is dead but not closed
        await wait_for(lambda: not uplink.connected, what="ping timeout noticed")
        proxy.hold_downstream = False
        outbox.commit(bet(3), None)
        uplink.notify_new_events()
        await wait_for(lambda: outbox.acked_seq == 3, what="back after reconnect")
    await proxy.stop()


# --------------------------------------------------------------------------- the window


class WithholdingHub:
    """A minimal terminal endpoint that acks only when told and measures the unacked count."""

    def __init__(self) -> None:
        self.events: list[int] = []
        self.acked = 0
        self.max_unacked = 0
        self.pongs = 0
        self.close_codes: list[int | None] = []
        self.ws: ServerConnection | None = None
        self.port = 0

    async def handler(self, ws: ServerConnection) -> None:
        self.ws = ws
        hello = json.loads(await ws.recv())
        assert hello["type"] == "hello" and hello["terminalId"] == TERMINAL
        await ws.send(wire.encode(wire.welcome(TERMINAL, self.acked, "2026-01-01T00:00:00Z")))
        try:
            async for text in ws:
                msg = json.loads(text)
                if msg["type"] == "event":
                    self.events.append(msg["seq"])
                    self.max_unacked = max(self.max_unacked, msg["seq"] - self.acked)
                elif msg["type"] == "pong":
                    self.pongs += 1
        finally:
            self.close_codes.append(ws.close_code)

    async def ack(self, up_to: int) -> None:
        assert self.ws is not None
        self.acked = up_to
        await self.ws.send(wire.encode(wire.ack(up_to)))

    async def settle(self) -> None:
        """Two ping/pong round trips: the sender ran a whole turn between them."""
        assert self.ws is not None
        for _ in range(2):
            before = self.pongs
            await self.ws.send(wire.encode(wire.ping("s")))
            await wait_for(lambda: self.pongs > before, what="pong")  # noqa: B023


async def test_never_more_than_window_events_unacknowledged(outbox: Outbox) -> None:
    fake = WithholdingHub()
    async with serve(fake.handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        outbox.commit(bet(40), None)
        url = f"ws://127.0.0.1:{port}/ws/terminal"
        async with running(make_uplink(url, outbox, window=8, batch=3)) as uplink:
            await wait_for(lambda: len(fake.events) == 8, what="a window")
            await fake.settle()
            assert fake.events == list(range(1, 9)) and uplink.state.in_flight == 8
            await fake.ack(5)
            await wait_for(lambda: len(fake.events) == 13, what="five more")
            await fake.settle()
            assert fake.events == list(range(1, 14))
            await wait_for(lambda: outbox.acked_seq == 5, what="cursor at 5")
            await fake.ack(13)
            await wait_for(lambda: len(fake.events) == 21, what="eight more")
            await fake.settle()
            assert len(fake.events) == 21
        assert fake.max_unacked == 8
        # stop() says "going away".
        assert fake.close_codes == [1001]


# --------------------------------------------------------------------------- auth and TLS


async def test_refused_tokens_are_retried_with_backoff_until_valid(
        hub: HubHarness, outbox: Outbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agent.uplink.client")
    token_file = tmp_path / "token"
    token_file.write_text("tok-ops")  # an operator token on the terminal path: 403
    outbox.commit(bet(2), None)
    metrics = AgentMetrics()
    uplink = Uplink(uplink_config(hub.terminal_url), terminal_id=TERMINAL, outbox=outbox,
                    token=lambda: token_file.read_text().strip(), metrics=metrics,
                    min_reconnect_delay_s=0.01)
    async with running(uplink):
        await wait_for(lambda: uplink.state.reconnects >= 2, what="403 retried")
        assert "HTTP 403" in (uplink.state.last_error or "")
        token_file.write_text("not-a-token-at-all")
        await wait_for(lambda: "HTTP 401" in (uplink.state.last_error or ""), what="401")
        before = uplink.state.reconnects
        await wait_for(lambda: uplink.state.reconnects >= before + 2, what="401 retried")
        assert not uplink.connected and outbox.acked_seq == 0
        token_file.write_text(TERMINAL_TOKEN)
        await wait_for(lambda: outbox.acked_seq == 2, what="connected once the token is valid")
    assert metric(metrics, "slot_agent_uplink_reconnects_total") >= 4
    assert "not-a-token-at-all" not in caplog.text
    assert "HTTP 401" in caplog.text  # the reason is logged


async def test_hello_refused_for_another_terminal_is_retried(
        hub: HubHarness, tmp_path: Path) -> None:
    other = Outbox.open(tmp_path / "t2.db", terminal_id="T2")
    try:
        uplink = Uplink(uplink_config(hub.terminal_url), terminal_id="T2", outbox=other,
                        token=lambda: TERMINAL_TOKEN, min_reconnect_delay_s=0.01)
        async with running(uplink):
            await wait_for(lambda: uplink.state.reconnects >= 2, what="retried")
            assert "forbidden" in (uplink.state.last_error or "")
            assert uplink.state.sessions == 0
    finally:
        other.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    from tests.agent.uplink_kit import make_pki

    base = tmp_path_factory.mktemp("pki")
    return make_pki(base, "good"), make_pki(base, "other")


async def test_tls_verified_with_the_configured_ca(
        tmp_path: Path, outbox: Outbox, pki: tuple[Any, Any]) -> None:
    good, _ = pki
    async with HubHarness(tmp_path, tls_cert=good.cert, tls_key=good.key) as runner:
        assert runner.terminal_url.startswith("wss://")
        outbox.commit(bet(3), None)
        uplink = make_uplink(runner.terminal_url, outbox, ca_file=str(good.ca))
        async with running(uplink):
            await wait_for(lambda: outbox.acked_seq == 3, what="delivered over TLS")
        assert runner.seqs(TERMINAL) == [1, 2, 3]


async def test_tls_with_the_wrong_ca_is_refused_and_retried(
        tmp_path: Path, outbox: Outbox, pki: tuple[Any, Any]) -> None:
    good, other = pki
    async with HubHarness(tmp_path, tls_cert=good.cert, tls_key=good.key) as runner:
        outbox.commit(bet(1), None)
        uplink = make_uplink(runner.terminal_url, outbox, ca_file=str(other.ca))
        async with running(uplink):
            await wait_for(lambda: uplink.state.reconnects >= 2, what="TLS failures retried")
            assert "TLS" in (uplink.state.last_error or "")
            assert not uplink.connected
        assert runner.seqs(TERMINAL) == [] and outbox.acked_seq == 0


async def test_tls_with_a_host_name_the_certificate_does_not_name_is_refused(
        outbox: Outbox, pki: tuple[Any, Any]) -> None:
    """docs/uplink.md: the host name is always verified, also against a private CA. The
    certificate names localhost and 127.0.0.1; the hub is reached as 127.0.0.2 (loopback)."""
    good, _ = pki
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(good.cert, good.key)
    hellos: list[str] = []

    async def handler(ws: ServerConnection) -> None:
        hellos.append(str(await ws.recv()))

    async with serve(handler, "127.0.0.2", 0, ssl=server_ctx) as server:
        port = server.sockets[0].getsockname()[1]
        uplink = make_uplink(f"wss://127.0.0.2:{port}/ws/terminal", outbox,
                             ca_file=str(good.ca))
        async with running(uplink):
            await wait_for(lambda: uplink.state.reconnects >= 2, what="TLS failures retried")
            assert "TLS" in (uplink.state.last_error or "")
            assert "127.0.0.2" in (uplink.state.last_error or "")
        assert hellos == []


def test_plain_ws_is_refused_unless_allowed(outbox: Outbox) -> None:
    config = uplink_config("ws://127.0.0.1:1/ws/terminal", allow_insecure=False)
    with pytest.raises(ConfigError) as info:
        Uplink(config, terminal_id=TERMINAL, outbox=outbox, token=lambda: "x")
    assert info.value.problems[0].path == "uplink.url"
    assert "allow_insecure" in info.value.problems[0].message
    Uplink(uplink_config("ws://127.0.0.1:1/ws/terminal", allow_insecure=True),
           terminal_id=TERMINAL, outbox=outbox, token=lambda: "x")
    with pytest.raises(ConfigError):
        Uplink(uplink_config("http://127.0.0.1:1/"), terminal_id=TERMINAL, outbox=outbox,
               token=lambda: "x")


def test_a_missing_ca_file_is_a_config_error_naming_the_key(
        outbox: Outbox, tmp_path: Path) -> None:
    config = uplink_config("wss://localhost:1/ws/terminal",
                           ca_file=str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError) as info:
        Uplink(config, terminal_id=TERMINAL, outbox=outbox, token=lambda: "x")
    assert info.value.problems[0].path == "uplink.ca_file"


async def test_the_token_never_reaches_a_log_line_even_at_debug(
        hub: HubHarness, outbox: Outbox, tmp_path: Path) -> None:
    """websockets logs request headers at DEBUG; the daemon's filter masks the token."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    token_file = tmp_path / "token"
    token_file.write_text("wrong-secret-value")
    uplink = Uplink(uplink_config(hub.terminal_url), terminal_id=TERMINAL, outbox=outbox,
                    token=lambda: token_file.read_text(), min_reconnect_delay_s=0.01)
    try:
        outbox.commit(bet(1), None)
        async with running(uplink):
            await wait_for(lambda: uplink.state.reconnects >= 1, what="a 401")
            token_file.write_text(TERMINAL_TOKEN)
            await wait_for(lambda: outbox.acked_seq == 1, what="delivered")
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    text = buffer.getvalue()
    assert "Authorization" in text  # the header lines were logged...
    assert "wrong-secret-value" not in text and TERMINAL_TOKEN not in text  # ...masked


async def test_a_replaced_outbox_continues_numbering_after_the_hub(
        hub: HubHarness, tmp_path: Path) -> None:
    old = open_outbox(tmp_path / "old.db")
    old.commit(bet(10), None)
    async with running(make_uplink(hub.terminal_url, old)):
        await wait_for(lambda: old.acked_seq == 10, what="old file delivered")
    old.close()
    fresh = open_outbox(tmp_path / "fresh.db")  # the disk was wiped: seq starts at 0 again
    try:
        fresh.commit(bet(3), None)
        async with running(make_uplink(hub.terminal_url, fresh)) as uplink:
            await wait_for(lambda: fresh.acked_seq == 13, what="renumbered and delivered")
            assert fresh.last_seq == 13
            fresh.commit(bet(1), None)
            uplink.notify_new_events()
            await wait_for(lambda: fresh.acked_seq == 14, what="numbering continues")
        assert hub.seqs(TERMINAL) == list(range(1, 15))
    finally:
        fresh.close()


async def test_a_hub_error_internal_makes_the_agent_resend_from_the_hub_ack(
        outbox: Outbox) -> None:
    connections: list[list[int]] = []

    async def handler(ws: ServerConnection) -> None:
        seen: list[int] = []
        connections.append(seen)
        hello = json.loads(await ws.recv())
        assert hello["lastSeq"] == 5
        acked = 0 if len(connections) == 1 else 2
        await ws.send(wire.encode(wire.welcome(TERMINAL, acked, "2026-01-01T00:00:00Z")))
        async for text in ws:
            msg = json.loads(text)
            if msg["type"] != "event":
                continue
            seen.append(msg["seq"])
            if len(connections) == 1:
                if msg["seq"] <= 2:
                    await ws.send(wire.encode(wire.ack(msg["seq"])))
                elif msg["seq"] == 3:
                    await ws.send("{not json")  # ignored, logged
                    await ws.send(b"\x00binary")  # ignored, logged
                    await ws.send(wire.encode({"type": "ack", "upTo": -1}))  # invalid
                    await ws.send(wire.encode(wire.error(
                        wire.ErrorCode.INTERNAL, "event not stored; send it again", "T1-3")))
            else:
                await ws.send(wire.encode(wire.ack(msg["seq"])))

    outbox.commit(bet(5), None)
    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        uplink = make_uplink(f"ws://127.0.0.1:{port}/ws/terminal", outbox)
        async with running(uplink):
            await wait_for(lambda: outbox.acked_seq == 5, what="resent and acked")
            assert "internal" in (uplink.state.last_error or "")
    assert connections[0][:3] == [1, 2, 3]
    assert connections[1] == [3, 4, 5]  # resumed from the hub's ackedSeq + 1


async def test_mutual_tls_presents_the_client_certificate(
        tmp_path: Path, outbox: Outbox, pki: tuple[Any, Any]) -> None:
    server_pki, client_pki = pki
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(server_pki.cert, server_pki.key)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.load_verify_locations(client_pki.ca)  # trusts only the client CA
    peers: list[Any] = []

    async def handler(ws: ServerConnection) -> None:
        peers.append(ws.transport.get_extra_info("peercert"))
        await ws.recv()
        await ws.send(wire.encode(wire.welcome(TERMINAL, 0, "2026-01-01T00:00:00Z")))
        async for _ in ws:
            pass

    async with serve(handler, "127.0.0.1", 0, ssl=server_ctx) as server:
        port = server.sockets[0].getsockname()[1]
        url = f"wss://localhost:{port}/ws/terminal"
        without = make_uplink(url, outbox, ca_file=str(server_pki.ca))
        async with running(without):
            await wait_for(lambda: without.state.reconnects >= 2, what="refused without cert")
            assert not without.connected and peers == []
        # The "other" PKI's leaf certificate, signed by the CA the server trusts.
        with_cert = make_uplink(url, outbox, ca_file=str(server_pki.ca),
                                client_cert_file=str(client_pki.cert),
                                client_key_file=str(client_pki.key))
        async with running(with_cert):
            await wait_for(lambda: with_cert.connected, what="connected with a client cert")
    subject = dict(item[0] for item in peers[0]["subject"])
    assert subject["commonName"] == "localhost"


def test_a_client_key_without_its_certificate_is_a_config_error(
        outbox: Outbox, pki: tuple[Any, Any]) -> None:
    good, _ = pki
    config = uplink_config("wss://localhost:1/ws/terminal", client_key_file=str(good.key))
    with pytest.raises(ConfigError) as info:
        Uplink(config, terminal_id=TERMINAL, outbox=outbox, token=lambda: "x")
    assert info.value.problems[0].path == "uplink.client_cert_file"
    config = uplink_config("wss://localhost:1/ws/terminal", client_cert_file=str(good.ca),
                           client_key_file=str(good.key))  # key does not match the cert
    with pytest.raises(ConfigError) as info:
        Uplink(config, terminal_id=TERMINAL, outbox=outbox, token=lambda: "x")
    assert info.value.problems[0].path == "uplink.client_cert_file"


@given(first=st.floats(0.001, 10.0), cap=st.floats(0.001, 120.0),
       draws=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=40))
def test_backoff_doubles_to_the_cap_with_jitter_in_the_upper_half(
        first: float, cap: float, draws: list[float]) -> None:
    rolls = iter(draws)
    delays = jittered_doubling(first, cap, lambda: next(rolls))
    nominal = min(first, cap)
    for _ in draws:
        delay = next(delays)
        assert nominal / 2 - 1e-9 <= delay <= nominal + 1e-9
        assert delay <= cap + 1e-9
        nominal = min(nominal * 2, cap)


async def test_hello_reports_the_machine_state(outbox: Outbox) -> None:
    """The hub learns the host lock the agent holds as soon as it connects (protocol.md §4)."""
    hellos: list[dict[str, Any]] = []

    async def handler(ws: ServerConnection) -> None:
        hellos.append(json.loads(await ws.recv()))
        await ws.send(wire.encode(wire.welcome(TERMINAL, 0, "2026-01-01T00:00:00Z")))
        async for _ in ws:
            pass

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        uplink = make_uplink(f"ws://127.0.0.1:{port}/ws/terminal", outbox,
                             machine_status=lambda: {"hostLocked": True})
        async with running(uplink):
            await wait_for(lambda: bool(hellos), what="hello")
    assert hellos[0]["machine"] == {"hostLocked": True}
    wire.parse_message(json.dumps(hellos[0]), max_bytes=1 << 20, accept=wire.TERMINAL_TO_HUB)


async def test_an_ack_read_while_its_event_is_still_being_sent_counts(outbox: Outbox) -> None:
    """``ws.send`` may wait for the socket buffer to drain after it wrote the frame, and the
    receiver may read the hub's ack of that frame meanwhile: the ack frees the window and
    counts in full (it is not taken for an ack beyond what was sent)."""
    from agent.uplink.window import SendWindow, WorkerCalls

    outbox.commit(bet(3), None)
    calls = WorkerCalls()
    window = SendWindow(uplink_config("ws://x/ws/terminal", window=1, batch=1), outbox, calls,
                        metrics=None, fallback_poll_s=3600.0, max_pending_replies=10)

    class AckedDuringDrain:
        async def send(self, text: str) -> None:
            window.on_ack(json.loads(text)["seq"])  # as the receiver would, during drain

    reader = Outbox.open_reader(outbox.path)
    try:
        window.apply_welcome(0)
        task = asyncio.create_task(window.send_loop(AckedDuringDrain(), reader))  # type: ignore[arg-type]
        await wait_for(lambda: window.hub_acked == 3, what="every ack counted")
        assert window.sent == 3 and not window.in_flight
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await calls.drain()
    finally:
        reader.close()
