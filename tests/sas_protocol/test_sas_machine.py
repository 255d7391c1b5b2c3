"""MachineProtocol: framing of host words, NACK on bad CRC, implied ACK / NACK re-sends."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sas_helpers import words

import sas_protocol as sp

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
