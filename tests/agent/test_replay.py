"""``agent.ops.replay`` on the golden capture (tests/vectors/capture_emulator.jsonl, recorded with
``slot-agent capture`` from a daemon polling the emulator) and on hand-made conversations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import sas_protocol as sp
from agent.ops.replay import Replay, replay
from api.capture import (
    Capture,
    CaptureFileError,
    Frame,
    build_header,
    capture_lines,
    parse_capture,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
GOLDEN = VECTORS / "capture_emulator.jsonl"


def _golden() -> Capture:
    with GOLDEN.open() as f:
        return parse_capture(f, str(GOLDEN))


def _events(capture: Capture) -> list[dict[str, Any]]:
    result = replay(capture)
    return [{"name": e.name, "timestamp": e.timestamp, "data": json.loads(json.dumps(e.data))}
            for e in result.events]


def test_the_golden_capture_replays_to_the_golden_events() -> None:
    expected = [json.loads(line) for line in
                (VECTORS / "capture_emulator.events.jsonl").read_text().splitlines()]
    assert _events(_golden()) == expected


def test_replayed_bets_add_up_to_the_coin_in_meter_the_machine_sent() -> None:
    capture = _golden()
    events = _events(capture)
    first = next(e for e in events if e["name"] == "meterSnapshot")
    start = first["data"]["meters"]["coinIn"]
    # the last coin-in the machine reported, read from the raw bytes with sas_protocol alone
    last = None
    for frame in capture.frames:
        if frame.direction == "rx" and len(frame.data) > 4:
            try:
                reply = sp.decode_reply_frame(frame.data)
            except sp.RemoteProtocolError:
                continue
            if isinstance(reply, sp.MeterReply) and 0x00 in reply.meters:
                last = reply.meters[0x00]
    bets = sum(int(e["data"]["amount"]) for e in events
               if e["name"] == "betPlaced")
    assert last is not None and bets > 0
    assert bets == last - start


def _capture(frames: list[tuple[str, str]], *, up: bool = False) -> Capture:
    header = build_header(terminal_id="T-9", port="pty:x", addresses=[1], sync_address=0,
                          started_at=1_700_000_000.0, seconds=1.0, agent_version="t")
    if up:
        header["machines"] = {"1": {"linkUp": True, "identity": {}}}
    lines = capture_lines(header, [Frame(i * 0.04, d, 1, bytes.fromhex(h),
                                         (0,) if d == "tx" else ())
                                   for i, (d, h) in enumerate(frames)])
    return parse_capture(list(lines))


def test_a_machine_that_falls_silent_goes_down_after_link_down_after_polls() -> None:
    answered = [("tx", "80"), ("tx", "81"), ("rx", "00")]
    silent = [("tx", "81")] * 12  # no reply: each reply window closes at the next poll
    events = _events(_capture(answered + silent))
    assert [e["name"] for e in events] == ["machineLinkUp", "machineLinkDown"]
    assert events[0]["timestamp"] == "2023-11-14T22:13:20.080Z"


def test_exceptions_and_a_retried_poll_are_read_once() -> None:
    poll = sp.SasVersionRequest().encode(1).hex()
    reply = sp.SasVersionReply("602", "SN1").encode(1).hex()
    # slot door opened, confirmed by a second general poll (an implied NACK, SAS §3.4)
    frames = [("tx", "81"), ("rx", "11"), ("tx", "81"), ("rx", "11"),
              ("tx", poll), ("tx", "80"), ("tx", poll), ("rx", reply)]  # a timeout, a retry
    capture = _capture(frames, up=True)
    result = replay(capture)
    names = [e.name for e in result.events]
    assert names.count("machineLinkUp") == 1
    assert "doorOpened" in names
    assert result.counters["syncPolls"] == 1


def test_a_file_that_is_not_a_capture_is_refused_with_its_line() -> None:
    with pytest.raises(CaptureFileError, match="not a slot-agent capture"):
        parse_capture(['{"hello": 1}\n'], "x.jsonl")
    header = json.dumps({"format": "slot-agent-capture", "version": 1})
    good = json.dumps({"format": "slot-agent-capture", "version": 1,
                       "startedAt": "2026-01-01T00:00:00.000Z"})
    with pytest.raises(CaptureFileError, match=r"x.jsonl:2: bad frame"):
        parse_capture([good + "\n", '{"t": 0, "dir": "up", "address": 1, "hex": "81"}\n'],
                      "x.jsonl")
    with pytest.raises(CaptureFileError, match="x:1: startedAt None is not an ISO 8601"):
        parse_capture([header], "x")
    with pytest.raises(CaptureFileError, match="version 9"):
        parse_capture([json.dumps({"format": "slot-agent-capture", "version": 9})], "x")


def test_the_capture_format_printed_in_operations_md_parses_and_replays() -> None:
    """The header and frame examples of docs/operations.md, as printed, are a capture."""
    import re

    doc = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    start = doc.index("## Field captures")
    blocks = re.findall(r"```json\n(.*?)```", doc[start:doc.index("\n## ", start + 5)], re.S)
    header = json.loads(blocks[0])
    frames = blocks[1].strip().splitlines()
    capture = parse_capture([json.dumps(header), *frames], "operations.md")
    assert capture.header["machines"]["1"]["identity"]["denomination"] == 1
    assert [f.direction for f in capture.frames] == ["tx", "rx"]
    assert capture.frames[0].wakeup == (0,) and capture.frames[1].data == b"\x7e"
    names = [e.name for e in replay(capture).events]
    assert names[:2] == ["machineLinkUp", "machineIdentified"]


def test_handpay_ticket_and_clock_replies_are_interpreted_as_the_line_owner_does() -> None:
    """LP 1B, LP 4D and LP 7E replies become the observations the line owner makes of them
    (agent/line/replies.py), so a captured handpay or ticket replays to its event."""
    handpay_poll = sp.HandpayInfoRequest().encode(1).hex()
    # A progressive level (01): the amount is in cents, no denomination needed (SAS §3.9).
    handpay = sp.HandpayInfoReply(progressive_group=1, level=0x01, amount=360_000,
                                  partial_pay=0, reset_id=0).encode(1).hex()
    ticket_poll = sp.EnhancedValidationRequest(0).encode(1).hex()
    ticket = sp.EnhancedValidationReply(
        validation_type=0, index=1, date=12062026, time=123000,
        validation_number=1234567890123456, amount=2_500, ticket_number=7,
        validation_system_id=0, expiration=0, pool_id=0).encode(1).hex()
    clock_poll = sp.DateTimeRequest().encode(1).hex()
    clock = sp.DateTimeReply(month=12, day=6, year=2026, hour=12, minute=30,
                             second=0).encode(1).hex()
    frames = [("tx", "81"), ("rx", "51"), ("tx", "81"), ("rx", "51"),  # handpay pending
              ("tx", handpay_poll), ("rx", handpay),
              ("tx", ticket_poll), ("rx", ticket),
              ("tx", clock_poll), ("rx", clock)]
    runner = Replay(_capture(frames, up=True))
    events = list(runner.run())
    by_name = {e.name: e for e in events}
    assert by_name["handpayPending"].data["amount"] == 360_000
    assert by_name["handpayPending"].data["kind"] == "progressive"
    # The ticket waits in the ledger for its ticket-out meter movement (docs/events.md).
    (waiting,) = runner.state.machine(1).tickets_waiting
    assert waiting["validationNumber"] == "1234567890123456" and waiting["amount"] == 2_500
    assert by_name["clockSkew"].data["machineTime"] == "2026-12-06T12:30:00.000Z"
    assert runner.result.counters["repliesNotInterpreted"] == 0


def test_a_game_lock_replays_to_game_locked_then_game_unlocked() -> None:
    """6F, then LP 74 replies (agent/line/replies.py): locked, then not locked."""
    poll = sp.AftLockStatusRequest().encode(1).hex()
    assert poll == "0174ff0000001af9"  # the reference's golden vector (§3.9)

    def status(lock: int) -> str:
        return sp.AftLockStatusReply(1, lock, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0).encode(1).hex()

    frames = [("tx", "81"), ("rx", "6f"), ("tx", "81"), ("rx", "6f"),  # game locked
              ("tx", poll), ("rx", status(0x00)), ("tx", "80"), ("tx", poll),
              ("rx", status(0xFF))]
    runner = Replay(_capture(frames, up=True))
    names = [e.name for e in runner.run()]
    assert [n for n in names if n != "machineLinkUp"] == [
        "machineException", "gameLocked", "gameUnlocked"]
    assert runner.result.counters["repliesNotInterpreted"] == 0
