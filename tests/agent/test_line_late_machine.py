"""A machine that answers after the host's reply window closed (issue 17: door events lost).

SAS §2.3.1 (reference §3.6) gives a machine 20 ms to start its answer, and the host may time
out after that; the line owner waits ``poll.reply_timeout_ms``. A machine slower than that
still answers every copy of a general poll, one copy late: each copy gets the same one-byte
answer (SAS §3.5, the same poll again is an implied NACK). Thrown away, those late answers
made every general poll fail, and the sync poll that follows a failed poll is an implied
ACK: the machine dropped its door code unread. The line owner now keeps a late answer to a
non-RTE general poll for the re-send's window, so the code is read (and confirmed) instead.

On a fake clock (tests/agent/clocked_line.py); times are virtual."""

from __future__ import annotations

import pytest

from agent.config import MachineConfig, PollConfig
from agent.line.owner import LineOwner
from agent.line.reply_window import MAX_WINDOW_S
from agent.observations import ExceptionObserved, LinkDown
from drivers.memory import pair
from emulator.model import Door
from tests.agent.clocked_line import ClockedLine, ClockedRig
from tests.agent.e2e_helpers import FAST_POLL, Collected
from tests.support.waits import wait_until

pytestmark = pytest.mark.timeout(120)

BELLY_OPENED, BELLY_CLOSED = Door.BELLY.value


def _move_doors(rig: ClockedRig, times: list[float]) -> None:
    for i, t in enumerate(times):
        def move(line: ClockedLine, opened: bool = i % 2 == 0) -> None:
            if opened:
                line.machine.open_door(line.clock.now, Door.BELLY)
            else:
                line.machine.close_door(line.clock.now, Door.BELLY)
        rig.line.at(t, move)


@pytest.mark.parametrize(("interval_ms", "window_ms", "delay_ms"), [
    (40, 30, 35),  # the latency bench's settings, a machine 5 ms beyond the window
    (200, 50, 60),  # the defaults, a machine 10 ms beyond
])
def test_a_machine_answering_after_the_window_loses_no_door_code(
        interval_ms: int, window_ms: int, delay_ms: int) -> None:
    poll = PollConfig(interval_ms=interval_ms, reply_timeout_ms=window_ms, link_down_after=3,
                      link_down_after_s=2.0, snapshot_interval_s=3600.0)
    rig = ClockedRig(poll)
    rig.line.at(3, lambda line: setattr(line, "reply_delay", delay_ms / 1000.0))
    moves = [5.0 + 1.5 * i for i in range(10)]
    _move_doors(rig, moves)
    rig.run_until(moves[-1] + 5)
    doors = [o.code for o in rig.seen.of(ExceptionObserved)
             if o.code in (BELLY_OPENED, BELLY_CLOSED)]
    assert doors == [BELLY_OPENED, BELLY_CLOSED] * 5
    # the machine's queue is empty: every code was acknowledged after it was read
    assert rig.line.machine.queue.queued() == []
    assert rig.seen.of(LinkDown) == []  # late, but answering: the link stays up


def test_a_late_machine_gives_no_phantom_and_no_misframed_reply() -> None:
    """Late answers are kept only between the copies of a general poll: nothing else is
    taken from a wrong window. A machine 10 ms beyond the window from its first poll on
    (discovery's long polls, the idle general polls): no bad frame but the late bytes
    thrown away, no exception it did not raise, and the link comes up."""
    poll = PollConfig(interval_ms=200, reply_timeout_ms=50, snapshot_interval_s=3600.0)
    rig = ClockedRig(poll)
    rig.line.reply_delay = 0.06
    rig.run_until(15)
    status = rig.owner.status()["machines"]["1"]
    assert set(status["badFrames"]) == {"late"} and status["linkUp"] is True
    assert rig.seen.of(ExceptionObserved) == []


def test_a_late_machine_widens_its_window_and_has_its_long_polls_read(
        caplog: pytest.LogCaptureFixture) -> None:
    """Thrown away unseen, the late answers to every long poll looked like silence: each
    poll was remembered as unsupported (SAS §3.5) and the machine was never identified nor
    its meters read. The late bytes are counted, widen the machine's window (50 -> 100 ms)
    and tell the host the machine answered; discovery then reads everything."""
    poll = PollConfig(interval_ms=200, reply_timeout_ms=50, snapshot_interval_s=3600.0)
    rig = ClockedRig(poll)
    rig.line.reply_delay = 0.06
    with caplog.at_level("WARNING", logger="agent.line.owner"):
        rig.run_until(30)
    status = rig.owner.status()["machines"]["1"]
    assert status["ignoredPolls"] == []
    assert status["machine"]["serialNumber"] == rig.line.machine.config.serial_number
    assert status["lastMeters"]
    assert status["replyWindowMs"] == 100
    assert status["badFrames"]["late"] >= 1
    assert "machine 1 answers after its reply window: widened from 50 to 100 ms" in caplog.text


def test_a_window_grows_no_wider_than_the_longest_reply_and_nothing_is_unsupported() -> None:
    """A machine 300 ms late: its window stops at 250 ms (MAX_WINDOW_S), its long polls
    fail, but none is remembered as unsupported: it answers them, too late to be read."""
    poll = PollConfig(interval_ms=200, reply_timeout_ms=50, snapshot_interval_s=3600.0)
    rig = ClockedRig(poll)
    rig.line.reply_delay = 0.3
    rig.run_until(30)
    status = rig.owner.status()["machines"]["1"]
    assert status["replyWindowMs"] == round(MAX_WINDOW_S * 1000)
    assert status["ignoredPolls"] == []


@pytest.mark.parametrize(("wakeup", "widened"), [
    (False, True),  # a machine's answer (no wakeup bit): late, the window doubles
    (True, False),  # a chirp (SAS §4.2: an address byte with the wakeup bit), maybe another
                    # machine's on a shared line: thrown away, no sign of this one's lateness
])
def test_only_a_late_answer_widens_the_window_not_a_chirp(wakeup: bool, widened: bool) -> None:
    host, device = pair()
    device.write(b"\x07", wakeup=wakeup)  # waiting before the first send
    seen = Collected()
    line = LineOwner(host, [MachineConfig(1)], FAST_POLL, seen)
    line.start()
    try:
        wait_until(lambda: line.cycles >= 2, what="two poll cycles")
        status = line.status()["machines"]["1"]
    finally:
        line.stop()
    window = FAST_POLL.reply_timeout_ms * (2 if widened else 1)
    assert status["replyWindowMs"] == window
    assert ("late" in status["badFrames"]) is widened
