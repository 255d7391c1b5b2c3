"""The line owner's capture buffer (``slot-agent capture``): in process, then through the
line process and its child, as the daemon uses them."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.line.capture import CaptureError
from api.capture import build_header, capture_lines, frames_from_line, parse_capture
from tests.agent.e2e_helpers import Rig
from tests.support.waits import wait_until

pytestmark = pytest.mark.timeout(60)


def test_a_capture_holds_every_frame_with_direction_and_wakeup(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    try:
        rig.wait_ready()
        assert rig.line.stop_capture() == {"frames": [], "dropped": 0}  # none ran: nothing kept
        rig.line.start_capture()
        with pytest.raises(CaptureError):
            rig.line.start_capture()  # one capture at a time
        start = rig.line.cycles
        wait_until(lambda: rig.line.cycles >= start + 5)
        taken = rig.line.stop_capture()
        after = rig.line.cycles
        wait_until(lambda: rig.line.cycles >= after + 2)
        assert rig.line.stop_capture()["frames"] == []  # stopped: the owner keeps nothing
    finally:
        rig.close()
    frames = taken["frames"]
    assert taken["dropped"] == 0
    polls = [f for f in frames if f["dir"] == "tx" and f["hex"] == "81"]
    assert len(polls) >= 4 and all(f["wakeup"] == [0] for f in polls)
    replies = [f for f in frames if f["dir"] == "rx"]
    assert replies and all(f["wakeup"] == [] for f in replies)
    assert all(f["address"] == 1 for f in frames)
    times = [f["at"] for f in frames]
    assert times == sorted(times)
    # the frames make a capture file that reads back unchanged
    header = build_header(terminal_id="T", port="memory", addresses=[1], sync_address=0,
                          started_at=times[0], seconds=1.0, agent_version="t")
    lines = list(capture_lines(header, frames_from_line(frames, times[0])))
    capture = parse_capture(lines)
    assert [f.data.hex().upper() for f in capture.frames] == [f["hex"] for f in frames]


def test_the_capture_limit_counts_what_it_drops(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    try:
        rig.wait_ready()
        rig.line.start_capture(limit=3)
        start = rig.line.cycles
        wait_until(lambda: rig.line.cycles >= start + 4)
        taken = rig.line.stop_capture()
    finally:
        rig.close()
    assert len(taken["frames"]) == 3 and taken["dropped"] > 0
