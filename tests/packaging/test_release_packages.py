"""The release artifacts (docs/operations.md, "Install on a terminal PC"): the wheelhouse and
the Debian package are built by packaging/*.sh, installed with no network (a network
namespace of their own, ``unshare -n``), checked and removed.

Installing the package touches the system (/opt/slot-agent, /etc/slot-agent, the slot-agent
user): these tests run as root where dpkg exists (CI runs in a throw-away container as root)
and are skipped with the reason elsewhere, or when slot-agent is installed already.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ROOT

PYTHON = "/usr/bin/python3"
SLOT_AGENT = "/opt/slot-agent/venv/bin/slot-agent"
UNIT = "/lib/systemd/system/slot-agent.service"
HUB_UNIT = "/lib/systemd/system/slot-hub.service"

#: One worker runs the module under ``-n`` (pytest-xdist, ``--dist loadgroup``): the
#: wheelhouse and the package are built once, by its module-scoped fixtures.
pytestmark = [pytest.mark.package, pytest.mark.xdist_group("packaging")]


def _python_has_venv() -> bool:
    if not os.access(PYTHON, os.X_OK):
        return False
    probe = subprocess.run([PYTHON, "-c", "import sys, venv, ensurepip, tomllib"],
                           capture_output=True, timeout=60)
    return probe.returncode == 0


def _can_unshare_network() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True,
                          timeout=30).returncode == 0


def _installed() -> bool:
    status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "slot-agent"],
                            capture_output=True, text=True, timeout=60)
    return status.returncode == 0 and "installed" in status.stdout


def _skip_reason_for_install() -> str | None:
    if os.geteuid() != 0:
        return "installs a package system-wide: runs as root (CI), not as an ordinary user"
    for tool in ("dpkg", "dpkg-deb", "systemd-analyze"):
        if shutil.which(tool) is None:
            return f"needs {tool} (a Debian system)"
    if not _can_unshare_network():
        return "needs unshare -n (a network namespace) to install with no network"
    if _installed() or Path("/opt/slot-agent").exists() or Path("/etc/slot-agent").exists():
        return "slot-agent is installed on this machine: not touching a real installation"
    return None


needs_python = pytest.mark.skipif(
    not _python_has_venv(), reason=f"needs {PYTHON} >= 3.11 with venv (python3-venv)")


def offline(*cmd: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``cmd`` in a network namespace of its own: only a loopback, and it is down."""
    return subprocess.run(["unshare", "-n", *cmd], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dist")


@pytest.fixture(scope="module")
def wheelhouse(dist: Path) -> Path:
    result = subprocess.run([str(ROOT / "packaging" / "build-wheelhouse.sh"), "--out", str(dist)],
                            capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PYTHON": PYTHON})
    assert result.returncode == 0, result.stderr
    tarball = Path(result.stdout.strip().splitlines()[-1])
    assert tarball.parent == dist and tarball.name.endswith(".tar.gz")
    return tarball


@pytest.fixture(scope="module")
def deb(dist: Path, wheelhouse: Path) -> Path:
    result = subprocess.run([str(ROOT / "packaging" / "build-deb.sh"), "--out", str(dist),
                             "--wheelhouse", str(wheelhouse)],
                            capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PYTHON": PYTHON})
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip().splitlines()[-1])


def _source_files() -> set[str]:
    """Every module and data file of the packages the project ships (pyproject's list)."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["packages"]["find"]["include"]
    tops = sorted({p.rstrip("*") for p in patterns})
    files: set[str] = set()
    for top in tops:
        for path in (ROOT / top).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.add(path.relative_to(ROOT).as_posix())
    # Every top-level package in the checkout is one pyproject ships (none forgotten).
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench"}
    assert packages <= set(tops), f"not in pyproject's package list: {packages - set(tops)}"
    return files


@needs_python
def test_the_wheel_carries_every_module_and_data_file(wheelhouse: Path) -> None:
    with tarfile.open(wheelhouse) as tar:
        names = tar.getnames()
        top = names[0].split("/")[0]
        wheel_member = next(n for n in names if n.startswith(f"{top}/wheels/slot_agent-"))
        data = tar.extractfile(wheel_member)
        assert data is not None
        wheel_bytes = data.read()
    for needed in ("install.sh", "requirements.txt", "config.example.yaml",
                   "slot-agent.service", "slot-hub.service", "docs/operations.md",
                   "docs/schemas/event.json"):
        assert f"{top}/{needed}" in names, needed
    import io

    with zipfile.ZipFile(io.BytesIO(wheel_bytes)) as wheel:
        in_wheel = {n for n in wheel.namelist() if ".dist-info/" not in n}
        entry_points = wheel.read(next(n for n in wheel.namelist()
                                       if n.endswith(".dist-info/entry_points.txt"))).decode()
    expected = _source_files()
    assert "hub/static/index.html" in expected and "emulator/scenarios/smoke.yaml" in expected
    assert expected - in_wheel == set(), "missing from the wheel"
    assert "slot-agent = " in entry_points


@needs_python
def test_the_wheelhouse_installs_with_no_network(wheelhouse: Path, tmp_path: Path) -> None:
    if os.geteuid() != 0 or not _can_unshare_network():
        pytest.skip("needs root and unshare -n (a network namespace) to prove no network")
    with tarfile.open(wheelhouse) as tar:
        tar.extractall(tmp_path, filter="tar")
    (house,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    prefix = tmp_path / "opt"
    result = offline(str(house / "install.sh"), "--venv-only", "--prefix", str(prefix))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == "slot-agent 0.1.0"
    check = offline(str(prefix / "venv" / "bin" / "slot-agent"), "check-config", "--config",
                    str(house / "config.example.yaml"))
    assert check.returncode == 0, check.stderr
    assert check.stdout.startswith("OK: ")
    # psycopg comes with it, for a hub whose store is PostgreSQL (it loads the system's libpq)
    pg = offline(str(prefix / "venv" / "bin" / "python"), "-c",
                 "import psycopg; print(psycopg.pq.version() > 0)")
    assert pg.returncode == 0 and pg.stdout.strip() == "True", pg.stderr


@pytest.fixture
def installed(request: pytest.FixtureRequest) -> Iterator[subprocess.CompletedProcess[str]]:
    reason = _skip_reason_for_install()
    if reason is not None:
        pytest.skip(reason)
    deb: Path = request.getfixturevalue("deb")
    had_users = {user: subprocess.run(["getent", "passwd", user],
                                      capture_output=True).returncode == 0
                 for user in ("slot-agent", "slot-hub")}
    result = offline("dpkg", "-i", str(deb))
    try:
        yield result
    finally:
        offline("dpkg", "--purge", "slot-agent")
        for user, had in had_users.items():
            if not had:
                subprocess.run(["userdel", user], capture_output=True, timeout=60)
                subprocess.run(["groupdel", user], capture_output=True, timeout=60)


@needs_python
def test_the_debian_package_installs_verifies_and_purges_with_no_network(
    installed: subprocess.CompletedProcess[str],
) -> None:
    assert installed.returncode == 0, installed.stdout + installed.stderr
    # No network in there: only a loopback, and it is down.
    links = offline("ip", "-o", "link", "show").stdout.strip().splitlines()
    assert len(links) == 1 and ": lo:" in links[0] and "state DOWN" in links[0]

    version = offline(SLOT_AGENT, "--version")
    assert version.returncode == 0 and version.stdout.strip() == "slot-agent 0.1.0"

    # The shipped configuration, checked as the service user: 0640 root:slot-agent is
    # readable through the group (the one rule for the configuration and the token).
    conf = Path("/etc/slot-agent/config.yaml")
    st = conf.stat()
    assert oct(st.st_mode & 0o777) == "0o640" and st.st_uid == 0
    assert subprocess.run(["getent", "group", "slot-agent"], capture_output=True,
                          text=True).stdout.split(":")[2] == str(st.st_gid)
    assert conf.read_text() == (ROOT / "config.example.yaml").read_text()
    groups = subprocess.run(["id", "-nG", "slot-agent"], capture_output=True, text=True)
    assert set(groups.stdout.split()) == {"slot-agent", "dialout"}
    check = offline("setpriv", "--reuid=slot-agent", "--regid=slot-agent", "--init-groups",
                    SLOT_AGENT, "check-config", "--config", str(conf))
    assert check.returncode == 0, check.stderr
    assert check.stdout == f"OK: {conf}\n"

    # The unit as installed: verify checks ExecStart's program exists, and it does now.
    verify = offline("systemd-analyze", "verify", UNIT)
    assert verify.returncode == 0, verify.stderr
    assert verify.stderr.strip() == "", verify.stderr
    unit = Path(UNIT).read_text()
    assert "Documentation=file:///opt/slot-agent/docs/operations.md" in unit
    assert Path("/opt/slot-agent/docs/operations.md").is_file()

    # The hub's unit is installed and verifies, its user exists (no other group), and the
    # package does not enable it: the hub runs on one server, not on every terminal PC.
    verify = offline("systemd-analyze", "verify", HUB_UNIT)
    assert verify.returncode == 0, verify.stderr
    assert verify.stderr.strip() == "", verify.stderr
    assert Path(HUB_UNIT).read_text() == (ROOT / "systemd" / "slot-hub.service").read_text()
    hub_groups = subprocess.run(["id", "-nG", "slot-hub"], capture_output=True, text=True)
    assert hub_groups.returncode == 0 and hub_groups.stdout.split() == ["slot-hub"]
    assert not list(Path("/etc/systemd/system").glob("*.wants/slot-hub.service"))

    # Nothing was written next to the program at run time (byte code is shipped).
    listed = set(subprocess.run(["dpkg", "-L", "slot-agent"], capture_output=True,
                                text=True).stdout.split("\n"))
    on_disk = {str(p) for p in Path("/opt/slot-agent").rglob("*")}
    assert on_disk - listed == set()

    purge = offline("dpkg", "--purge", "slot-agent")
    assert purge.returncode == 0, purge.stderr
    assert not _installed()
    assert not Path("/opt/slot-agent").exists() and not Path("/etc/slot-agent").exists()
    assert not Path(UNIT).exists() and not Path(HUB_UNIT).exists()


def test_the_unit_reads_the_secrets_through_the_group_the_token_rule_names() -> None:
    """One token-file rule (0640 root:slot-agent): the package sets it, check-config accepts
    it, and the unit's Group= is that group, so the service can read the files."""
    lines = (ROOT / "systemd" / "slot-agent.service").read_text().splitlines()
    assert "User=slot-agent" in lines and "Group=slot-agent" in lines
    postinst = (ROOT / "packaging" / "debian" / "postinst").read_text()
    assert "chown root:slot-agent /etc/slot-agent/config.yaml" in postinst
    assert "chmod 0640 /etc/slot-agent/token" in postinst
    operations = (ROOT / "docs" / "operations.md").read_text()
    assert "| hub token | `/etc/slot-agent/token` (the path `uplink.token_file` names) | " \
           "root:slot-agent, 0640 |" in operations
