"""The daemon composed in-process over a memory pair: start-up events, recovery, watchdog."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import __version__
from agent.config import Config, config_hash, parse_config
from agent.daemon import Daemon
from agent.store.outbox import Outbox
from drivers.base import Transport, Word
from drivers.memory import MemoryTransport, pair
from emulator.model import Machine
from emulator.server import Emulator
from tests.support.event_data import assert_documented
from tests.support.waits import wait_for, wait_until


@pytest.fixture
def host_end() -> Iterator[MemoryTransport]:
    host, machine_end = pair()
    emulator = Emulator(Machine(), machine_end, address=1)
    emulator.start()
    try:
        yield host
    finally:
        emulator.stop()


def _config(tmp_path: Path) -> Config:
    return parse_config({
        "terminal_id": "T-9", "machines": [{"address": 1}],
        "serial": {"port": "tcp://127.0.0.1:9"},  # replaced by the memory pair
        "poll": {"interval_ms": 40, "reply_timeout_ms": 20},
        "outbox": {"path": str(tmp_path / "ob.db")},
        "metrics": {"enabled": False}, "control_socket": None,
    })


async def _run_until(daemon: Daemon, ready_then: object = None) -> None:
    task = asyncio.create_task(daemon.run(install_signals=False))
    ok = await asyncio.to_thread(daemon.ready.wait, 20.0)
    assert ok, "daemon not ready"
    daemon.request_stop()
    assert await asyncio.wait_for(task, 30) == 0


def _names(path: Path) -> list[str]:
    with Outbox.open_reader(path) as reader:
        return [e.event.name for e in reader.pending(0, 1000)]


async def test_agent_started_first_and_agent_stopping_last(
        tmp_path: Path, host_end: MemoryTransport) -> None:
    config = _config(tmp_path)
    daemon = Daemon(config, transport_factory=lambda cfg: host_end)
    await _run_until(daemon)
    with Outbox.open_reader(tmp_path / "ob.db") as reader:
        events = reader.pending(0, 1000)
    assert events[0].event.name == "agentStarted"
    assert events[0].event.data == {"version": __version__, "configHash": config_hash(config)}
    assert events[-1].event.name == "agentStopping"
    assert_documented(e.to_wire() for e in events)  # docs/schemas/events/data.json
    assert daemon.final_snapshot is not None and daemon.final_snapshot.uplink == "off"


async def test_a_damaged_outbox_is_moved_aside_and_raises_outbox_fault(
        tmp_path: Path, host_end: MemoryTransport) -> None:
    (tmp_path / "ob.db").write_bytes(b"not a database at all " * 200)
    daemon = Daemon(_config(tmp_path), transport_factory=lambda cfg: host_end)
    await _run_until(daemon)
    with Outbox.open_reader(tmp_path / "ob.db") as reader:
        stored = reader.pending(0, 1000)
    assert_documented(e.to_wire() for e in stored)  # docs/schemas/events/data.json
    events = {e.event.name: e.event for e in stored}
    fault = events["outboxFault"]
    assert fault.data["reason"] == "corrupt"
    assert Path(fault.data["movedTo"]).exists()  # kept for the audit, never deleted
    # the fields docs/events.md gives outboxFault, and no other
    doc = (Path(__file__).resolve().parents[2] / "docs" / "events.md").read_text()
    section = doc[doc.index("### `outboxFault`"):]
    section = section[:section.index("\n#")]
    assert set(fault.data) == {"reason", "detail", "movedTo"}
    assert all(f"| `{key}` |" in section for key in fault.data)


async def test_unfinished_actions_are_finished_with_an_error(
        tmp_path: Path, host_end: MemoryTransport) -> None:
    with Outbox.open(tmp_path / "ob.db", terminal_id="T-9") as ob:
        assert ob.action_begin("act-1", time.time()) is None
    daemon = Daemon(_config(tmp_path), transport_factory=lambda cfg: host_end)
    await _run_until(daemon)
    with Outbox.open(tmp_path / "ob.db", terminal_id="T-9") as ob:
        record = ob.action_get("act-1")
        assert ob.unfinished_actions() == []
    assert record is not None and record.result is not None
    assert record.result["status"] == "failed"
    assert "interrupted" in str(record.result["error"])
    assert "actionCompleted" in _names(tmp_path / "ob.db")


async def test_the_watchdog_is_fed_only_while_the_line_owner_cycles(
        tmp_path: Path, host_end: MemoryTransport) -> None:
    daemon = Daemon(_config(tmp_path), transport_factory=lambda cfg: host_end)
    task = asyncio.create_task(daemon.run(install_signals=False))
    try:
        assert await asyncio.to_thread(daemon.ready.wait, 20.0)
        line = daemon.line
        assert line is not None
        daemon._alive()  # baseline
        start = line.cycles
        await asyncio.to_thread(_wait_cycles, line, start + 2)
        assert daemon._alive() is True
        await asyncio.to_thread(line.stop)  # a stuck or dead line owner stops the pings
        assert daemon._alive() is False
    finally:
        daemon.request_stop()
        assert await asyncio.wait_for(task, 30) == 0


def _wait_cycles(line: object, target: int) -> None:
    wait_until(lambda: line.cycles >= target, 10,  # type: ignore[attr-defined]
               "the line owner does not cycle", interval=0.01)


async def test_reload_applies_the_level_and_reports_restart_keys(
        tmp_path: Path, host_end: MemoryTransport) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(f"terminal_id: T-9\nmachines:\n  - address: 1\nserial:\n  port: "
                    f"tcp://127.0.0.1:9\noutbox:\n  path: {tmp_path / 'ob.db'}\n"
                    "metrics:\n  enabled: false\ncontrol_socket: null\n")
    from agent.config import load_config

    daemon = Daemon(load_config(path), transport_factory=lambda cfg: host_end)
    task = asyncio.create_task(daemon.run(install_signals=False))
    try:
        assert await asyncio.to_thread(daemon.ready.wait, 20.0)
        path.write_text(path.read_text().replace("terminal_id: T-9", "terminal_id: T-10")
                        + "logging:\n  level: debug\n")
        result = await daemon.reload()
        assert result == (["logging.level"], ["terminal_id"])
        assert daemon.config.terminal_id == "T-9"  # needs a restart: still the old one
        assert daemon.config.logging.level == "debug"
        path.write_text("terminal_id: [not valid\n")
        assert await daemon.reload() is None  # refused as a whole
        assert daemon.config.logging.level == "debug"
    finally:
        daemon.request_stop()
        assert await asyncio.wait_for(task, 30) == 0


async def test_reload_changes_the_poll_interval_of_the_running_line(
        tmp_path: Path, host_end: MemoryTransport) -> None:
    path = tmp_path / "agent.yaml"
    base = (f"terminal_id: T-9\nmachines:\n  - address: 1\nserial:\n  port: "
            f"tcp://127.0.0.1:9\noutbox:\n  path: {tmp_path / 'ob.db'}\n"
            "metrics:\n  enabled: false\ncontrol_socket: null\n")
    path.write_text(base + "poll:\n  interval_ms: 200\n")
    from agent.config import load_config

    daemon = Daemon(load_config(path), transport_factory=lambda cfg: host_end)
    task = asyncio.create_task(daemon.run(install_signals=False))
    try:
        assert await asyncio.to_thread(daemon.ready.wait, 20.0)
        assert daemon.status()["line"]["intervalMs"] == 200
        path.write_text(base + "poll:\n  interval_ms: 400\n")
        assert await daemon.reload() == (["poll.interval_ms"], [])
        assert daemon.status()["line"]["intervalMs"] == 400
        assert daemon.config.poll.interval_ms == 400
        line = daemon.line
        assert line is not None
        start = line.cycles
        await asyncio.to_thread(_wait_cycles, line, start + 2)  # still polling
    finally:
        daemon.request_stop()
        assert await asyncio.wait_for(task, 30) == 0


async def test_a_configured_card_reader_feeds_card_events(
        tmp_path: Path, host_end: MemoryTransport) -> None:
    import socket

    from tests.agent.own_sockets import accept_own

    server = socket.create_server(("127.0.0.1", 0))
    config = _config(tmp_path)
    import dataclasses

    config = dataclasses.replace(config, card_reader=dataclasses.replace(
        config.card_reader, port=f"socket://127.0.0.1:{server.getsockname()[1]}"))
    daemon = Daemon(config, transport_factory=lambda cfg: host_end)
    task = asyncio.create_task(daemon.run(install_signals=False))
    try:
        assert await asyncio.to_thread(daemon.ready.wait, 20.0)
        conn = await asyncio.to_thread(accept_own, server, 20)
        with conn:
            conn.sendall(b";P1234?\r\n")
            await asyncio.to_thread(_wait_event, tmp_path / "ob.db", "playerSessionStarted")
        # The reader's connection drops with the card in: the card and its session end
        # (readerLost), and the agent connects again (backoff 0.5 s doubling to 5 s).
        await asyncio.to_thread(_wait_event, tmp_path / "ob.db", "playerSessionEnded")
        again = await asyncio.to_thread(accept_own, server, 8)
        again.close()
    finally:
        daemon.request_stop()
        assert await asyncio.wait_for(task, 30) == 0
        server.close()
    with Outbox.open_reader(tmp_path / "ob.db") as reader:
        events = [e.event for e in reader.pending(0, 1000)]
    inserted = [e.data for e in events if e.name == "cardInserted"]
    assert inserted == [{"kind": "player", "playerId": "P1234"}]
    removed = [e.data for e in events if e.name == "cardRemoved"]
    assert removed == [{"kind": "player", "playerId": "P1234", "reason": "readerLost"}]
    ended = [e.data for e in events if e.name == "playerSessionEnded"]
    assert [(d["playerId"], d["reason"]) for d in ended] == [("P1234", "readerLost")]


def _wait_event(path: Path, name: str) -> None:
    wait_until(lambda: name in _names(path), 15, f"no {name} event", interval=0.02)


async def test_reload_of_uplink_settings_reconnects_with_them(
        tmp_path: Path, host_end: MemoryTransport) -> None:
    import threading

    from tests.support.hub import HubHarness
    from tests.support.tokens import for_terminal, write_agent_token

    hub = HubHarness(tmp_path, tokens=for_terminal("T-9"))
    hub.start_in_thread()
    token_file = write_agent_token(tmp_path / "token", hub.token("T-9"))
    path = tmp_path / "agent.yaml"
    base = (f"terminal_id: T-9\nmachines:\n  - address: 1\nserial:\n  port: "
            f"tcp://127.0.0.1:9\noutbox:\n  path: {tmp_path / 'ob.db'}\n"
            "metrics:\n  enabled: false\ncontrol_socket: null\n"
            f"uplink:\n  url: {hub.terminal_url}\n  allow_insecure: true\n"
            f"  token_file: {token_file}\n")
    path.write_text(base)
    from agent.config import load_config

    daemon = Daemon(load_config(path), transport_factory=lambda cfg: host_end)
    task = asyncio.create_task(daemon.run(install_signals=False))
    pause = threading.Event()
    try:
        assert await asyncio.to_thread(daemon.ready.wait, 20.0)
        first = daemon.uplink
        assert first is not None
        path.write_text(base + "  heartbeat_interval_s: 5\n")
        assert await daemon.reload() == (["uplink.heartbeat_interval_s"], [])
        second = daemon.uplink
        assert second is not None and second is not first and not first.connected
        deadline = time.monotonic() + 15
        while not second.connected:
            assert time.monotonic() < deadline, "the new uplink did not connect"
            await asyncio.to_thread(pause.wait, 0.02)
        assert second.config.heartbeat_interval_s == 5
    finally:
        daemon.request_stop()
        assert await asyncio.wait_for(task, 30) == 0
        hub.stop_thread()


async def test_the_line_recovers_after_the_transport_dies(tmp_path: Path) -> None:
    """A TCP terminal server that drops the connection: the daemon's line owner opens the
    port again through the daemon's transport factory and the machine link comes back."""
    import dataclasses

    from tests.agent.e2e_helpers import served_over_tcp

    with served_over_tcp() as served:
        config = _config(tmp_path)
        config = dataclasses.replace(config, serial=dataclasses.replace(
            config.serial, port=served.url))
        daemon = Daemon(config)  # the real factory: open_transport(serial.port)
        task = asyncio.create_task(daemon.run(install_signals=False))

        def link_up() -> bool:
            assert daemon.line is not None
            return bool(daemon.line.status()["machines"]["1"]["linkUp"])

        try:
            assert await asyncio.to_thread(daemon.ready.wait, 20.0)
            await wait_for(link_up, 30, "the first link-up", interval=0.02)
            old = served.emulator.detach()  # the terminal server drops the connection
            assert old is not None
            old.close()
            await wait_for(lambda: not link_up(), 30, "link down after the connection dropped",
                           interval=0.02)
            await wait_for(link_up, 30, "the link back over a new connection", interval=0.02)
            assert served.accepted >= 2
            assert daemon.line is not None and daemon.line.running
        finally:
            daemon.request_stop()
            assert await asyncio.wait_for(task, 30) == 0
    names = _names(tmp_path / "ob.db")
    assert names.count("machineLinkDown") >= 1 and names.count("machineLinkUp") >= 2


class _HoldLock(Transport):
    """The host end of the line, holding the LP 01 (lock) poll until released: the lock
    action stays running for as long as the test needs."""

    def __init__(self, inner: MemoryTransport) -> None:
        import threading

        self.inner = inner
        self.name = inner.name
        self.held = threading.Event()
        self.release = threading.Event()

    def write(self, frame: bytes, *, wakeup: bool) -> None:
        if frame[1:2] == b"\x01" and not self.release.is_set():  # LP 01 shutdown (lock)
            self.held.set()
            assert self.release.wait(20), "the test never released the lock poll"
        self.inner.write(frame, wakeup=wakeup)

    def read(self, deadline: float, max_words: int = 512) -> list[Word]:
        return self.inner.read(deadline, max_words)

    def discard_input(self) -> None:
        self.inner.discard_input()

    def close(self) -> None:
        self.release.set()
        self.inner.close()


async def test_a_reload_lets_running_actions_finish(
        tmp_path: Path, host_end: MemoryTransport) -> None:
    """Replacing the uplink on reload must not cancel an action in flight: it completes,
    its result is stored and its actionCompleted event committed."""
    from agent.config import load_config
    from api import wire
    from tests.agent.uplink_kit import TERMINAL, TERMINAL_TOKEN, Operator
    from tests.support.hub import HubHarness
    from tests.support.tokens import write_agent_token

    hub = HubHarness(tmp_path)
    await hub.start()
    token_file = write_agent_token(tmp_path / "token", TERMINAL_TOKEN)
    path = tmp_path / "agent.yaml"
    base = (f"terminal_id: {TERMINAL}\nmachines:\n  - address: 1\nserial:\n  port: "
            f"tcp://127.0.0.1:9\noutbox:\n  path: {tmp_path / 'ob.db'}\n"
            "metrics:\n  enabled: false\ncontrol_socket: null\n"
            f"uplink:\n  url: {hub.terminal_url}\n  allow_insecure: true\n"
            f"  token_file: {token_file}\n")
    path.write_text(base)
    line = _HoldLock(host_end)
    daemon = Daemon(load_config(path), transport_factory=lambda cfg: line)
    task = asyncio.create_task(daemon.run(install_signals=False))
    op: Operator | None = None
    try:
        assert await asyncio.to_thread(daemon.ready.wait, 20.0)
        first = daemon.uplink
        assert first is not None
        deadline = time.monotonic() + 15
        while not (first.connected and daemon.snapshot().link == "up"):
            assert time.monotonic() < deadline, "not connected, or the machine link not up"
            await asyncio.sleep(0.02)
        op = await Operator.connect(hub.port)
        expires = wire.format_timestamp(time.time() + 60)
        await op.ws.send(wire.encode(wire.action("act-r", TERMINAL, "lock", {},
                                                 expires_at=expires)))
        assert await asyncio.to_thread(line.held.wait, 15)  # the lock poll is on the line
        path.write_text(base + "  heartbeat_interval_s: 5\n")
        assert await daemon.reload() == (["uplink.heartbeat_interval_s"], [])
        assert daemon.uplink is not first
        line.release.set()
        event = await op.wait(lambda m: m["type"] == "event"
                              and m["event"] == "actionCompleted", timeout=20)
        assert event["data"]["actionId"] == "act-r"
        assert event["data"]["status"] == "succeeded"
        assert daemon.outbox is not None
        record = daemon.outbox.action_get("act-r")
        assert record is not None and record.result is not None
        assert record.result["status"] == "succeeded"
    finally:
        line.release.set()
        if op is not None:
            await op.close()
        daemon.request_stop()
        assert await asyncio.wait_for(task, 30) == 0
        await hub.stop()


async def test_machine_info_metric_carries_the_discovered_identity(
        tmp_path: Path, host_end: MemoryTransport) -> None:
    """Discovery's ``machineIdentified`` labels ``slot_agent_machine_info`` (set_machine)."""
    daemon = Daemon(_config(tmp_path), transport_factory=lambda cfg: host_end)
    task = asyncio.create_task(daemon.run(install_signals=False))
    try:
        assert await asyncio.to_thread(daemon.ready.wait, 20.0), "daemon not ready"
        deadline = time.monotonic() + 20.0
        identified = None
        while identified is None and time.monotonic() < deadline:
            with Outbox.open_reader(tmp_path / "ob.db") as reader:
                identified = next((e.event for e in reader.pending(0, 1000)
                                   if e.event.name == "machineIdentified"), None)
            if identified is None:
                await asyncio.sleep(0.05)
        assert identified is not None, "no machineIdentified within 20 s"
        registry = daemon.metrics.registry
        value = None
        while value is None and time.monotonic() < deadline:
            value = registry.get_sample_value("slot_agent_machine_info", {
                "address": "1", "sas_version": str(identified.data["sasVersion"]),
                "serial_number": str(identified.data["serialNumber"]),
                "game_id": str(identified.data["gameId"]),
                "denomination_cents": str(identified.data["denomination"])})
            if value is None:
                await asyncio.sleep(0.05)
        assert value == 1
        assert identified.data["serialNumber"]  # the labels are not empty placeholders
        assert daemon._machine_status() == {"hostLocked": False, "gameLocked": False}
    finally:
        daemon.request_stop()
        assert await asyncio.wait_for(task, 30) == 0
