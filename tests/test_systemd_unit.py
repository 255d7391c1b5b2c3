"""The hardened systemd unit: required directives, offline verification, hardening score."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "slot-agent.service"
EXEC = "/opt/slot-agent/venv/bin/slot-agent"
#: systemd-analyze security --offline exposure: 0 is fully locked down, 10 is unprotected.
#: 1.5 when written; a change that loosens the sandbox must raise this on purpose.
MAX_EXPOSURE = 2.0


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> every value in order (keys like DeviceAllow= repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"directive outside a section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not a directive: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.fixture(scope="module")
def service() -> dict[str, list[str]]:
    return parse_unit(UNIT.read_text(encoding="utf-8"))["Service"]


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


def test_installs_into_multi_user(service: dict[str, list[str]]) -> None:
    assert parse_unit(UNIT.read_text())["Install"]["WantedBy"] == ["multi-user.target"]


def runnable_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at a binary that exists here (verify checks it)."""
    text = UNIT.read_text(encoding="utf-8")
    assert EXEC in text
    copy = tmp_path / "slot-agent.service"
    copy.write_text(text.replace(EXEC, "/bin/true"), encoding="utf-8")
    return copy


SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze not installed")


@needs_analyze
def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    assert SYSTEMD_ANALYZE is not None
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(runnable_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def systemd_version() -> int:
    assert SYSTEMD_ANALYZE is not None
    out = subprocess.run(
        [SYSTEMD_ANALYZE, "--version"], capture_output=True, text=True, timeout=30
    ).stdout
    match = re.search(r"systemd (\d+)", out)
    return int(match.group(1)) if match else 0


@needs_analyze
def test_offline_security_exposure_stays_low(tmp_path: Path) -> None:
    if systemd_version() < 252:
        pytest.skip("systemd-analyze security --offline needs systemd >= 252")
    assert SYSTEMD_ANALYZE is not None
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=true", "--no-pager", str(runnable_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for slot-agent\.service: ([0-9.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE


def realtime_drop_in() -> list[str]:
    """The [Service] lines of the realtime drop-in docs/operations.md gives for
    ``poll.line_priority: realtime`` ("Line process priority")."""
    doc = (UNIT.parents[1] / "docs" / "operations.md").read_text(encoding="utf-8")
    section = doc.split("### Line process priority", 1)[1]
    block = section.split("```ini", 1)[1].split("```", 1)[0]
    return [line for line in block.strip().splitlines()
            if line and not line.startswith(("#", "[Service]"))]


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
    if systemd_version() < 252:
        pytest.skip("systemd-analyze security --offline needs systemd >= 252")
    assert SYSTEMD_ANALYZE is not None
    copy = runnable_copy(tmp_path)
    text = copy.read_text(encoding="utf-8")
    copy.write_text(text.replace("[Install]", "\n".join(realtime_drop_in()) + "\n\n[Install]"),
                    encoding="utf-8")
    verify = subprocess.run([SYSTEMD_ANALYZE, "verify", str(copy)], capture_output=True,
                            text=True, timeout=60)
    assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=true", "--no-pager", str(copy)],
        capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for slot-agent\.service: ([0-9.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE
