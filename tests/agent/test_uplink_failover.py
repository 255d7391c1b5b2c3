"""The uplink with several hub URLs (``uplink.url`` as a list): it goes to the next one when
an attempt fails or the connection is lost, and a terminal whose hub instance goes away
carries on with another instance of the same floor (one PostgreSQL database) with no event
lost and none stored or fanned out twice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from agent.store.outbox import Outbox
from agent.uplink.client import Uplink
from tests.agent.uplink_kit import (
    TERMINAL,
    TERMINAL_TOKEN,
    Operator,
    bet,
    open_outbox,
    uplink_config,
)
from tests.support.hub import HubHarness
from tests.support.waits import wait_for


def _uplink(urls: tuple[str, ...], outbox: Outbox) -> Uplink:
    return Uplink(uplink_config(urls[0], urls=urls), terminal_id=TERMINAL, outbox=outbox,
                  token=lambda: TERMINAL_TOKEN, min_reconnect_delay_s=0.01)


async def _refusing_server() -> AsyncIterator[str]:
    def refuse(_: ServerConnection, request: Request) -> Response:
        return Response(503, "Service Unavailable", Headers(), b"down for maintenance\n")

    async with serve(lambda ws: ws.close(), "127.0.0.1", 0, process_request=refuse) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/ws/terminal"


async def test_an_instance_that_refuses_is_passed_over_for_the_next(
        tmp_path: Path, hub: HubHarness) -> None:
    outbox = open_outbox(tmp_path / "outbox.db")
    try:
        async for down in _refusing_server():
            uplink = _uplink((down, hub.terminal_url), outbox)
            uplink.start()
            try:
                outbox.commit(bet(10), None)
                uplink.notify_new_events()
                await wait_for(lambda: outbox.acked_seq == 10, what="acked by the second URL")
                assert uplink.state.url == hub.terminal_url and uplink.state.connected
                assert "HTTP 503" in (uplink.state.last_error or "")
                assert hub.seqs(TERMINAL) == list(range(1, 11))
            finally:
                await uplink.stop()
    finally:
        outbox.close()


async def test_a_terminal_moves_to_another_instance_when_its_own_goes_away(
        tmp_path: Path, pg_url: str) -> None:
    runners = []
    for name in ("a", "b"):
        runner = HubHarness(tmp_path / name, database=None, store=pg_url)
        await runner.start()
        runners.append(runner)
    a, b = runners
    outbox = open_outbox(tmp_path / "outbox.db")
    op = await Operator.connect(b.port)
    uplink = _uplink((a.terminal_url, b.terminal_url), outbox)
    uplink.start()
    try:
        outbox.commit(bet(20), None)
        uplink.notify_new_events()
        await wait_for(lambda: outbox.acked_seq == 20, what="first 20 acked by A")
        assert uplink.state.url == a.terminal_url
        await a.stop()  # instance A goes away
        outbox.commit(bet(20), None)
        uplink.notify_new_events()
        await wait_for(lambda: outbox.acked_seq == 40, what="the rest acked by B")
        assert uplink.state.url == b.terminal_url and uplink.state.sessions == 2
        assert b.seqs(TERMINAL) == list(range(1, 41))  # each stored once
        await wait_for(lambda: len(op.events()) >= 40, what="operator on B got them all")
        assert [e["seq"] for e in op.events()] == list(range(1, 41))  # none twice
    finally:
        await uplink.stop()
        await op.close()
        outbox.close()
        for runner in runners:
            await runner.stop()
