"""agent.assembly: the one wiring of line, pipeline, outbox and uplink (the daemon's, the
rigs' and the benchmarks'). End-to-end behaviour is in test_daemon.py and the e2e rigs; these
pin the wiring rules themselves."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import cast

import pytest

from agent.assembly import LineSeam, LineStartError, Tuning, assemble
from agent.config import Config, MachineConfig, OutboxConfig, SerialConfig
from agent.line.process import open_line
from agent.uplink.client import Uplink
from api.events import Event, utc_timestamp
from drivers import Transport
from drivers.memory import pair
from tests.support.waits import wait_until

TERMINAL = "T-ASM"


def _config(tmp_path: Path) -> Config:
    return Config(TERMINAL, (MachineConfig(1),), serial=SerialConfig(port="tcp://192.0.2.1:1"),
                  outbox=OutboxConfig(path=str(tmp_path / "outbox.db")))


class _Waker:
    """Stands for an uplink: counts the wake-ups the pipeline's commits give it."""

    def __init__(self) -> None:
        self.wakes = 0
        self.lock = threading.Lock()

    def notify_new_events(self) -> None:
        with self.lock:
            self.wakes += 1


def test_the_line_runs_in_a_process_exactly_for_the_configured_line() -> None:
    host, _device = pair()

    def other(_config: Config) -> Transport:
        return host

    assert LineSeam().in_child and LineSeam(open_line).in_child
    assert not LineSeam.memory(host).in_child
    assert not LineSeam(other).in_child
    assert LineSeam(other, process=True).in_child
    assert not LineSeam(open_line, process=False).in_child


def test_the_interpreter_takes_the_configuration_and_the_tuning(tmp_path: Path) -> None:
    config = _config(tmp_path)
    config = Config(TERMINAL, (MachineConfig(1, rte=True),), outbox=config.outbox)
    agent = assemble(config, tuning=Tuning(backlog_window_s=0.5, ticket_settle_s=2.0))
    try:
        interp = agent.interpreter
        assert (interp.terminal_id, interp.rte, interp.card_reader) == (TERMINAL, True, False)
        assert interp.clock_skew_threshold == config.poll.clock_max_skew_s
        assert (interp.backlog_window, interp.ticket_settle) == (0.5, 2.0)
    finally:
        agent.close()


def test_a_line_that_does_not_open_is_a_line_start_error(tmp_path: Path) -> None:
    def refuse(_config: Config) -> Transport:
        raise OSError("no such device")

    agent = assemble(_config(tmp_path), line=LineSeam(refuse, process=False))
    agent.start_pipeline()
    with pytest.raises(LineStartError, match=r"cannot open the serial line "
                                             r"tcp://192\.0\.2\.1:1: no such device"):
        agent.start_line()
    assert agent.line is None
    agent.close()  # after a partial start: the pipeline stops, the outbox closes
    assert not agent.pipeline.running


def test_each_commit_wakes_the_uplink_running_at_that_moment(tmp_path: Path) -> None:
    seen: list[int] = []
    agent = assemble(_config(tmp_path), line=LineSeam.memory(pair()[0]),
                     listeners=[lambda stored: seen.extend(s.seq for s in stored)])
    first, second = _Waker(), _Waker()
    try:
        agent.start_pipeline()
        agent.uplink = cast(Uplink, first)
        agent.pipeline.emit(Event("agentStarted", utc_timestamp(1e9), {"version": "t",
                                                                      "configHash": "x"}))
        wait_until(lambda: first.wakes == 1, 10, "the first uplink woken")
        assert seen == [1]  # the caller's listener saw the commit
        agent.uplink = cast(Uplink, second)  # a reload replaced the uplink
        agent.pipeline.emit(Event("agentStopping", utc_timestamp(1e9), {"version": "t",
                                                                       "reason": "signal"}))
        wait_until(lambda: second.wakes == 1, 10, "the new uplink woken")
        assert first.wakes == 1 and seen == [1, 2]
        assert agent.machine_status() == {"hostLocked": False, "gameLocked": False}
    finally:
        agent.uplink = None
        agent.close()


def test_actions_need_a_running_line(tmp_path: Path) -> None:
    agent = assemble(_config(tmp_path), line=LineSeam.memory(pair()[0]))
    try:
        with pytest.raises(RuntimeError, match="start the line"):
            agent.start_actions(lambda: {})
    finally:
        agent.close()
