"""Hostile input on the SAS side: the decoders and both state machines fed structured garbage.

Random bytes mostly fail the CRC and stop at the first check; these strategies build frames
that pass the CRC and the length rules, so the body decoders are reached with every value.
What must hold (design rule: decoders raise only the protocol's own errors):

- a decoder returns a message or raises :class:`sas_protocol.RemoteProtocolError`;
- :class:`HostProtocol` and :class:`MachineProtocol` never raise on received bytes: bad bytes
  become ``FrameRejected`` / ``PollRejected`` events;
- a reply whose CRC does not verify never becomes a ``ReplyReceived`` (no phantom data), and
  the poll ends in a retry or a ``PollFailed``, never a wedged state machine.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sas_protocol as sp
from sas_protocol.messages.requests import _NO_DATA
from sas_protocol.messages.responses import REPLY_TYPES, is_variable_reply
from tests.reliability.reliability_kit import hypothesis_examples

ADDRESS = st.integers(1, 127)
BYTE = st.integers(0, 255)

#: Long polls whose replies carry data, plus ACK-only and meter polls.
POLLS: list[Any] = [
    sp.GeneralPoll(), sp.LockRequest(), sp.UnlockRequest(), sp.SasVersionRequest(),
    sp.MachineInfoRequest(), sp.HandpayInfoRequest(), sp.LastBillRequest(),
    sp.GameCountRequest(), sp.SelectedGameRequest(), sp.EnabledGamesRequest(),
    sp.DateTimeRequest(), sp.RemoteHandpayResetRequest(), sp.RealTimeReportingRequest(True),
    sp.SelectedMetersRequest(0, (0x00, 0x01, 0x0C)),
    sp.ExtendedMetersRequest(0, (0x00, 0x01, 0x02, 0x0D)),
    sp.ExtendedMetersRequest(1, (0x05,), alternate=True),
    sp.GameConfigurationRequest(1), sp.ExtendedGameInfoRequest(1),
    sp.EnhancedValidationRequest(0), sp.AftLockStatusRequest(0, 0, 0),
    *[sp.MetersRequest(c) for c in sorted(sp.LEGACY_METER_POLLS)],
    sp.EnabledFeaturesRequest(0), sp.CashoutTicketRequest(), sp.GameMetersRequest(1),
    sp.GameEnableRequest(1, True), sp.DelayGameRequest(0), sp.CurrentDenominationRequest(),
    sp.EnabledDenominationsRequest(), sp.MultiDenomRequest(1, sp.MetersRequest(0x11)),
    sp.MultiDenomRequest(1, sp.GameEnableRequest(1, True)),
    sp.MultiDenomRequest(0, sp.SelectedMetersRequest(0, (0x00, 0x01))),
]
LONG_POLLS = [p for p in POLLS if not isinstance(p, sp.GeneralPoll)]
DATA_POLLS = [p for p in LONG_POLLS if p.REPLY_LENGTH != 1]
REPLY_COMMANDS = sorted(
    set(REPLY_TYPES) | {0x2F, 0x52, 0x6F, 0xAF, 0xB0} | set(sp.LEGACY_METER_POLLS))


@st.composite
def crc_valid_reply(draw: st.DrawFn, address: int | None = None, command: int | None = None,
                    ) -> bytes:
    """``addr cmd [len] body CRC`` with a good CRC and a consistent length byte."""
    addr = draw(ADDRESS) if address is None else address
    cmd = draw(st.sampled_from(REPLY_COMMANDS)) if command is None else command
    if is_variable_reply(cmd):
        body = draw(st.binary(max_size=60))
        head = bytes((addr, cmd, len(body)))
    else:
        body = draw(st.binary(max_size=40))
        head = bytes((addr, cmd))
    return sp.append_crc(head + body)


@st.composite
def crc_valid_request(draw: st.DrawFn, address: st.SearchStrategy[int] = ADDRESS) -> bytes:
    """A long-poll frame of a known or unknown command, with its CRC."""
    addr = draw(address)
    cmd = draw(st.one_of(st.sampled_from(sorted(_NO_DATA)), BYTE))
    body = draw(st.binary(max_size=30))
    return sp.append_crc(bytes((addr, cmd)) + body)


@st.composite
def rte_frame(draw: st.DrawFn) -> bytes:
    addr = draw(ADDRESS)
    code = draw(st.one_of(st.sampled_from(sorted(sp.RTE_LAYOUTS)), BYTE))
    return sp.append_crc(bytes((addr, 0xFF, code)) + draw(st.binary(max_size=20)))


def flip_one_bit(frame: bytes, position: int) -> bytes:
    index, bit = divmod(position % (len(frame) * 8), 8)
    out = bytearray(frame)
    out[index] ^= 1 << bit
    return bytes(out)


@settings(max_examples=hypothesis_examples(400), suppress_health_check=[HealthCheck.too_slow])
@given(frame=st.one_of(crc_valid_reply(), crc_valid_request(), rte_frame(), st.binary(max_size=90)),
       poll=st.sampled_from(POLLS), address=ADDRESS)
def test_decoders_reach_the_body_and_raise_only_protocol_errors(
    frame: bytes, poll: Any, address: int
) -> None:
    decoders = (
        sp.decode_request,
        sp.decode_reply_frame,
        sp.decode_rte_frame,
        sp.describe_frame,
        lambda d: sp.decode_reply(poll, d, address=address),
        lambda d: sp.decode_reply(poll, d, address=d[0] if d and 1 <= d[0] <= 127 else 1),
    )
    for decode in decoders:
        try:
            decode(frame)
        except sp.RemoteProtocolError as exc:
            assert isinstance(exc.raw, bytes)  # the bad bytes travel with the error for logs


@settings(max_examples=hypothesis_examples(200))
@given(text=st.text(max_size=200))
def test_parse_hex_of_any_text_raises_only_protocol_errors(text: str) -> None:
    try:
        data = sp.parse_hex(text)
    except (sp.SasProtocolError, ValueError):
        return
    assert isinstance(data, bytes)


@st.composite
def host_script(draw: st.DrawFn) -> list[tuple[Any, list[bytes]]]:
    """Polls, each answered by chunks of garbage, good-CRC frames or nothing (timeouts)."""
    steps = []
    for _ in range(draw(st.integers(1, 8))):
        poll = draw(st.sampled_from(POLLS))
        chunks = draw(st.lists(st.one_of(
            st.binary(min_size=1, max_size=30),
            crc_valid_reply(address=1),
            rte_frame(),
            st.just(b""),  # the reply window closed with nothing
        ), max_size=6))
        steps.append((poll, chunks))
    return steps


HOST_EVENTS = (sp.ReplyReceived, sp.ExceptionReported, sp.NoActivity, sp.RealTimeEventReceived,
               sp.NotSupported, sp.PollFailed, sp.LinkUp, sp.LinkDown, sp.FrameRejected)


@settings(max_examples=hypothesis_examples(300), suppress_health_check=[HealthCheck.too_slow])
@given(script=host_script(), rte=st.booleans())
def test_host_state_machine_survives_any_line(script: list[tuple[Any, list[bytes]]],
                                              rte: bool) -> None:
    host = sp.HostProtocol(1, rte_mode=rte)
    for poll, chunks in script:
        host.send(poll)
        for chunk in chunks:
            if not host.awaiting_reply:
                host.receive_data(chunk or b"\x00")  # late bytes: must be rejected, not raise
                continue
            host.data_to_send()
            if chunk:
                host.receive_data(chunk)
            host.receive_timeout()
        # Close every remaining window: the poll must end, never wedge.
        for _ in range(host.max_sends + 2):
            if not host.awaiting_reply:
                break
            host.data_to_send()
            host.receive_timeout()
        assert not host.awaiting_reply
        for event in host.events_received():
            assert isinstance(event, HOST_EVENTS)


@settings(max_examples=hypothesis_examples(300), suppress_health_check=[HealthCheck.too_slow])
@given(poll=st.sampled_from(DATA_POLLS), body=st.data(), position=st.integers(0, 10_000))
def test_a_reply_with_a_bad_crc_never_becomes_data(poll: Any, body: st.DataObject,
                                                    position: int) -> None:
    """SAS §2.3: a reply that fails its CRC is retried; the host never decodes it as data."""
    good = body.draw(crc_valid_reply(address=1, command=poll.command))
    bad = flip_one_bit(good, position)  # CRC-16 detects every single-bit error
    host = sp.HostProtocol(1)
    host.send(poll)
    for _ in range(host.max_sends):
        host.data_to_send()
        host.receive_data(bad)
        host.receive_timeout()
    events = host.events_received()
    assert not any(isinstance(e, sp.ReplyReceived) for e in events), events
    assert any(isinstance(e, sp.PollFailed) for e in events)
    assert not host.awaiting_reply


#: Every outcome of MachineProtocol (sas_protocol.machine.MachineEvent): out of sync, polls
#: to itself are ignored (PollIgnored) until a poll to another address (Synchronized);
#: a good-CRC long poll to address 0 is a global broadcast (BroadcastReceived).
MACHINE_EVENTS = (sp.PollReceived, sp.PollRejected, sp.ReplyAcknowledged, sp.ReplyResent,
                  sp.PollIgnored, sp.Synchronized, sp.BroadcastReceived)


@settings(max_examples=hypothesis_examples(300), suppress_health_check=[HealthCheck.too_slow])
@given(words=st.lists(st.tuples(BYTE, st.booleans()), max_size=200),
       frames=st.lists(crc_valid_request(address=st.integers(0, 127)), max_size=5),
       synced=st.booleans(), breaks=st.sets(st.integers(0, 250), max_size=3))
def test_machine_state_machine_survives_any_line(words: list[tuple[int, bool]],
                                                 frames: list[bytes], synced: bool,
                                                 breaks: set[int]) -> None:
    machine = sp.MachineProtocol(1, synced=synced)
    stream = list(words)
    for frame in frames:
        stream += [(b, i == 0) for i, b in enumerate(frame)]
    events: list[Any] = []
    for n, word in enumerate(stream):
        if n in breaks:
            machine.lose_sync()  # SAS §4.2 loop break: polls to itself unheard until re-sync
        machine.receive_words([word])
        if machine.awaiting_answer:
            machine.ignore()
        machine.data_to_send()
        events += machine.events_received()
    for event in events:
        assert isinstance(event, MACHINE_EVENTS), event
        if isinstance(event, sp.PollReceived):
            assert event.poll.encode(1) == event.frame  # the poll is what the host sent
        elif isinstance(event, sp.BroadcastReceived):
            assert event.frame[0] == 0 and sp.decode_request(event.frame) == (0, event.poll)


def test_machine_events_cover_sync_and_broadcast() -> None:
    """The outcomes the property above accepts all happen: ignored while out of sync, synced
    by a poll to another address, a broadcast LP 7F surfaced and never answered."""
    machine = sp.MachineProtocol(1, synced=False)
    machine.receive_words([(0x81, True)])  # general poll to itself, out of sync
    machine.receive_words([(0x82, True)])  # a poll to address 2 syncs it (SAS §3.5)
    body = sp.SetDateTimeRequest(11, 26, 2026, 1, 2, 3).encode(1)[1:-2]
    broadcast = sp.append_crc(b"\x00" + body)  # address 0: type G (SAS §2.2.2.4)
    machine.receive_words([(b, i == 0) for i, b in enumerate(broadcast)])
    events = machine.events_received()
    assert events[:2] == [sp.PollIgnored(0x81), sp.Synchronized(0x82)]
    assert isinstance(events[2], sp.BroadcastReceived)
    assert events[2].poll == sp.SetDateTimeRequest(11, 26, 2026, 1, 2, 3)
    assert machine.data_to_send() == b""
