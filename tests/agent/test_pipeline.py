"""The pipeline: group commit, order, restart from the stored state, a full disk."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from agent.derive.interpreter import Interpreter, Outcome
from agent.derive.state import AgentState
from agent.observations import ExceptionObserved, MachineIdentified, MetersRead, Observation
from agent.ops.metrics import AgentMetrics
from agent.reads import ReadMeters, ReadRequest
from agent.store.outbox import Outbox, OutboxFullError
from agent.store.pipeline import Pipeline
from api.events import Event, StoredEvent, utc_timestamp
from tests.support.event_data import assert_documented

pytestmark = pytest.mark.timeout(30)

T = "T-PIPE"


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox.open(tmp_path / "outbox.db", terminal_id=T)
    yield box
    box.close()


def identified(at: float) -> MachineIdentified:
    return MachineIdentified(at=at, address=1, sas_version="602", serial_number="S",
                             game_id="AB", denomination_cents=5, games=1)


def meters(at: float, coin_in: int) -> MetersRead:
    return MetersRead(at=at, address=1, meters={0x00: coin_in}, widths={0x00: 4},
                      reason="timer")


def names(box: Outbox) -> list[str]:
    return [e.event.name for e in box.pending(0, 10_000)]


def test_group_commit_and_order(outbox: Outbox) -> None:
    commits: list[list[StoredEvent]] = []
    p = Pipeline(outbox, Interpreter(T, card_reader=True), listeners=[commits.append])
    for i in range(40):
        p.put(ExceptionObserved(at=1000.0 + i, address=1, code=0x11 if i % 2 == 0 else 0x12))
    p.emit(Event("agentStopping", utc_timestamp(2000.0), {"version": "x"}))
    p.start()
    assert p.wait_idle(10)
    p.stop()
    stored = names(outbox)
    assert stored == ["doorOpened", "bypassAttempt", "doorClosed"] * 20 + ["agentStopping"]
    assert p.commits == len(commits) <= 2  # everything queued went in one or two batches
    assert [e.event.name for batch in commits for e in batch] == stored


def test_restart_continues_from_the_stored_baseline(outbox: Outbox) -> None:
    p = Pipeline(outbox, Interpreter(T))
    p.start()
    p.put(identified(1.0))
    p.put(meters(2.0, 100))
    p.put(meters(3.0, 130))
    assert p.wait_idle(10)
    p.stop()
    second = Pipeline(outbox, Interpreter(T))
    assert second.state.machine(1).baseline[0x00] == 130
    second.start()
    second.put(meters(4.0, 150))
    assert second.wait_idle(10)
    second.stop()
    bets = [e.event.data["amount"] for e in outbox.pending(0, 100) if e.event.name == "betPlaced"]
    assert bets == [30 * 5, 20 * 5]


def test_reads_are_handed_over_after_the_commit_and_metrics_count_events(
        outbox: Outbox) -> None:
    metrics = AgentMetrics(CollectorRegistry())
    handed: list[tuple[list[ReadRequest], int]] = []
    p = Pipeline(outbox, Interpreter(T), metrics=metrics,
                 reads_sink=lambda reads: handed.append((reads, outbox.last_seq)))
    p.start()
    p.put(ExceptionObserved(at=1.0, address=1, code=0x7F))  # game ended: read the meters
    assert p.wait_idle(10)
    p.stop()
    (reads, seq_then), = handed
    assert isinstance(reads[0], ReadMeters) and reads[0].reason == "game_end"
    assert seq_then == outbox.last_seq >= 1  # gameEnded was stored before the read went out
    value = metrics.registry.get_sample_value("slot_agent_events_total", {"event": "gameEnded"})
    assert value == 1.0


class FlakyOutbox:
    """Wraps an outbox whose disk is full for the first ``failures`` commits."""

    def __init__(self, box: Outbox, failures: int) -> None:
        self.box = box
        self.failures = failures
        self.attempts = 0

    def load_state(self) -> dict[str, Any] | None:
        return self.box.load_state()

    def commit(self, events: Sequence[Event], state: Mapping[str, Any] | None, *,
               finished_actions: Mapping[str, Mapping[str, Any]] | None = None,
               ) -> list[StoredEvent]:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise OutboxFullError("disk full (test)")
        return self.box.commit(events, state, finished_actions=finished_actions)


def test_a_full_outbox_keeps_the_batch_alerts_once_and_retries(outbox: Outbox) -> None:
    flaky = FlakyOutbox(outbox, failures=3)
    p = Pipeline(flaky, Interpreter(T), retry_initial_s=0.001, retry_max_s=0.01)
    p.start()
    p.put(identified(1.0))
    p.put(meters(2.0, 10))
    p.put(meters(3.0, 20))
    assert p.wait_idle(10)
    p.put(meters(4.0, 25))
    assert p.wait_idle(10)
    p.stop()
    stored = names(outbox)
    assert stored.count("outboxFault") == 1
    assert_documented(e.to_wire() for e in outbox.pending(0, 100))
    assert [e.event.data["amount"] for e in outbox.pending(0, 100)
            if e.event.name == "betPlaced"] == [50, 25]
    assert flaky.attempts >= 4
    state = outbox.load_state()
    assert state is not None and AgentState.from_json(state).machine(1).baseline[0x00] == 25


def test_abandon_commits_nothing_more(outbox: Outbox) -> None:
    p = Pipeline(outbox, Interpreter(T))
    for i in range(5):
        p.put(ExceptionObserved(at=float(i), address=1, code=0x20))
    p.abandon()
    p.start()
    assert not p.stop(5) or not p.running
    assert names(outbox) == []


class BrokenInterpreter(Interpreter):
    def observe(self, state: AgentState, obs: Observation) -> Outcome:
        if isinstance(obs, ExceptionObserved) and obs.code == 0x99:
            raise RuntimeError("a bug")
        return super().observe(state, obs)


def test_an_interpreter_bug_skips_one_observation(outbox: Outbox) -> None:
    p = Pipeline(outbox, BrokenInterpreter(T))
    p.start()
    p.put(ExceptionObserved(at=1.0, address=1, code=0x99))
    p.put(ExceptionObserved(at=2.0, address=1, code=0x20))
    assert p.wait_idle(10)
    p.stop()
    assert names(outbox) == ["tilt"]


def test_stop_drains_what_is_queued(outbox: Outbox) -> None:
    p = Pipeline(outbox, Interpreter(T))
    p.start()
    for i in range(20):
        p.put(ExceptionObserved(at=float(i), address=1, code=0x20))
    assert p.stop(10)
    assert names(outbox) == ["tilt"] * 20


def test_emit_with_a_finished_action_records_it_in_the_same_commit(outbox: Outbox) -> None:
    assert outbox.action_begin("act-9", 1.0) is None
    p = Pipeline(outbox, Interpreter(T))
    p.start()
    p.emit(Event("actionCompleted", utc_timestamp(2.0), {"actionId": "act-9", "ok": True}),
           finished_action=("act-9", {"ok": True}))
    assert p.wait_idle(10)
    p.stop()
    record = outbox.action_get("act-9")
    assert record is not None and record.result == {"ok": True}
    assert names(outbox) == ["actionCompleted"]
