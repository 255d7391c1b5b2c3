"""Scenario files, the step runner and the seeded autoplay, on injected time."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml

from emulator.autoplay import AutoPlayer, AutoplaySettings
from emulator.model import Door, Machine, MachineConfig, PlayRefusedError
from emulator.scenario import (
    NullLink,
    ScenarioError,
    ScenarioRunner,
    bundled_names,
    load_scenario,
    parse_scenario,
)


def run(text: str, *, until: float = 10_000.0, machine: Machine | None = None,
        gpm: float = 60.0) -> tuple[ScenarioRunner, Machine, NullLink]:
    m = machine or Machine()
    link = NullLink()
    scenario = parse_scenario(yaml.safe_load(text), "test")
    runner = ScenarioRunner(scenario, m, start=0.0, link=link,
                            autoplay=AutoplaySettings(games_per_minute=gpm))
    runner.advance(until)
    return runner, m, link


def test_every_bundled_scenario_loads() -> None:
    names = bundled_names()
    assert {"autoplay", "idle", "smoke", "faults", "handpay", "power-cycle", "rollover",
            "legacy-meters", "reset-meters", "doors-and-tilts"} <= set(names)
    for name in names:
        scenario = load_scenario(name)
        assert scenario.name == name


def test_sequential_steps_and_waits_follow_injected_time() -> None:
    runner, m, _ = run("""
- insert_bill: 20
- play: {games: 3, bet: 2, win: 0}
- wait: 30
- open_door: slot
""", until=0.0)
    assert m.meter(0x05) == 1  # the first game at t=0, the next one a second later
    runner.advance(2.5)
    assert m.meter(0x05) == 3 and not m.doors[Door.SLOT]
    runner.advance(32.9)
    assert not m.doors[Door.SLOT]
    runner.advance(33.0)
    assert m.doors[Door.SLOT] and runner.finished


def test_at_runs_a_step_at_an_absolute_offset() -> None:
    runner, m, _ = run("""
- at: 100
  insert_bill: 5
""", until=99.0)
    assert m.credits == 0 and runner.next_due == 100.0
    runner.advance(100.0)
    assert m.credits == 500


def test_power_cycle_stops_the_machine_for_a_while() -> None:
    runner, m, _ = run("- power_cycle: 10\n", until=5.0)
    assert not m.powered
    runner.advance(10.0)
    assert m.powered
    assert [e.code for e in m.queue.queued()] == [0x18, 0x17]


def test_link_steps_go_to_the_link() -> None:
    _, _, link = run("""
- corrupt: 1%
- silence: 40
- busy: 5
- corrupt: 0
""")
    assert link.calls == [("corrupt", 0.01), ("silence", 40.0), ("busy", 5.0), ("corrupt", 0.0)]


def test_overflow_queue_step_overflows() -> None:
    _, m, _ = run("- overflow_queue\n")
    assert len(m.queue) == 25 and m.queue.dropped > 0 and m.queue.is_flagged(0x70)


def test_handpay_step_uses_the_amount_and_the_limit() -> None:
    _, m, _ = run("- handpay: 1500.00\n",
                  machine=Machine(MachineConfig(handpay_limit_cents=120_000)))
    assert m.handpay is not None and m.handpay.cents == 150_000
    assert m.queue.is_flagged(0x51)


def test_play_is_refused_while_locked_and_recorded() -> None:
    m = Machine()
    m.lock()
    runner, _, _ = run("- play: 2\n", machine=m)
    assert m.meter(0x05) == 0 and len(runner.refused) == 2
    assert "locked" in runner.refused[0]


def test_game_lock_steps_lock_and_release_the_game() -> None:
    runner, m, _ = run("- game_lock\n- play: 1\n")
    assert m.game_locked and m.queue.is_flagged(0x6F)
    assert runner.refused and "game locked" in runner.refused[0]
    _, m, _ = run("- game_lock\n- game_unlock\n")
    assert not m.game_locked


def test_bundled_rollover_scenario_wraps_meters() -> None:
    m = Machine()
    ScenarioRunner(load_scenario("rollover"), m, start=0.0).advance(10_000)
    assert m.meter(0x00) > 10**8 and m.reported_meter(0x00) == m.meter(0x00) - 10**8
    assert m.meter(0xA0) > 10**10 - 200


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- fly: 3\n", r"test.steps\[0\]: unknown action 'fly'"),
        ("- play: -1\n", r"test.steps\[0\].play: expected"),
        ("- open_door: roof\n", r"unknown door 'roof'"),
        ("- tilt: 0x99\n", r"unknown tilt 0x99"),
        ("- {play: 1, wait: 2}\n", r"exactly one action"),
        ("- corrupt: 2\n", r"fraction"),
        ("steps: []\nend: later\n", r"test.end"),
        ("options: {speed: 3}\n", r"test.options: unknown keys \['speed'\]"),
        ("options: {unsupported_polls: [zz]}\n", r"unsupported_polls\[0\]"),
        ("- at: -1\n  wait: 1\n", r"steps\[0\].at"),
    ],
)
def test_bad_scenarios_name_the_key(text: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(yaml.safe_load(text), "test")


def test_load_scenario_errors(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="unknown scenario 'nope'"):
        load_scenario("nope")
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [unclosed\n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(str(bad))
    good = tmp_path / "mine.yaml"
    good.write_text("options: {rte: true, unsupported_polls: [0x6F]}\nsteps: [{play: 1}]\n")
    scenario = load_scenario(str(good))
    assert scenario.options.rte is True and scenario.options.unsupported_polls == (0x6F,)


def _drain_codes(m: Machine, now: float) -> list[int]:
    codes = []
    while (pending := m.next_exception(now)) is not None:
        codes.append(pending.code)
        m.acknowledge_exception(pending, now)
    return codes


@pytest.mark.parametrize(("gpm", "game_seconds", "length"), [
    (30, 2.0, 1.0),  # at most half the pace's interval: the pace holds
    (10, 2.0, 2.0),
    (12, 0.5, 0.5),
])
def test_autoplay_games_last_their_length(gpm: float, game_seconds: float,
                                          length: float) -> None:
    """An autoplay game is in play from 7E to 7F for its length, as the reels spin on a
    real machine; the pace (games per minute, start to start) is kept."""
    m = Machine(MachineConfig(denomination_cents=1), now=0.0)
    settings = AutoplaySettings(games_per_minute=gpm, game_seconds=game_seconds,
                                cashout_probability=0, door_probability=0, tilt_probability=0,
                                jackpot_probability=0)
    runner = ScenarioRunner(load_scenario("autoplay"), m, start=0.0, seed=5, autoplay=settings)
    starts: list[float] = []
    ends: list[float] = []
    step = 0.01
    for i in range(int(120 / step)):
        now = i * step
        runner.advance(now)
        for code in _drain_codes(m, now):
            if code == 0x7E:
                starts.append(now)
                assert m.game_in_play is not None
            elif code == 0x7F:
                ends.append(now)
    assert len(starts) >= 10
    assert len(ends) in (len(starts), len(starts) - 1)
    for started, ended in zip(starts, ends, strict=False):
        assert ended - started == pytest.approx(length, abs=step * 1.5)
    pace = [b - a for a, b in itertools.pairwise(starts)]
    assert min(pace) >= 60 / gpm - step * 1.5  # never faster than the pace


def test_zero_game_seconds_ends_a_game_as_it_starts() -> None:
    m = Machine(MachineConfig(denomination_cents=1), now=0.0)
    runner = ScenarioRunner(load_scenario("autoplay"), m, start=0.0, seed=5,
                            autoplay=AutoplaySettings(games_per_minute=60, game_seconds=0,
                                                      cashout_probability=0,
                                                      door_probability=0, tilt_probability=0))
    codes = []
    for i in range(300):
        runner.advance(i / 10)
        codes += _drain_codes(m, i / 10)
    assert codes.count(0x7E) >= 10
    assert codes.count(0x7E) == codes.count(0x7F)
    assert m.game_in_play is None


def test_a_game_in_play_blocks_another() -> None:
    m = Machine(MachineConfig(denomination_cents=1), now=0.0)
    m.insert_bill(0.0, 20)
    m.start_game(0.0, bet=5)
    assert m.play_refusal(1) == "a game is in play"
    with pytest.raises(PlayRefusedError, match="in play"):
        m.start_game(0.5, bet=1)
    result = m.end_game(2.0, win=10)
    assert (result.bet, result.win, m.credits) == (5, 10, 2000 - 5 + 10)
    with pytest.raises(PlayRefusedError, match="no game in play"):
        m.end_game(2.5, win=1)


def test_autoplay_is_seeded_and_realistic() -> None:
    import random

    def session(seed: int) -> tuple[dict[int, int], int]:
        m = Machine(MachineConfig(denomination_cents=1))
        player = AutoPlayer(m, random.Random(seed), AutoplaySettings(game_seconds=0))
        for i in range(3000):
            player.tick(float(i))
        return m.meters(), player.games

    first, games = session(11)
    assert session(11) == (first, games)
    assert session(12)[0] != first
    assert games > 2000
    hit_rate = first[0x06] / first[0x05]
    assert 0.25 < hit_rate < 0.35
    assert first[0x0B] > 0 and first[0x0D] > 0 and first[0x0E] > 0  # bills, tickets in/out
    assert first[0x05] == first[0x06] + first[0x07]


def test_the_step_table_of_emulator_md_is_every_scenario_action() -> None:
    """A scenario file is written from docs/emulator.md: its step table names each action
    the scenario parser takes (first in each form of the first column), and no other."""
    import re

    from emulator.scenario import ACTIONS

    doc = (Path(__file__).resolve().parents[2] / "docs" / "emulator.md").read_text()
    table = doc[doc.index("| Step | Effect |"):].splitlines()[2:]
    named = set()
    for line in table:
        if not line.startswith("|"):
            break
        forms = line.strip("|").split("|")[0].replace(" or ", " / ").split(" / ")
        named |= {re.match(r"\s*`([a-z_]+)", form).group(1)  # type: ignore[union-attr]
                  for form in forms}
    assert named == set(ACTIONS)
