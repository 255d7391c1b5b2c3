"""HostProtocol ``confirm_exceptions``: an alarm byte is believed when two readings agree.

The non-RTE general-poll answer is one byte without a CRC (SAS §3.4); the host repeats the
general poll (an implied NACK, SAS §3.5, so the machine re-sends the same answer) and a
flipped bit cannot make a door or tilt out of ``00``.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

import sas_protocol as sp
from sas_protocol.host import CONFIRM_EXTRA_SENDS, CONFIRM_ROUNDS

GP = sp.GeneralPoll()
SYNC = sp.Outgoing(b"\x80", True)
GP_OUT = sp.Outgoing(b"\x81", True)
TILT, DOOR = 0x20, 0x11


def up_host(confirm: frozenset[int] = frozenset({TILT, DOOR})) -> sp.HostProtocol:
    host = sp.HostProtocol(1, confirm_exceptions=confirm)
    host.send(GP)
    host.data_to_send()
    host.receive_data(b"\x00")
    assert host.events_received() == [sp.LinkUp(), sp.NoActivity(0)]
    return host


def poll(host: sp.HostProtocol, *answers: int | None) -> list[sp.HostEvent]:
    """One general poll; each answer is a byte or None (the window closes in silence).
    Checks that every re-send is the bare poll: an implied NACK, never a sync."""
    host.send(GP)
    assert host.data_to_send() == [SYNC, GP_OUT]
    for n, answer in enumerate(answers):
        if n:
            assert host.data_to_send() == [GP_OUT]
        if answer is None:
            host.receive_timeout()
        else:
            host.receive_data(bytes((answer,)))
    assert not host.awaiting_reply
    return host.events_received()


def test_two_equal_readings_report_the_exception() -> None:
    host = up_host()
    assert poll(host, TILT, TILT) == [sp.ExceptionReported(TILT)]
    host.send(GP)
    assert host.data_to_send() == [SYNC, GP_OUT]  # the next poll acknowledges it


def test_a_flipped_idle_byte_is_not_an_alarm() -> None:
    events = poll(up_host(), TILT, 0x00, 0x00)
    assert events[-1] == sp.NoActivity(0)
    [rejected] = [e for e in events if isinstance(e, sp.FrameRejected)]
    assert "20 not confirmed: 00" in str(rejected.error)


def test_the_final_reading_decides_for_the_first() -> None:
    events = poll(up_host(), DOOR, 0x00, DOOR)
    assert events[-1] == sp.ExceptionReported(DOOR)
    assert sum(isinstance(e, sp.FrameRejected) for e in events) == 1


def test_without_a_code_read_twice_nothing_is_reported() -> None:
    # max_sends 3 + 2 rounds of 2: every send read a new byte, so every round was taken
    events = poll(up_host(), TILT, 0x00, 0x7E, 0x21, 0x22, 0x23, 0x24)
    assert events[-1] == sp.PollFailed(GP, sp.FailureReason.FRAMING)
    assert not any(isinstance(e, sp.ExceptionReported) for e in events)


def test_repeated_silence_ends_the_confirmation_after_max_sends_and_one_round() -> None:
    events = poll(up_host(), TILT, None, None, None, None)  # a round only for a new code
    assert events[-1] == sp.PollFailed(GP, sp.FailureReason.TIMEOUT)


def test_a_machine_that_moved_on_twice_has_its_third_exception_confirmed() -> None:
    """Seen on the noisy profile: the confirming re-send was heard as a poll to another
    address (an implied ACK, SAS §3.5: the machine drops the code and answers silence), twice.
    The third code came to the fifth send; with no send left the sync poll after the failed
    poll acknowledged it unread, and the machine dropped an exception no noise had touched.
    A code read for the first time gets its own round of sends."""
    events = poll(up_host(), DOOR, None, TILT, None, 0x31, 0x31)
    assert events[-1] == sp.ExceptionReported(0x31)


def test_a_machine_that_moved_on_has_its_new_exception_confirmed() -> None:
    """Issue 12: a re-send flipped into a poll to another address is an implied ACK to the
    machine, which then answers its next exception. The host confirms that one instead of
    giving up and acknowledging it unread with a sync poll."""
    events = poll(up_host(), DOOR, None, TILT, TILT)
    assert events[-1] == sp.ExceptionReported(TILT)


def test_silent_re_sends_leave_the_byte_unconfirmed_and_resync() -> None:
    host = up_host()
    events = poll(host, DOOR, None, None, None, None)
    assert events[-1] == sp.PollFailed(GP, sp.FailureReason.TIMEOUT)
    [rejected] = [e for e in events if isinstance(e, sp.FrameRejected)]
    assert "11 not confirmed: no valid answer" in str(rejected.error)
    assert rejected.error.raw == bytes((DOOR,))
    host.send(sp.MetersRequest(0x11))
    assert host.data_to_send()[0] == SYNC  # the host cannot know what the machine saw


def test_a_late_confirmation_after_a_silent_send_counts() -> None:
    assert poll(up_host(), DOOR, None, DOOR)[-1] == sp.ExceptionReported(DOOR)


def test_codes_outside_the_set_are_reported_at_once() -> None:
    host = up_host()
    assert poll(host, 0x7E) == [sp.ExceptionReported(0x7E)]
    assert poll(up_host(frozenset()), TILT) == [sp.ExceptionReported(TILT)]


def test_a_single_send_cannot_confirm() -> None:
    host = sp.HostProtocol(1, confirm_exceptions={TILT}, max_sends=1)
    host.send(GP)
    host.data_to_send()
    host.receive_data(bytes((TILT,)))
    assert host.events_received() == [sp.LinkUp(), sp.ExceptionReported(TILT)]


def confirm_model(readings: list[int | None], max_sends: int = 3) -> tuple[int, int | None]:
    """docs/sas.md, "Confirming exception bytes", as a model: how many of ``readings`` (one
    per send, None for a silent window) the poll takes, and the code it reports (None for
    nothing). The first reading needs confirming."""
    extra, rounds = CONFIRM_EXTRA_SENDS, CONFIRM_ROUNDS
    limit = max_sends + extra
    seen: list[int] = []
    for send, code in enumerate(readings, start=1):
        if code is not None:
            if code in seen:
                return send, code
            seen.append(code)
            limit = min(max_sends + rounds * extra, max(limit, send + extra))
        if send >= limit:
            return send, None
    raise AssertionError("the readings ran out before the poll ended")


@given(st.lists(st.one_of(st.none(), st.integers(0, 0xFF).filter(lambda b: b != 0x01)),
                min_size=7, max_size=7).filter(lambda r: r[0] is not None))
def test_the_decision_is_the_first_code_read_twice_else_nothing(
        readings: list[int | None]) -> None:
    host = up_host(frozenset(range(0x02, 0x100)) - sp.IDLE_EXCEPTIONS)
    first = readings[0]
    assert first is not None
    if first not in host.confirm_exceptions:
        taken, want = 1, first
    else:
        taken, want = confirm_model(readings)
    answers = readings[:taken]
    events = poll(host, *answers)
    if want is None:
        reason = sp.FailureReason.TIMEOUT if answers[-1] is None else sp.FailureReason.FRAMING
        assert events[-1] == sp.PollFailed(GP, reason)
        assert not any(isinstance(e, sp.ExceptionReported) for e in events)
    elif want in sp.IDLE_EXCEPTIONS:
        assert events[-1] == sp.NoActivity(want)
    else:
        assert events[-1] == sp.ExceptionReported(want)


def test_a_code_repeated_in_one_window_is_read_twice() -> None:
    """Issue 17: a machine that answered copies of the general poll late (after their
    windows) sends those answers together; each copy's answer is the same (SAS §3.5), so a
    repeat is a second reading. Re-sent once more instead, the machine (which took the
    host's sync poll as the implied ACK meanwhile) would answer 00 and the door be lost."""
    host = up_host()
    host.send(GP)
    host.data_to_send()
    host.receive_data(bytes((DOOR, DOOR, DOOR, 0x00)))
    events = host.events_received()
    assert events[0] == sp.ExceptionReported(DOOR)
    [rejected] = [e for e in events if isinstance(e, sp.FrameRejected)]
    assert rejected.error.raw == bytes((DOOR, 0x00))  # the rest is still bytes after the reply
    assert not host.awaiting_reply and host.data_to_send() == []


def test_a_repeat_alone_leaves_nothing_after_the_reply() -> None:
    host = up_host()
    host.send(GP)
    host.data_to_send()
    host.receive_data(bytes((TILT, TILT)))
    assert host.events_received() == [sp.ExceptionReported(TILT)]


def test_two_different_bytes_in_one_window_are_not_a_confirmation() -> None:
    host = up_host()
    host.send(GP)
    host.data_to_send()
    host.receive_data(bytes((DOOR, 0x00)))
    events = host.events_received()
    assert not any(isinstance(e, sp.ExceptionReported) for e in events)
    assert host.awaiting_reply and host.data_to_send() == [GP_OUT]  # the implied NACK
