"""``slot-agent hub --check-config``: hub.yaml and the files it names, every problem at once
with its key, without starting the hub; the agent's ``check-config`` output and exit codes
(docs/operations.md, "Checking hub.yaml")."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from hub import config_check
from tests.support import ROOT
from tests.support.processes import SETPRIV, run_cli, run_cli_unprivileged
from tests.support.tokens import write_token_file

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def _hub_yaml(directory: Path, text: str) -> Path:
    path = directory / "hub.yaml"
    path.write_text(text)
    return path


def _key_pair(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}-cert.pem", directory / f"{name}-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=hub"],
        check=True, capture_output=True, timeout=30)
    key.chmod(0o640)
    return cert, key


def _problems(path: Path) -> list[str]:
    return [f"{p.severity}: {p}" for p in config_check.check_config(path)]


def test_a_valid_config_prints_ok_and_starts_nothing(tmp_path: Path) -> None:
    write_token_file(tmp_path)
    config = _hub_yaml(tmp_path, "listen: {host: 127.0.0.1, port: 0}\nplain: true\n"
                                 "tokens: hub-tokens.yaml\ndatabase: hub.db\n")
    result = run_cli("hub", "--check-config", "--config", str(config), timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"OK: {config}\n"  # no URL: nothing listens
    assert result.stderr == ""
    assert not (tmp_path / "hub.db").exists()  # the store is not opened, nor created


@needs_openssl
def test_every_problem_at_once_each_with_its_key_exit_2(tmp_path: Path) -> None:
    cert, _ = _key_pair(tmp_path, "a")
    _, other_key = _key_pair(tmp_path, "b")
    (tmp_path / "action.key").write_text("\n")
    config = _hub_yaml(tmp_path, f"listen: {{port: 70000}}\n"
                                 f"tls: {{cert: {cert.name}, key: {other_key.name}}}\n"
                                 "tokens: missing-tokens.yaml\ndatabase: no-such-dir/hub.db\n"
                                 "action_key_file: action.key\nretention_dayz: 30\n")
    result = run_cli("hub", "--check-config", "--config", str(config), timeout=30)
    assert result.returncode == 2
    assert result.stdout == ""
    err = result.stderr.splitlines()
    assert err[0] == f"{config}: 6 error(s)"
    assert sorted(err[1:]) == sorted([
        "  error: listen.port: must be an integer from 0 to 65535, got 70000",
        "  error: retention_dayz: unknown key at the top level; did you mean "
        "'retention_days'?",
        f"  error: tokens: file not found: {tmp_path / 'missing-tokens.yaml'}",
        f"  error: tls: {cert} and {other_key} do not load as a certificate and its private "
        "key (KEY_VALUES_MISMATCH): slot-agent hub would not start",
        f"  error: action_key_file: {tmp_path / 'action.key'} is empty: the hub would sign and "
        "check actions with an empty key",
        f"  error: database: directory {tmp_path / 'no-such-dir'} does not exist (the hub "
        "creates the database file, not its directory)",
        # written with the default umask: others may read it
        f"  warning: action_key_file: {tmp_path / 'action.key'} is readable or writable by "
        "others (mode 0644); chmod 0640 it (owner root, group slot-hub)",
    ])


def test_the_token_files_own_problems_under_the_tokens_key(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("t0k-a terminal T-1\nt0k-b wizard someone\nt0k-a operator ops\n")
    tokens.chmod(0o644)
    config = _hub_yaml(tmp_path, "plain: true\ntokens: tokens.txt\ndatabase: hub.db\n")
    assert _problems(config) == [
        f"warning: tokens: {tokens} is readable or writable by others (mode 0644); chmod 0640 "
        "it (owner root, group slot-hub)",
        f"error: tokens: {tokens}: line 2: role must be terminal, viewer or operator",
        f"error: tokens: {tokens}: line 3: the same token appears twice",
    ]
    assert not any("t0k-" in p for p in _problems(config))  # tokens never printed


def test_the_hub_names_token_file_problems_as_its_check_does(tmp_path: Path) -> None:
    """``slot-agent hub`` (exit 2) names a token file it cannot read or whose entries are
    wrong under ``tokens``, as ``--check-config`` does, not as "(file)"."""
    config = _hub_yaml(tmp_path, "plain: true\nlisten: {host: 127.0.0.1, port: 0}\n"
                                 "tokens: missing.txt\ndatabase: hub.db\n")
    result = run_cli("hub", "--config", str(config), timeout=30)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        f"hub config: error: tokens: cannot read {tmp_path / 'missing.txt'}: No such file or "
        "directory")
    tokens = tmp_path / "missing.txt"
    tokens.write_text("t0k-b wizard someone\n")
    result = run_cli("hub", "--config", str(config), timeout=30)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        f"hub config: error: tokens: {tokens}: line 1: role must be terminal, viewer or "
        "operator")


def test_a_key_already_wrong_is_not_checked_again(tmp_path: Path) -> None:
    """``tokens:`` missing is one problem, not also "file not found: ." """
    config = _hub_yaml(tmp_path, "plain: true\ndatabase: hub.db\n")
    assert _problems(config) == ["error: tokens: required: a path"]
    # a store that is not a PostgreSQL URL is one problem, not also "database: not a
    # regular file: ."
    write_token_file(tmp_path)
    config = _hub_yaml(tmp_path, "plain: true\ntokens: hub-tokens.yaml\nstore: hub.db\n")
    assert [p for p in _problems(config) if p.startswith("error")] == [
        "error: store: must be a postgresql:// URL (or leave it out for SQLite at database)"]


@needs_openssl
def test_an_encrypted_tls_key_is_an_error_not_a_prompt(tmp_path: Path) -> None:
    cert, _ = _key_pair(tmp_path, "a")
    key = tmp_path / "encrypted.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-aes128", "-pass", "pass:secret", "-out",
                    str(key)], check=True, capture_output=True, timeout=30)
    key.chmod(0o640)
    write_token_file(tmp_path)
    config = _hub_yaml(tmp_path, f"tls: {{cert: {cert}, key: {key}}}\ntokens: hub-tokens.yaml\n"
                                 "database: hub.db\n")
    problems = _problems(config)
    assert len(problems) == 1 and problems[0].startswith(f"error: tls: {cert} and {key} do not "
                                                         "load"), problems
    assert "encrypted" in problems[0]


def test_the_state_directory_systemd_creates_is_only_a_warning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """/var/lib/slot-hub does not exist before slot-hub.service first starts
    (StateDirectory=): checking the documented hub.yaml then must not fail."""
    state = tmp_path / "var-lib-slot-hub"
    monkeypatch.setattr(config_check, "STATE_DIRECTORY", state)
    write_token_file(tmp_path)
    config = _hub_yaml(tmp_path, "plain: true\ntokens: hub-tokens.yaml\n"
                                 f"database: {state}/hub.db\n")
    assert _problems(config) == [
        f"warning: database: {state} does not exist yet: slot-hub.service creates it when it "
        "starts (StateDirectory=slot-hub); started otherwise, the hub does not create it"]


def test_a_postgresql_store_is_checked_without_connecting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_token_file(tmp_path)
    secret = "s3cret-password"

    def store(url: str) -> list[str]:
        return _problems(_hub_yaml(tmp_path, f"plain: true\ntokens: hub-tokens.yaml\n"
                                             f"store: '{url}'\n"))

    # db.invalid never resolves: a connection attempt would fail, the check does not try
    assert store("postgresql://hub@db.invalid/floor") == []
    assert store(f"postgresql://hub:{secret}@db.invalid/floor") == [
        "warning: store: the URL holds a password (config files are copied and backed up): "
        "put it in ~/.pgpass or the file PGPASSFILE names instead"]
    bad = store(f"postgresql://hub:{secret}@db.invalid/floor?colour=red")
    assert bad[0] == ('error: store: not a PostgreSQL URL libpq reads: invalid URI query '
                      'parameter: "colour"'), bad
    assert not any(secret in p for p in bad)
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if the extra were not installed
    assert store("postgresql://hub@db.invalid/floor") == [
        "error: store: a postgresql:// store needs psycopg 3, not installed beside this "
        "slot-agent: pip install 'slot-agent[postgresql]'"]


@pytest.mark.skipif(os.geteuid() == 0 and SETPRIV is None,
                    reason="as root, needs setpriv (util-linux) to check as an unprivileged user")
def test_checked_as_a_user_who_cannot_read_the_tokens_nor_write_the_store() -> None:
    """What ``sudo -u slot-hub slot-agent hub --check-config`` catches: a 0600 root token file
    and a database directory the hub's user cannot write."""
    base = Path(tempfile.mkdtemp(prefix="hub-check-"))
    try:
        base.chmod(0o755)
        tokens = write_token_file(base)  # 0600, the runner's
        if os.geteuid() != 0:
            tokens.chmod(0o000)
        store = base / "store"
        store.mkdir(mode=0o755)
        if os.geteuid() != 0:
            store.chmod(0o555)
        config = _hub_yaml(base, "plain: true\ntokens: hub-tokens.yaml\ndatabase: store/hub.db\n")
        config.chmod(0o644)
        result, uid = run_cli_unprivileged("hub", "--check-config", "--config", str(config))
        assert result.returncode == 2, result.stderr
        assert result.stderr.splitlines() == [
            f"{config}: 2 error(s)",
            f"  error: tokens: cannot read {tokens}: permission denied for this user (uid "
            f"{uid}); the service reads it through its group: chown root:slot-hub and chmod "
            "0640 it",
            f"  error: database: cannot create files in {store} (the database and its -wal and "
            f"-shm files): permission denied for this user (uid {uid})",
        ]
    finally:
        shutil.rmtree(base)


def test_the_group_and_state_directory_are_the_units() -> None:
    """The messages name the group the unit reads the secrets through, and the directory
    it has systemd create (systemd/slot-hub.service)."""
    lines = (ROOT / "systemd" / "slot-hub.service").read_text().splitlines()
    assert f"Group={config_check.SERVICE_GROUP}" in lines
    assert f"StateDirectory={config_check.STATE_DIRECTORY.name}" in lines
    assert config_check.STATE_DIRECTORY.parent == Path("/var/lib")


def test_an_action_key_the_agents_would_refuse_is_an_error(tmp_path: Path) -> None:
    """The same key file serves the hub and the agents (protocol.md §7), and an agent refuses
    one under 16 bytes: the hub's check says so before the agents fail to start."""
    from agent.config import ConfigError, parse_config, read_hmac_key

    key = tmp_path / "action.key"
    key.write_text("fifteen-bytes-k\n")
    key.chmod(0o640)
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("t0k-a terminal T-1\n")
    tokens.chmod(0o640)
    config = _hub_yaml(tmp_path, "plain: true\ntokens: tokens.txt\ndatabase: hub.db\n"
                                 "action_key_file: action.key\n")
    assert _problems(config) == [
        f"error: action_key_file: {key} holds 15 bytes: the agents refuse a key under 16 "
        "(actions.hmac_key_file, the same file)"]
    agent = parse_config({"terminal_id": "T-1", "machines": [{"address": 1}],
                          "actions": {"hmac_key_file": str(key)}})
    with pytest.raises(ConfigError):
        read_hmac_key(agent)  # what the agent does with it
    key.write_text("sixteen-bytes-ky\n")
    assert _problems(config) == []
    assert read_hmac_key(agent) == b"sixteen-bytes-ky"
