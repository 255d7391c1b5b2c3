"""Machine profiles (emulator.profiles) as a host sees them on the wire."""

from __future__ import annotations

import dataclasses
import math

import pytest
import yaml

import emulator.server
from drivers.memory import pair
from emulator.exceptions_queue import PendingException
from emulator.model import Machine, Ticket
from emulator.profiles import (
    LEGACY_IGNORED_POLLS,
    PROFILES,
    ProfileError,
    link_options,
    parse_profile_names,
)
from emulator.scenario import ScenarioError, ScenarioRunner, load_scenario, parse_scenario
from emulator.server import Emulator, LinkOptions
from sas_protocol.crc import append_crc, crc_ok
from sas_protocol.messages.requests import (
    EnhancedValidationRequest,
    ExtendedMetersRequest,
    MetersRequest,
    RealTimeReportingRequest,
    SelectedMetersRequest,
)
from sas_protocol.messages.responses import Ack
from sas_protocol.rte import decode_rte_frame

GP = b"\x81"
SYNC = b"\x80"


class Line:
    """A raw host on a memory line; every exchange steps the emulator at ``now``."""

    def __init__(self, options: LinkOptions, machine: Machine | None = None) -> None:
        self.host, end = pair()
        self.machine = machine or Machine()
        self.emu = Emulator(self.machine, end, address=1, options=options, now=0.0)
        self.now = 0.0
        self.send(SYNC)

    def send(self, frame: bytes, dt: float = 0.01) -> bytes:
        self.now += dt
        self.host.write(frame, wakeup=True)
        self.emu.step(self.now)
        return bytes(w.value for w in self.host.read(deadline=0.0))

    def gp(self) -> bytes:
        """A general poll after a poll to address 0 (which acknowledges the last reply)."""
        self.send(SYNC)
        return self.send(GP)


#: one frame per long poll the legacy profile ignores; built by hand for those whose
#: decoder may not exist yet (a shorter decoder ignores the trailing bytes as stray body)
IGNORED_FRAMES = {
    0x0E: RealTimeReportingRequest(True).encode(1),
    0x2F: SelectedMetersRequest(0, (0x00, 0x01)).encode(1),
    0x3D: b"\x01\x3d",
    0x48: b"\x01\x48",
    0x6F: ExtendedMetersRequest(0, (0x00, 0x01), alternate=False).encode(1),
    0xAF: ExtendedMetersRequest(0, (0x00, 0x01), alternate=True).encode(1),
    0xA0: append_crc(b"\x01\xa0\x00\x00"),
    0xB0: append_crc(b"\x01\xb0\x02\x00\x56"),
    0xB1: b"\x01\xb1",
    0xB2: b"\x01\xb2",
}


def test_every_ignored_poll_has_a_frame_here() -> None:
    assert set(IGNORED_FRAMES) == set(LEGACY_IGNORED_POLLS)


def test_legacy_gives_no_reply_to_2f_6f_af_and_its_other_ignored_polls() -> None:
    line = Line(link_options("legacy"))
    for code, frame in IGNORED_FRAMES.items():
        assert line.send(frame) == b"", f"LP {code:02X} answered"
        assert line.send(frame) == b"", f"LP {code:02X} answered on the re-send"
        assert line.emu.stats.unsupported[code] == 2
    # what it does answer: the legacy meter polls and LP 4D
    reply = line.send(MetersRequest(0x1C).encode(1))
    assert reply[:2] == b"\x01\x1c" and crc_ok(reply)
    reply = line.send(EnhancedValidationRequest(0x00).encode(1))
    assert reply[:2] == b"\x01\x4d" and crc_ok(reply)
    assert not line.machine.rte_enabled  # LP 0E was not acted on either


def test_the_ignore_list_comes_before_the_responder(monkeypatch: pytest.MonkeyPatch) -> None:
    """A poll the responder learns later is ignored by legacy just by being in the list:
    with a responder that ACKs everything, legacy still answers none of them, modern all."""
    monkeypatch.setattr(emulator.server, "answer", lambda machine, request, now: Ack())
    legacy, modern = Line(link_options("legacy")), Line(link_options("modern"))
    for code, frame in IGNORED_FRAMES.items():
        assert legacy.send(frame) == b"", f"legacy answered LP {code:02X}"
        assert modern.send(frame) == b"\x01", f"modern did not ACK LP {code:02X}"
        modern.send(SYNC)  # acknowledge, so the next frame is not a re-send


def test_legacy_reports_bills_by_exception_and_meters_only() -> None:
    line = Line(link_options("legacy"))
    line.machine.insert_bill(0.0, 20)
    line.machine.insert_bill(0.0, 5)
    assert line.gp() == b"\x4a"  # $20 accepted (reference §3.11, non-RTE)
    assert line.gp() == b"\x48"  # $5
    assert line.send(b"\x01\x48") == b""  # no last-bill poll on an old machine
    reply = line.send(MetersRequest(0x1C).encode(1))
    # LP 1C: coin in, coin out, total drop (credits at 1 cent: 2500)
    assert reply[10:14] == bytes.fromhex("00002500")
    reply = line.send(b"\x01\x20")  # LP 20: total bill value in whole dollars
    assert crc_ok(reply) and reply[:6] == bytes.fromhex("012000000025")
    reply = line.send(b"\x01\x1e")  # LP 1E: counts of $1, $5, $10, $20, $50, $100 bills
    assert crc_ok(reply) and reply[2:26] == bytes.fromhex(
        "00000000" "00000001" "00000000" "00000001" "00000000" "00000000")


def test_legacy_reports_a_ticket_through_4d() -> None:
    line = Line(link_options("legacy"))
    line.machine.insert_bill(0.0, 10)
    ticket = line.machine.cash_out(0.0)
    assert isinstance(ticket, Ticket)
    assert line.gp() == b"\x3d"  # cash-out ticket printed: a priority exception
    assert line.send(b"\x01\x3d") == b""  # but no LP 3D on an old machine
    reply = line.send(EnhancedValidationRequest(0x00).encode(1))
    assert crc_ok(reply) and reply[:2] == b"\x01\x4d"
    assert bytes.fromhex(f"{ticket.validation_number:016d}") in reply
    assert line.gp() == b"\x49"  # then the queued ones: the $10 bill, cash-out pressed
    assert line.gp() == b"\x66"


def test_rte_profile_answers_in_real_time_events() -> None:
    line = Line(link_options("rte"))
    assert line.machine.rte_enabled
    assert decode_rte_frame(line.gp(), address=1).event_code == 0x00  # idle: addr FF 00 CRC
    line.machine.insert_bill(0.0, 20)
    line.send(SYNC)
    # a long poll is answered by the pending event in its place (SAS §12)
    event = decode_rte_frame(line.send(MetersRequest(0x1A).encode(1)), address=1)
    assert event.event_code == 0x4F


def test_busy_share_one_makes_every_long_poll_busy_and_general_polls_answered() -> None:
    line = Line(link_options("busy", busy_share=1.0, busy_seconds=0.0))
    for _ in range(5):
        assert line.send(MetersRequest(0x1A).encode(1)) == b"\x01\x00"  # §3.5: addr 00
        assert line.gp() == b"\x00"
    assert line.emu.stats.busy == 5


def test_a_busy_period_lasts_its_duration_then_the_poll_is_answered() -> None:
    line = Line(link_options("busy", busy_share=1.0, busy_seconds=0.5))
    poll = MetersRequest(0x1A).encode(1)
    assert line.send(poll) == b"\x01\x00"  # starts a 0.5 s busy period
    line.emu.options = link_options("busy", busy_share=0.0, busy_seconds=0.5)
    assert line.send(poll, dt=0.2) == b"\x01\x00"  # the host's retry 200 ms later: still busy
    assert line.send(poll, dt=0.2) == b"\x01\x00"
    reply = line.send(poll, dt=0.2)  # 0.6 s after the start: answered
    assert reply[:2] == b"\x01\x1a" and crc_ok(reply)


def binomial_bounds(n: int, p: float, sigmas: float = 5.0) -> tuple[float, float]:
    spread = sigmas * math.sqrt(n * p * (1 - p))
    return n * p - spread, n * p + spread


def test_busy_share_is_about_the_set_share() -> None:
    line = Line(link_options("busy", busy_share=0.2, busy_seconds=0.0))
    polls = 2000
    busy = 0
    for i in range(polls):
        # alternate two polls so that no poll is a re-send of the one before
        reply = line.send(MetersRequest(0x1A if i % 2 else 0x11).encode(1))
        busy += reply == b"\x01\x00"
    low, high = binomial_bounds(polls, 0.2)
    assert low <= busy <= high
    assert line.emu.stats.busy == busy


def _replies(options: LinkOptions, polls: int) -> list[bytes]:
    line = Line(options)
    out = []
    for i in range(polls):
        out.append(line.send(MetersRequest(0x1C if i % 2 else 0x19).encode(1)))
    return out


def test_noisy_corrupts_reply_bytes_at_about_the_set_rate_reproducibly() -> None:
    rate, polls = 0.03, 400
    clean = _replies(link_options("modern"), polls)
    # received bytes stay clean here, so both machines hear the same polls
    noisy_options = dataclasses.replace(
        link_options("noisy", LinkOptions(seed=7), noise=rate), corrupt_received=0.0)
    noisy = _replies(noisy_options, polls)
    total = sum(len(r) for r in clean)
    differing = sum(a != b for c, n in zip(clean, noisy, strict=True)
                    for a, b in zip(c, n, strict=True))
    low, high = binomial_bounds(total, rate)
    assert low <= differing <= high
    assert noisy == _replies(noisy_options, polls)  # same seed, same bytes


def test_noisy_corrupts_received_bytes_at_about_the_set_rate() -> None:
    rate = 0.05
    line = Line(dataclasses.replace(link_options("noisy", noise=rate), corrupt=0.0))
    sent = 0
    nacks = 0
    for i in range(1000):
        frame = SelectedMetersRequest(0, (0x00, 0x01 + i % 2)).encode(1)
        reply = line.send(frame)
        sent += len(frame)
        nacks += reply == b"\x81"  # a body byte flipped: bad CRC, NACKed (§3.5)
    low, high = binomial_bounds(sent, rate)
    assert low <= line.emu.stats.corrupted_received <= high
    assert nacks > 0


def test_profiles_compose_and_settings_override() -> None:
    options = link_options("legacy,noisy,busy", busy_share=0.5, noise=0.1)
    assert options.profile == "legacy,noisy,busy"
    assert options.unsupported_polls >= LEGACY_IGNORED_POLLS
    assert (options.busy_share, options.corrupt, options.corrupt_received) == (0.5, 0.1, 0.1)
    assert link_options("rte").rte and not link_options("legacy").rte
    base = LinkOptions(unsupported_polls=frozenset({0x1F}))
    assert 0x1F in link_options("legacy", base).unsupported_polls
    assert set(PROFILES) == {"modern", "legacy", "legacy-std", "rte", "busy", "noisy"}


@pytest.mark.parametrize("names, message", [
    ("vintage", "unknown profile 'vintage'"),
])
def test_an_unknown_profile_is_named(names: str, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        parse_profile_names(names)


def test_bad_rates_name_their_key() -> None:
    with pytest.raises(ProfileError, match="noise"):
        link_options("noisy", noise=1.5)
    with pytest.raises(ProfileError, match="busy_share"):
        link_options("busy", busy_share=-0.1)
    for seconds in (-1.0, math.nan, math.inf):  # nan once compared as neither: accepted
        with pytest.raises(ProfileError, match="busy_seconds"):
            link_options("busy", busy_seconds=seconds)


def test_a_scenario_selects_profiles_and_settings() -> None:
    scenario = parse_scenario(yaml.safe_load("""
options: {profile: [legacy, busy], busy_share: 10%, busy_seconds: 1.5, noise: 0.02}
steps: []
"""), "s")
    assert scenario.options.profile == ("legacy", "busy")
    assert scenario.options.busy_share == pytest.approx(0.1)
    assert scenario.options.busy_seconds == 1.5
    assert scenario.options.noise == 0.02
    with pytest.raises(ScenarioError, match=r"s\.options\.profile: unknown profile 'old'"):
        parse_scenario({"options": {"profile": "old"}}, "s")



def test_the_bundled_legacy_floor_scenario_selects_the_legacy_profile() -> None:
    scenario = load_scenario("legacy-floor")
    assert scenario.options.profile == ("legacy",)
    machine = Machine()
    runner = ScenarioRunner(scenario, machine, start=0.0, seed=1)
    runner.advance(60.0)
    # $125 in bills and a $12.50 ticket, five 2-credit games lost: a $137.40 ticket out
    assert machine.tickets[0].amount_cents == 12_500 + 1_250 - 10


def test_an_exception_byte_garbled_on_its_last_sending_is_named_when_acknowledged() -> None:
    """The answer to a general poll is one byte with no CRC (SAS §3.4): when the copy the
    host last got was flipped by noise and the host moves on, the machine drops an exception
    no host could have read (``stats.noise_misread``); one re-sent clean is not named."""
    line = Line(dataclasses.replace(link_options("modern"), corrupt=1.0))  # every byte out
    line.machine.queue.push(PendingException(0x71, 0x71, b""), line.now)
    garbled = line.gp()
    assert len(garbled) == 1 and garbled != b"\x71"
    line.send(SYNC)  # the host moves on: an implied ACK (SAS §3.5)
    assert line.emu.stats.noise_misread == [(0x71, garbled[0])]
    assert line.emu.stats.noise_acknowledged == []

    line.machine.queue.push(PendingException(0x72, 0x72, b""), line.now)
    assert line.gp() != b"\x72"
    line.emu.set_corruption(0.0)
    assert line.send(GP) == b"\x72"  # the same poll again: an implied NACK, re-sent clean
    line.send(SYNC)
    assert line.emu.stats.noise_misread == [(0x71, garbled[0])]
