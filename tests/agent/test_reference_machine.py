"""The agent against a machine written from the reference alone (tests/support/ref_machine.py),
with habits the reference allows and our emulator does not have. Judged by the events
(docs/events.md): a game's bet and win arrive once, with the right amounts.

- slow bytes: the reply starts 15 ms after the poll and its bytes are 5 ms apart
  (reference §3.6: ≤ 20 ms, ≤ 5 ms), so an LP 6F reply of twelve meters takes over half a
  second; the agent's reply window must keep reading it;
- LP 2F sized its own way: no 6F, and games since power-up / door close (25/26, no size in
  reference §3.10) in two bytes as LP 18 sends them; the idle answer is 1F (IGT, §3.4);
- an old machine: no LP 54, 2F, 6F/AF nor 1C; its meters come from LP 0F and the single
  meter polls (reference §3.9, §4.1 "stepdown");
- real-time event reporting (reference §3.12): events replace long polls' replies, and
  the machine is silent when idle (no 00 in RTE mode, §3.4);
- door exceptions, which the agent confirms by an implied NACK (docs/sas.md, "Confirming
  exception bytes"): a machine that re-sends per §3.5 has each reported once;
- a noisy line (1 % of the words damaged, both ways): the money still arrives exactly;
- a shared line where a machine the agent does not poll chirps (reference §3.6, SAS §4.2:
  its address with the wakeup bit every 200 ms after 5 s unpolled): a byte with the wakeup
  bit is never part of a reply (§3.1), so the chirps cost nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from agent.assembly import Agent, LineSeam, Tuning, assemble
from agent.line.reply_window import MAX_REPLY_S, reply_bound
from drivers.memory import Faults, pair
from sas_protocol.messages.requests import ExtendedMetersRequest, GeneralPoll, MetersRequest
from tests.agent.e2e_helpers import agent_config
from tests.support.event_data import assert_documented
from tests.support.ref_machine import DEFAULT_SUPPORTED, RefMachine
from tests.support.waits import wait_until

pytestmark = pytest.mark.timeout(120)


@contextmanager
def _running(tmp_path: Path, faults: Faults | None = None, rte: bool = False,
             **machine: object) -> Iterator[tuple[RefMachine, Agent]]:
    host, device = pair(faults=faults or Faults())
    ref = RefMachine(device, **machine).start()  # type: ignore[arg-type]
    agent = assemble(agent_config(tmp_path / "outbox.db", rte=rte), line=LineSeam.memory(host),
                     tuning=Tuning(backlog_window_s=0.0))
    agent.start()
    try:
        yield ref, agent
        # every event of the run is what docs/events.md says (docs/schemas/events/data.json)
        assert_documented(e.to_wire() for e in agent.outbox.pending(0, 1_000_000))
    finally:
        agent.close()
        ref.stop()
        device.close()


def _events(agent: Agent, name: str) -> list[dict[str, object]]:
    return [e.event.data for e in agent.outbox.pending(0, 1_000_000) if e.event.name == name]


def _ready(agent: Agent) -> None:
    wait_until(lambda: any(d.get("reason") in ("discovery", "gap")
                           for d in _events(agent, "meterSnapshot")),
               60.0, "the discovery snapshot")


def _play_and_check(ref: RefMachine, agent: Agent, games: int = 1) -> None:
    for _ in range(games):
        ref.play(bet=40, win=100)
        ref.play(bet=25, win=0)

    def paid() -> bool:
        return (sum(int(str(d["credits"])) for d in _events(agent, "betPlaced")) == 65 * games
                and sum(int(str(d["credits"])) for d in _events(agent, "winPaid"))
                == 100 * games)

    wait_until(paid, 60.0, lambda: f"bets {_events(agent, 'betPlaced')}, "
                                   f"wins {_events(agent, 'winPaid')}")
    assert {d["kind"] for d in _events(agent, "winPaid")} == {"machine"}
    assert all(d["denomination"] == 1 for d in _events(agent, "betPlaced"))


def test_a_machine_with_slow_bytes_has_its_extended_meters_read(tmp_path: Path) -> None:
    with _running(tmp_path, reply_delay_s=0.015, byte_gap_s=0.005) as (ref, agent):
        _ready(agent)
        _play_and_check(ref, agent)
        assert any(len(p) > 1 and p[1] in (0x6F, 0xAF) for p in ref.polls)


def test_a_machine_sizing_2f_its_own_way_is_read_right(tmp_path: Path) -> None:
    supported = DEFAULT_SUPPORTED - {0x6F, 0xAF}
    with _running(tmp_path, supported=supported, idle_byte=0x1F,
                  selected_sizes={0x25: 2, 0x26: 2}) as (ref, agent):
        _ready(agent)
        _play_and_check(ref, agent)
        assert any(len(p) > 1 and p[1] == 0x2F and 0x25 in p[5:-2] for p in ref.polls)
        assert not _events(agent, "meterRollback")


def test_door_exceptions_confirmed_by_implied_nack_are_reported_once(tmp_path: Path) -> None:
    with _running(tmp_path) as (ref, agent):
        _ready(agent)
        for code in (0x11, 0x12, 0x19, 0x1A):  # slot door, cashbox door
            ref.raise_exception(code)

        def doors() -> list[object]:
            return [d.get("door") for d in _events(agent, "doorOpened")
                    + _events(agent, "doorClosed")]

        wait_until(lambda: len(doors()) >= 4, 30.0, lambda: f"door events {doors()}")
        assert sorted(map(str, doors())) == ["cashbox", "cashbox", "slot", "slot"]
        wait_until(lambda: not ref.pending(), 10.0, "the last exception acknowledged")
        assert len(doors()) == 4


def test_a_noisy_line_still_carries_the_money_exactly(tmp_path: Path) -> None:
    noise = Faults(corrupt=0.01, seed=3)
    with _running(tmp_path, noise) as (ref, agent):
        _ready(agent)
        _play_and_check(ref, agent, games=3)
    assert noise.corrupted > 0


def test_chirps_of_an_unpolled_machine_on_the_line_are_not_replies(tmp_path: Path) -> None:
    stop = threading.Event()
    with _running(tmp_path, byte_gap_s=0.002) as (ref, agent):
        def chirp() -> None:  # machine 5, never polled, chirps every 200 ms (50 here)
            while not stop.wait(0.05):
                ref.transport.write(bytes((5,)), wakeup=True)

        chirper = threading.Thread(target=chirp, daemon=True)
        chirper.start()
        try:
            _ready(agent)
            _play_and_check(ref, agent, games=2)
            ref.raise_exception(0x11)
            wait_until(lambda: _events(agent, "doorOpened"), 30.0, "the door event")
        finally:
            stop.set()
            chirper.join(5.0)
        names = [e.event.name for e in agent.outbox.pending(0, 1_000_000)]
        assert "machineException" not in names, names
        assert agent.line is not None
        machine = agent.line.status()["machines"]["1"]
        assert machine["linkUp"]  # before: every chirp in a window failed the poll


def test_an_old_machine_is_identified_and_read_by_its_legacy_polls(tmp_path: Path) -> None:
    supported = DEFAULT_SUPPORTED - {0x54, 0x2F, 0x6F, 0xAF}
    with _running(tmp_path, supported=supported) as (ref, agent):
        _ready(agent)
        _play_and_check(ref, agent, games=2)
        identified = _events(agent, "machineIdentified")
        assert identified and identified[-1]["denomination"] == 1, identified
        assert any(len(p) == 2 and p[1] == 0x0F for p in ref.polls)


@pytest.mark.parametrize("before_wager", [False, True], ids=["meter-after", "meter-before"])
def test_an_rte_machine_silent_when_idle_reports_games_and_money(
        tmp_path: Path, before_wager: bool) -> None:
    """7E's coin-in meter with or without the game's own wager (§3.12 does not say): every
    game gets its gameStarted either way (before: none did, each taken for an old game)."""
    with _running(tmp_path, rte=True, rte_capable=True,
                  rte_meter_before_wager=before_wager) as (ref, agent):
        _ready(agent)
        assert ref.rte
        _play_and_check(ref, agent, games=2)
        wait_until(lambda: len(_events(agent, "gameEnded")) >= 4, 30.0, "four gameEnded")
        wins = sorted(int(str(d.get("winCredits"))) for d in _events(agent, "gameEnded"))
        assert wins == [0, 0, 100, 100]
        assert len(_events(agent, "gameStarted")) == 4
        assert agent.line is not None and agent.line.status()["machines"]["1"]["linkUp"]


def test_the_reply_bound_follows_the_reference_timing() -> None:
    """SAS §3.6: 20 ms to start, 5 ms between bytes, 11 bits a byte at 19200 baud."""
    assert reply_bound(GeneralPoll()) == MAX_REPLY_S  # an RTE frame fits in 250 ms
    assert reply_bound(MetersRequest(0x1A)) == MAX_REPLY_S
    # LP 1C: 36 bytes, 0.02 + 36 * 11 / 19200 + 35 * 0.005 = 0.2156 s
    assert reply_bound(MetersRequest(0x1C)) == MAX_REPLY_S
    # a variable reply may be 260 bytes: 0.02 + 260 * 11 / 19200 + 259 * 0.005
    assert reply_bound(ExtendedMetersRequest(0, (0,))) == pytest.approx(1.4646, abs=1e-3)
