"""The line owner's timing on a fake clock (tests/agent/clocked_line.py): per-machine spacing
from the last byte (SAS §3.6), busy retried at the next slot, link-down after failures
spanning ``poll.link_down_after_s`` in plain and RTE mode, a glitch that is only a retry,
failed reads retried until they succeed, undefined exception codes reported and counted.

Times asserted are virtual (the fake clock's), never wall-clock."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable

import pytest

from agent.config import PollConfig
from agent.observations import ExceptionObserved, LinkDown, LinkUp, MetersRead
from agent.reads import READ_RETRY_MAX_S, read_retry_delays
from emulator.model import PendingException
from emulator.server import LinkOptions
from tests.agent.clocked_line import (
    START,
    ClockedLine,
    ClockedRig,
    gaps_from_last_byte,
)

pytestmark = pytest.mark.timeout(120)

POLL = PollConfig(interval_ms=200, reply_timeout_ms=50, link_down_after=3,
                  link_down_after_s=2.0, snapshot_interval_s=3600.0, clock_check=True)
EPS = 1e-9


def test_every_send_waits_the_interval_after_the_last_byte() -> None:
    rig = ClockedRig(POLL)
    rig.run_until(30)
    gaps = gaps_from_last_byte(rig.line.log)
    assert len(gaps) > 100  # it polled all along (discovery, then general polls)
    assert any(len(rec.data) > 1 for _, rec in gaps)  # long polls too
    short = [(round(gap, 4), rec.data.hex()) for gap, rec in gaps if gap < 0.2 - EPS]
    assert short == []
    # and no slower than needed: an idle machine is polled about every interval
    late = [gap for gap, _ in gaps[-20:] if gap > 0.2 + 0.001]
    assert late == []
    assert rig.owner.skipped_slots == 0 and rig.owner.cycles > 20


def test_a_machine_interval_lowers_the_spacing_for_that_machine() -> None:
    rig = ClockedRig(POLL)
    with pytest.raises(ValueError, match="at least 40 ms"):
        rig.owner.set_machine_interval(1, 20)
    rig.owner.set_machine_interval(1, 40)  # SAS §3.6: LP A0 advertised 40 ms
    assert rig.owner.status()["machines"]["1"]["intervalMs"] == 40
    rig.run_until(10)
    gaps = [gap for gap, _ in gaps_from_last_byte(rig.line.log)]
    assert min(gaps) >= 0.04 - EPS and max(gaps[-20:]) < 0.041
    rig.owner.set_machine_interval(1, None)
    assert rig.owner.status()["machines"]["1"]["intervalMs"] == 200


def test_busy_is_retried_at_the_next_slot_and_then_answered() -> None:
    rig = ClockedRig(POLL)
    # busy for 0.3 s while discovery's first long polls go out
    rig.line.at(0.1, lambda line: line.emulator.set_busy(line.clock.now, 0.3))
    rig.run_until(10)
    log = rig.line.log
    busy_at = [i for i, rec in enumerate(log) if rec.direction == "rx" and rec.data == b"\x01\x00"]
    assert busy_at, "the machine was never busy"
    for i in busy_at:
        poll = log[i - 1].data
        again = next(rec for rec in log[i + 1:] if rec.direction == "tx")
        assert again.data == poll  # the same poll: SAS §3.5 re-send
        assert again.at - log[i].at >= 0.2 - EPS  # at the next slot, not at once
    polls = rig.owner.status()["machines"]["1"]["polls"]
    assert polls.get("busy", 0) == 0  # no poll gave up: busy lasted less than the sends
    assert not rig.seen.of(LinkDown)


@pytest.mark.parametrize("rte", [False, True], ids=["plain", "rte"])
def test_a_dead_machine_is_down_after_the_span(rte: bool) -> None:
    rig = ClockedRig(POLL, rte=rte)
    rig.line.at(10, lambda line: line.emulator.silence(line.clock.now, 100))
    rig.run_until(20)
    [up] = rig.seen.of(LinkUp)
    assert rig.virtual(up.at) < 1
    [down] = rig.seen.of(LinkDown)
    assert down.reason == "no valid reply"
    # failures spanning 2 s: not before, and within one send or so after
    assert 12.0 <= rig.virtual(down.at) <= 12.6
    # while the link is down only general polls go out, and in RTE mode the liveness probe
    # (LP 1A) after each silent one: a machine silent when idle would never come back else
    allowed = {None} | ({0x1A} if rte else set())
    assert {_command(rec.data) for rec in rig.sends(since=13)} <= allowed


@pytest.mark.parametrize("rte", [False, True], ids=["plain", "rte"])
def test_a_glitch_is_a_retry_not_link_down(rte: bool) -> None:
    rig = ClockedRig(POLL, rte=rte)
    rig.line.at(10, lambda line: line.emulator.silence(line.clock.now, 0.5))
    rig.run_until(15)
    assert not rig.seen.of(LinkDown)
    assert rig.owner.status()["machines"]["1"]["polls"]["timeout"] >= 1


def test_a_machine_never_heard_is_down_after_the_span() -> None:
    rig = ClockedRig(POLL)
    rig.line.machine.power_off(rig.clock.now)
    rig.run_until(5)
    [down] = rig.seen.of(LinkDown)
    assert down.reason == "no reply since start"
    assert 2.0 <= rig.virtual(down.at) <= 2.6


def _damage_meter_replies_until(t: float) -> Callable[[ClockedLine], None]:
    def arm(line: ClockedLine) -> None:
        def damage(data: bytes) -> bytes:
            if line.clock.now < START + t and len(data) > 2 and data[1] in (0x6F, 0xAF):
                return data[:-1] + bytes((data[-1] ^ 0xFF,))  # a bad CRC
            return data
        line.reply_filter = damage
    return arm


def _command(send: bytes) -> int | None:
    """The long poll's command byte of a send (behind its sync poll, if any)."""
    frame = send[1:] if send[:1] == b"\x80" else send
    return frame[1] if len(frame) > 1 else None


def test_a_failed_meter_read_is_retried_until_it_succeeds() -> None:
    rig = ClockedRig(POLL)
    clean_at = 12.0
    rig.line.at(0, _damage_meter_replies_until(clean_at))
    rig.run_until(clean_at + 8)
    reads = [r for r in rig.seen.of(MetersRead) if r.reason == "discovery"]
    assert len(reads) == 1
    at = rig.virtual(reads[0].at)
    # issue 12: money reaches the hub within 5 s after the line is clean again
    assert clean_at <= at <= clean_at + 5
    assert 0x00 in reads[0].meters and 0x0C in reads[0].meters
    assert not rig.seen.of(LinkDown)
    # each failed attempt (three sends) is followed by a longer pause, up to the cap
    times = [rec.at - START for rec in rig.sends()
             if rec.at < START + clean_at and _command(rec.data) in (0x6F, 0xAF)]
    pauses = [b - a for a, b in itertools.pairwise(times) if b - a > 0.3]
    assert len(pauses) >= 3 and pauses == sorted(pauses)
    assert all(pause >= delay for pause, delay in zip(pauses, read_retry_delays(),
                                                      strict=False))
    assert list(itertools.islice(read_retry_delays(), 6)) == [0.25, 0.5, 1.0, 1.5, 1.5,
                                                              READ_RETRY_MAX_S]


def test_an_undefined_exception_is_confirmed_reported_and_counted() -> None:
    rig = ClockedRig(POLL)
    rig.line.at(5, lambda line: line.machine.queue.push(PendingException(0x5E, 0x5E, b""),
                                                        line.clock.now))
    rig.run_until(8)
    [undefined] = [o for o in rig.seen.of(ExceptionObserved) if o.code == 0x5E]
    assert undefined.defined is False
    assert rig.owner.status()["machines"]["1"]["badFrames"] == {"undefined_exception": 1}
    # confirmed by the implied NACK: the general poll was sent twice in a row, and answered
    # 5E both times
    log = rig.line.log
    answers = [i for i, rec in enumerate(log) if rec.direction == "rx" and rec.data == b"\x5e"]
    assert len(answers) == 2 and log[answers[0] + 1].data == b"\x81"


def test_an_rte_machine_silent_when_idle_stays_up_and_goes_down_when_dead() -> None:
    """A machine that answers idle RTE general polls with silence, not ``01 FF 00`` (SAS
    §3.4 [unsure]): each silence is a failed general poll, and the liveness probe (LP 1A)
    in the long-poll slot keeps the link up while the machine answers it."""
    rig = ClockedRig(POLL, rte=True, options=LinkOptions(rte=True, rte_idle_event=False))
    rig.line.at(30, lambda line: line.emulator.silence(line.clock.now, 100))
    rig.run_until(40)
    [up] = rig.seen.of(LinkUp)
    [down] = rig.seen.of(LinkDown)
    # the failures began with the last silent general poll before the probe that failed:
    # up to one cycle (three general-poll sends and the probe) before the machine died
    assert 31.0 <= rig.virtual(down.at) <= 33.5
    assert rig.virtual(up.at) < 1
    probes = [rec for rec in rig.sends(since=20) if _command(rec.data) == 0x1A]
    assert len(probes) >= 5  # idle: the probe in every cycle


def test_the_sync_poll_goes_to_the_configured_address() -> None:
    rig = ClockedRig(dataclasses.replace(POLL, sync_address=0x05))
    rig.run_until(3)
    first = [rec.data for rec in rig.line.log[:2]]
    assert first == [b"\x85", b"\x81"]  # SAS §3.3: a poll to another address first
    assert b"\x80" not in {rec.data for rec in rig.line.log if rec.direction == "tx"}
    assert rig.seen.of(LinkUp)


def _identified_features(rig: ClockedRig) -> list[str]:
    from agent.observations import MachineIdentified

    identified = rig.seen.of(MachineIdentified)
    assert identified, "discovery identified the machine"
    return list(identified[-1].info.get("features", ()))


def test_lp_a0_advertising_40_ms_lets_the_line_poll_at_the_fast_interval() -> None:
    rig = ClockedRig(dataclasses.replace(POLL, fast_interval_ms=40))
    rig.run_until(15)
    assert "maxPollingRate40ms" in _identified_features(rig)  # the emulator advertises it
    assert rig.owner.status()["machines"]["1"]["intervalMs"] == 40
    gaps = [gap for gap, _ in gaps_from_last_byte(rig.line.log)]
    assert min(gaps) >= 0.04 - EPS and max(gaps[-20:]) < 0.041


def test_lp_a0_without_the_40_ms_bit_keeps_the_reference_interval() -> None:
    rig = ClockedRig(dataclasses.replace(POLL, fast_interval_ms=40))
    rig.line.machine.config = dataclasses.replace(rig.line.machine.config, polling_40ms=False)
    rig.run_until(15)
    assert "maxPollingRate40ms" not in _identified_features(rig)
    assert rig.owner.status()["machines"]["1"]["intervalMs"] == 200
    assert min(gap for gap, _ in gaps_from_last_byte(rig.line.log)) >= 0.2 - EPS


def test_the_fast_interval_is_off_unless_configured() -> None:
    rig = ClockedRig(POLL)
    rig.run_until(15)
    assert "maxPollingRate40ms" in _identified_features(rig)
    assert rig.owner.status()["machines"]["1"]["intervalMs"] == 200
