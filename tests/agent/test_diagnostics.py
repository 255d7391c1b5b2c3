"""The diagnostics checks: the direct probe against the emulator, and the report's rules."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.config import Config, parse_config
from agent.ops.diagnostics import (
    CHECK_IDS,
    Check,
    CheckStatus,
    LineFacts,
    build_report,
    outbox_facts,
    probe_line,
    probe_uplink,
    render_table,
)
from agent.store.outbox import Outbox
from api.events import Event
from drivers.memory import Faults, MemoryTransport, pair
from emulator.model import Machine
from emulator.server import Emulator, LinkOptions

TS = "2026-01-01T00:00:00.000Z"


@pytest.fixture
def line() -> Iterator[tuple[MemoryTransport, Machine]]:
    host, machine_end = pair()
    machine = Machine()
    emulator = Emulator(machine, machine_end, address=1,
                        options=LinkOptions(unsupported_polls=frozenset({0x6F, 0x2F, 0x1C})))
    emulator.start()
    try:
        yield host, machine
    finally:
        emulator.stop()


def _line_report(facts: LineFacts) -> dict[str, CheckStatus]:
    report = build_report(line=facts, outbox=None, uplink=None, source="direct",
                          terminal_id="T-1")
    return {c.id: c.status for c in report.checks}


def test_probe_reads_identity_credits_and_meters_by_stepdown(
        line: tuple[MemoryTransport, Machine]) -> None:
    host, _machine = line
    facts = probe_line(host, 1, port="memory")
    assert facts.general_poll_ok and facts.link_up
    assert (facts.sas_version, facts.serial_number) == ("602", "EMU0000001")
    assert facts.machine_info is not None and facts.machine_info["denominationCents"] == 1
    assert facts.credits == 0
    # 6F, 2F and 1C ignored: every main meter came from a single legacy poll
    assert facts.ignored_polls == ["LP 6F", "LP 2F", "LP 1C"]
    assert set(facts.meters) == {"coinIn", "coinOut", "jackpot", "cancelledCredits",
                                 "gamesPlayed"}
    assert facts.counters["unsupported"] == 3 and facts.counters["crc"] == 0
    assert {f["dir"] for f in facts.last_frames} == {"tx", "rx"}
    statuses = _line_report(facts)
    assert statuses["ignored_polls"] is CheckStatus.WARN
    assert all(statuses[c] is CheckStatus.OK for c in
               ("serial_port", "general_poll", "sas_version", "machine_info", "meters",
                "link_errors"))


def test_a_machine_answering_after_every_window_is_not_taken_for_unsupported() -> None:
    """Every answer 180 ms late, beyond all three 50 ms windows of a poll: the answer that
    comes in one more window is thrown away, the window widened, and the poll asked again.
    Before, each long poll met silence and diag listed it as ignored (SAS §3.5)."""
    host, machine_end = pair(to_host=Faults(delay_s=0.18))
    emulator = Emulator(Machine(), machine_end, address=1,
                        options=LinkOptions(unsupported_polls=frozenset({0x6F, 0x2F, 0x1C})))
    emulator.start()
    try:
        facts = probe_line(host, 1, port="memory", reply_timeout=0.05)
    finally:
        emulator.stop()
    assert facts.general_poll_ok and facts.link_up
    assert (facts.sas_version, facts.serial_number) == ("602", "EMU0000001")
    # no poll the machine answers is listed as ignored (on a loaded machine one it ignores
    # may show as failed instead: a late answer to the poll before came in its wait)
    assert set(facts.ignored_polls) <= {"LP 6F", "LP 2F", "LP 1C"}
    assert set(facts.meters) == {"coinIn", "coinOut", "jackpot", "cancelledCredits",
                                 "gamesPlayed"}
    assert facts.counters["late"] >= 1
    link = {c.id: c for c in build_report(line=facts, outbox=None, uplink=None, source="direct",
                                          terminal_id="T-1").checks}["link_errors"]
    assert link.status is CheckStatus.WARN and "poll.reply_timeout_ms" in (link.hint or "")


class _LateFromLongPolls(MemoryTransport):
    """The host's end of a line whose machine answers general polls at once and every poll
    from the first long poll on 180 ms late: no general poll widened the window before."""

    def __init__(self) -> None:
        self.to_host = Faults()
        host, self.machine_end = pair(to_host=self.to_host)
        super().__init__(host.name, rx=host._rx, tx=host._tx)

    def write(self, frame: bytes, *, wakeup: bool) -> None:
        if len(frame) > 1:
            self.to_host.delay_s = 0.18
        super().write(frame, wakeup=wakeup)


def test_a_long_poll_lost_to_lateness_is_asked_again_in_the_wider_window() -> None:
    """A long poll whose answer came late (after its window, or its poll) is asked again
    once the window is wider, until a window holds the answer: before, only a poll taken for
    ignored was, so LP 54 failed (no version, no serial) when the general polls had not
    widened the window first (seen on a loaded machine)."""
    host = _LateFromLongPolls()
    emulator = Emulator(Machine(), host.machine_end, address=1)
    emulator.start()
    try:
        facts = probe_line(host, 1, port="memory", reply_timeout=0.05)
    finally:
        emulator.stop()
    assert facts.general_poll_ok and host.to_host.delay_s == 0.18
    assert (facts.sas_version, facts.serial_number) == ("602", "EMU0000001")
    assert facts.machine_info is not None and facts.ignored_polls == []
    assert facts.counters["late"] >= 1


class _ChirpBeforeEachReply(MemoryTransport):
    """The machine's end of a shared line where machine 5, polled by nobody, chirps its
    address (wakeup bit set, SAS §4.2) just before each reply of machine 1."""

    def __init__(self, end: MemoryTransport) -> None:
        super().__init__(end.name, rx=end._rx, tx=end._tx)

    def write(self, frame: bytes, *, wakeup: bool) -> None:
        if frame and not wakeup:
            super().write(bytes((5,)), wakeup=True)
        super().write(frame, wakeup=wakeup)


def test_chirps_in_the_reply_window_are_not_taken_for_the_reply() -> None:
    """A byte with the wakeup bit is never part of a reply (reference §3.1, §3.6), as the
    agent's line owner has it: fed to the host, each chirp spoiled the reply behind it."""
    host, machine_end = pair()
    emulator = Emulator(Machine(), _ChirpBeforeEachReply(machine_end), address=1)
    emulator.start()
    try:
        facts = probe_line(host, 1, port="memory", reply_timeout=0.05)
    finally:
        emulator.stop()
    assert facts.general_poll_ok
    assert (facts.sas_version, facts.serial_number) == ("602", "EMU0000001")
    assert facts.counters["badFrames"] == 0 and facts.failed_polls == {}
    assert any(f["hex"].startswith("05") for f in facts.last_frames if f["dir"] == "rx")


def test_a_silent_line_fails_the_general_poll_and_skips_what_depends_on_it() -> None:
    host, _machine_end = pair()
    facts = probe_line(host, 5, port="memory", reply_timeout=0.01)
    assert not facts.general_poll_ok
    assert facts.counters["timeout"] >= 1
    assert facts.last_frames and all(f["dir"] == "tx" for f in facts.last_frames)
    assert facts.last_frames[0]["hex"] == "80"  # the sync poll to address 0 (SAS §3.3)
    statuses = _line_report(facts)
    assert statuses["general_poll"] is CheckStatus.FAIL
    assert statuses["sas_version"] is CheckStatus.SKIP
    assert statuses["link_errors"] is CheckStatus.FAIL


def test_a_port_that_did_not_open_gives_the_dialout_hint() -> None:
    facts = LineFacts(port="/dev/ttyUSB0", address=1, port_opened=False,
                      port_error="[Errno 13] Permission denied: '/dev/ttyUSB0'")
    report = build_report(line=facts, outbox=None, uplink=None, source="direct",
                          terminal_id="T-1")
    check = report.check("serial_port")
    assert check.status is CheckStatus.FAIL and check.hint is not None
    assert "dialout" in check.hint
    assert report.exit_code == 1
    assert [c.id for c in report.checks] == [cid for cid, _ in CHECK_IDS]
    assert "hint: " in render_table(report)


def test_line_facts_round_trip_through_json(line: tuple[MemoryTransport, Machine]) -> None:
    facts = probe_line(line[0], 1, port="memory")
    assert LineFacts.from_json(facts.to_json()) == facts
    # moneyPolls is the daemon's (what it has asked); --direct sends its polls itself
    assert facts.money_polls is None and facts.to_json()["moneyPolls"] is None
    meters = build_report(line=facts, outbox=None, uplink=None, source="direct",
                          terminal_id="T-1").check("meters")
    assert meters.data["moneyPolls"] is None
    daemons = dict(facts.to_json(), moneyPolls={"LP 4D": "answered", "LP 3D": "notAsked"})
    assert LineFacts.from_json(daemons).money_polls == {"LP 4D": "answered",
                                                        "LP 3D": "notAsked"}
    older = {k: v for k, v in facts.to_json().items() if k != "moneyPolls"}
    assert LineFacts.from_json(older).money_polls is None  # an older daemon's answer


@pytest.mark.parametrize(("priority", "source", "status"), [
    ({"asked": "realtime", "got": "realtime", "detail": "SCHED_RR priority 10"}, "daemon",
     CheckStatus.OK),
    ({"asked": "realtime", "got": "nice", "detail": "SCHED_RR 10 was refused"}, "daemon",
     CheckStatus.WARN),
    ({"asked": "nice", "got": "normal", "detail": "nice 0, as the daemon"}, "daemon",
     CheckStatus.WARN),
    (None, "direct", CheckStatus.SKIP),
    (None, "daemon", CheckStatus.SKIP),
])
def test_the_line_priority_check_warns_when_the_unit_gave_less(
        priority: dict[str, str] | None, source: str, status: CheckStatus) -> None:
    facts = LineFacts(port="/dev/ttyS0", address=1, port_opened=True, general_poll_ok=True,
                      link_up=True, priority=priority)
    check = build_report(line=facts, outbox=None, uplink=None, source=source,
                         terminal_id="T-1").check("line_priority")
    assert check.status is status
    if priority is not None:
        assert check.data == {"asked": priority["asked"], "got": priority["got"]}
        assert priority["detail"] in check.detail
    if status is CheckStatus.WARN:
        assert check.hint is not None and "LimitRTPRIO=10" in check.hint
    if source == "direct":
        assert "--direct" in check.detail
    # a daemon's answer carries it through JSON; an older daemon's (no key) reads as None
    assert LineFacts.from_json(facts.to_json()).priority == priority
    legacy = {k: v for k, v in facts.to_json().items() if k != "priority"}
    assert LineFacts.from_json(legacy).priority is None


def test_outbox_facts_healthy_missing_and_damaged(tmp_path: Path) -> None:
    path = tmp_path / "ob.db"
    missing = outbox_facts(str(path))
    assert missing["exists"] is False
    with Outbox.open(path, terminal_id="T-1") as ob:
        ob.commit([Event("gameStarted", TS, {})] * 3, None)
        ob.ack(1)
        now = time.time()
        facts = outbox_facts(str(path), now=now + 1000)
    assert (facts["depth"], facts["quickCheck"]) == (2, "ok")
    assert facts["oldestUnackedAgeS"] >= 1000
    report = build_report(line=None, outbox=facts, uplink=None, source="direct",
                          terminal_id="T-1")
    assert report.check("outbox").status is CheckStatus.WARN  # waiting > 10 minutes
    garbage = tmp_path / "bad.db"
    garbage.write_bytes(b"this is not a database" * 100)
    damaged = outbox_facts(str(garbage))
    report = build_report(line=None, outbox=damaged, uplink=None, source="direct",
                          terminal_id="T-1")
    assert report.check("outbox").status is CheckStatus.FAIL


def _config(url: str | None, tmp_path: Path) -> Config:
    data: dict[str, object] = {"terminal_id": "T-1", "machines": [{"address": 1}]}
    if url is not None:
        token = tmp_path / "token"
        token.write_text("x" * 20)
        token.chmod(0o600)
        data["uplink"] = {"url": url, "allow_insecure": True, "token_file": str(token)}
    return parse_config(data)


def test_uplink_steps_stop_at_the_first_failure(tmp_path: Path) -> None:
    unresolvable = probe_uplink(_config("ws://no-such-hub.invalid:8765/ws/terminal",
                                        tmp_path), "tok")
    assert unresolvable["dns"]["ok"] is False
    report = build_report(line=None, outbox=None, uplink=unresolvable, source="direct",
                          terminal_id="T-1")
    statuses = {c.id: c.status for c in report.checks}
    assert statuses["uplink_dns"] is CheckStatus.FAIL
    assert statuses["uplink_tcp"] is CheckStatus.SKIP
    assert "resolver" in (report.check("uplink_dns").hint or "")

    import socket

    free = socket.create_server(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()  # nothing listens there now
    refused = probe_uplink(_config(f"ws://127.0.0.1:{port}/ws/terminal", tmp_path),
                           "tok")
    assert refused["dns"]["ok"] is True and refused["tcp"]["ok"] is False


def test_no_uplink_configured_is_skipped_not_failed(tmp_path: Path) -> None:
    facts = probe_uplink(_config(None, tmp_path), None)
    report = build_report(line=None, outbox=None, uplink=facts, source="direct",
                          terminal_id="T-1")
    assert report.ok
    assert all(report.check(cid).status is CheckStatus.SKIP
               for cid in ("uplink_dns", "uplink_auth", "clock_skew"))


@pytest.mark.parametrize(("skew", "status"), [(0.4, CheckStatus.OK), (12.0, CheckStatus.WARN),
                                              (-45.0, CheckStatus.FAIL)])
def test_clock_skew_thresholds(skew: float, status: CheckStatus) -> None:
    ok = {"ok": True, "detail": "fine"}
    uplink = {"configured": True, "dns": ok, "tcp": ok, "tls": ok, "auth": ok,
              "clock": {"skewS": skew, "detail": f"{skew} s"}}
    report = build_report(line=None, outbox=None, uplink=uplink, source="direct",
                          terminal_id="T-1", max_skew_s=30.0)
    assert report.check("clock_skew").status is status
    assert report.ok is (status is not CheckStatus.FAIL)


def test_the_tls_step_uses_the_uplinks_own_context(tmp_path: Path) -> None:
    """diag builds the same TLS context as the uplink (agent.uplink.tls), so a client certificate
    that cannot be loaded fails the TLS step naming the key, as it would stop the daemon."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    token = tmp_path / "token"
    token.write_text("x" * 20)
    key = tmp_path / "client.key"
    key.write_text("not a key")
    cert = tmp_path / "client.pem"
    cert.write_text("not a certificate")
    config = parse_config({
        "terminal_id": "T-1", "machines": [{"address": 1}],
        "uplink": {"url": f"wss://127.0.0.1:{port}/ws/terminal", "token_file": str(token),
                   "client_cert_file": str(cert), "client_key_file": str(key)},
    })
    try:
        facts = probe_uplink(config, "tok", timeout=2.0)
    finally:
        listener.close()
    assert facts["tcp"]["ok"] is True
    assert facts["tls"]["ok"] is False
    assert "uplink.client_cert_file" in facts["tls"]["detail"]


# ------------------------------------------------------------------ the truth, cause first


def _check(*, line: LineFacts | None = None, outbox: dict[str, Any] | None = None,
           uplink: dict[str, Any] | None = None,
           daemon: dict[str, Any] | None = None) -> dict[str, Check]:
    report = build_report(line=line, outbox=outbox, uplink=uplink, daemon=daemon,
                          source="daemon", terminal_id="T-1")
    return {c.id: c for c in report.checks}


@pytest.mark.parametrize(("port", "error", "hint_has", "hint_lacks"), [
    # the daemon runs and the machine's TCP link is refused: that, not the cable
    ("tcp://10.0.0.9:4001", "in the running agent: cannot reopen the line transport: "
     "[Errno 111] Connection refused", "was refused: nothing listens there", "cable"),
    ("/dev/ttyUSB0", "in the running agent: [Errno 2] could not open port /dev/ttyUSB0: "
     "[Errno 2] No such file or directory", "is gone (unplugged USB adapter?)", "cable"),
    ("/dev/ttyUSB0", "device reports readiness to read but returned no data (device "
     "disconnected or multiple access on port?)", "is gone", "cable"),
    ("/dev/ttyUSB0", "[Errno 13] could not open port /dev/ttyUSB0: [Errno 13] Permission "
     "denied", "dialout", "cable"),
    ("tcp://10.0.0.9:4001", "timed out", "not reachable on the network", "cable"),
])
def test_a_line_failure_names_its_real_cause_before_any_cabling(
        port: str, error: str, hint_has: str, hint_lacks: str) -> None:
    facts = LineFacts(port=port, address=1, port_opened=False, port_error=error)
    checks = _check(line=facts)
    serial = checks["serial_port"]
    assert serial.status is CheckStatus.FAIL
    assert error in serial.detail
    assert serial.hint is not None and hint_has in serial.hint
    assert hint_lacks not in serial.hint
    assert checks["general_poll"].status is CheckStatus.SKIP


def test_the_daemon_path_has_no_denomination_code_none() -> None:
    facts = LineFacts(port="p", address=1, port_opened=True, general_poll_ok=True,
                      sas_version="602", machine_info={"gameId": "EM", "paytableId": "LS0001",
                                                       "denominationCode": None,
                                                       "denominationCents": 1})
    check = _check(line=facts)["machine_info"]
    assert check.detail == "game EM, paytable LS0001, denomination = 1 ¢ per credit"
    direct = dict(facts.machine_info or {}, denominationCode=0x01)
    facts.machine_info = direct
    assert "denomination code 01 = 1 ¢" in _check(line=facts)["machine_info"].detail


def test_an_outbox_of_another_terminal_fails_as_run_would(tmp_path: Path) -> None:
    path = str(tmp_path / "outbox.db")
    Outbox.open(path, terminal_id="T-OTHER").close()
    facts = outbox_facts(path, terminal_id="T-1")
    assert facts["terminalId"] == "T-OTHER" and facts["ownerMismatch"] is True
    check = _check(outbox=facts)["outbox"]
    assert check.status is CheckStatus.FAIL
    assert check.detail == (f"{path} belongs to terminal 'T-OTHER', not 'T-1': slot-agent "
                            "run refuses to start")
    assert check.hint is not None and "new outbox.path" in check.hint
    assert outbox_facts(path, terminal_id="T-OTHER")["ownerMismatch"] is False


@pytest.mark.parametrize(("state", "status", "hint_has"), [
    ("running", CheckStatus.OK, None),
    ("stopped", CheckStatus.WARN, "systemctl start slot-agent"),
    ("stale", CheckStatus.WARN, "died without removing its control socket"),
    ("hung", CheckStatus.FAIL, "stuck"),
    ("unreachable", CheckStatus.FAIL, "slot-agent group"),
    ("error", CheckStatus.FAIL, "journalctl"),
    ("not asked", CheckStatus.SKIP, None),
])
def test_the_daemon_state_is_a_check_with_its_hint(
        state: str, status: CheckStatus, hint_has: str | None) -> None:
    check = _check(daemon={"state": state, "detail": f"{state} detail"})["daemon"]
    assert check.status is status
    assert check.detail == f"{state} detail"
    if hint_has is None:
        assert check.hint is None
    else:
        assert check.hint is not None and hint_has in check.hint


def test_daemon_state_tells_missing_stale_and_silent_sockets_apart(tmp_path: Path) -> None:
    import socket as socket_mod

    from agent.ops.control import ControlUnavailableError, control_request
    from agent.ops.diagnostics import daemon_state

    def state_of(path: Path) -> str:
        try:
            control_request(path, "diag", timeout=0.5)
        except (ControlUnavailableError, TimeoutError) as exc:
            return str(daemon_state(exc, socket_path=str(path), timeout=0.5)["state"])
        return "running"

    missing = tmp_path / "none.sock"
    assert state_of(missing) == "stopped"
    stale = tmp_path / "stale.sock"
    sock = socket_mod.socket(socket_mod.AF_UNIX, socket_mod.SOCK_STREAM)
    sock.bind(str(stale))
    sock.close()  # the file stays: what a killed daemon leaves
    assert state_of(stale) == "stale"
    silent = tmp_path / "silent.sock"
    listener = socket_mod.socket(socket_mod.AF_UNIX, socket_mod.SOCK_STREAM)
    listener.bind(str(silent))
    listener.listen(1)  # accepts (the kernel does), never answers: a hung daemon
    try:
        assert state_of(silent) == "hung"
    finally:
        listener.close()
    assert daemon_state(None, socket_path=None, timeout=1)["state"] == "not asked"


def test_a_hello_refused_for_this_terminal_is_a_wrong_binding() -> None:
    uplink = {"configured": True, "url": "ws://h/ws/terminal",
              "dns": {"ok": True, "detail": "h -> 10.0.0.1"},
              "tcp": {"ok": True, "detail": "connected"},
              "tls": {"ok": None, "detail": "plain"},
              "auth": {"ok": False, "verdict": "forbidden",
                       "detail": "the hub refused hello for terminal T-1: forbidden: x"},
              "clock": {"skewS": 0.0, "detail": "same"}}
    check = _check(uplink=uplink)["uplink_auth"]
    assert check.status is CheckStatus.FAIL
    assert check.hint is not None and "bound to another terminal" in check.hint
    assert check.data == {"verdict": "forbidden", "url": "ws://h/ws/terminal"}


def _probe_profile(machine: Machine, options: LinkOptions) -> tuple[LineFacts, set[int]]:
    """``probe_line`` against ``machine`` served with ``options``; the facts and the long
    poll commands diag sent (read off the frames it wrote)."""
    host, machine_end = pair()
    sent: list[bytes] = []
    write = host.write

    def recording(frame: bytes, *, wakeup: bool) -> None:
        sent.append(frame)
        write(frame, wakeup=wakeup)

    host.write = recording  # type: ignore[method-assign]
    emulator = Emulator(machine, machine_end, address=1, options=options)
    emulator.start()
    try:
        # a reply late on a loaded test machine must not read as an ignored poll
        facts = probe_line(host, 1, port="memory", reply_timeout=0.1)
    finally:
        emulator.stop()
    return facts, {frame[1] for frame in sent if len(frame) > 1 and frame[0] == 1}


@pytest.mark.parametrize(("profile", "bills", "tickets_out"), [
    ("legacy", "billsAccepted (LP 46)", "LP 4D records matched with cancelledCredits (LP 0F)"),
    ("legacy-std", "totalDrop (LP 1C) + exceptions 47-4F + LP 48",
     "LP 3D records matched with cancelledCredits (LP 0F)"),
])
def test_diag_names_the_money_sources_of_a_legacy_machine(
        profile: str, bills: str, tickets_out: str) -> None:
    """diag probes the bill meter polls, LP 48 and LP 4D FF on a machine without LP 2F
    (docs/operations.md): what it says is what the agent will count money from."""
    from agent.ops.diagnostics import _meters_check
    from emulator.profiles import link_options

    facts, _sent = _probe_profile(Machine(), link_options(profile))
    sources = _meters_check(facts).data["moneySources"]
    assert (sources["bills"], sources["ticketsOut"]) == (bills, tickets_out)
    assert sources["ticketsIn"] == "not metered"


@pytest.mark.parametrize(("profile", "sends_3d", "ignored", "tickets_out"), [
    # LP 4D answered: the agent never needs LP 3D, so diag does not send it
    ("modern", False, [],
     "ticketOutCashable (LP 6F) + ticketOutRestricted (LP 6F) + LP 4D records"),
    # standard validation, no LP 4D: LP 3D is how the agent values a ticket; it answers
    ("legacy-std", True, ["LP 6F", "LP 2F", "LP 46", "LP 20", "LP 1E", "LP 4D"],
     "LP 3D records matched with cancelledCredits (LP 0F)"),
])
def test_diag_reads_lp_3d_only_where_lp_4d_is_ignored(
        profile: str, sends_3d: bool, ignored: list[str], tickets_out: str) -> None:
    from emulator.profiles import link_options

    facts, sent = _probe_profile(Machine(), link_options(profile))
    assert 0x4D in sent  # LP 4D FF (look-ahead) on every machine
    assert (0x3D in sent) is sends_3d
    assert facts.ignored_polls == ignored
    assert facts.not_probed == {}
    meters = build_report(line=facts, outbox=None, uplink=None, source="direct",
                          terminal_id="T-1").check("meters")
    assert meters.status is CheckStatus.OK
    assert meters.data["moneySources"]["ticketsOut"] == tickets_out
    assert f"ticketsOut: {tickets_out}" in meters.detail


def test_a_machine_without_lp_4d_nor_lp_3d_shows_its_tickets_cannot_be_valued() -> None:
    from emulator.profiles import LEGACY_STD_IGNORED_POLLS

    facts, sent = _probe_profile(
        Machine(), LinkOptions(unsupported_polls=LEGACY_STD_IGNORED_POLLS | {0x3D}))
    assert 0x3D in sent
    assert "LP 3D" in facts.ignored_polls and "LP 4D" in facts.ignored_polls
    sources = _line_sources(facts)
    assert sources["ticketsOut"] == "not metered"


def _line_sources(facts: LineFacts) -> dict[str, str]:
    report = build_report(line=facts, outbox=None, uplink=None, source="direct",
                          terminal_id="T-1")
    return dict(report.check("meters").data["moneySources"])


def test_a_waiting_ticket_record_is_left_to_the_agent_not_read_by_lp_3d() -> None:
    """On a machine without LP 4D, LP 3D is the host's read of a ticket (reference §3.9b):
    with a cash-out ticket unread (exception 3D), diag must not take it from the agent."""
    from emulator.profiles import link_options

    machine = Machine()
    assert machine.insert_bill(time.monotonic(), 20)
    ticket = machine.cash_out(time.monotonic())
    assert ticket is not None and machine.unread_tickets == [ticket]
    facts, sent = _probe_profile(machine, link_options("legacy-std"))
    assert 0x3D not in sent
    assert "LP 3D" not in facts.ignored_polls
    assert "exception 3D" in facts.not_probed["LP 3D"]
    assert machine.unread_tickets == [ticket]  # still there for the agent
    meters = build_report(line=facts, outbox=None, uplink=None, source="direct",
                          terminal_id="T-1").check("meters")
    assert meters.status is CheckStatus.WARN
    assert meters.data["moneySources"]["ticketsOut"] == (
        "LP 3D records (not verified) matched with cancelledCredits (LP 0F)")
    assert meters.data["notProbed"] == facts.not_probed
    assert "LP 3D not read: a ticket record is waiting" in meters.detail
    assert meters.hint is not None and "run diag again" in meters.hint
    # the facts survive the daemon's JSON
    assert LineFacts.from_json(facts.to_json()).not_probed == facts.not_probed


# ------------------------------------------------------------------ every hub URL


def _url_facts(url: str, failed: str | None = None, **auth: Any) -> dict[str, Any]:
    """One URL's probe result: every step ok, or failed at ``failed`` (later ones not run)."""
    out: dict[str, Any] = {"url": url, "clock": {"skewS": 0.2, "detail": "0 s ahead"}}
    gone = False
    for step in ("dns", "tcp", "tls", "auth"):
        if gone:
            out[step] = {"ok": None, "detail": "not run"}
        elif step == failed:
            out[step] = {"ok": False, "detail": f"{step} broke at {url}"}
            gone = True
        else:
            out[step] = {"ok": True, "detail": f"{step} fine at {url}"}
    out["auth"].update(auth)
    if gone:
        out["clock"] = {"skewS": None, "detail": "not measured"}
    return out


def _uplink(*results: dict[str, Any]) -> dict[str, Any]:
    return {**results[0], "configured": True, "urls": list(results)}


A, B, C = (f"wss://hub-{x}.example.com/ws/terminal" for x in "abc")


def test_a_failing_failover_url_is_a_warning_that_names_it() -> None:
    checks = _check(uplink=_uplink(_url_facts(A), _url_facts(B, "tls")))
    assert all(checks[cid].status is CheckStatus.OK for cid in
               ("uplink_dns", "uplink_tcp", "uplink_tls", "uplink_auth", "clock_skew"))
    assert checks["uplink_tls"].data == {"url": A}
    assert checks["uplink_tls"].detail == f"{A}: tls fine at {A}"
    urls = checks["uplink_urls"]
    assert urls.status is CheckStatus.WARN
    assert f"{B}: TLS failed: tls broke at {B}" in urls.detail
    assert urls.hint is not None and "uplink.ca_file" in urls.hint
    assert urls.data == {"using": A, "urls": [
        {"url": A, "ok": True, "failedStep": None, "detail": None},
        {"url": B, "ok": False, "failedStep": "tls", "detail": f"tls broke at {B}"}]}
    report = build_report(line=None, outbox=None, uplink=_uplink(_url_facts(A),
                                                                  _url_facts(B, "tls")),
                          source="direct", terminal_id="T-1")
    assert report.ok and report.exit_code == 0


def test_the_rows_report_the_url_that_passes_when_the_first_fails() -> None:
    uplink = _uplink(_url_facts(A, "tcp"), _url_facts(B), _url_facts(C, "dns"))
    checks = _check(uplink=uplink)
    assert checks["uplink_tcp"].status is CheckStatus.OK
    assert checks["uplink_tcp"].detail.startswith(f"{B}: ")
    assert checks["clock_skew"].data["url"] == B
    urls = checks["uplink_urls"]
    assert urls.status is CheckStatus.WARN
    assert urls.data["using"] == B
    assert [(u["url"], u["failedStep"]) for u in urls.data["urls"]] == [
        (A, "tcp"), (B, None), (C, "dns")]
    assert A in urls.detail and C in urls.detail and "1 of 3 hub URLs pass" in urls.detail
    assert build_report(line=None, outbox=None, uplink=uplink, source="direct",
                        terminal_id="T-1").exit_code == 0


def test_no_url_passing_fails_on_the_first_and_lists_every_one() -> None:
    uplink = _uplink(_url_facts(A, "tcp"), _url_facts(B, "auth", verdict="forbidden"))
    checks = _check(uplink=uplink)
    assert checks["uplink_tcp"].status is CheckStatus.FAIL
    assert checks["uplink_tcp"].data == {"url": A}
    assert checks["uplink_auth"].status is CheckStatus.SKIP
    urls = checks["uplink_urls"]
    assert urls.status is CheckStatus.FAIL
    assert urls.data["urls"][1] == {"url": B, "ok": False, "failedStep": "auth",
                                    "detail": f"auth broke at {B}", "verdict": "forbidden"}
    assert urls.hint is not None and "bound to another terminal" in urls.hint
    assert build_report(line=None, outbox=None, uplink=uplink, source="direct",
                        terminal_id="T-1").exit_code == 1


def test_every_url_passing_is_ok_and_one_url_skips_the_row() -> None:
    both = _check(uplink=_uplink(_url_facts(A), _url_facts(B)))["uplink_urls"]
    assert both.status is CheckStatus.OK and A in both.detail and B in both.detail
    one = _check(uplink=_uplink(_url_facts(A)))
    assert one["uplink_urls"].status is CheckStatus.SKIP
    assert one["uplink_tcp"].detail == f"tcp fine at {A}"  # one URL: the detail as before
    # facts of the single-URL shape (no "urls") are read as that one URL
    legacy = {k: v for k, v in _uplink(_url_facts(A)).items() if k != "urls"}
    assert _check(uplink=legacy)["uplink_tcp"].status is CheckStatus.OK


def test_the_daemons_url_is_reported_when_its_session_is_up() -> None:
    report = build_report(line=None, outbox=None,
                          uplink=_uplink(_url_facts(A), _url_facts(B)), source="daemon",
                          terminal_id="T-1",
                          daemon_uplink={"url": B, "connected": True, "state": "connected"})
    assert report.check("uplink_auth").data == {"url": B}
    assert report.check("uplink_urls").data["using"] == B


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    from tests.agent.uplink_kit import make_pki

    base = tmp_path_factory.mktemp("pki")
    return make_pki(base, "good"), make_pki(base, "other")


def test_every_hub_url_is_probed_against_real_hubs(
        tmp_path: Path, pki: tuple[Any, Any]) -> None:
    """Three instances: one whose certificate another CA signed, a good one, and a port
    nothing listens on. Each is probed; the uplink works (the good one), the others warn."""
    import socket

    from tests.support.hub import hub_in_thread
    from tests.support.tokens import for_terminal

    good, other = pki
    free = socket.create_server(("127.0.0.1", 0))
    closed = f"wss://127.0.0.1:{free.getsockname()[1]}/ws/terminal"
    free.close()  # nothing listens there now
    tokens = for_terminal("T-1")
    with hub_in_thread(tmp_path / "bad", tokens, tls_cert=other.cert,
                       tls_key=other.key) as bad, \
            hub_in_thread(tmp_path / "good", tokens, tls_cert=good.cert,
                          tls_key=good.key) as hub:
        token = tmp_path / "token"
        token.write_text(hub.terminal_token)
        config = parse_config({
            "terminal_id": "T-1", "machines": [{"address": 1}],
            "uplink": {"url": [bad.terminal_url, hub.terminal_url, closed],
                       "token_file": str(token), "ca_file": str(good.ca)}})
        facts = probe_uplink(config, hub.terminal_token, timeout=5.0, hello_last_seq=0)
    results = facts["urls"]
    assert [r["url"] for r in results] == [bad.terminal_url, hub.terminal_url, closed]
    assert facts["url"] == bad.terminal_url and facts["tls"] is results[0]["tls"]
    assert results[0]["tcp"]["ok"] is True and results[0]["tls"]["ok"] is False
    assert "unable to get local issuer certificate" in results[0]["tls"]["detail"]
    assert results[0]["auth"]["ok"] is None  # not run after the TLS failure
    assert results[1]["tls"]["ok"] is True
    assert results[1]["auth"]["ok"] is True and results[1]["auth"]["verdict"] == "welcome"
    assert results[2]["tcp"]["ok"] is False
    report = build_report(line=None, outbox=None, uplink=facts, source="direct",
                          terminal_id="T-1")
    assert report.exit_code == 0
    auth = report.check("uplink_auth")
    assert auth.status is CheckStatus.OK and auth.data == {"url": hub.terminal_url}
    assert auth.detail.startswith(f"{hub.terminal_url}: the hub welcomed terminal T-1")
    assert report.check("clock_skew").status is CheckStatus.OK
    urls = report.check("uplink_urls")
    assert urls.status is CheckStatus.WARN
    assert [(u["url"], u["ok"], u["failedStep"]) for u in urls.data["urls"]] == [
        (bad.terminal_url, False, "tls"), (hub.terminal_url, True, None), (closed, False, "tcp")]
    assert urls.data["using"] == hub.terminal_url
    table = render_table(report)
    assert "WARN  uplink: every hub URL (failover)" in table
    assert f"{bad.terminal_url}: TLS failed: TLS handshake with 127.0.0.1 failed" in table
    assert f"{closed}: TCP failed: cannot connect" in table


def test_the_check_table_of_operations_md_names_every_id_in_report_order() -> None:
    """``--json`` consumers key on the check ids: operations.md's table gives each one, in
    the report's order (the row's backticked ids; the uplink row holds its four steps)."""
    import re

    from agent.ops.diag_report import CHECK_IDS
    from tests.support import ROOT

    doc = (ROOT / "docs" / "operations.md").read_text()
    table = doc[doc.index("| check | what it proves |"):]
    ids: list[str] = []
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            break
        ids += re.findall(r"`([a-z_]+)`", line.strip("|").split("|")[0])
    assert ids == [cid for cid, _ in CHECK_IDS]
