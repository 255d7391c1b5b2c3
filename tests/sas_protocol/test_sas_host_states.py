"""HostProtocol's states as data: the transition tables are the only way states change
(a hypothesis state machine drives random input and checks it), every table entry is
reached, docs/sas.md shows the tables as they are in the code, and the rules that came with
them: link-down by count *and* time span, silence to a general poll fails in every mode,
undefined exception bytes are confirmed before they are taken."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import sas_protocol as sp
from sas_protocol.crc import append_crc
from sas_protocol.host import (
    DEFINED_EXCEPTIONS,
    LINK_TRANSITIONS,
    POLL_TRANSITIONS,
    LinkState,
    LinkTrigger,
    PollState,
    PollTrigger,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "sas.md"
GP = sp.GeneralPoll()
SYNC = sp.Outgoing(b"\x80", True)
GP_OUT = sp.Outgoing(b"\x81", True)
COIN_IN = sp.MetersRequest(0x11)
COIN_IN_REPLY = append_crc(bytes.fromhex("01 11 00 00 12 34"))
TERMINAL = (sp.ReplyReceived, sp.ExceptionReported, sp.NoActivity, sp.NotSupported,
            sp.PollFailed)

Taken = set[tuple[PollState, PollTrigger, PollState]]


class RecordingHost(sp.HostProtocol):
    """A HostProtocol that records every poll-state transition it takes."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.taken: Taken = set()

    def _move(self, trigger: PollTrigger) -> None:
        before = self.state
        super()._move(trigger)
        self.taken.add((before, trigger, self.state))


def all_poll_transitions() -> Taken:
    return {(s, t, n) for s, row in POLL_TRANSITIONS.items() for t, n in row.items()}


# --- the table is complete and closed ------------------------------------------------------


def test_every_state_has_a_row_and_every_target_is_a_state() -> None:
    assert set(POLL_TRANSITIONS) == set(PollState)
    assert set(LINK_TRANSITIONS) == set(LinkState)
    assert all(isinstance(n, PollState) for row in POLL_TRANSITIONS.values()
               for n in row.values())
    # only SEND leaves IDLE, and every other state can conclude
    assert set(POLL_TRANSITIONS[PollState.IDLE]) == {PollTrigger.SEND}
    for state in set(PollState) - {PollState.IDLE}:
        assert POLL_TRANSITIONS[state][PollTrigger.CONCLUDE] is PollState.IDLE


def test_a_transition_outside_the_table_is_a_local_error() -> None:
    host = sp.HostProtocol(1)
    with pytest.raises(sp.LocalProtocolError, match="no transition from idle on conclude"):
        host._move(PollTrigger.CONCLUDE)


def scripted_walk() -> Taken:
    """Scenarios that between them take every transition of the table."""
    host = RecordingHost(1, confirm_exceptions={0x20})
    host.send(GP)                                   # IDLE -send-> AWAITING
    host.receive_data(b"\x00")                      # AWAITING -conclude-> IDLE
    host.send(COIN_IN)
    host.receive_data(b"\x01\x99")                  # AWAITING -bad bytes-> DISCARDING
    host.receive_timeout()                          # DISCARDING -re-send-> AWAITING
    host.receive_timeout()                          # AWAITING -re-send-> AWAITING
    host.receive_data(b"\x01\x99")
    host.receive_timeout()                          # DISCARDING -conclude-> IDLE (sends used)
    host.send(GP)
    host.receive_data(b"\x20")                      # AWAITING -confirm-> CONFIRMING
    host.receive_data(b"\x00")                      # CONFIRMING -confirm-> CONFIRMING
    host.receive_data(b"\x20")                      # CONFIRMING -conclude-> IDLE (majority)
    host.send(GP)
    host.receive_data(b"\x20")
    host.receive_data(b"\x01\xff\x00\x00\x00")      # CONFIRMING -bad bytes-> DISCARDING (CRC)
    host.receive_timeout()                          # DISCARDING -confirm-> CONFIRMING
    host.receive_data(b"\x20")
    assert host.events_received()[-1] == sp.ExceptionReported(0x20)
    return host.taken


def test_the_scripted_walk_takes_every_transition() -> None:
    assert scripted_walk() == all_poll_transitions()


def test_the_link_table_is_walked_by_answers_and_failures() -> None:
    host = sp.HostProtocol(1, max_sends=1, link_down_after=1)
    seen = [host.link_state]
    for answer in (None, b"\x00", None, None, b"\x00", b"\x00"):
        host.send(GP)
        if answer is None:
            host.receive_timeout()
        else:
            host.receive_data(answer)
        seen.append(host.link_state)
    assert seen == [LinkState.UNKNOWN, LinkState.DOWN, LinkState.UP, LinkState.DOWN,
                    LinkState.DOWN, LinkState.UP, LinkState.UP]
    events = [e for e in host.events_received() if isinstance(e, (sp.LinkUp, sp.LinkDown))]
    assert events == [sp.LinkDown(), sp.LinkUp(), sp.LinkDown(), sp.LinkUp()]
    link = {(s, t, n) for s, row in LINK_TRANSITIONS.items() for t, n in row.items()}
    assert link == {
        (LinkState.UNKNOWN, LinkTrigger.ANSWER, LinkState.UP),
        (LinkState.UNKNOWN, LinkTrigger.FAILURES, LinkState.DOWN),
        (LinkState.UP, LinkTrigger.ANSWER, LinkState.UP),
        (LinkState.UP, LinkTrigger.FAILURES, LinkState.DOWN),
        (LinkState.DOWN, LinkTrigger.ANSWER, LinkState.UP),
    }


# --- docs/sas.md draws the tables from the code ----------------------------------------------


def render_tables() -> list[str]:
    """The tables as docs/sas.md must show them (the doc is checked against these)."""
    poll = ["| State | Trigger | Next state |", "|---|---|---|"]
    for state, row in POLL_TRANSITIONS.items():
        for trigger, after in row.items():
            poll.append(f"| `{state.value}` | {trigger.value} | `{after.value}` |")
    link = ["| Link | Trigger | Next |", "|---|---|---|"]
    for link_state, link_row in LINK_TRANSITIONS.items():
        for link_trigger, link_after in link_row.items():
            link.append(f"| `{link_state.value}` | {link_trigger.value} | "
                        f"`{link_after.value}` |")
    return ["\n".join(poll) + "\n", "\n".join(link) + "\n"]


@pytest.mark.parametrize("table", render_tables(), ids=["poll", "link"])
def test_docs_show_the_transition_tables_of_the_code(table: str) -> None:
    assert table in DOC.read_text(), (
        "docs/sas.md 'States' table differs from sas_protocol/host_model.py; paste:\n" + table)


def test_docs_name_every_state_and_trigger() -> None:
    text = DOC.read_text()
    section = text[text.index("### States"):]
    for enum in (PollState, PollTrigger, LinkState, LinkTrigger):
        for member in enum:
            assert re.search(rf"\b{re.escape(member.value)}\b", section), member


# --- random input: states move only along the table ------------------------------------------


class HostMachine(RuleBasedStateMachine):
    """Random sends, byte chunks, valid replies and window closes. The host raises on any
    transition outside the table; the invariants tie the state to what the host shows."""

    def __init__(self) -> None:
        super().__init__()
        self.host = RecordingHost(1, confirm_exceptions={0x11, 0x20}, link_down_after=3,
                                  link_down_after_s=1.0)
        self.now = 0.0
        self.polls_started = 0
        self.polls_ended = 0
        self.link_events: list[type] = []

    def _drain(self) -> None:
        self.host.data_to_send()
        for event in self.host.events_received():
            if isinstance(event, TERMINAL) or (
                    isinstance(event, sp.RealTimeEventReceived) and not event.substituted):
                self.polls_ended += 1
            if isinstance(event, (sp.LinkUp, sp.LinkDown)):
                self.link_events.append(type(event))

    @precondition(lambda self: not self.host.awaiting_reply)
    @rule(poll=st.sampled_from([GP, GP, COIN_IN, sp.LockRequest(),
                                sp.RealTimeReportingRequest(True),
                                sp.RealTimeReportingRequest(False)]))
    def send(self, poll: sp.Poll) -> None:
        self.host.send(poll)
        self.polls_started += 1
        self._drain()

    @rule(data=st.binary(min_size=1, max_size=8))
    def noise(self, data: bytes) -> None:
        self.host.receive_data(data)
        self._drain()

    @rule(reply=st.sampled_from([b"\x00", b"\x11", b"\x20", b"\x5e", b"\x1e", b"\x01",
                                 b"\x81", b"\x01\x00", COIN_IN_REPLY,
                                 sp.encode_rte_frame(1, sp.PlainEvent(0x11)),
                                 sp.encode_rte_frame(1, sp.PlainEvent(0x00))]))
    def reply(self, reply: bytes) -> None:
        self.host.receive_data(reply)
        self._drain()

    @rule(elapsed=st.floats(0.0, 1.0))
    def window_closes(self, elapsed: float) -> None:
        self.now += elapsed
        self.host.receive_timeout(self.now)
        self._drain()

    @invariant()
    def state_matches_what_the_host_shows(self) -> None:
        host = self.host
        assert (host.state is PollState.IDLE) == (not host.awaiting_reply)
        assert (host.state is PollState.IDLE) == (host.current_poll is None)
        assert host.link_up == (host.link_state is LinkState.UP)
        assert self.polls_ended == self.polls_started - host.awaiting_reply

    @invariant()
    def link_events_alternate(self) -> None:
        pairs = zip(self.link_events, self.link_events[1:], strict=False)
        assert all(a is not b for a, b in pairs)

    @invariant()
    def only_table_transitions(self) -> None:
        assert self.host.taken <= all_poll_transitions()


TestHostMachine = HostMachine.TestCase
TestHostMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


# --- link-down: a count and a time span --------------------------------------------------------


def fail_gp_at(host: sp.HostProtocol, *times: float) -> list[sp.HostEvent]:
    """One general poll, each send meeting silence at the given clock times."""
    host.send(GP)
    for t in times:
        host.data_to_send()
        host.receive_timeout(t)
    return host.events_received()


def up(host: sp.HostProtocol) -> sp.HostProtocol:
    host.send(GP)
    host.receive_data(b"\x00")
    host.data_to_send()
    assert host.events_received() == [sp.LinkUp(), sp.NoActivity(0)]
    return host


def test_a_glitch_shorter_than_the_span_is_a_retry_not_link_down() -> None:
    host = up(sp.HostProtocol(1, link_down_after=3, link_down_after_s=2.0))
    events = fail_gp_at(host, 0.0, 0.25, 0.5)  # three failed sends in half a second
    assert events == [sp.PollFailed(GP, sp.FailureReason.TIMEOUT)]
    assert host.link_up
    host.send(GP)
    host.receive_data(b"\x00")  # the next poll is answered: the count starts again
    assert sp.LinkDown() not in host.events_received()
    assert fail_gp_at(host, 10.0, 10.25, 10.5)[-1] == sp.PollFailed(GP, sp.FailureReason.TIMEOUT)
    assert host.link_up


def test_failures_spanning_the_time_bring_the_link_down_once() -> None:
    host = up(sp.HostProtocol(1, link_down_after=3, link_down_after_s=2.0))
    events = fail_gp_at(host, 0.0, 0.25, 0.5) + fail_gp_at(host, 0.75, 1.0, 1.25)
    events += fail_gp_at(host, 1.5, 1.75, 2.0)
    assert events.count(sp.LinkDown()) == 1
    assert events[-2:] == [sp.LinkDown(), sp.PollFailed(GP, sp.FailureReason.TIMEOUT)]
    assert sp.LinkDown() not in fail_gp_at(host, 3.0, 3.25, 3.5)


def test_the_count_still_applies_when_the_span_is_long() -> None:
    host = up(sp.HostProtocol(1, max_sends=1, link_down_after=3, link_down_after_s=1.0))
    assert fail_gp_at(host, 0.0) + fail_gp_at(host, 5.0) == [
        sp.PollFailed(GP, sp.FailureReason.TIMEOUT)] * 2
    assert fail_gp_at(host, 6.0)[0] == sp.LinkDown()


def test_a_machine_never_heard_from_is_reported_down() -> None:
    host = sp.HostProtocol(1, link_down_after=3, link_down_after_s=2.0)
    events = fail_gp_at(host, 0.0, 1.0, 2.0)
    assert events == [sp.LinkDown(), sp.PollFailed(GP, sp.FailureReason.TIMEOUT)]
    assert host.link_state is LinkState.DOWN


def test_the_span_needs_the_callers_clock() -> None:
    host = sp.HostProtocol(1, link_down_after_s=2.0)
    host.send(GP)
    with pytest.raises(sp.LocalProtocolError, match="now="):
        host.receive_timeout()
    with pytest.raises(sp.LocalProtocolError, match="link_down_after_s"):
        sp.HostProtocol(1, link_down_after_s=-1)


def test_silence_to_a_general_poll_fails_in_rte_mode_too() -> None:
    host = up(sp.HostProtocol(1, link_down_after=3))
    host.rte_mode = True
    assert fail_gp_at(host, 0, 1, 2) == [sp.LinkDown(),
                                         sp.PollFailed(GP, sp.FailureReason.TIMEOUT)]


def test_nack_and_busy_keep_the_link_and_need_no_clock() -> None:
    host = up(sp.HostProtocol(1, link_down_after=1, link_down_after_s=2.0))
    host.send(COIN_IN)
    for _ in range(3):
        host.data_to_send()
        host.receive_data(b"\x01\x00")  # busy: SAS §3.5, the machine is there
    assert host.events_received() == [sp.PollFailed(COIN_IN, sp.FailureReason.BUSY)]
    assert host.link_up


# --- undefined exception bytes ----------------------------------------------------------------


def test_defined_is_the_reference_table() -> None:
    assert sp.ExceptionReported(0x1E).defined
    assert not sp.ExceptionReported(0x5E).defined
    assert {0x00, 0x1F, 0x7E, 0xA2} <= DEFINED_EXCEPTIONS
    assert not {0x01, 0x26, 0x58, 0x5E, 0xA3, 0xFF} & DEFINED_EXCEPTIONS


def poll_answers(host: sp.HostProtocol, *answers: int) -> list[sp.HostEvent]:
    host.send(GP)
    outs = []
    for answer in answers:
        outs.append(host.data_to_send())
        host.receive_data(bytes((answer,)))
    assert not host.awaiting_reply
    assert all(out == [GP_OUT] for out in outs[1:])  # re-sends are implied NACKs
    return host.events_received()


def test_an_undefined_byte_that_was_a_flipped_door_code_is_corrected() -> None:
    events = poll_answers(up(sp.HostProtocol(1)), 0x5E, 0x1E, 0x1E)
    assert events[-1] == sp.ExceptionReported(0x1E)
    assert sum(isinstance(e, sp.FrameRejected) for e in events) == 1


def test_an_undefined_byte_read_twice_is_reported_as_undefined() -> None:
    events = poll_answers(up(sp.HostProtocol(1)), 0x5E, 0x5E)
    assert events == [sp.ExceptionReported(0x5E)]
    assert not events[0].defined  # type: ignore[union-attr]


def test_an_undefined_byte_then_idle_is_noise() -> None:
    assert poll_answers(up(sp.HostProtocol(1)), 0x5E, 0x00, 0x00)[-1] == sp.NoActivity(0)


def test_defined_codes_outside_confirm_exceptions_are_taken_at_once() -> None:
    assert poll_answers(up(sp.HostProtocol(1)), 0x7E) == [sp.ExceptionReported(0x7E)]
    assert poll_answers(up(sp.HostProtocol(1, confirm_undefined=False)), 0x5E) == [
        sp.ExceptionReported(0x5E)]
