"""MachineProtocol: framing of host words, NACK on bad CRC, implied ACK / NACK re-sends, the
sync rule and global broadcasts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import sas_protocol as sp
from sas_protocol.machine import BroadcastReceived, PollIgnored, Synchronized
from tests.sas_protocol.sas_helpers import words

GP = sp.GeneralPoll()


@dataclass(frozen=True)
class Word:
    """Like drivers.Word: the protocol accepts any object with .value and .wakeup."""

    value: int
    wakeup: bool


def test_general_poll_implied_nack_and_ack() -> None:
    machine = sp.MachineProtocol(1)
    machine.receive_words([Word(0x81, True)])
    assert machine.events_received() == [sp.PollReceived(GP, b"\x81")]
    assert machine.awaiting_answer
    machine.send_exception(0x11)
    assert not machine.awaiting_answer
    assert machine.data_to_send() == b"\x11"
    machine.receive_words([(0x81, True)])  # same poll again: implied NACK, re-send
    assert machine.events_received() == [sp.ReplyResent(GP, b"\x81", 1)]
    assert machine.data_to_send() == b"\x11"
    machine.receive_words([(0x81, True)])
    assert machine.events_received() == [sp.ReplyResent(GP, b"\x81", 2)]
    machine.data_to_send()
    machine.receive_words([(0x80, True)])  # sync poll to address 0: implied ACK
    assert machine.events_received() == [
        sp.ReplyAcknowledged(sp.ExceptionReply(0x11), b"\x11")
    ]
    machine.receive_words([(0x81, True)])
    assert machine.events_received() == [sp.PollReceived(GP, b"\x81")]


def test_long_poll_framing_ack_and_different_poll_acknowledges() -> None:
    machine = sp.MachineProtocol(3)
    lock = sp.LockRequest().encode(3)
    machine.receive_words(words(lock))
    assert machine.events_received() == [sp.PollReceived(sp.LockRequest(), lock)]
    machine.send_ack()
    assert machine.data_to_send() == b"\x03"
    meters = sp.SelectedMetersRequest(0, (0x00, 0x0D)).encode(3)
    for word in words(meters):
        machine.receive_words([word])
    assert machine.events_received() == [
        sp.ReplyAcknowledged(sp.Ack(), b"\x03"),
        sp.PollReceived(sp.SelectedMetersRequest(0, (0x00, 0x0D)), meters),
    ]
    reply = sp.MeterReply(0x2F, 0, (sp.MeterValue(0, 5, 4), sp.MeterValue(0x0D, 7, 5)))
    machine.send_reply(reply)
    assert machine.data_to_send() == reply.encode(3)


def test_bad_crc_is_nacked_and_keeps_the_stored_reply() -> None:
    machine = sp.MachineProtocol(1)
    machine.receive_words([(0x81, True)])
    machine.send_exception(0x00)
    machine.data_to_send()
    machine.events_received()
    bad = bytearray(sp.LockRequest().encode(1))
    bad[-1] ^= 0x10
    machine.receive_words(words(bytes(bad)))
    [event] = machine.events_received()
    assert isinstance(event, sp.PollRejected) and isinstance(event.error, sp.CrcError)
    assert event.error.raw == bytes(bad)
    assert machine.data_to_send() == b"\x81"  # SAS §3.5 NACK = address | 0x80
    assert not machine.awaiting_answer


def test_busy_and_nack_are_not_resent() -> None:
    machine = sp.MachineProtocol(1)
    coin_in = sp.MetersRequest(0x11).encode(1)
    machine.receive_words(words(coin_in))
    machine.send_busy()
    assert machine.data_to_send() == b"\x01\x00"
    machine.receive_words(words(coin_in))
    assert machine.events_received()[-1] == sp.PollReceived(sp.MetersRequest(0x11), coin_in, True)
    machine.send_nack()
    assert machine.data_to_send() == b"\x81"
    machine.receive_words(words(coin_in))
    assert machine.events_received() == [sp.PollReceived(sp.MetersRequest(0x11), coin_in, True)]


def test_unknown_incomplete_and_foreign_polls() -> None:
    machine = sp.MachineProtocol(1)
    machine.receive_words([(0x01, True), (0xEE, False), (0x12, False), (0x34, False)])
    assert machine.events_received() == [sp.PollReceived(sp.UnknownRequest(0xEE), b"\x01\xee")]
    machine.ignore()  # unsupported long polls get silence (SAS §3.5)
    assert machine.data_to_send() == b""
    machine.receive_words([(0x01, True), (0x2F, False), (0x05, False), (0x81, True)])
    events = machine.events_received()
    assert isinstance(events[0], sp.PollRejected)
    assert isinstance(events[0].error, sp.LengthError)
    assert events[1] == sp.PollReceived(GP, b"\x81")
    machine.send_event(sp.GameEndedEvent(10))
    assert machine.data_to_send() == sp.encode_rte_frame(1, sp.GameEndedEvent(10))
    # A poll to another address (with its body bytes) acknowledges and is otherwise ignored.
    machine.receive_words(words(sp.LockRequest().encode(2)))
    assert machine.events_received() == [
        sp.ReplyAcknowledged(sp.GameEndedEvent(10), sp.encode_rte_frame(1, sp.GameEndedEvent(10)))
    ]
    bad_rte = bytearray(sp.RealTimeReportingRequest(True).encode(1))
    bad_rte[2] = 0x07
    machine.receive_words(words(sp.append_crc(bytes(bad_rte[:3]))))
    [rejected] = machine.events_received()
    assert isinstance(rejected, sp.PollRejected) and isinstance(rejected.error, sp.FramingError)
    assert machine.data_to_send() == b""


def test_misuse_is_a_local_error() -> None:
    with pytest.raises(sp.LocalProtocolError):
        sp.MachineProtocol(0)
    machine = sp.MachineProtocol(1)
    with pytest.raises(sp.LocalProtocolError):
        machine.send_ack()  # no poll pending
    with pytest.raises(sp.LocalProtocolError):
        machine.receive_words([(256, True)])
    machine.receive_words([(0x81, True)])
    with pytest.raises(sp.LocalProtocolError):
        machine.send_exception(300)
    machine.send_raw(b"\x00")
    assert machine.data_to_send() == b"\x00"
    assert machine.chirp() == b"\x01"


# --- the sync rule (SAS §3.5) --------------------------------------------------------------


def test_out_of_sync_polls_to_itself_are_not_heard_until_a_poll_elsewhere() -> None:
    machine = sp.MachineProtocol(1, synced=False)
    assert not machine.synced
    machine.receive_words([(0x81, True)])
    machine.receive_words(words(sp.LockRequest().encode(1)))
    assert machine.events_received() == [PollIgnored(0x81), PollIgnored(0x01)]  # body dropped
    assert not machine.awaiting_answer and machine.data_to_send() == b""
    machine.receive_words([(0x82, True)])  # a general poll to address 2 syncs
    assert machine.events_received() == [Synchronized(0x82)]
    assert machine.synced
    machine.receive_words([(0x81, True)])
    assert machine.events_received() == [sp.PollReceived(GP, b"\x81")]


def test_after_a_loop_break_a_repeated_poll_is_not_resent_and_the_resync_acknowledges() -> None:
    machine = sp.MachineProtocol(1)
    machine.receive_words([(0x81, True)])
    machine.send_exception(0x11)
    assert machine.data_to_send() == b"\x11"
    machine.events_received()
    machine.lose_sync()  # SAS §4.2 loop break
    machine.receive_words([(0x81, True)])  # the same poll: would be an implied NACK if synced
    assert machine.events_received() == [PollIgnored(0x81)]
    assert machine.data_to_send() == b""
    machine.receive_words([(0x80, True)])  # the host re-syncs; it had moved on: implied ACK
    assert machine.events_received() == [
        sp.ReplyAcknowledged(sp.ExceptionReply(0x11), b"\x11"), Synchronized(0x80)]


def test_reset_forgets_the_stored_reply_a_half_frame_and_unsent_bytes() -> None:
    machine = sp.MachineProtocol(1)
    machine.receive_words([(0x81, True)])
    machine.send_exception(0x11)  # not yet taken by data_to_send: lost with the power
    machine.receive_words(words(sp.LockRequest().encode(1))[:2])  # half a long poll
    machine.events_received()
    machine.reset()  # power-up
    assert not machine.synced and machine.data_to_send() == b""
    machine.receive_words([(0x80, True)])
    assert machine.events_received() == [Synchronized(0x80)]  # no junk, nothing acknowledged
    machine.receive_words([(0x81, True)])
    assert machine.events_received() == [sp.PollReceived(GP, b"\x81")]  # not a repeat


SYNC_OPS = st.lists(st.one_of(
    st.tuples(st.just("word"), st.tuples(st.sampled_from([0x00, 0x01, 0x02, 0x80, 0x81, 0x82,
                                                          0x1A, 0x7F, 0xFF]), st.booleans())),
    st.tuples(st.just("lose_sync"), st.none()),
    st.tuples(st.just("reset"), st.none()),
), max_size=60)


@given(SYNC_OPS)
# A loop break in the middle of a frame: its tail must not complete a poll to answer.
@example(ops=[("word", (0, True)), ("word", (1, True)), ("lose_sync", None), ("word", (0, False))])
def test_an_unsynced_machine_sends_nothing_until_it_syncs(ops: list[tuple[str, Any]]) -> None:
    """Whatever arrives, no byte leaves between a loss of sync and the next Synchronized."""
    machine = sp.MachineProtocol(1, synced=False)
    synced = False
    for op, arg in ops:
        if op == "lose_sync":
            machine.lose_sync()
            synced = False
            continue
        if op == "reset":
            machine.reset()
            synced = False
            continue
        machine.receive_words([arg])
        for event in machine.events_received():
            if isinstance(event, Synchronized):
                synced = True
            if isinstance(event, PollIgnored):
                assert not synced
        if machine.awaiting_answer:
            assert synced
            machine.send_exception(0x11)
        out = machine.data_to_send()
        assert synced or out == b""
        assert machine.synced == synced


# --- global broadcasts (type G, SAS §2.2.2.4) ----------------------------------------------


def broadcast(request: sp.Request) -> bytes:
    """``request`` addressed to 0 (``encode`` refuses address 0: a machine never has it)."""
    return sp.append_crc(b"\x00" + request.encode(1)[1:-2])


def test_a_broadcast_long_poll_is_surfaced_never_answered_and_acknowledges() -> None:
    machine = sp.MachineProtocol(1)
    machine.receive_words([(0x81, True)])
    machine.send_exception(0x11)
    machine.data_to_send()
    machine.events_received()
    set_clock = sp.SetDateTimeRequest(3, 4, 2027, 5, 6, 7)
    frame = broadcast(set_clock)
    machine.receive_words(words(frame))
    assert machine.events_received() == [
        sp.ReplyAcknowledged(sp.ExceptionReply(0x11), b"\x11"),
        BroadcastReceived(set_clock, frame),
    ]
    assert not machine.awaiting_answer and machine.data_to_send() == b""


def test_a_broadcast_syncs_an_unsynced_machine_before_it_is_surfaced() -> None:
    machine = sp.MachineProtocol(1, synced=False)
    frame = broadcast(sp.LockRequest())
    machine.receive_words(words(frame))
    assert machine.events_received() == [Synchronized(0x00),
                                         BroadcastReceived(sp.LockRequest(), frame)]


def test_bad_broadcasts_are_dropped_without_a_nack() -> None:
    machine = sp.MachineProtocol(1)
    bad = bytearray(broadcast(sp.SetDateTimeRequest(3, 4, 2027, 5, 6, 7)))
    bad[-1] ^= 0x01
    machine.receive_words(words(bytes(bad)))
    [event] = machine.events_received()
    assert isinstance(event, sp.PollRejected) and isinstance(event.error, sp.CrcError)
    assert machine.data_to_send() == b""  # type G is never NACKed
    # a type R poll (no CRC to trust, asks for data nobody may send) and an unknown command
    machine.receive_words([(0x00, True), (0x1A, False), (0x00, True), (0xEE, False)])
    assert machine.events_received() == []
    # a lone 00 is a sync byte, not junk; a cut-off broadcast is junk
    machine.receive_words([(0x00, True), (0x81, True)])
    assert machine.events_received() == [sp.PollReceived(GP, b"\x81")]
    machine.ignore()
    machine.receive_words([(0x00, True), (0x7F, False), (0x81, True)])
    events = machine.events_received()
    assert isinstance(events[0], sp.PollRejected)
    assert isinstance(events[0].error, sp.LengthError) and events[0].error.raw == b"\x00\x7f"
    assert events[1] == sp.PollReceived(GP, b"\x81")
    assert machine.data_to_send() == b""
