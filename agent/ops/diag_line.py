"""The line half of ``slot-agent diag``: what the line told us (:class:`LineFacts`, JSON-able
so the daemon sends it over the control socket) and the direct probe of a machine when no
daemon runs (:func:`probe_line`). The report's rules are in :mod:`agent.ops.diagnostics`."""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.derive.meters import meter_name
from agent.line.discovery import money_sources
from agent.line.reply_window import ReplyWindow, is_answer, read_late, reply_words
from drivers.base import Transport, TransportError, Word
from sas_protocol.denominations import denomination_cents
from sas_protocol.hexdump import elided_hex
from sas_protocol.host import (
    ExceptionReported,
    FrameRejected,
    HostEvent,
    HostProtocol,
    LinkDown,
    LinkUp,
    NoActivity,
    NotSupported,
    PollFailed,
    RealTimeEventReceived,
    ReplyReceived,
)
from sas_protocol.messages.meters import MeterReply
from sas_protocol.messages.requests import (
    EnhancedValidationRequest,
    ExtendedMetersRequest,
    GeneralPoll,
    LastBillRequest,
    MachineInfoRequest,
    MetersRequest,
    Poll,
    RealTimeReportingRequest,
    SasVersionRequest,
    SelectedMetersRequest,
)
from sas_protocol.messages.responses import MachineInfoReply, SasVersionReply
from sas_protocol.messages.ticket_info import CashoutTicketRequest

__all__ = ["ANSWERED", "IGNORED", "LAST_FRAMES", "MAIN_METERS", "NOT_ASKED", "LineFacts",
           "ignored_commands", "line_facts_port_error", "machine_info_facts",
           "money_poll_states", "priority_facts", "probe_line"]

#: Main meters a technician expects to read (table C-7 codes): coin in, coin out, jackpot,
#: cancelled credits, games played.
MAIN_METERS: tuple[int, ...] = (0x00, 0x01, 0x02, 0x04, 0x05)
#: How many frames each way the probe keeps for the report.
LAST_FRAMES = 8
#: Exceptions a ticket record waits behind: 3D cash-out ticket printed, 3E handpay validated
#: (reference §3.11; the host reads LP 4D, or LP 3D without it, after either).
TICKET_EXCEPTIONS = frozenset({0x3D, 0x3E})
#: General polls diag sends, at most, for a quiet machine before it reads LP 3D.
QUIET_POLLS = 4

#: What ``moneyPolls`` says of a long poll (the daemon's facts): the machine answered it,
#: was found to ignore it (SAS §3.5), or the agent has not sent it yet.
ANSWERED, IGNORED, NOT_ASKED = "answered", "ignored", "notAsked"
#: The polls the money sources choose between (the meter stepdown, the bill meter polls,
#: LP 48, the ticket records): reported in ``moneyPolls`` when ignored, though the sources
#: then name another (agent.line.discovery ``money_sources``).
MONEY_CHOICES = frozenset({"LP 6F", "LP 2F", "LP 46", "LP 20", "LP 1E", "LP 48", "LP 4D",
                           "LP 3D"})
#: The ticket record polls, reported in ``moneyPolls`` on every machine.
TICKET_POLLS = ("LP 4D", "LP 3D")
_POLL = re.compile(r"LP [0-9A-F]{2}")


@dataclass(slots=True)
class LineFacts:
    """What the line told us, in a form the daemon can send as JSON (:meth:`to_json`)."""

    port: str
    address: int
    port_opened: bool = False
    port_error: str | None = None
    general_poll_ok: bool = False
    general_poll_error: str | None = None
    link_up: bool = False
    sas_version: str | None = None
    serial_number: str | None = None
    machine_info: dict[str, Any] | None = None
    credits: int | None = None
    meters: dict[str, int] = field(default_factory=dict)
    ignored_polls: list[str] = field(default_factory=list)
    failed_polls: dict[str, str] = field(default_factory=dict)  # "LP 54" -> reason
    #: polls diag chose not to send, and why ("LP 3D" -> "a cash-out ticket record is ...")
    not_probed: dict[str, str] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    last_frames: list[dict[str, str]] = field(default_factory=list)
    #: The line process's scheduling, ``{"asked", "got", "detail"}`` (the daemon's line
    #: ``status``); None where no line process runs (``diag --direct``).
    priority: dict[str, str] | None = None
    #: The daemon's: per long poll that matters for money (:func:`money_poll_states`),
    #: :data:`ANSWERED`, :data:`IGNORED` or :data:`NOT_ASKED`; None from ``diag --direct``
    #: (what it did not send is in ``not_probed``).
    money_polls: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "port": self.port, "address": self.address, "portOpened": self.port_opened,
            "portError": self.port_error, "generalPollOk": self.general_poll_ok,
            "generalPollError": self.general_poll_error, "linkUp": self.link_up,
            "sasVersion": self.sas_version, "serialNumber": self.serial_number,
            "machineInfo": self.machine_info, "credits": self.credits,
            "meters": dict(self.meters), "ignoredPolls": list(self.ignored_polls),
            "failedPolls": dict(self.failed_polls), "notProbed": dict(self.not_probed),
            "counters": dict(self.counters),
            "lastFrames": list(self.last_frames),
            "priority": None if self.priority is None else dict(self.priority),
            "moneyPolls": None if self.money_polls is None else dict(self.money_polls),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LineFacts:
        return cls(
            port=str(data.get("port", "")), address=int(data.get("address", 0)),
            port_opened=bool(data.get("portOpened")), port_error=data.get("portError"),
            general_poll_ok=bool(data.get("generalPollOk")),
            general_poll_error=data.get("generalPollError"),
            link_up=bool(data.get("linkUp")), sas_version=data.get("sasVersion"),
            serial_number=data.get("serialNumber"), machine_info=data.get("machineInfo"),
            credits=data.get("credits"), meters=dict(data.get("meters") or {}),
            ignored_polls=list(data.get("ignoredPolls") or []),
            failed_polls=dict(data.get("failedPolls") or {}),
            not_probed=dict(data.get("notProbed") or {}),
            counters=dict(data.get("counters") or {}),
            last_frames=list(data.get("lastFrames") or []),
            priority=priority_facts(data.get("priority")),
            money_polls=_money_polls_facts(data.get("moneyPolls")),
        )


def _money_polls_facts(value: object) -> dict[str, str] | None:
    """``moneyPolls`` as the facts keep it; None when absent (``--direct``, an older
    daemon's answer) or not an object."""
    if not isinstance(value, Mapping):
        return None
    return {str(poll): str(state) for poll, state in value.items()}


def ignored_commands(ignored_polls: Collection[str]) -> set[int]:
    """The commands of ``ignored_polls`` (``"LP 2F"``), as the money sources take them. Both
    paths list LP 6F when the machine ignores it (the agent's meter reads and diag
    ``--direct`` both try it before 2F), so nothing is inferred from the others."""
    return {int(p[3:], 16) for p in ignored_polls if p.startswith("LP ") and len(p) == 5}


def money_poll_states(ignored_polls: Collection[str],
                      answered_polls: Collection[str]) -> dict[str, str]:
    """Per long poll that matters for money, what the line knows of it: every poll the
    money sources name (agent.line.discovery ``money_sources``), the ticket record polls LP
    4D and LP 3D, and the polls of :data:`MONEY_CHOICES` found ignored. Each is
    :data:`IGNORED` (in ``ignored_polls``), else :data:`ANSWERED` (in ``answered_polls``),
    else :data:`NOT_ASKED`: the daemon sends some only when needed (a ticket poll at a
    link-up and after a ticket, LP 48 after a bill, LP 1B after a handpay)."""
    sources = money_sources(ignored_commands(ignored_polls))
    polls = {poll for source in sources.values() for poll in _POLL.findall(source)}
    polls.update(TICKET_POLLS)
    polls.update(MONEY_CHOICES.intersection(ignored_polls))
    return {poll: IGNORED if poll in ignored_polls else
            ANSWERED if poll in answered_polls else NOT_ASKED for poll in sorted(polls)}


def priority_facts(value: object) -> dict[str, str] | None:
    """A line ``status``'s ``priority`` as the facts keep it, or None when absent or not an
    object (an older daemon's answer)."""
    if not isinstance(value, Mapping):
        return None
    return {key: str(value.get(key, "")) for key in ("asked", "got", "detail")}


def _poll_name(poll: Poll) -> str:
    return "general poll" if isinstance(poll, GeneralPoll) else f"LP {poll.command:02X}"


def machine_info_facts(reply: MachineInfoReply) -> dict[str, Any]:
    """LP 1F as the report shows it (denomination code and cents per credit)."""
    try:
        cents: int | None = denomination_cents(reply.denomination)
    except (KeyError, ValueError):
        cents = None
    return {"gameId": reply.game_id, "additionalId": reply.additional_id,
            "denominationCode": reply.denomination, "denominationCents": cents,
            "maxBet": reply.max_bet, "paytableId": reply.paytable_id,
            "basePercent": reply.base_percent}


class _Prober:
    """Drives one HostProtocol over a transport, poll by poll, recording what happened."""

    def __init__(self, transport: Transport, host: HostProtocol, reply_timeout: float,
                 clock: Callable[[], float]) -> None:
        self.transport = transport
        self.host = host
        #: the reply window (s), widened by a late answer (agent.line.reply_window)
        self.window = ReplyWindow(reply_timeout)
        self.clock = clock
        self.frames: deque[dict[str, str]] = deque(maxlen=LAST_FRAMES * 2)
        self.counters = {"polls": 0, "sends": 0, "ok": 0, "timeout": 0, "crc": 0,
                         "framing": 0, "nack": 0, "busy": 0, "unsupported": 0,
                         "badFrames": 0, "exceptions": 0, "linkDowns": 0, "late": 0}
        #: every exception code the machine reported (general polls and RTE events)
        self.exceptions: list[int] = []

    def run(self, poll: Poll) -> list[HostEvent]:
        """Send ``poll`` until it is answered or given up; every event it produced."""
        host = self.host
        self.counters["polls"] += 1
        self._drop_late()  # a late frame must not be taken for this poll's reply
        host.send(poll)
        events: list[HostEvent] = []
        while host.awaiting_reply:
            for out in host.data_to_send():
                self.transport.write(out.data, wakeup=out.wakeup)
                self.counters["sends"] += 1
                self.frames.append({"dir": "tx", "hex": elided_hex(out.data)})
            # SAS §2.3: the reply must start within the window; bytes keep it open a little
            # (inter-byte gap <= 5 ms, plus transport latency).
            deadline = self.clock() + self.window.seconds
            received = bytearray()  # what the line carried, chirps too (for the frames)
            replied = False
            while host.awaiting_reply:
                words = self.transport.read(deadline)
                if not words:
                    break
                received += bytes(w.value for w in words)
                chunk = bytes(w.value for w in reply_words(words))  # chirps are no reply
                if chunk:
                    replied = True
                    host.receive_data(chunk)
                    deadline = max(deadline, self.clock() + 0.02)
            if received:
                self.frames.append({"dir": "rx", "hex": elided_hex(bytes(received))})
            if host.awaiting_reply:
                host.receive_timeout()
                if not replied and self._late_answer() and host.awaiting_reply:
                    host.receive_late()  # the machine answered: not an unsupported poll
            events.extend(host.events_received())
        events.extend(host.events_received())
        for ev in events:
            self._count(ev)
        return events

    def _late_answer(self) -> bool:
        """After a window met silence: whether the machine answers within one more window.
        If it does, its answer is thrown away (sent now, the re-send's answer would come
        after it, and the late one be taken for it) and the window widened; the host is
        told, so that the poll is not taken for unsupported (SAS §3.5: only an unsupported
        poll goes unanswered). The wait is what the agent's poll spacing gives it."""
        words = self.transport.read(self.clock() + self.window.seconds)
        if not words:
            return False
        return self._drop_late(words)

    def _drop_late(self, first: Sequence[Word] = ()) -> bool:
        """Throw away what came after a window; True when it held an answer (not chirps)."""
        words = [*first, *read_late(self.transport, self.clock())]
        if not words:
            return False
        self.frames.append({"dir": "rx", "hex": elided_hex(bytes(w.value for w in words))})
        if not is_answer(words):
            return False
        self.counters["late"] += 1
        self.window.widen()
        return True

    def _count(self, ev: HostEvent) -> None:
        c = self.counters
        if isinstance(ev, ReplyReceived | NoActivity | RealTimeEventReceived):
            c["ok"] += 1
            if isinstance(ev, RealTimeEventReceived):
                self.exceptions.append(ev.event.event_code)
        elif isinstance(ev, ExceptionReported):
            c["ok"] += 1
            c["exceptions"] += 1
            self.exceptions.append(ev.code)
        elif isinstance(ev, NotSupported):
            c["unsupported"] += 1
        elif isinstance(ev, PollFailed):
            c[ev.reason.value] += 1
        elif isinstance(ev, FrameRejected):
            c["badFrames"] += 1
        elif isinstance(ev, LinkDown):
            c["linkDowns"] += 1


def _reply(events: Sequence[HostEvent], kind: type[Any]) -> Any:
    for ev in events:
        if isinstance(ev, ReplyReceived) and isinstance(ev.reply, kind):
            return ev.reply
    return None


def _outcome(events: Sequence[HostEvent]) -> str | None:
    """"ignored" (NotSupported), a failure reason, or None when answered."""
    for ev in events:
        if isinstance(ev, NotSupported):
            return "ignored"
        if isinstance(ev, PollFailed):
            return ev.reason.value
    return None


#: How often diag asks a long poll whose answers come late: each late answer doubles the
#: window (agent.line.reply_window), and 50 ms reaches MAX_WINDOW_S in three doublings.
LATE_ASKS = 4


def probe_line(
    transport: Transport,
    address: int,
    *,
    port: str,
    reply_timeout: float = 0.05,
    rte_configured: bool = False,
    clock: Callable[[], float] = time.monotonic,
    general_poll_attempts: int = 3,
) -> LineFacts:
    """Poll the machine at ``address`` directly (the daemon must NOT be running).

    Order: general poll until answered (sync first, SAS §3.3); LP 0E off when the
    configuration enables RTE (a machine left in RTE mode answers with event frames); LP 54;
    LP 1F; LP 1A credits; main meters by LP 6F, then LP 2F, falling back to the legacy LP 1C, then
    single legacy polls, remembering what the machine ignores (SAS §3.5: an unsupported long
    poll gets no reply at all); without LP 2F the bill polls; then the ticket records (LP 4D
    FF, and LP 3D where LP 4D is ignored: :func:`_probe_ticket_records`). Exceptions
    reported meanwhile are acknowledged as a side effect; the daemon re-reads the meters at
    start, so no money is lost by that.
    """
    facts = LineFacts(port=port, address=address, port_opened=True)
    host = HostProtocol(address, sync_address=0 if address != 0 else 1)
    prober = _Prober(transport, host, reply_timeout, clock)

    def finish() -> LineFacts:
        facts.link_up = host.link_up
        facts.counters = dict(prober.counters)
        facts.last_frames = list(prober.frames)
        return facts

    def long_poll(poll: Poll) -> list[HostEvent]:
        for _ in range(LATE_ASKS):
            late = prober.counters["late"]
            events = prober.run(poll)
            if _outcome(events) is None or prober.counters["late"] == late:
                break
            # a late answer came meanwhile (reply_window): the poll is asked again in the
            # widened window, or a machine later than the configured window would have its
            # first long polls fail (or taken for ignored) until the window caught up
        outcome = _outcome(events)
        if outcome == "ignored":
            facts.ignored_polls.append(_poll_name(poll))
        elif outcome is not None:
            facts.failed_polls[_poll_name(poll)] = outcome
        return events

    try:
        answered = False
        for _ in range(general_poll_attempts):
            events = prober.run(GeneralPoll())
            if any(isinstance(e, ExceptionReported | NoActivity | RealTimeEventReceived | LinkUp)
                   for e in events) and host.link_up:
                answered = True
                break
            failure = _outcome(events)
            facts.general_poll_error = f"no answer ({failure or 'no reply'})"
        facts.general_poll_ok = answered
        if not answered:
            return finish()
        facts.general_poll_error = None
        if rte_configured:
            long_poll(RealTimeReportingRequest(enable=False))
        version = _reply(long_poll(SasVersionRequest()), SasVersionReply)
        if version is not None:
            facts.sas_version = version.version
            facts.serial_number = version.serial
        info = _reply(long_poll(MachineInfoRequest()), MachineInfoReply)
        if info is not None:
            facts.machine_info = machine_info_facts(info)
        credits = _reply(long_poll(MetersRequest(0x1A)), MeterReply)
        if credits is not None:
            facts.credits = credits.meters.get(0x0C)
        _read_main_meters(facts, long_poll)
        if "LP 2F" in facts.ignored_polls:
            _probe_legacy_money(long_poll)
        _probe_ticket_records(facts, prober, long_poll)
    except TransportError as exc:
        facts.general_poll_error = facts.general_poll_error or f"transport failed: {exc}"
    return finish()


def _read_main_meters(facts: LineFacts, long_poll: Callable[[Poll], list[HostEvent]]) -> None:
    """LP 6F first, as the agent reads its meters (agent.line.meter_reads); then LP 2F; then
    LP 1C (all in one); then single legacy polls (SAS §3.10 stepdown). Each answers the
    meters the one before left out, so the ignored polls listed are the agent's too."""
    found: dict[int, int] = {}
    reply = _reply(long_poll(ExtendedMetersRequest(game=0, codes=MAIN_METERS)), MeterReply)
    if reply is not None:
        found.update(reply.meters)
    if not all(code in found for code in MAIN_METERS):
        reply = _reply(long_poll(SelectedMetersRequest(game=0, codes=MAIN_METERS)), MeterReply)
        if reply is not None:
            found.update(reply.meters)
    if not all(code in found for code in MAIN_METERS):
        reply = _reply(long_poll(MetersRequest(0x1C)), MeterReply)
        if reply is not None:
            found.update(reply.meters)
    single = {0x00: 0x11, 0x01: 0x12, 0x02: 0x14, 0x04: 0x10, 0x05: 0x15}
    for code in MAIN_METERS:
        if code not in found:
            reply = _reply(long_poll(MetersRequest(single[code])), MeterReply)
            if reply is not None:
                found.update(reply.meters)
    facts.meters = {meter_name(code): value for code, value in sorted(found.items())
                    if code in MAIN_METERS}


def _probe_legacy_money(long_poll: Callable[[Poll], list[HostEvent]]) -> None:
    """On a machine without LP 2F, the polls its bills depend on (the ignored ones land in
    ``ignored_polls``): the bill meter polls 46, 20, 1E and LP 48 (last accepted bill)."""
    for command in (0x46, 0x20, 0x1E):
        if _reply(long_poll(MetersRequest(command)), MeterReply) is not None:
            break
    long_poll(LastBillRequest())


def _probe_ticket_records(facts: LineFacts, prober: _Prober,
                          long_poll: Callable[[Poll], list[HostEvent]]) -> None:
    """The poll the agent reads a cash-out ticket's record with (agent.line.schedule
    ``ticket_read_job``): LP 4D FF (look-ahead: reads a record without marking it read,
    reference §3.9), and where the machine ignores LP 4D, LP 3D (standard validation,
    reference §3.9b), so the report says whether tickets on this machine can be valued.

    LP 3D has no look-ahead: on a machine without LP 4D, reading it is the host's read of
    the ticket the 3D exception is about, and the exception persists only until 4D or 3D is
    read (reference §4.3, "Duplicated exceptions"). So LP 3D is sent only when no ticket
    record waits: no exception 3D / 3E was seen in this probe and a general poll has just
    answered "no activity". Otherwise it is left to the agent (``not_probed`` says why)."""
    long_poll(EnhancedValidationRequest(0xFF))
    if "LP 4D" not in facts.ignored_polls:
        return
    pending = _ticket_pending(prober)
    if pending is not None:
        facts.not_probed["LP 3D"] = pending
        return
    # `A 3D`, a type R poll (no CRC); the reply is `A 3D` + validation number (4 BCD bytes) +
    # amount in cents (5 BCD bytes) + CRC, the layout the agent reads (reference §3.9b)
    long_poll(CashoutTicketRequest())


def _ticket_pending(prober: _Prober) -> str | None:
    """Why LP 3D must not be read now, or None when the machine is quiet: a general poll
    answered "no activity" (at most :data:`QUIET_POLLS` are sent) and no exception 3D / 3E
    was seen in the whole probe."""
    for _ in range(QUIET_POLLS):
        quiet = any(isinstance(ev, NoActivity) for ev in prober.run(GeneralPoll()))
        seen = TICKET_EXCEPTIONS.intersection(prober.exceptions)
        if seen:
            codes = "/".join(f"{code:02X}" for code in sorted(seen))
            return (f"a ticket record is waiting (exception {codes}): reading LP 3D would "
                    "take it from the agent, which reads it when it runs")
        if quiet:
            return None
    return (f"the machine reported exceptions at each of {QUIET_POLLS} general polls, so "
            "diag could not tell that no ticket record waits")


def line_facts_port_error(port: str, address: int, error: BaseException) -> LineFacts:
    """Facts for a port that did not open."""
    return LineFacts(port=port, address=address, port_opened=False, port_error=str(error))
