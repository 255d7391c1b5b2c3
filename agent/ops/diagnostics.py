"""``slot-agent diag``: the checks a technician runs at the machine, and the report they make.

Three kinds of facts feed the report, each a plain JSON-able mapping so the running daemon can
send them over the control socket unchanged:

- *line facts* (:class:`LineFacts`): did the port open, did the machine answer a general
  poll, who it is (LP 54, LP 1F), its credits and main meters, which long polls it ignores,
  the link counters and the last frames as elided hex. The daemon builds them from its line
  owner; without a daemon :func:`probe_line` polls the machine directly with
  :class:`~sas_protocol.host.HostProtocol` over a transport it is given.
- *outbox facts*: depth, oldest unacknowledged event, ``quick_check``
  (:func:`outbox_facts`, read-only, safe beside the daemon).
- *uplink facts*: DNS, TCP, TLS, authentication and the hub's clock, each step on its own
  (:func:`probe_uplink`). The WebSocket handshake is made and closed without ``hello``, so
  a running daemon's session is never replaced.

:func:`build_report` turns the facts into :class:`Check` rows (``ok``, ``warn``, ``fail`` or
``skip``, with a hint for anything not ok); :func:`render_table` and :meth:`Report.to_json`
print them. The exit code is 1 when any check failed.
"""

from __future__ import annotations

import contextlib
import email.utils
import enum
import os
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from agent import __version__
from agent.config import Config, ConfigError
from agent.derive.meters import meter_name
from agent.line.discovery import money_sources
from agent.uplink.tls import client_ssl_context
from drivers.base import Transport, TransportError
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
    GeneralPoll,
    MachineInfoRequest,
    MetersRequest,
    Poll,
    RealTimeReportingRequest,
    SasVersionRequest,
    SelectedMetersRequest,
)
from sas_protocol.messages.responses import MachineInfoReply, SasVersionReply

__all__ = [
    "CHECK_IDS",
    "MAIN_METERS",
    "Check",
    "CheckStatus",
    "LineFacts",
    "Report",
    "build_report",
    "outbox_facts",
    "probe_line",
    "probe_uplink",
    "render_table",
]

#: Main meters a technician expects to read (table C-7 codes): coin in, coin out, jackpot,
#: cancelled credits, games played.
MAIN_METERS: tuple[int, ...] = (0x00, 0x01, 0x02, 0x04, 0x05)
#: How many frames each way the probe keeps for the report.
LAST_FRAMES = 8


class CheckStatus(enum.StrEnum):
    OK = "ok"
    WARN = "warn"  # works, but worth a look; does not fail the run
    FAIL = "fail"
    SKIP = "skip"  # not run: not configured, or an earlier step failed


@dataclass(frozen=True, slots=True)
class Check:
    """One row of the report. ``hint`` says where to look when the status is not ok."""

    id: str
    title: str
    status: CheckStatus
    detail: str
    hint: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "status": self.status.value,
                "detail": self.detail, "hint": self.hint, "data": dict(self.data)}


#: Every check, in report order (the JSON report always has all of them).
CHECK_IDS: tuple[tuple[str, str], ...] = (
    ("serial_port", "serial port opens"),
    ("general_poll", "general poll answered"),
    ("sas_version", "SAS version and serial number (LP 54)"),
    ("machine_info", "machine info and denomination (LP 1F)"),
    ("meters", "credits and main meters"),
    ("ignored_polls", "long polls the machine ignores"),
    ("link_errors", "link errors and last frames"),
    ("outbox", "outbox depth, oldest unacknowledged, health"),
    ("uplink_dns", "uplink: DNS"),
    ("uplink_tcp", "uplink: TCP connect"),
    ("uplink_tls", "uplink: TLS certificate"),
    ("uplink_auth", "uplink: authentication"),
    ("clock_skew", "clock skew against the hub"),
)
_TITLES = dict(CHECK_IDS)


@dataclass(frozen=True, slots=True)
class Report:
    """The checks, where the line facts came from (``daemon`` or ``direct``) and when."""

    checks: tuple[Check, ...]
    source: str
    terminal_id: str
    generated_at: float

    @property
    def ok(self) -> bool:
        return not any(c.status is CheckStatus.FAIL for c in self.checks)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def check(self, check_id: str) -> Check:
        for c in self.checks:
            if c.id == check_id:
                return c
        raise KeyError(check_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "source": self.source,
            "terminalId": self.terminal_id,
            "version": __version__,
            "generatedAt": self.generated_at,
            "checks": [c.to_json() for c in self.checks],
        }


def _check(check_id: str, status: CheckStatus, detail: str, hint: str | None = None,
           **data: Any) -> Check:
    return Check(check_id, _TITLES[check_id], status, detail,
                 hint if status is not CheckStatus.OK else None, data)


# ------------------------------------------------------------------------------ line facts


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
    counters: dict[str, int] = field(default_factory=dict)
    last_frames: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "port": self.port, "address": self.address, "portOpened": self.port_opened,
            "portError": self.port_error, "generalPollOk": self.general_poll_ok,
            "generalPollError": self.general_poll_error, "linkUp": self.link_up,
            "sasVersion": self.sas_version, "serialNumber": self.serial_number,
            "machineInfo": self.machine_info, "credits": self.credits,
            "meters": dict(self.meters), "ignoredPolls": list(self.ignored_polls),
            "failedPolls": dict(self.failed_polls), "counters": dict(self.counters),
            "lastFrames": list(self.last_frames),
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
            counters=dict(data.get("counters") or {}),
            last_frames=list(data.get("lastFrames") or []),
        )


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
        self.reply_timeout = reply_timeout
        self.clock = clock
        self.frames: deque[dict[str, str]] = deque(maxlen=LAST_FRAMES * 2)
        self.counters = {"polls": 0, "sends": 0, "ok": 0, "timeout": 0, "crc": 0,
                         "framing": 0, "nack": 0, "busy": 0, "unsupported": 0,
                         "badFrames": 0, "exceptions": 0, "linkDowns": 0}

    def run(self, poll: Poll) -> list[HostEvent]:
        """Send ``poll`` until it is answered or given up; every event it produced."""
        host = self.host
        self.counters["polls"] += 1
        host.send(poll)
        events: list[HostEvent] = []
        while host.awaiting_reply:
            for out in host.data_to_send():
                self.transport.write(out.data, wakeup=out.wakeup)
                self.counters["sends"] += 1
                self.frames.append({"dir": "tx", "hex": elided_hex(out.data)})
            # SAS §2.3: the reply must start within the window; bytes keep it open a little
            # (inter-byte gap <= 5 ms, plus transport latency).
            deadline = self.clock() + self.reply_timeout
            received = bytearray()
            while host.awaiting_reply:
                words = self.transport.read(deadline)
                if not words:
                    break
                chunk = bytes(w.value for w in words)
                received += chunk
                host.receive_data(chunk)
                deadline = max(deadline, self.clock() + 0.02)
            if received:
                self.frames.append({"dir": "rx", "hex": elided_hex(bytes(received))})
            if host.awaiting_reply:
                host.receive_timeout()
            events.extend(host.events_received())
        events.extend(host.events_received())
        for ev in events:
            self._count(ev)
        return events

    def _count(self, ev: HostEvent) -> None:
        c = self.counters
        if isinstance(ev, ReplyReceived | NoActivity | RealTimeEventReceived):
            c["ok"] += 1
        elif isinstance(ev, ExceptionReported):
            c["ok"] += 1
            c["exceptions"] += 1
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
    LP 1F; LP 1A credits; main meters by LP 2F, falling back to the legacy LP 1C, then
    single legacy polls, remembering what the machine ignores (SAS §3.5: an unsupported long
    poll gets no reply at all). Exceptions reported meanwhile are acknowledged as a side
    effect; the daemon re-reads the meters at start, so no money is lost by that.
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
        events = prober.run(poll)
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
    except TransportError as exc:
        facts.general_poll_error = facts.general_poll_error or f"transport failed: {exc}"
    return finish()


def _read_main_meters(facts: LineFacts, long_poll: Callable[[Poll], list[HostEvent]]) -> None:
    """LP 2F first; then LP 1C (all in one); then single legacy polls (SAS §3.10 stepdown)."""
    found: dict[int, int] = {}
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


def line_facts_port_error(port: str, address: int, error: BaseException) -> LineFacts:
    """Facts for a port that did not open."""
    return LineFacts(port=port, address=address, port_opened=False, port_error=str(error))


# ------------------------------------------------------------------------------ outbox


def outbox_facts(path: str, *, now: float | None = None) -> dict[str, Any]:
    """Read-only look at the outbox file (safe while the daemon writes to it)."""
    from agent.store.outbox import Outbox, OutboxError

    now = time.time() if now is None else now
    try:
        reader = Outbox.open_reader(path)
    except OutboxError as exc:
        return {"path": path, "exists": os.path.exists(path), "error": str(exc)}
    try:
        stats = reader.stats()
        health = reader.quick_check()
    except Exception as exc:  # a damaged file must be reported, never a traceback
        return {"path": path, "exists": True, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        reader.close()
    oldest = stats.oldest_unacked_created_at
    return {
        "path": path, "exists": True, "error": None, "depth": stats.depth, "rows": stats.rows,
        "lastSeq": stats.last_seq, "ackedSeq": stats.acked_seq,
        "oldestUnackedAgeS": None if oldest is None else max(0.0, now - oldest),
        "dbBytes": stats.db_bytes, "walBytes": stats.wal_bytes, "quickCheck": health,
    }


# ------------------------------------------------------------------------------ uplink


def probe_uplink(config: Config, token: str | None, *, timeout: float = 5.0,
                 now: Callable[[], float] = time.time) -> dict[str, Any]:
    """Each step to the hub on its own: DNS, TCP, TLS, WebSocket handshake with the token.

    Returns ``{"configured", "url", "dns", "tcp", "tls", "auth", "clock"}``; each step is
    ``{"ok": bool | None, "detail": str}`` (None: not run). The handshake is closed before
    ``hello`` so the hub never replaces a running daemon's session. The hub's clock comes
    from the handshake's HTTP ``Date`` header (1 s resolution).
    """
    url = config.uplink.url
    out: dict[str, Any] = {"configured": url is not None, "url": url}
    for step in ("dns", "tcp", "tls", "auth"):
        out[step] = {"ok": None, "detail": "not run"}
    out["clock"] = {"skewS": None, "detail": "not measured"}
    if url is None:
        return out
    parts = urlsplit(url)
    secure = parts.scheme == "wss"
    host = parts.hostname or ""
    port = parts.port or (443 if secure else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        out["dns"] = {"ok": False, "detail": f"cannot resolve {host}: {exc.strerror}"}
        return out
    addresses = sorted({str(info[4][0]) for info in infos})
    out["dns"] = {"ok": True, "detail": f"{host} -> {', '.join(addresses)}"}
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        out["tcp"] = {"ok": False, "detail": f"cannot connect to {host}:{port}: "
                                             f"{exc.strerror or exc}"}
        return out
    out["tcp"] = {"ok": True, "detail": f"connected to {host}:{port}"}
    context: ssl.SSLContext | None = None
    try:
        if secure:
            # The uplink's own context (agent.uplink.tls), so diag tests the handshake the daemon
            # makes: the same CA, client certificate and TLS 1.2 floor.
            try:
                context = client_ssl_context(config.uplink)
            except ConfigError as exc:
                out["tls"] = {"ok": False, "detail": "; ".join(str(p) for p in exc.problems)}
                return out
            try:
                with context.wrap_socket(sock, server_hostname=host) as tls:
                    cert = tls.getpeercert() or {}
                    out["tls"] = {"ok": True, "detail": _describe_cert(cert, tls.version())}
            except (ssl.SSLError, OSError) as exc:
                reason = getattr(exc, "verify_message", None) or exc
                out["tls"] = {"ok": False, "detail": f"TLS handshake with {host} failed: {reason}"}
                return out
        else:
            out["tls"] = {"ok": None, "detail": "plain ws:// (uplink.allow_insecure): no TLS"}
    finally:
        with contextlib.suppress(OSError):
            sock.close()
    if token is None:
        out["auth"] = {"ok": False, "detail": "no token could be read (see uplink.token_file "
                                              "or uplink.token_env)"}
        return out
    out["auth"], date = _handshake(url, token, context, timeout)
    if date is not None:
        skew = now() - date
        out["clock"] = {"skewS": round(skew, 1),
                        "detail": f"this PC is {abs(skew):.0f} s "
                                  f"{'ahead of' if skew >= 0 else 'behind'} the hub"}
    return out


def _describe_cert(cert: Mapping[str, Any], version: str | None) -> str:
    subject = dict(item[0] for item in cert.get("subject", ()) if item)
    issuer = dict(item[0] for item in cert.get("issuer", ()) if item)
    return (f"{version or 'TLS'}, certificate for {subject.get('commonName', '?')} issued by "
            f"{issuer.get('commonName') or issuer.get('organizationName', '?')}, valid until "
            f"{cert.get('notAfter', '?')}")


def _handshake(url: str, token: str, context: ssl.SSLContext | None,
               timeout: float) -> tuple[dict[str, Any], float | None]:
    from websockets.exceptions import InvalidStatus, WebSocketException
    from websockets.sync.client import connect

    try:
        ws = connect(url, additional_headers={"Authorization": f"Bearer {token}"},
                     ssl=context, open_timeout=timeout, proxy=None)
    except InvalidStatus as exc:
        code = exc.response.status_code
        reason = {401: "the hub does not know this token (401)",
                  403: "the token is not a terminal token (403)"}.get(
            code, f"the hub refused the connection with HTTP {code}")
        return {"ok": False, "detail": reason, "status": code}, _date(exc.response.headers)
    except (WebSocketException, OSError, TimeoutError) as exc:
        return {"ok": False, "detail": f"WebSocket handshake failed: {exc}"}, None
    try:
        response = ws.response
        date = _date(response.headers) if response is not None else None
    finally:
        ws.close()
    return {"ok": True, "detail": "the hub accepted the token"}, date


def _date(headers: Any) -> float | None:
    value = headers.get("Date") if headers is not None else None
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


# ------------------------------------------------------------------------------ the report


def build_report(
    *,
    line: LineFacts | None,
    outbox: Mapping[str, Any] | None,
    uplink: Mapping[str, Any] | None,
    source: str,
    terminal_id: str,
    daemon_uplink: Mapping[str, Any] | None = None,
    max_skew_s: float = 30.0,
    generated_at: float | None = None,
) -> Report:
    """Every check of :data:`CHECK_IDS` from the facts (a missing fact is a ``skip``)."""
    checks = [*_line_checks(line), _outbox_check(outbox),
              *_uplink_checks(uplink, daemon_uplink, max_skew_s)]
    return Report(tuple(checks), source, terminal_id,
                  time.time() if generated_at is None else generated_at)


_SKIP_LINE = "the machine did not answer a general poll"


def _line_checks(line: LineFacts | None) -> list[Check]:
    ids = [cid for cid, _ in CHECK_IDS[:7]]
    if line is None:
        return [_check(cid, CheckStatus.SKIP, "line not checked") for cid in ids]
    out: list[Check] = []
    if not line.port_opened:
        error = line.port_error or "cannot open"
        out.append(_check(
            "serial_port", CheckStatus.FAIL, f"{line.port}: {error}",
            _port_hint(line.port, error), port=line.port))
        out.extend(_check(cid, CheckStatus.SKIP, "the serial port did not open")
                   for cid in ids[1:])
        return out
    out.append(_check("serial_port", CheckStatus.OK, f"{line.port} opened", port=line.port))
    if not line.general_poll_ok:
        out.append(_check(
            "general_poll", CheckStatus.FAIL,
            f"no answer at SAS address {line.address}: {line.general_poll_error or 'silence'}",
            "check the address in the machine's SAS menu against machines[].address; the "
            "cable (TX/RX swapped, ground); that the SAS port is enabled on the machine; "
            "19200 baud", address=line.address))
        out.extend(_check(cid, CheckStatus.SKIP, _SKIP_LINE) for cid in ids[2:5])
    else:
        out.append(_check("general_poll", CheckStatus.OK,
                          f"the machine at SAS address {line.address} answers",
                          address=line.address))
        out.append(_sas_version_check(line))
        out.append(_machine_info_check(line))
        out.append(_meters_check(line))
    out.append(_ignored_check(line))
    out.append(_link_check(line))
    return out


def _port_hint(port: str, error: str) -> str:
    lowered = error.lower()
    if "control" in lowered or "daemon" in lowered:
        return ("the running daemon owns the serial line, so diag did not open it: check the "
                "daemon (systemctl status slot-agent; journalctl -u slot-agent); members of "
                "the slot-agent group may use its control socket; --direct only with the "
                "daemon stopped")
    if "permission" in lowered or "errno 13" in lowered:
        return (f"the user may not open {port}: add it to the dialout group "
                "(sudo usermod -aG dialout <user>, then log in again); under systemd check "
                "SupplementaryGroups=dialout and the DeviceAllow= group of the adapter")
    if "busy" in lowered or "resource temporarily" in lowered or "lock" in lowered:
        return f"another program holds {port}: fuser {port}; is slot-agent already running?"
    if port.startswith("tcp://"):
        return "nothing listens at that address: is the serial server / emulator running?"
    return ("the device does not exist: ls -l /dev/serial/by-id/; prefer a by-id path in "
            "serial.port; after plugging an adapter, restart the service")


def _sas_version_check(line: LineFacts) -> Check:
    if line.sas_version is None:
        status = "ignored" if "LP 54" in line.ignored_polls else line.failed_polls.get(
            "LP 54", "no reply")
        return _check("sas_version", CheckStatus.FAIL, f"LP 54 not answered ({status})",
                      "a machine that answers general polls but not long polls: host control "
                      "may be disabled in the machine's SAS settings")
    return _check("sas_version", CheckStatus.OK,
                  f"SAS {line.sas_version[:1]}.{line.sas_version[1:]}, serial number "
                  f"{line.serial_number or '(none)'}",
                  sasVersion=line.sas_version, serialNumber=line.serial_number)


def _machine_info_check(line: LineFacts) -> Check:
    info = line.machine_info
    if info is None:
        return _check("machine_info", CheckStatus.FAIL, "LP 1F not answered",
                      "host control may be disabled in the machine's SAS settings")
    cents = info.get("denominationCents")
    detail = (f"game {info.get('gameId')}, paytable {info.get('paytableId')}, "
              f"denomination code {info.get('denominationCode')}")
    if not cents:
        return _check("machine_info", CheckStatus.WARN, f"{detail} (no money value)",
                      "set the accounting denomination on the machine; money events wait "
                      "for it", **info)
    return _check("machine_info", CheckStatus.OK, f"{detail} = {cents} ¢ per credit",
                  **info)


def _money_sources(line: LineFacts) -> dict[str, str]:
    """Which money classes the machine can meter, and from what (agent.line.discovery)."""
    ignored = {int(p[3:], 16) for p in line.ignored_polls
               if p.startswith("LP ") and len(p) == 5}
    if 0x2F in ignored:
        ignored |= {0x6F, 0xAF}  # the stepdown tries 6F/AF before 2F (agent.line.meter_reads)
    return money_sources(ignored)


def _meters_check(line: LineFacts) -> Check:
    wanted = [meter_name(code) for code in MAIN_METERS]
    missing = [name for name in wanted if name not in line.meters]
    shown = ", ".join(f"{k} {v}" for k, v in line.meters.items())
    credits = "unknown" if line.credits is None else str(line.credits)
    sources = _money_sources(line)
    money = "; ".join(f"{k}: {v}" for k, v in sources.items())
    detail = f"credits {credits}; {shown or 'no meters read'}; money from: {money}"
    data: dict[str, Any] = {"credits": line.credits, "meters": line.meters,
                            "moneySources": sources}
    if len(missing) == len(wanted):
        return _check("meters", CheckStatus.FAIL, detail,
                      "no main meter is readable: money cannot be tracked; see the ignored "
                      "long polls", **data)
    if missing or line.credits is None:
        what = ", ".join(missing) if missing else "current credits (LP 1A)"
        return _check("meters", CheckStatus.WARN, f"{detail}; missing {what}",
                      "the machine ignores these meter polls; see the ignored long polls",
                      **data)
    return _check("meters", CheckStatus.OK, detail, **data)


def _ignored_check(line: LineFacts) -> Check:
    if not line.general_poll_ok:
        return _check("ignored_polls", CheckStatus.SKIP, _SKIP_LINE)
    if not line.ignored_polls:
        return _check("ignored_polls", CheckStatus.OK, "none", ignored=[])
    return _check("ignored_polls", CheckStatus.WARN, ", ".join(line.ignored_polls),
                  "expected for older SAS versions; a long list on a recent machine means a "
                  "vendor quirk flag may be needed", ignored=line.ignored_polls)


def _link_check(line: LineFacts) -> Check:
    c = line.counters
    errors = {k: int(c.get(k, 0)) for k in ("timeout", "crc", "framing", "nack", "busy",
                                            "badFrames") if c.get(k)}
    frames = [f"{f.get('dir', '?')} {f.get('hex', '')}" for f in line.last_frames]
    detail = (f"{c.get('polls', 0)} polls, "
              + (", ".join(f"{k} {v}" for k, v in errors.items()) or "no errors"))
    data: dict[str, Any] = {"counters": dict(c), "lastFrames": list(line.last_frames)}
    if line.general_poll_ok and (errors.get("crc") or errors.get("badFrames")):
        return _check("link_errors", CheckStatus.WARN, detail,
                      "CRC errors or bad frames: cabling, ground, a second host on the line, "
                      "parity handling of the USB adapter", **data)
    if not line.general_poll_ok:
        return _check("link_errors", CheckStatus.FAIL, detail + (
            "; last frames: " + " | ".join(frames[-4:]) if frames else ""),
            "timeouts: the SAS address or the cable; rx frames that never come mean the "
            "machine does not hear the host", **data)
    return _check("link_errors", CheckStatus.OK, detail, **data)


def _outbox_check(outbox: Mapping[str, Any] | None) -> Check:
    if outbox is None:
        return _check("outbox", CheckStatus.SKIP, "outbox not checked")
    if not outbox.get("exists", False):
        return _check("outbox", CheckStatus.WARN, f"no outbox at {outbox.get('path')}",
                      "the daemon creates it at its first start; check outbox.path and that "
                      "the state directory exists", **outbox)
    if outbox.get("error") or outbox.get("quickCheck") not in (None, "ok"):
        return _check("outbox", CheckStatus.FAIL,
                      f"{outbox.get('path')}: {outbox.get('error') or outbox.get('quickCheck')}",
                      "the file is damaged: the daemon moves it aside at start and raises an "
                      "outboxFault alert; keep the moved file for the audit", **outbox)
    age = outbox.get("oldestUnackedAgeS")
    detail = (f"{outbox.get('depth', 0)} events waiting, oldest "
              + ("none" if age is None else f"{age:.0f} s old")
              + f", quick_check {outbox.get('quickCheck')}")
    if outbox.get("recoveredFrom"):
        return _check("outbox", CheckStatus.WARN,
                      f"{detail}; recovered from {outbox['recoveredFrom']}",
                      "the previous file was damaged and moved aside (outboxFault alert)",
                      **outbox)
    if age is not None and age > 600:
        return _check("outbox", CheckStatus.WARN, detail,
                      "events wait more than 10 minutes: is the uplink connected and the hub "
                      "acknowledging? (hub logs)", **outbox)
    return _check("outbox", CheckStatus.OK, detail, **outbox)


_UPLINK_HINTS = {
    "uplink_dns": "the resolver (/etc/resolv.conf, resolvectl status) and the host name in "
                  "uplink.url",
    "uplink_tcp": "a firewall between this PC and the hub, the port in uplink.url, the hub "
                  "running",
    "uplink_tls": "the hub certificate and uplink.ca_file, the host name in uplink.url, and "
                  "this PC's clock (timedatectl)",
    "uplink_auth": "the token file (uplink.token_file): HTTP 401 = unknown token, 403 = not a "
                   "terminal token; ask the hub operator for this terminal's token",
}


def _uplink_checks(uplink: Mapping[str, Any] | None, daemon_uplink: Mapping[str, Any] | None,
                   max_skew_s: float) -> list[Check]:
    ids = ("uplink_dns", "uplink_tcp", "uplink_tls", "uplink_auth")
    if uplink is None:
        return [_check(cid, CheckStatus.SKIP, "uplink not checked") for cid in (*ids, "clock_skew")]
    if not uplink.get("configured"):
        return [_check(cid, CheckStatus.SKIP,
                       "uplink.url is not set: events stay in the outbox")
                for cid in (*ids, "clock_skew")]
    out: list[Check] = []
    failed = False
    for cid, step in zip(ids, ("dns", "tcp", "tls", "auth"), strict=True):
        result = uplink.get(step) or {}
        detail = str(result.get("detail", ""))
        ok = result.get("ok")
        if failed:
            out.append(_check(cid, CheckStatus.SKIP, "an earlier step failed"))
        elif ok is True:
            if cid == "uplink_auth" and daemon_uplink is not None:
                detail += f"; the daemon's session: {daemon_uplink.get('state', 'unknown')}"
            out.append(_check(cid, CheckStatus.OK, detail))
        elif ok is None:
            status = CheckStatus.WARN if cid == "uplink_tls" else CheckStatus.SKIP
            out.append(_check(cid, status, detail,
                              "ws:// sends the token in clear text; use wss:// beyond a test "
                              "bench" if cid == "uplink_tls" else None))
        else:
            failed = True
            out.append(_check(cid, CheckStatus.FAIL, detail, _UPLINK_HINTS[cid]))
    clock = uplink.get("clock") or {}
    skew = clock.get("skewS")
    if skew is None:
        out.append(_check("clock_skew", CheckStatus.SKIP, str(clock.get("detail", ""))))
    else:
        hint = "check timedatectl and NTP (systemd-timesyncd or chrony)"
        if abs(skew) > max_skew_s:
            out.append(_check("clock_skew", CheckStatus.FAIL, clock["detail"], hint, skewS=skew))
        elif abs(skew) > 5:
            out.append(_check("clock_skew", CheckStatus.WARN, clock["detail"], hint, skewS=skew))
        else:
            out.append(_check("clock_skew", CheckStatus.OK, clock["detail"], skewS=skew))
    return out


_MARK = {CheckStatus.OK: "ok", CheckStatus.WARN: "WARN", CheckStatus.FAIL: "FAIL",
         CheckStatus.SKIP: "skip"}


def render_table(report: Report) -> str:
    """The human form: one line per check, the hint indented under it."""
    width = max(len(c.title) for c in report.checks)
    where = ("asked the running daemon over its control socket" if report.source == "daemon"
             else "polled the machine directly (no daemon running)")
    lines = [f"slot-agent diag for {report.terminal_id or '(no terminal id)'}: {where}", ""]
    for c in report.checks:
        lines.append(f"{_MARK[c.status]:<4}  {c.title:<{width}}  {c.detail}")
        if c.hint:
            lines.append(f"{'':<4}  {'':<{width}}  hint: {c.hint}")
    failed = sum(1 for c in report.checks if c.status is CheckStatus.FAIL)
    warned = sum(1 for c in report.checks if c.status is CheckStatus.WARN)
    lines.append("")
    lines.append("all checks passed" if report.ok and not warned else
                 f"{failed} failed, {warned} warnings")
    return "\n".join(lines)


def transport_options(port: str, serial: Any) -> dict[str, Any]:
    """Driver options for ``drivers.open_transport(port, **options)`` from ``config.serial``.

    Only a real UART takes the line settings; tcp:// and pty: links carry the 9-bit encoding
    and have no baud rate or parity to set (docs/sas-serial.md).
    """
    if port.startswith(("tcp://", "pty:")):
        return {}
    return {"baudrate": serial.baudrate,
            "even_parity_after_address": serial.even_parity_after_address,
            "parity_switch_delay_ms": serial.parity_switch_delay_ms}
