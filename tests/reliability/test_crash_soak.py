"""Crash soak: ``slot-agent run`` killed with SIGKILL at random moments while a seeded
autoplay runs on the emulated machine, RTE off and on. At the end the hub holds exactly the
money the machine counted (the emulator's report), no event id twice, seqs gap-free.

Kill moments are random but condition-driven (no sleeps): after a random number of new
events in the agent's outbox (early: during start-up and discovery, often before delivery)
or at the hub (after delivery and acknowledgement). The machine plays until the last kill
(the long run kills for at least ``PLAY_S``): a kill waiting for new events at the hub
never outlasts the play, however slow the agent's restarts are on a loaded machine.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from tests.reliability.reliability_kit import LONG, long_or_short
from tests.reliability.system_rig import (
    AgentProc,
    HubProc,
    ServedMachine,
    assert_identity,
    expected_sums,
    money_sums,
)
from tests.support.waits import wait_until

KILLS = long_or_short(50, 4)
#: The least play of a long run, killed throughout (the short run plays until its last kill).
PLAY_S = long_or_short(240, 0)
#: The long run plays fast enough that the machine's exception queue (25 entries) overflows
#: while the agent is down (exception 70, ``dataGap``); the short run stays below that pace
#: so that what CI checks does not depend on the timing of a restart. The agent polls at the
#: SAS pace (one send per machine per interval, 40 ms here, SAS §3.6): a general poll every
#: 90 ms or so while long polls alternate, so the short run plays one game a second.
GAMES_PER_MINUTE = long_or_short(600, 60)
#: The last thing the agent must catch, played after the autoplay: a bill and a ticket.
LAST_STEPS = [{"insert_bill": 20}, "print_ticket"]

pytestmark = pytest.mark.timeout(1800 if LONG else 180)


def finish_and_check(emulator: ServedMachine, agent: AgentProc, hub: HubProc) -> dict[str, int]:
    """End the play, restart the agent cleanly so it re-reads every meter at link-up, wait
    until the hub has acknowledged everything, then compare with the emulator's report."""
    emulator.end_play(LAST_STEPS)
    wait_until(lambda: emulator.finished, 60, "the emulator's last steps")
    if agent.alive():
        wait_until(agent.answers, 60, "the agent started last to be up")
        assert agent.stop() == 0
    before = agent.last_seq()
    agent.start()
    wait_until(lambda: any(e["event"] == "meterSnapshot" and e["seq"] > before
                           for e in hub.events()), 60,
               "a meter snapshot of the last run at the hub")
    wait_until(agent.tickets_settled, 60, "the agent's ticket ledger to settle")
    wait_until(lambda: agent.depth() == 0, 60, "the hub to acknowledge every event")
    assert agent.stop() == 0
    report = emulator.stop()
    events = hub.events()
    assert_identity(events)
    got, want = money_sums(events), expected_sums(report, events)
    assert got == want, f"hub sums {got} != emulator totals {want}"
    assert want["betPlaced"] > 0 and want["billAccepted"] > 0 and want["ticketPrinted"] > 0
    return want


@pytest.mark.parametrize("rte", [False, True], ids=["polled", "rte"])
def test_sigkill_soak_keeps_the_money_invariant_at_the_hub(tmp_path: Path, rte: bool) -> None:
    rng = random.Random(1000 + int(rte))
    hub = HubProc(tmp_path)
    emulator = ServedMachine(seed=41 + int(rte), rte=rte, games_per_minute=GAMES_PER_MINUTE)
    play_until = time.monotonic() + PLAY_S
    agent = AgentProc(tmp_path, serial_url=emulator.url, hub=hub, rte=rte)
    try:
        kills = 0
        while kills < KILLS or time.monotonic() < play_until:
            agent.start()
            if rng.random() < 0.3:
                base = max(agent.last_seq(), 0)
                target = base + rng.randint(1, 5)
                wait_until(lambda t=target: agent.last_seq() >= t, 60,
                           "new events in the outbox")
            else:
                base = hub.count()
                target = base + rng.randint(1, 40)
                wait_until(lambda t=target: hub.count() >= t, 60,
                           "new events at the hub")
            assert agent.alive(), "the agent died on its own"
            agent.kill()
            kills += 1
        agent.start()
        want = finish_and_check(emulator, agent, hub)
        print(f"rte={rte}: {kills} kills, {agent.runs} runs, "
              f"{emulator.machine.totals().games_played} games, totals {want}")
    finally:
        agent.kill()
        emulator.stop()
        hub.stop()
