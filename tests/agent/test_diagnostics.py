"""The diagnostics checks: the direct probe against the emulator, and the report's rules."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import Config, parse_config
from agent.ops.diagnostics import (
    CHECK_IDS,
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
from drivers.memory import MemoryTransport, pair
from emulator.model import Machine
from emulator.server import Emulator, LinkOptions

TS = "2026-01-01T00:00:00.000Z"


@pytest.fixture
def line() -> Iterator[tuple[MemoryTransport, Machine]]:
    host, machine_end = pair()
    machine = Machine()
    emulator = Emulator(machine, machine_end, address=1,
                        options=LinkOptions(unsupported_polls=frozenset({0x2F, 0x1C})))
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
    # 2F and 1C ignored: every main meter came from a single legacy poll
    assert facts.ignored_polls == ["LP 2F", "LP 1C"]
    assert set(facts.meters) == {"coinIn", "coinOut", "jackpot", "cancelledCredits",
                                 "gamesPlayed"}
    assert facts.counters["unsupported"] == 2 and facts.counters["crc"] == 0
    assert {f["dir"] for f in facts.last_frames} == {"tx", "rx"}
    statuses = _line_report(facts)
    assert statuses["ignored_polls"] is CheckStatus.WARN
    assert all(statuses[c] is CheckStatus.OK for c in
               ("serial_port", "general_poll", "sas_version", "machine_info", "meters",
                "link_errors"))


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
