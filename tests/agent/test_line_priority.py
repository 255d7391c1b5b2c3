"""The line process's scheduling (``poll.line_priority``, agent/line/child.py): what the
child reports in ``status`` is what the kernel says it runs at, and a refused setting falls
back realtime -> nice -> normal. The fallback runs in a subprocess of its own, so this test
process's scheduling never changes."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from agent.config import ConfigError, PollConfig, parse_config
from agent.line.messages import NICE_AHEAD, RT_PRIORITY
from agent.line.process import LineProcess
from agent.observations import LinkUp
from agent.ops.metrics import AgentMetrics
from tests.agent.e2e_helpers import Collected
from tests.support.waits import wait_until

pytestmark = pytest.mark.timeout(90)


@pytest.mark.parametrize("asked", ["realtime", "nice", "normal"])
def test_status_reports_the_scheduling_the_kernel_applied(pty_url: str, asked: str) -> None:
    base = parse_config({"terminal_id": "T-PRIO", "machines": [{"address": 1}],
                         "serial": {"port": pty_url}, "poll": {"line_priority": asked}})
    config = dataclasses.replace(base, poll=dataclasses.replace(
        base.poll, interval_ms=40, reply_timeout_ms=30))
    seen = Collected()
    metrics = AgentMetrics()
    line = LineProcess(config, seen, metrics=metrics)
    line.start()
    try:
        wait_until(lambda: seen.of(LinkUp), what="the machine link up")
        priority = line.status()["priority"]
        assert line.pid is not None
        policy = os.sched_getscheduler(line.pid)
        nice = os.getpriority(os.PRIO_PROCESS, line.pid)
        ours = os.getpriority(os.PRIO_PROCESS, 0)
        assert priority["asked"] == asked
        if priority["got"] == "realtime":
            assert asked == "realtime"
            assert policy == os.SCHED_RR
            assert os.sched_getparam(line.pid).sched_priority == RT_PRIORITY
        elif priority["got"] == "nice":
            assert asked in ("realtime", "nice")
            assert policy == os.SCHED_OTHER
            assert nice == max(-20, ours - NICE_AHEAD)
        else:
            assert priority["got"] == "normal"
            assert policy == os.SCHED_OTHER and nice == ours
        if asked == "normal":
            assert priority["got"] == "normal"
        # the metric says the same two words (docs/operations.md)
        assert metrics.registry.get_sample_value(
            "slot_agent_line_priority_info", {"asked": asked, "got": priority["got"]}) == 1.0
    finally:
        line.stop()


FALLBACK = """
import json, os, sys
from agent.line import child as line_child

def refuse(*_args):
    raise PermissionError(1, "Operation not permitted")

if "rt" in sys.argv[1]:
    os.sched_setscheduler = refuse
if "nice" in sys.argv[1]:
    os.setpriority = refuse
print(json.dumps(line_child.raise_priority(sys.argv[2]).to_json()))
"""


@pytest.mark.parametrize(("refused", "asked", "got"), [
    ("rt", "realtime", "nice"),
    ("rt+nice", "realtime", "normal"),
    ("nice", "nice", "normal"),
])
def test_a_refused_setting_falls_back(refused: str, asked: str, got: str) -> None:
    out = subprocess.run([sys.executable, "-c", FALLBACK, refused, asked], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    priority = json.loads(out)
    assert priority["asked"] == asked and priority["got"] == got
    if asked == "realtime":
        assert "LimitRTPRIO" in priority["detail"]  # says what the unit lacks
    if got == "normal":
        assert "LimitNICE" in priority["detail"]


def test_the_key_is_checked() -> None:
    assert PollConfig().line_priority == "nice"
    with pytest.raises(ConfigError, match=r"poll\.line_priority"):
        parse_config({"terminal_id": "T", "machines": [{"address": 1}],
                      "poll": {"line_priority": "fast"}})
