"""The agent's hardened systemd unit: required directives, offline verification, hardening
score. The hub's unit: tests/test_systemd_hub_unit.py; the helpers both use:
tests/support/systemd_units.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.systemd_units import (
    EXEC,
    UNITS,
    assert_verifies_clean,
    ini_block_after,
    needs_analyze,
    offline_exposure,
    read_unit,
    runnable_copy,
)

UNIT = UNITS / "slot-agent.service"
#: systemd-analyze security --offline exposure: 0 is fully locked down, 10 is unprotected.
#: 1.5 when written; a change that loosens the sandbox must raise this on purpose.
MAX_EXPOSURE = 2.0


@pytest.fixture(scope="module")
def service() -> dict[str, list[str]]:
    return read_unit(UNIT)["Service"]


REQUIRED = {
    "Type": "notify",
    "NotifyAccess": "main",
    "WatchdogSec": "30",
    "ExecStart": f"{EXEC} run --config /etc/slot-agent/config.yaml",
    "ExecReload": "/bin/kill -HUP $MAINPID",
    "Restart": "on-failure",
    "RestartSec": "5",
    "StateDirectory": "slot-agent",
    "RuntimeDirectory": "slot-agent",
    "ConfigurationDirectory": "slot-agent",
    "User": "slot-agent",
    "SupplementaryGroups": "dialout",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "NoNewPrivileges": "yes",
    "PrivateTmp": "yes",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "PrivateDevices": "no",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "ProtectProc": "invisible",
    "RestrictNamespaces": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "SystemCallArchitectures": "native",
    "UMask": "0077",
}


@pytest.mark.parametrize(("key", "value"), sorted(REQUIRED.items()))
def test_required_directive(service: dict[str, list[str]], key: str, value: str) -> None:
    assert service.get(key) == [value], f"{key}= should be exactly {value!r}"


def test_two_malloc_arenas_for_the_daemon(service: dict[str, list[str]]) -> None:
    """glibc's arenas bounded (docs/performance.md, "Footprint: what the agent grew"); the
    line process sets its own (agent/line/process.py, MALLOC_ARENAS)."""
    assert "MALLOC_ARENA_MAX=2" in service["Environment"]
    assert "PYTHONUNBUFFERED=1" in service["Environment"]


def test_serial_devices_allowed_and_nothing_else(service: dict[str, list[str]]) -> None:
    assert service["DeviceAllow"] == ["char-ttyS rw", "char-ttyUSB rw", "char-ttyACM rw"]
    assert service["DevicePolicy"] == ["closed"]


def test_system_call_filter(service: dict[str, list[str]]) -> None:
    assert service["SystemCallFilter"][0] == "@system-service"


def test_installs_into_multi_user() -> None:
    assert read_unit(UNIT)["Install"]["WantedBy"] == ["multi-user.target"]


@needs_analyze
def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    assert_verifies_clean(runnable_copy(UNIT, tmp_path))


@needs_analyze
def test_offline_security_exposure_stays_low(tmp_path: Path) -> None:
    assert offline_exposure(runnable_copy(UNIT, tmp_path)) <= MAX_EXPOSURE


def realtime_drop_in() -> list[str]:
    """The [Service] lines of the realtime drop-in docs/operations.md gives for
    ``poll.line_priority: realtime`` ("Line process priority")."""
    return ini_block_after(UNIT.parents[1] / "docs" / "operations.md",
                           "### Line process priority")


def test_the_realtime_drop_in_allows_what_the_line_process_asks() -> None:
    from agent.line.messages import RT_PRIORITY

    lines = realtime_drop_in()
    assert f"LimitRTPRIO={RT_PRIORITY}" in lines
    assert "RestrictRealtime=no" in lines
    assert "SystemCallFilter=sched_setscheduler" in lines
    assert not any(line.startswith(("AmbientCapabilities", "CapabilityBoundingSet"))
                   for line in lines), "realtime needs no capability: LimitRTPRIO= is enough"


@needs_analyze
def test_the_unit_with_the_realtime_drop_in_verifies_and_stays_low(tmp_path: Path) -> None:
    copy = runnable_copy(UNIT, tmp_path, extra_service_lines=realtime_drop_in())
    assert_verifies_clean(copy)
    assert offline_exposure(copy) <= MAX_EXPOSURE
