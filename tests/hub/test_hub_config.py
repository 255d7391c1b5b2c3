"""hub.yaml and the token file: every problem named by key; the CLI prints its URL first."""

from __future__ import annotations

import dataclasses
import re
import urllib.request
from pathlib import Path

import pytest
import yaml

from api.wire import Role
from configkit import ConfigError
from hub.config import HubConfig, load_config, parse_config
from hub.tokens import Principal, parse_tokens
from tests.support import ROOT
from tests.support.processes import Proc, run_cli
from tests.support.tokens import Token, write_token_file


def test_minimal_config_and_relative_paths(tmp_path: Path) -> None:
    cfg = parse_config({"plain": True, "tokens": "tokens.txt", "database": "/var/hub.db",
                        "listen": {"host": "0.0.0.0", "port": 0}}, tmp_path)
    assert cfg.tokens == tmp_path / "tokens.txt" and cfg.database == Path("/var/hub.db")
    assert (cfg.host, cfg.port, cfg.tls_cert) == ("0.0.0.0", 0, None)


def test_every_problem_is_reported_with_its_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"listen": {"port": 70000}, "client_queue": 0, "ping_interval": "x",
                      "max_message_bytes": 10, "max_frame_bytes": 5, "colour": "red"},
                     tmp_path)
    text = "\n".join(map(str, info.value.problems))
    for key in ("listen.port", "client_queue", "ping_interval", "max_message_bytes",
                "colour: unknown key", "tokens: required", "database: required", "tls:"):
        assert key in text, key


def test_load_limits_have_documented_defaults_and_named_problems(tmp_path: Path) -> None:
    base = {"plain": True, "tokens": "t", "database": "d"}
    cfg = parse_config(base, tmp_path)
    assert (cfg.max_inflight_events, cfg.max_inflight_per_terminal, cfg.client_max_filters,
            cfg.client_max_filter_names, cfg.get_state_burst, cfg.get_state_per_second) \
        == (20_000, 1000, 16, 1000, 5, 1.0)  # docs/protocol.md §11
    cfg = parse_config(base | {"max_inflight_events": 500, "get_state_per_second": 0.5},
                       tmp_path)
    assert (cfg.max_inflight_events, cfg.get_state_per_second) == (500, 0.5)
    with pytest.raises(ConfigError) as info:
        parse_config(base | {"max_inflight_events": 0, "max_inflight_per_terminal": "x",
                             "client_max_filters": -1, "client_max_filter_names": 1.5,
                             "get_state_burst": True, "get_state_per_second": 0}, tmp_path)
    text = "\n".join(map(str, info.value.problems))
    for key in ("max_inflight_events", "max_inflight_per_terminal", "client_max_filters",
                "client_max_filter_names", "get_state_burst", "get_state_per_second"):
        assert f"{key}:" in text, key


def test_plain_and_tls_are_exclusive(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"plain": True, "tls": {"cert": "c.pem"}, "tokens": "t",
                      "database": "d"}, tmp_path)
    assert any(p.startswith("tls.key") for p in map(str, info.value.problems))
    assert any(p.startswith("plain") for p in map(str, info.value.problems))


def test_unreadable_or_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "hub.yaml"
    bad.write_text("listen: [unclosed")
    with pytest.raises(ConfigError):
        load_config(bad)


def test_tokens_yaml_and_lines() -> None:
    table = parse_tokens("tokens:\n  - {token: a, role: terminal, terminalId: T1}\n"
                         "  - {token: b, role: operator, name: alice}\n"
                         "  - {token: c, role: viewer}\n")
    assert table.lookup("a") == Principal(Role.TERMINAL, "T1", "T1")
    assert table.lookup("b") == Principal(Role.OPERATOR, "alice")
    assert table.lookup("c") == Principal(Role.VIEWER, "viewer-1")
    assert table.lookup("d") is None and table.lookup("") is None
    lines = parse_tokens("# comment\nsecret-1 terminal T-9  # trailing\n\nsecret-2 viewer\n")
    assert lines.lookup("secret-1") == Principal(Role.TERMINAL, "T-9", "T-9")
    assert lines.terminals() == ["T-9"]


@pytest.mark.parametrize(("text", "where"), [
    ("x terminal\n", "line 1"),  # terminal without terminalId
    ("x admin bob\n", "line 1"),
    ("a viewer\nb\n", "line 2"),
    ("x terminal hub\n", "reserved"),
    ("x terminal caisse-n°1\n", "not a valid terminal id"),
    ("a viewer\na operator\n", "twice"),
    ("tokens:\n  - {role: viewer}\n", "tokens[0]"),
    # protocol.md §11: a YAML entry's problem at its key path, as printed there
    ("tokens:\n  - {token: a, role: viewer}\n  - {token: b, role: viewer}\n"
     "  - {token: c, role: boss}\n", "tokens[2].role: role must be terminal, viewer or operator"),
    ("tokens:\n  - {token: a, role: terminal}\n", "tokens[0].terminalId: a terminal token"),
    ("tokens:\n  - {token: a, role: terminal, terminalId: hub}\n", "tokens[0].terminalId: "),
    ("tokens: nope\n", "tokens"),
])
def test_token_file_problems(text: str, where: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_tokens(text)
    assert where in str(info.value)


def test_cli_prints_the_url_first_and_never_logs_tokens(tmp_path: Path) -> None:
    tokens = write_token_file(tmp_path, [Token("very-secret-token", "operator", "alice")])
    (tmp_path / "hub.yaml").write_text(
        f"listen: {{host: 127.0.0.1, port: 0}}\nplain: true\ntokens: {tokens.name}\n"
        "database: hub.db\n")
    proc = Proc(["hub", "--config", str(tmp_path / "hub.yaml")],
                env={"PYTHONUNBUFFERED": "1"})
    try:
        url = proc.first_line()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/")
        with urllib.request.urlopen(url + "healthz", timeout=5) as resp:
            assert resp.read() == b"ok\n"
    finally:
        code = proc.terminate(10)
    err = "\n".join(proc.err_lines)
    assert code == 0, err
    assert "very-secret-token" not in err


def test_cli_reports_config_problems(tmp_path: Path) -> None:
    (tmp_path / "hub.yaml").write_text("listen: {port: -1}\n")
    proc = run_cli("hub", "--config", str(tmp_path / "hub.yaml"), timeout=30)
    assert proc.returncode == 2
    assert "listen.port" in proc.stderr and "tokens: required" in proc.stderr


def test_store_names_postgresql_instead_of_the_sqlite_database(tmp_path: Path) -> None:
    url = "postgresql://hub@db.example.com/floor"
    cfg = parse_config({"plain": True, "tokens": "t", "store": url}, tmp_path)
    assert (cfg.store, cfg.database) == (url, None)
    assert parse_config({"plain": True, "tokens": "t", "database": "d"}, tmp_path).store is None
    for raw, problem in (
            ({"store": url, "database": "d"}, "database: cannot be set together with store"),
            ({"store": "mysql://db/floor"}, "store: must be a postgresql:// URL"),
            ({"store": 5}, "store: must be a non-empty string"),
            ({}, "database: required")):
        with pytest.raises(ConfigError) as info:
            parse_config({"plain": True, "tokens": "t"} | raw, tmp_path)
        got = [str(p) for p in info.value.problems]
        assert [p for p in got if p.startswith(problem)], got


def test_the_hub_command_says_why_the_store_cannot_be_opened(tmp_path: Path) -> None:
    import json

    tokens = write_token_file(tmp_path)
    secret = "s3cret-password"
    config = tmp_path / "hub.yaml"
    # Nothing listens on this socket folder.
    config.write_text(json.dumps({
        "plain": True, "tokens": str(tokens), "listen": {"port": 0},
        "store": f"postgresql://hub:{secret}@/floor?host={tmp_path}&connect_timeout=2"}))
    done = run_cli("hub", "--config", str(config))
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""  # no URL: it never listened
    assert "hub: cannot start: store: cannot open the PostgreSQL database" in done.stderr
    assert secret not in done.stderr


def _cannot_start(tmp_path: Path, yaml_text: str) -> str:
    """What ``slot-agent hub`` prints on stderr when it exits 1 before it listens."""
    tokens = write_token_file(tmp_path)
    config = tmp_path / "hub.yaml"
    config.write_text(f"listen: {{port: 0}}\ntokens: {tokens}\n{yaml_text}")
    done = run_cli("hub", "--config", str(config))
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""  # no URL: it never listened
    return done.stderr


def test_the_hub_command_says_why_the_sqlite_database_cannot_be_opened(tmp_path: Path) -> None:
    assert _cannot_start(tmp_path, "plain: true\ndatabase: no-such-dir/hub.db\n") == (
        f"hub: cannot start: database: cannot open the SQLite database "
        f"{tmp_path / 'no-such-dir' / 'hub.db'}: unable to open database file\n")


def test_timezone_and_gaming_day_start(tmp_path: Path) -> None:
    base = {"plain": True, "tokens": "t", "database": "d"}
    cfg = parse_config({**base, "timezone": "America/Los_Angeles", "gaming_day_start": 6},
                       tmp_path)
    assert (cfg.timezone, cfg.gaming_day_start) == ("America/Los_Angeles", 6)
    assert (parse_config(base, tmp_path).timezone,
            parse_config(base, tmp_path).gaming_day_start) == ("UTC", 0)
    with pytest.raises(ConfigError) as info:
        parse_config({**base, "timezone": "Mars/Olympus", "gaming_day_start": 24}, tmp_path)
    text = "\n".join(map(str, info.value.problems))
    assert "timezone: unknown IANA time zone 'Mars/Olympus'" in text
    assert "gaming_day_start: must be an integer from 0 to 23, got 24" in text


def test_bank_and_area_of_terminals_from_the_token_file() -> None:
    table = parse_tokens("tokens:\n"
                         "  - {token: a, role: terminal, terminalId: T1, bank: 12, area: Pit A}\n"
                         "  - {token: b, role: terminal, terminalId: T2}\n")
    assert table.registry() == {"T1": {"bank": "12", "area": "Pit A"}}
    with pytest.raises(ConfigError) as info:
        parse_tokens("tokens:\n  - {token: a, role: terminal, terminalId: T1, bank: [1]}\n")
    assert [str(p) for p in info.value.problems] == ["tokens[0].bank: must be a short name"]


# --------------------------------------------------------------- docs/protocol.md §11

#: HubConfig fields whose key in hub.yaml is nested (every other field is its own key).
_NESTED = {"host": "listen.host", "port": "listen.port", "tls_cert": "tls.cert",
           "tls_key": "tls.key"}
#: Keys whose value in §11's example is a path or an example, not a default.
_EXAMPLES = {"tls", "tokens", "database", "store", "action_key_file"}


def _section_11_lines() -> list[str]:
    doc = (ROOT / "docs" / "protocol.md").read_text()
    start = doc.index("## 11.")
    block = re.search(r"```yaml\n(.*?)```", doc[start:], re.S)
    assert block is not None
    return block.group(1).splitlines()


def test_section_11_shows_every_hub_key_with_its_default() -> None:
    """Every key hub.yaml takes is in protocol.md §11's example (commented out when it is
    an alternative), each shown with its default, or with ``default X`` in its comment when
    the value is an example: an external operator configures the hub from that page."""
    lines = _section_11_lines()
    shown = yaml.safe_load("\n".join(lines))
    commented = {line[2:].split(":")[0] for line in lines if line.startswith("# ")}
    fields = dataclasses.fields(HubConfig)
    defaults = {f.name: f.default for f in fields if f.default is not dataclasses.MISSING}
    keys = {_NESTED.get(f.name, f.name) for f in fields}
    documented = {f"{k}.{sub}" for k, v in shown.items() if isinstance(v, dict) for sub in v}
    documented |= {k for k, v in shown.items() if not isinstance(v, dict)} | commented
    assert keys - documented == set(), "hub.yaml keys missing from protocol.md §11"
    assert documented - keys == set(), "keys in protocol.md §11 that hub.yaml refuses"
    for line in lines:
        if not line or line.startswith(("#", " ")) or ":" not in line:
            continue
        key = line.split(":")[0]
        if key in _EXAMPLES or key == "listen":
            continue
        comment = line.partition("#")[2]
        if "default " in comment:
            stated = comment.split("default ")[1].rstrip(")").split(",")[0].split(")")[0]
            assert str(defaults[key]) == stated, (key, stated, defaults[key])
        else:
            assert shown[key] == defaults[key], (key, shown[key], defaults[key])
    assert (shown["listen"]["host"], shown["listen"]["port"]) == (defaults["host"],
                                                                 defaults["port"])


def test_the_hub_command_says_which_tls_files_do_not_load(tmp_path: Path) -> None:
    """Exit 1 "cannot start (... a TLS file does not load ...)" names the key and both files,
    as ``--check-config`` does, not a bare "[Errno 2] No such file or directory"."""
    assert _cannot_start(tmp_path, "database: hub.db\ntls: {cert: cert.pem, key: key.pem}\n") == (
        f"hub: cannot start: tls: {tmp_path / 'cert.pem'} and {tmp_path / 'key.pem'} do not "
        "load as a certificate and its private key ([Errno 2] No such file or directory)\n")


def test_the_hub_command_exits_1_when_its_address_is_in_use(tmp_path: Path) -> None:
    import socket

    tokens = write_token_file(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "hub.yaml"
        config.write_text(f"plain: true\nlisten: {{host: 127.0.0.1, port: {port}}}\n"
                          f"tokens: {tokens}\ndatabase: hub.db\n")
        done = run_cli("hub", "--config", str(config))
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""  # no URL: it never listened
    assert done.stderr.startswith("hub: cannot start: ")
    assert "address already in use" in done.stderr
