"""The whole system as separate processes: ``slot-agent emulate``, ``slot-agent hub`` and
``slot-agent run`` (tests.support.processes), each killable with SIGKILL, plus read-only views
of their databases. ``ServedMachine`` is the emulator served from the test's own process
instead, for tests that end the play when they have what they need (the crash soak).

No sleeps: output lines are pumped onto queues by reader threads; waits are bounded polls of
a condition (another process's database is re-read every 20 ms).
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from emulator.autoplay import AutoplaySettings
from emulator.model import Machine, MachineConfig
from emulator.profiles import link_options
from emulator.report import build_report
from emulator.scenario import ScenarioRunner, load_scenario, parse_scenario
from emulator.server import Emulator, LinkOptions
from emulator.tcp_serving import TcpServing
from tests.support.hub import stored_events
from tests.support.processes import Proc, short_dir, start_emulator
from tests.support.tokens import (
    OPERATOR,
    for_terminal,
    token_of,
    write_agent_token,
    write_token_file,
)
from tests.support.waits import wait_until

TERMINAL = "EGM-R1"

#: (hub event, meters whose delta it must add up to, in credits (True) or cents (False))
MONEY: tuple[tuple[str, tuple[int, ...], bool], ...] = (
    ("betPlaced", (0x00,), True),
    ("winPaid", (0x01, 0x02), True),
    ("billAccepted", (0x0B,), True),
    ("ticketRedeemed", (0x0D,), False),
    ("ticketPrinted", (0x0E,), False),
    ("cashout", (0x04,), True),
)


# --------------------------------------------------------------------------- emulator


class EmulatorProc:
    """``slot-agent emulate --tcp 127.0.0.1:0`` with a scenario file and a report."""

    def __init__(self, tmp: Path, *, steps: list[Any], seed: int, rte: bool = False,
                 games_per_minute: int = 300, end: str = "idle", verbose: bool = False
                 ) -> None:
        self.report_path = tmp / "emulator-report.json"
        scenario = tmp / "scenario.yaml"
        scenario.write_text(json.dumps({"name": "reliability", "end": end, "steps": steps}))
        args = ["--scenario", str(scenario), "--seed", str(seed), "--games-per-minute",
                str(games_per_minute), "--report", str(self.report_path)]
        if rte:
            args.append("--rte")
        if verbose:  # logs "scenario ...: finished" (and links) on stderr
            args.append("--verbose")
        self.proc, self.url = start_emulator(*args)

    def stop(self) -> dict[str, Any]:
        """SIGTERM; the report it writes on the way out."""
        self.proc.terminate()
        report: dict[str, Any] = json.loads(self.report_path.read_text())
        return report


class ServedMachine:
    """What ``slot-agent emulate --tcp 127.0.0.1:0 --scenario autoplay --seed S
    --games-per-minute N [--rte]`` serves (the same machine, link and autoplay settings), run
    in the test's process and served as that command serves it
    (``emulator.tcp_serving.TcpServing``). The autoplay runs until :meth:`end_play`, so a
    test plays exactly as long as it needs, not for a fixed time its other steps may outlast
    on a loaded machine."""

    def __init__(self, *, seed: int, rte: bool = False, games_per_minute: int = 300) -> None:
        now = time.monotonic()
        self.machine = Machine(MachineConfig(denomination_cents=1), now=now,
                               wall_clock=datetime.now(UTC), seed=seed)
        self.emulator = Emulator(self.machine, None, address=1,
                                 options=link_options("modern", LinkOptions(rte=rte, seed=seed)),
                                 now=now)
        self.seed = seed
        self.settings = AutoplaySettings(games_per_minute=games_per_minute)
        self.emulator.runner = ScenarioRunner(load_scenario("autoplay"), self.machine,
                                              start=now, seed=seed, link=self.emulator,
                                              autoplay=self.settings)
        self.served = TcpServing(self.emulator)  # a killed agent's connection is closed
        self.url = self.served.url
        self.served.start()

    def end_play(self, steps: list[Any]) -> None:
        """End the autoplay between two games (as an ``autoplay`` step ends), then run
        ``steps`` (scenario steps, as in a scenario file)."""
        then = parse_scenario({"name": "end", "steps": steps}, "end")

        def between_games() -> bool:
            with self.emulator.lock:
                runner = self.emulator.runner
                assert runner is not None
                if runner.player.game_ends_at is not None:
                    return False  # a game is on: its reels stop first
                now = time.monotonic()
                self.emulator.runner = ScenarioRunner(then, self.machine, start=now,
                                                      seed=self.seed, link=self.emulator,
                                                      autoplay=self.settings)
                return True

        wait_until(between_games, 30, "a moment between two games")

    @property
    def finished(self) -> bool:
        """The steps given to :meth:`end_play` are done."""
        with self.emulator.lock:
            runner = self.emulator.runner
            return runner is not None and runner.scenario.name == "end" and runner.finished

    def stop(self) -> dict[str, Any]:
        """Stop serving (again: a no-op); the report ``slot-agent emulate --report`` writes."""
        self.served.stop()
        with self.emulator.lock:
            return build_report(self.machine, scenario="reliability", finished=self.finished)


# --------------------------------------------------------------------------- hub


class HubProc:
    """``slot-agent hub`` with its database; ``restart`` keeps the database and the port."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        table = for_terminal(TERMINAL)
        self.tokens = write_token_file(tmp, table)
        self.terminal_token = token_of(table, TERMINAL)
        self.operator_token = OPERATOR
        self.token_file = write_agent_token(tmp / "terminal-token", self.terminal_token)
        self.database = tmp / "hub.db"
        self.port = 0
        self.proc: Proc | None = None
        self.start()

    def start(self) -> None:
        config = self.tmp / "hub.yaml"
        config.write_text(json.dumps({
            "listen": {"host": "127.0.0.1", "port": self.port}, "plain": True,
            "tokens": str(self.tokens), "database": str(self.database),
            "ping_interval": 2, "ping_timeout": 2,
        }))
        self.proc = Proc(["hub", "--config", str(config), "--log-level", "WARNING"])
        url = self.proc.first_line()
        match = re.search(r":(\d+)/?$", url)
        assert match, url
        self.port = int(match.group(1))

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/terminal"

    @property
    def client_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/client"

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()

    def events(self, terminal_id: str = TERMINAL) -> list[dict[str, Any]]:
        """The terminal's own events stored by the hub, in storage order."""
        return stored_events(self.database, terminal_id)

    def count(self, terminal_id: str = TERMINAL) -> int:
        if not self.database.exists():
            return 0
        conn = sqlite3.connect(f"{self.database.resolve().as_uri()}?mode=ro", uri=True,
                               timeout=10)
        try:
            return int(conn.execute("SELECT COUNT(*) FROM events WHERE source = ?",
                                    (terminal_id,)).fetchone()[0])
        except sqlite3.OperationalError:
            return 0
        finally:
            conn.close()


# --------------------------------------------------------------------------- agent


class AgentProc:
    """``slot-agent run`` against ``serial_url`` and the hub; restartable on one outbox."""

    def __init__(self, tmp: Path, *, serial_url: str, hub: HubProc | None, rte: bool = False,
                 interval_ms: int = 40, extra: str = "") -> None:
        self.outbox = tmp / "outbox.db"
        uplink = ""
        if hub is not None:
            uplink = (f"uplink:\n  url: {hub.ws_url}\n  allow_insecure: true\n"
                      f"  token_file: {hub.token_file}\n  reconnect_max_delay_s: 1\n"
                      "  heartbeat_interval_s: 2\n  heartbeat_timeout_s: 2\n")
        self.control_socket = short_dir() / "control.sock"
        self.config = tmp / "agent.yaml"
        self.config.write_text(
            f"terminal_id: {TERMINAL}\n"
            f"serial:\n  port: {serial_url}\n"
            f"machines:\n  - address: 1\n    rte: {'true' if rte else 'false'}\n"
            f"poll:\n  interval_ms: {interval_ms}\n  reply_timeout_ms: 30\n"
            "  snapshot_interval_s: 10\n"
            f"outbox:\n  path: {self.outbox}\n"
            f"{uplink}"
            "metrics:\n  enabled: false\n"
            "logging:\n  level: warning\n  format: json\n"
            f"control_socket: {self.control_socket}\n"
            f"{extra}"
        )
        self.proc: Proc | None = None
        self.runs = 0

    def start(self) -> Proc:
        self.proc = Proc(["run", "--config", str(self.config)])
        self.runs += 1
        return self.proc

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()

    def stop(self) -> int:
        return 0 if self.proc is None else self.proc.terminate()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.alive()

    def answers(self) -> bool:
        """The daemon answers on its control socket: it is past start-up, its SIGTERM
        handler installed (a SIGTERM before that ends it with -15, not a clean stop)."""
        from agent.ops.control import ControlError, control_request

        try:
            control_request(self.control_socket, "status", timeout=2)
        except (ControlError, OSError, TimeoutError):
            return False
        return True

    def last_seq(self) -> int:
        return self._read(lambda r: int(r.last_seq))

    def tickets_settled(self) -> bool:
        """The ticket ledger in the agent's stored state is empty: every ticket-out movement
        is reported (matched with its LP 4D record, or reconciled after the settle time)."""
        def settled(reader: Any) -> int:
            state = reader.load_state()
            machines = [] if state is None else state.get("machines", [])
            return int(state is not None and all(
                not m.get("ticketCredit") and not m.get("ticketsWaiting") for m in machines))

        return self._read(settled) == 1

    def depth(self) -> int:
        """Events not yet acknowledged by the hub (-1 while the file cannot be read)."""
        return self._read(lambda r: int(r.depth))

    def _read(self, what: Callable[[Any], int]) -> int:
        from agent.store.outbox import Outbox, OutboxError

        if not self.outbox.exists():
            return -1
        try:
            with Outbox.open_reader(self.outbox) as reader:
                return what(reader)
        except (OutboxError, sqlite3.Error):
            return -1


# --------------------------------------------------------------------------- checks


def money_sums(events: list[dict[str, Any]]) -> dict[str, int]:
    """Amounts per money event; a ``ticketPrinted`` with ``metered: false`` (printed before
    the first baseline, or a handpay receipt) is not part of any meter delta."""
    out = dict.fromkeys((name for name, _, _ in MONEY), 0)
    for e in events:
        if e["event"] in out and e["data"].get("metered", True):
            out[e["event"]] += int(e["data"]["amount"])
    return out


def expected_sums(report: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, int]:
    """The machine's meter deltas in cents from the agent's first baseline (the first
    ``meterSnapshot`` the hub received) to the emulator's final report (true, unwrapped)."""
    from agent.derive.meters import meter_name

    first = next(e for e in events if e["event"] == "meterSnapshot" and e["data"].get("first"))
    baseline = first["data"]["meters"]
    denomination = int(report["denomination"])
    out = {}
    for name, codes, credits in MONEY:
        delta = sum(int(report["meters"][f"{c:02X}"]) - int(baseline[meter_name(c)])
                    for c in codes)
        out[name] = delta * denomination if credits else delta
    return out


def assert_identity(events: list[dict[str, Any]]) -> None:
    """No event id twice; seqs strictly increasing and gap-free from the first one."""
    ids = [e["id"] for e in events]
    assert len(ids) == len(set(ids)), "an event id was stored twice at the hub"
    seqs = sorted(e["seq"] for e in events)
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "seqs have a gap"
    assert all(e["id"] == f"{TERMINAL}-{e['seq']}" for e in events)
