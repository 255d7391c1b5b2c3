"""The hub's hardened systemd unit (systemd/slot-hub.service): required directives, limits
that fit the hub, offline verification, hardening score, and the hub.yaml docs/operations.md
gives for it. The agent's unit: tests/test_systemd_unit.py."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest
import yaml

from hub.config import parse_config
from tests.support import ROOT
from tests.support.processes import run_cli
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

UNIT = UNITS / "slot-hub.service"
OPERATIONS = ROOT / "docs" / "operations.md"
CONFIG = "/etc/slot-hub/hub.yaml"
#: systemd-analyze security --offline exposure: 0 is fully locked down, 10 is unprotected.
#: 1.1 when written (systemd 252); a change that loosens the sandbox must raise this on purpose.
MAX_EXPOSURE = 1.5
#: A floor: 3,000-5,000 terminal connections, each a socket, plus clients and the store.
FLOOR_SOCKETS = 5_000


@pytest.fixture(scope="module")
def service() -> dict[str, list[str]]:
    return read_unit(UNIT)["Service"]


REQUIRED = {
    "Type": "notify",
    "NotifyAccess": "main",
    "ExecStart": f"{EXEC} hub --config {CONFIG}",
    "Restart": "on-failure",
    "RestartSec": "5",
    "RestartPreventExitStatus": "2",
    "User": "slot-hub",
    "Group": "slot-hub",
    "StateDirectory": "slot-hub",
    "StateDirectoryMode": "0700",
    "ConfigurationDirectory": "slot-hub",
    "UMask": "0077",
    "PrivateDevices": "yes",
    "PrivateUsers": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "NoNewPrivileges": "yes",
    "PrivateTmp": "yes",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
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
}


@pytest.mark.parametrize(("key", "value"), sorted(REQUIRED.items()))
def test_required_directive(service: dict[str, list[str]], key: str, value: str) -> None:
    assert service.get(key) == [value], f"{key}= should be exactly {value!r}"


def test_system_call_filter(service: dict[str, list[str]]) -> None:
    assert service["SystemCallFilter"] == ["@system-service", "~@privileged @resources"]


def test_no_watchdog_and_no_devices(service: dict[str, list[str]]) -> None:
    """No WatchdogSec=: an overloaded hub's loop turns take seconds, and a restart would
    bring every terminal back at once. No device at all (PrivateDevices=yes)."""
    assert "WatchdogSec" not in service
    assert "DeviceAllow" not in service and "SupplementaryGroups" not in service


def test_proc_keeps_what_the_process_metrics_read(service: dict[str, list[str]]) -> None:
    """GET /metrics carries prometheus-client's process collector (open files against the
    limit, CPU, memory), which reports nothing without /proc/stat: no ProcSubset=pid."""
    assert "PROCESS_COLLECTOR" in (ROOT / "hub" / "metrics.py").read_text(encoding="utf-8")
    assert "ProcSubset" not in service


def seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "sec": 1, "min": 60, "h": 3600}
    number = value.rstrip("abcdefghijklmnopqrstuvwxyz")
    return float(number) * units[value[len(number):] or "s"]


def test_stop_timeout_fits_the_documented_shutdown(service: dict[str, list[str]]) -> None:
    """The hub exits within 5 s of SIGTERM, also overloaded (docs/operations.md, "Stopping
    it"): the unit waits longer than that before it kills, and not much longer."""
    assert "ends the hub within 5 s" in OPERATIONS.read_text(encoding="utf-8")
    (stop,) = service["TimeoutStopSec"]
    assert 2 * 5 <= seconds(stop) <= 30


def test_start_timeout_leaves_room_for_an_index_build(service: dict[str, list[str]]) -> None:
    """READY=1 comes after the store is open, which on an older hub's large database
    includes building the indexes (docs/scaling.md): far more than the default 90 s."""
    (start,) = service["TimeoutStartSec"]
    assert seconds(start) >= 10 * 60


def test_open_files_for_a_floor(service: dict[str, list[str]]) -> None:
    """One soft and hard limit, far above a floor's sockets (the default soft limit is 1024)."""
    (limit,) = service["LimitNOFILE"]
    assert ":" not in limit and int(limit) >= 4 * FLOOR_SOCKETS


def test_exit_2_is_the_cli_s_invalid_configuration() -> None:
    """RestartPreventExitStatus=2: what `slot-agent hub` exits with on an invalid hub.yaml or
    token file, which a restart cannot fix."""
    result = run_cli("hub", "--help", timeout=30)
    assert result.returncode == 0
    assert "2  invalid hub.yaml or token file" in result.stdout


def test_config_lives_in_the_configuration_directory(service: dict[str, list[str]]) -> None:
    assert PurePosixPath(CONFIG).parent == PurePosixPath("/etc") / service[
        "ConfigurationDirectory"][0]


def test_ordering_and_install() -> None:
    unit = read_unit(UNIT)
    assert unit["Unit"]["Wants"] == ["network-online.target"]
    assert "network-online.target" in unit["Unit"]["After"][0].split()
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def service_hub_yaml() -> dict[str, object]:
    """The hub.yaml docs/operations.md gives for the service ("Running the hub as a service")."""
    section = OPERATIONS.read_text(encoding="utf-8").split("### Running the hub as a service", 1)[1]
    block = section.split(f"# file: {CONFIG}\n", 1)[1].split("```", 1)[0]
    data = yaml.safe_load(block)
    assert isinstance(data, dict)
    return data


def test_the_documented_hub_yaml_is_valid_and_writes_into_the_state_directory(
        service: dict[str, list[str]]) -> None:
    """Its database is in /var/lib/<StateDirectory> (the only place the unit may write), the
    token file and the TLS files in /etc/<ConfigurationDirectory>."""
    config = parse_config(service_hub_yaml(), Path(CONFIG).parent)
    state = Path("/var/lib") / service["StateDirectory"][0]
    etc = Path("/etc") / service["ConfigurationDirectory"][0]
    assert config.database is not None and config.database.parent == state
    assert config.tokens.parent == etc
    assert config.tls_cert is not None and config.tls_cert.parent == etc
    assert config.tls_key is not None and config.tls_key.parent == etc


def low_port_drop_in() -> list[str]:
    """The [Service] lines of the drop-in docs/operations.md gives for listen.port < 1024."""
    return ini_block_after(OPERATIONS, "#### A port below 1024")


def test_the_low_port_drop_in_grants_one_capability() -> None:
    lines = low_port_drop_in()
    assert "AmbientCapabilities=CAP_NET_BIND_SERVICE" in lines
    assert "CapabilityBoundingSet=CAP_NET_BIND_SERVICE" in lines
    # A capability held inside a user namespace does not bind a port of the host's network.
    assert "PrivateUsers=no" in lines


@needs_analyze
def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    assert_verifies_clean(runnable_copy(UNIT, tmp_path))


@needs_analyze
def test_offline_security_exposure_stays_low(tmp_path: Path) -> None:
    assert offline_exposure(runnable_copy(UNIT, tmp_path)) <= MAX_EXPOSURE


@needs_analyze
def test_the_unit_with_the_low_port_drop_in_verifies(tmp_path: Path) -> None:
    copy = runnable_copy(UNIT, tmp_path, extra_service_lines=low_port_drop_in())
    assert_verifies_clean(copy)
    assert offline_exposure(copy) <= 2.0
