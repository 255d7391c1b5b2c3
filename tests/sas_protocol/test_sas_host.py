"""HostProtocol: implied ACK, sync polls, retries, busy, NotSupported, RTE, link health."""

from __future__ import annotations

import pytest

import sas_protocol as sp
from sas_protocol.crc import append_crc

GP = sp.GeneralPoll()
SYNC = sp.Outgoing(b"\x80", True)
GP_OUT = sp.Outgoing(b"\x81", True)
COIN_IN = sp.MetersRequest(0x11)
COIN_IN_OUT = sp.Outgoing(b"\x01\x11", True)
COIN_IN_REPLY = append_crc(bytes.fromhex("01 11 00 00 12 34"))


def up_host(**kwargs: object) -> sp.HostProtocol:
    """A host whose link is up after one general poll answered 00."""
    host = sp.HostProtocol(1, **kwargs)  # type: ignore[arg-type]
    host.send(GP)
    sync = sp.Outgoing(bytes((0x80 | host.sync_address,)), True)
    assert host.data_to_send() == [sync, GP_OUT]  # SAS §3.3 sync at session start
    host.receive_data(b"\x00")
    assert host.events_received() == [sp.LinkUp(), sp.NoActivity(0)]
    return host


def test_constructor_validates() -> None:
    for bad in (dict(address=0), dict(address=128), dict(address=1, sync_address=1),
                dict(address=1, sync_address=200), dict(address=1, max_sends=0),
                dict(address=1, link_down_after=0)):
        with pytest.raises(sp.LocalProtocolError):
            sp.HostProtocol(**bad)  # type: ignore[arg-type]


def test_sync_between_two_general_polls_but_not_after_a_long_poll() -> None:
    host = up_host(sync_address=0x12)
    host.send(GP)
    assert host.data_to_send() == [sp.Outgoing(b"\x92", True), GP_OUT]
    host.receive_data(b"\x11")
    assert host.events_received() == [sp.ExceptionReported(0x11)]
    host.send(COIN_IN)
    assert host.data_to_send() == [COIN_IN_OUT]  # a different poll is the implied ACK
    host.receive_data(COIN_IN_REPLY)
    [event] = host.events_received()
    assert isinstance(event, sp.ReplyReceived) and isinstance(event.reply, sp.MeterReply)
    assert event.reply.meters == {0: 1234}
    host.send(GP)
    assert host.data_to_send() == [GP_OUT]
    host.receive_data(b"\x1f")
    assert host.events_received() == [sp.NoActivity(0x1F)]
    host.send(COIN_IN)
    host.data_to_send()
    host.receive_data(COIN_IN_REPLY)
    host.events_received()
    # The same long poll again would be an implied NACK (SAS §3.5): sync first.
    host.send(COIN_IN)
    assert host.data_to_send() == [sp.Outgoing(b"\x92", True), COIN_IN_OUT]


def test_retry_on_timeout_then_failure_and_resync() -> None:
    host = up_host(link_down_after=5)
    host.send(GP)
    assert host.data_to_send() == [SYNC, GP_OUT]
    for _ in range(2):
        host.receive_timeout()
        assert host.awaiting_reply
        assert host.data_to_send() == [GP_OUT]  # the identical poll asks for a re-send
    host.receive_timeout()
    assert not host.awaiting_reply
    assert host.events_received() == [sp.PollFailed(GP, sp.FailureReason.TIMEOUT)]
    assert host.data_to_send() == []
    host.send(COIN_IN)
    assert host.data_to_send() == [SYNC, COIN_IN_OUT]  # resync after a failure


def test_crc_error_waits_for_the_window_then_retries() -> None:
    host = up_host()
    host.send(COIN_IN)
    host.data_to_send()
    bad = COIN_IN_REPLY[:-1] + bytes((COIN_IN_REPLY[-1] ^ 0xFF,))
    host.receive_data(bad)
    [rejected] = host.events_received()
    assert isinstance(rejected, sp.FrameRejected) and isinstance(rejected.error, sp.CrcError)
    assert rejected.error.raw == bad
    assert host.data_to_send() == []
    host.receive_data(b"\x99")  # late bytes of the bad window are ignored
    host.receive_timeout()
    assert host.data_to_send() == [COIN_IN_OUT]
    host.receive_data(COIN_IN_REPLY)
    assert isinstance(host.events_received()[0], sp.ReplyReceived)


def test_nack_and_busy_use_sends_and_fail_with_their_reason() -> None:
    host = up_host(max_sends=2)
    host.send(sp.LockRequest())
    lock = sp.LockRequest().encode(1)
    assert host.data_to_send() == [sp.Outgoing(lock, True)]
    host.receive_data(b"\x81")
    assert host.data_to_send() == [sp.Outgoing(lock, True)]
    host.receive_data(b"\x01\x00")
    assert host.events_received() == [sp.PollFailed(sp.LockRequest(), sp.FailureReason.BUSY)]
    assert host.link_up  # NACK and busy prove the machine is alive


def test_ack_is_known_when_the_window_closes() -> None:
    host = up_host()
    host.send(sp.SoundOffRequest())
    host.data_to_send()
    host.receive_data(b"\x01")
    assert host.awaiting_reply
    host.receive_timeout()
    assert host.events_received() == [sp.ReplyReceived(sp.SoundOffRequest(), sp.Ack())]


def test_unsupported_long_poll_is_reported_not_supported() -> None:
    host = up_host()
    host.send(sp.SasVersionRequest())
    for _ in range(3):
        assert host.data_to_send()
        host.receive_timeout()
    assert host.events_received() == [sp.NotSupported(sp.SasVersionRequest())]
    assert host.link_up  # silence to a long poll is no link failure in non-RTE mode


def test_a_long_poll_answered_late_is_a_failed_poll_not_an_unsupported_one() -> None:
    """The caller threw away bytes that came after a window closed (receive_late): the
    machine answered, so its silence in the windows is no sign of an unsupported poll
    (SAS §3.5)."""
    host = up_host()
    host.receive_late()  # between polls: nothing to learn about the next one
    host.send(sp.SasVersionRequest())
    for n in range(3):
        assert host.data_to_send()
        if n == 1:
            host.receive_late()
        host.receive_timeout()
    assert host.events_received() == [
        sp.PollFailed(sp.SasVersionRequest(), sp.FailureReason.TIMEOUT)]
    host.send(sp.SasVersionRequest())
    for _ in range(3):  # the next poll starts silent again
        assert host.data_to_send()
        host.receive_timeout()
    assert host.events_received() == [sp.NotSupported(sp.SasVersionRequest())]


def test_silence_before_link_up_is_a_failure_not_unsupported() -> None:
    host = sp.HostProtocol(1, max_sends=1)
    host.send(sp.SasVersionRequest())
    host.receive_timeout()
    assert host.events_received() == [
        sp.PollFailed(sp.SasVersionRequest(), sp.FailureReason.TIMEOUT)
    ]


def test_link_down_after_consecutive_failures_and_back_up() -> None:
    host = up_host(max_sends=1, link_down_after=3)
    events: list[object] = []
    for _ in range(3):
        host.send(GP)
        host.data_to_send()
        host.receive_timeout()
        events += host.events_received()
    assert events[-2:] == [sp.LinkDown(), sp.PollFailed(GP, sp.FailureReason.TIMEOUT)]
    assert events.count(sp.LinkDown()) == 1
    assert not host.link_up
    host.send(GP)
    assert host.data_to_send()[0] == SYNC  # recover with a sync poll
    host.receive_data(b"\x00")
    assert host.events_received() == [sp.LinkUp(), sp.NoActivity(0)]


def test_partial_and_misaddressed_replies_are_framing_failures() -> None:
    host = up_host(max_sends=2)
    host.send(COIN_IN)
    host.data_to_send()
    host.receive_data(COIN_IN_REPLY[:4])
    host.receive_timeout()
    assert host.data_to_send() == [COIN_IN_OUT]
    host.receive_data(b"\x05\x11")
    [event] = host.events_received()[-1:]
    host.receive_timeout()
    events = host.events_received()
    assert isinstance(event, sp.FrameRejected)
    assert isinstance(event.error, sp.UnexpectedAddressError)
    assert events == [sp.PollFailed(COIN_IN, sp.FailureReason.FRAMING)]


def test_wrong_command_echo_and_stray_bytes() -> None:
    host = up_host(max_sends=1)
    host.receive_data(b"\x42")  # nothing awaited
    [stray] = host.events_received()
    assert isinstance(stray, sp.FrameRejected) and stray.error.raw == b"\x42"
    host.receive_data(b"")
    host.receive_timeout()  # no poll: nothing happens
    assert host.events_received() == []
    host.send(COIN_IN)
    host.receive_data(b"\x01\x12")
    host.receive_timeout()
    events = host.events_received()
    assert isinstance(events[0], sp.FrameRejected)
    assert events[-1] == sp.PollFailed(COIN_IN, sp.FailureReason.FRAMING)


def test_send_while_awaiting_is_misuse() -> None:
    host = sp.HostProtocol(1)
    host.send(GP)
    assert host.current_poll == GP
    with pytest.raises(sp.LocalProtocolError):
        host.send(GP)


def test_rte_mode_tracks_lp_0e_and_substitutes_events() -> None:
    host = up_host()
    host.send(sp.RealTimeReportingRequest(True))
    host.data_to_send()
    host.receive_data(b"\x01")
    host.receive_timeout()
    assert host.rte_mode
    host.events_received()
    # A long poll answered by an RTE event: the event is delivered, the poll re-queued
    # behind a sync poll and not counted as a send (SAS §12.3).
    host.send(COIN_IN)
    host.data_to_send()
    game_end = sp.encode_rte_frame(1, sp.GameEndedEvent(50))
    for _ in range(5):
        host.receive_data(game_end)
        assert host.data_to_send() == [SYNC, COIN_IN_OUT]
    host.receive_data(COIN_IN_REPLY)
    events = host.events_received()
    assert events[:5] == [sp.RealTimeEventReceived(sp.GameEndedEvent(50), COIN_IN, True)] * 5
    assert isinstance(events[0], sp.RealTimeEventReceived)
    assert (events[0].code, events[0].fields) == (0x7F, {"game_win": 50})
    assert isinstance(events[5], sp.ReplyReceived)
    # General polls in RTE mode: an event or FF 00 conclude the poll; silence is a failed
    # send, re-sent as an implied NACK (issue 12: a dead RTE machine must go down).
    host.send(GP)
    host.data_to_send()
    host.receive_data(sp.encode_rte_frame(1, sp.PlainEvent(0x11)))
    host.send(GP)
    host.data_to_send()
    host.receive_data(sp.encode_rte_frame(1, sp.PlainEvent(0x00)))
    assert host.events_received() == [
        sp.RealTimeEventReceived(sp.PlainEvent(0x11), GP, False),
        sp.NoActivity(0),
    ]
    host.send(GP)
    assert host.data_to_send() == [SYNC, GP_OUT]
    host.receive_timeout()
    assert host.data_to_send() == [GP_OUT] and host.events_received() == []
    host.receive_data(sp.encode_rte_frame(1, sp.PlainEvent(0x00)))
    assert host.events_received() == [sp.NoActivity(0)]
    # In RTE mode a lone address byte is still an ACK once the window closes; a GP reply
    # that is not an event is a framing error.
    host.send(GP)
    host.data_to_send()
    host.receive_data(b"\x01\x42")
    host.receive_timeout()
    assert isinstance(host.events_received()[0], sp.FrameRejected)
    host.receive_data(b"\x01")
    host.receive_timeout()
    assert isinstance(host.events_received()[0], sp.FrameRejected)
    host.receive_timeout()  # silence to the last send: the general poll failed
    assert host.events_received() == [sp.LinkDown(), sp.PollFailed(GP, sp.FailureReason.TIMEOUT)]
    # Silence to long polls counts against the link in RTE mode.
    host.rte_mode = True
    host.send(sp.RealTimeReportingRequest(False))
    host.data_to_send()
    host.receive_data(b"\x01")
    host.receive_timeout()
    assert not host.rte_mode


def test_rte_mode_long_poll_silence_is_link_failure() -> None:
    host = up_host(max_sends=1, link_down_after=1)
    host.rte_mode = True  # e.g. the machine was already in RTE mode
    host.send(COIN_IN)
    host.receive_timeout()
    failed = sp.PollFailed(COIN_IN, sp.FailureReason.TIMEOUT)
    assert host.events_received() == [sp.LinkDown(), failed]


def test_rom_signature_arrives_later_with_a_general_or_long_poll() -> None:
    host = up_host(confirm_undefined=False)  # exception 01 is undefined (SAS §3.11)
    host.send(sp.RomSignatureRequest(7))
    host.data_to_send()
    host.receive_data(b"\x01")
    host.receive_timeout()
    assert host.events_received() == [sp.ReplyReceived(sp.RomSignatureRequest(7), sp.Ack())]
    signature = sp.RomSignatureReply(0xBEEF).encode(1)
    # A long poll answered by the pending signature: delivered, then the poll re-queued.
    host.send(COIN_IN)
    host.data_to_send()
    host.receive_data(signature)
    assert host.events_received() == [
        sp.ReplyReceived(sp.RomSignatureRequest(7), sp.RomSignatureReply(0xBEEF))
    ]
    assert host.data_to_send() == [SYNC, COIN_IN_OUT]
    host.receive_data(COIN_IN_REPLY)
    host.events_received()
    # With a signature pending, a general-poll byte equal to the address is an exception.
    host.send(sp.RomSignatureRequest(7))
    host.data_to_send()
    host.receive_data(b"\x01")
    host.receive_timeout()
    host.send(GP)
    host.data_to_send()
    host.receive_data(b"\x01")
    host.receive_timeout()
    assert host.events_received()[-1] == sp.ExceptionReported(1)
    host.send(GP)
    host.data_to_send()
    host.receive_data(b"\x01\x02")
    events = host.events_received()
    assert events[0] == sp.ExceptionReported(1) and isinstance(events[1], sp.FrameRejected)
    host.send(GP)
    host.data_to_send()
    host.receive_data(signature)
    assert host.events_received() == [
        sp.ReplyReceived(sp.RomSignatureRequest(7), sp.RomSignatureReply(0xBEEF))
    ]


def test_rte_frame_with_bad_crc_is_a_crc_failure() -> None:
    host = up_host(max_sends=1)
    host.rte_mode = True
    host.send(GP)
    frame = bytearray(sp.encode_rte_frame(1, sp.GameEndedEvent(1)))
    frame[-1] ^= 1
    host.receive_data(bytes(frame))
    host.receive_timeout()
    events = host.events_received()
    assert isinstance(events[0], sp.FrameRejected)
    assert events[-1] == sp.PollFailed(GP, sp.FailureReason.CRC)


def test_reply_with_good_crc_but_bad_bcd_is_a_framing_failure() -> None:
    host = up_host(max_sends=1)
    host.send(COIN_IN)
    bad = append_crc(bytes.fromhex("01 11 00 00 12 3A"))
    host.receive_data(bad)
    host.receive_timeout()
    events = host.events_received()
    assert isinstance(events[0], sp.FrameRejected)
    assert isinstance(events[0].error, sp.FramingError) and events[0].error.raw == bad
    assert events[-1] == sp.PollFailed(COIN_IN, sp.FailureReason.FRAMING)


def test_non_rte_general_poll_takes_an_rte_frame_from_a_machine_left_in_rte_mode() -> None:
    """SAS §12: the machine stays in RTE mode until LP 0E 00 is ACKed; a host that restarted
    in non-RTE mode must not read ``addr FF code …`` as exception ``addr`` and lose the event."""
    host = up_host()
    host.send(GP)
    host.data_to_send()
    frame = sp.encode_rte_frame(1, sp.GameEndedEvent(250))
    host.receive_data(frame[:1])
    assert host.awaiting_reply and host.events_received() == []  # undecided: wait
    host.receive_data(frame[1:3])
    assert host.awaiting_reply
    host.receive_data(frame[3:])
    assert not host.awaiting_reply
    assert host.events_received() == [
        sp.RealTimeEventReceived(sp.GameEndedEvent(250), GP, substituted=False)]
    assert not host.rte_mode  # the mode changes only when LP 0E is ACKed
    # An RTE frame cut short is a framing failure (then retried), never an exception.
    host = up_host(max_sends=1)
    host.send(GP)
    host.receive_data(frame[:2])
    host.receive_timeout()
    events = host.events_received()
    assert isinstance(events[0], sp.FrameRejected)
    assert events[-1] == sp.PollFailed(GP, sp.FailureReason.FRAMING)


def test_an_exception_byte_equal_to_the_address_is_decided_by_the_window() -> None:
    """Address 0x11 and exception 11 (slot door opened): one byte, the same value. The host
    waits for the window to close (or for the next byte) before it calls it an exception."""
    host = sp.HostProtocol(0x11)
    host.send(GP)
    host.data_to_send()
    host.receive_data(b"\x11")
    assert host.awaiting_reply and host.events_received() == []
    host.receive_timeout()
    assert host.events_received() == [sp.LinkUp(), sp.ExceptionReported(0x11)]
    # followed by a byte that starts no frame: the exception, then stray bytes
    host.send(GP)
    host.data_to_send()
    host.receive_data(b"\x11\x42")
    events = host.events_received()
    assert events[0] == sp.ExceptionReported(0x11)
    assert isinstance(events[1], sp.FrameRejected) and events[1].error.raw == b"\x42"
    # other exception codes are known at once
    host.send(GP)
    host.data_to_send()
    host.receive_data(b"\x12")
    assert host.events_received() == [sp.ExceptionReported(0x12)]


def test_an_ack_poll_answered_by_another_polls_reply_is_sent_again() -> None:
    """LP 01 damaged on the way into ``01 11 …``: the machine answers (or re-sends, as an
    implied NACK) an LP 11 reply. Its first byte is not the lock's ACK (SAS §3.5)."""
    host = up_host()
    lock = sp.LockRequest()
    host.send(lock)
    lock_out = host.data_to_send()
    host.receive_data(COIN_IN_REPLY)
    [rejected] = host.events_received()
    assert isinstance(rejected, sp.FrameRejected) and rejected.error.raw == COIN_IN_REPLY
    host.receive_timeout()
    assert host.data_to_send() == lock_out[-1:]  # the same lock again
    host.receive_data(b"\x01")
    host.receive_timeout()
    assert host.events_received() == [sp.ReplyReceived(lock, sp.Ack())]
