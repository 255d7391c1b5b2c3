"""Typed configuration: defaults, every problem at once with its key path, secrets, reload."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.config import (
    Config,
    ConfigError,
    config_hash,
    hub_urls,
    load_config,
    parse_config,
    read_hmac_key,
    read_token,
    reloadable_diff,
)
from tests.support import ROOT
from tests.support.processes import SETPRIV, run_cli, run_cli_unprivileged

EXAMPLE = ROOT / "config.example.yaml"
MINIMAL = {"terminal_id": "EGM-0001", "machines": [{"address": 1}]}


def problems_of(data: Any, **kw: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, **kw)
    return [str(p) for p in info.value.problems if p.severity == "error"]


def with_(**sections: Any) -> dict[str, Any]:
    return {**MINIMAL, **sections}


def test_minimal_config_gets_defaults_for_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
    cfg = parse_config(MINIMAL)
    assert cfg.terminal_id == "EGM-0001"
    assert cfg.machines[0].address == 1 and cfg.machines[0].rte is False
    assert cfg.serial.baudrate == 19200 and cfg.poll.interval_ms == 200
    assert cfg.outbox.path == "/var/lib/slot-agent/outbox.db"
    assert cfg.outbox.retention_seconds == 30 * 86400
    assert cfg.control_socket == "/run/slot-agent/control.sock"
    assert cfg.uplink.url is None
    assert [str(w) for w in cfg.warnings] == [
        "uplink.url: not set: events are kept in the outbox only"
    ]


def test_systemd_directories_set_the_default_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/x:/var/lib/y")
    monkeypatch.setenv("RUNTIME_DIRECTORY", "/run/x")
    cfg = parse_config(MINIMAL)
    assert cfg.outbox.path == "/var/lib/x/outbox.db"
    assert cfg.control_socket == "/run/x/control.sock"


def test_every_problem_is_reported_at_once_with_its_key_path() -> None:
    got = problems_of({
        "serial": {"port": "COM3", "baudrate": "fast"},
        "machines": [{"address": 0}, {"address": 5, "rte": "yes"}, {"address": 5}],
        "poll": {"interval_ms": 20, "reply_timeout_ms": 50},
        "uplink": {"window": "abc", "batch": 0},
        "logging": {"level": "loud"},
        "metrics": {"port": 70000},
    })
    assert got == [
        'terminal_id: required: this terminal\'s id on the hub, e.g. "EGM-0001"',
        "serial.port: must be a device path (/dev/ttyUSB0), serial:PATH, tcp://host:port, "
        'pty:/dev/pts/N or a pyserial URL, got "COM3"',
        'serial.baudrate: must be an integer from 300 to 1000000, got "fast"',
        "machines[0].address: must be an integer from 1 to 127, got 0",
        'machines[1].rte: must be true or false, got "yes"',
        "machines[2].address: address 5 is already used by machines[1]",
        "poll.interval_ms: must be an integer from 40 to 5000, got 20",
        'uplink.window: must be an integer from 1 to 100000, got "abc"',
        "uplink.batch: must be an integer from 1 to 100000, got 0",
        "metrics.port: must be an integer from 0 to 65535, got 70000",
        'logging.level: must be one of debug|info|warning|error, got "loud"',
    ]


def test_unknown_keys_are_errors_with_a_did_you_mean() -> None:
    got = problems_of(with_(
        poll={"intervall_ms": 100},
        serial={"even_parity_after_adress": True},
        uplnk={"url": "wss://x"},
        zzz=1,
    ))
    assert got == [
        "serial.even_parity_after_adress: unknown key in 'serial'; "
        "did you mean 'even_parity_after_address'?",
        "poll.intervall_ms: unknown key in 'poll'; did you mean 'interval_ms'?",
        "uplnk: unknown key at the top level; did you mean 'uplink'?",
        "zzz: unknown key at the top level",
    ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"terminal_id": "bad id!", "machines": [{"address": 1}]},
         'terminal_id: must be 1 to 64 characters from A-Z a-z 0-9 _ . : -, got "bad id!"'),
        ({"terminal_id": "T"}, "machines: required: list at least one machine (- address: 1)"),
        ({"terminal_id": "T", "machines": []}, "machines: must be a non-empty list, got []"),
        (with_(machines=[{"rte": True}]),
         "machines[0].address: required: the machine's SAS address, 1 to 127"),
        (with_(poll={"interval_ms": 100, "reply_timeout_ms": 100}),
         "poll.reply_timeout_ms: must be shorter than poll.interval_ms (100), got 100"),
        (with_(poll={"clock_check": False, "clock_sync": True}),
         "poll.clock_sync: needs poll.clock_check: true (the skew is measured by it)"),
        (with_(poll={"sync_address": 1}),
         "poll.sync_address: 1 is a machine's address: the sync poll must go to an address "
         "not on the line"),
        (with_(poll={"sync_address": 128}),
         "poll.sync_address: must be an integer from 0 to 127, got 128"),
        (with_(poll={"link_down_after_s": -1}),
         "poll.link_down_after_s: must be a number from 0 to 300, got -1"),
        (with_(serial={"port": "tcp://host"}),
         'serial.port: tcp:// needs host:port with a port from 1 to 65535, got "tcp://host"'),
        (with_(serial={"port": "serial:"}),
         'serial.port: serial: needs a device path (serial:/dev/ttyUSB0), got "serial:"'),
        (with_(card_reader={"port": "serial://"}),
         'card_reader.port: serial: needs a device path (serial:/dev/ttyUSB0), got "serial://"'),
        (with_(card_reader={"pattern": "(["}),
         "card_reader.pattern: is not a valid regular expression: "
         "unterminated character set at position 1"),
        (with_(card_reader={"pattern": "^[0-9]+$"}),
         "card_reader.pattern: must have a named group (?P<id>...) for the card number"),
        (with_(uplink={"url": "ws://hub:8080/ws", "token_env": "T"}),
         "uplink.url: ws:// sends the token and events in clear text; use wss:// or set "
         "uplink.allow_insecure: true (test benches only)"),
        (with_(uplink={"url": "https://hub", "token_env": "T"}),
         'uplink.url: must start with wss:// (or ws://), got "https://hub"'),
        (with_(uplink={"url": "wss://hub"}),
         "uplink.token_file: the hub needs a token: set uplink.token_file or uplink.token_env"),
        (with_(uplink={"batch": 2001}),
         "uplink.batch: must not exceed uplink.window (2000), got 2001"),
        (with_(uplink={"client_cert_file": "/etc/hostname"}),
         "uplink.client_key_file: client_cert_file and client_key_file go together"),
        (with_(actions={"hmac_key_file": "/nonexistent/key"}),
         "actions.hmac_key_file: file not found: /nonexistent/key"),
        (with_(outbox={"max_events": 10}),
         "outbox.max_events: must be an integer >= 100, got 10"),
        (with_(poll=[1, 2]), "poll: must be a mapping of keys, got [1, 2]"),
        ([1], "(root): must be a mapping of keys, got [1]"),
    ],
)
def test_each_rule_names_the_key_and_the_problem(data: Any, expected: str) -> None:
    assert expected in problems_of(data)


def test_an_inline_token_is_refused_and_says_why() -> None:
    got = problems_of(with_(uplink={"url": "wss://hub", "token": "s3cret", "token_env": "T"}))
    assert len(got) == 1
    assert got[0].startswith("uplink.token: secrets are not accepted inline")
    assert "uplink.token_file" in got[0] and "s3cret" not in got[0]


def test_token_file_rule_0640_is_quiet_and_only_access_by_others_is_a_warning(
    tmp_path: Path,
) -> None:
    """The one token-file rule (docs/operations.md): 0640 root:slot-agent, the service reads
    it through its group. Group read is fine; any access by others is a warning."""
    token = tmp_path / "token"
    token.write_text("abc123\n")
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(yaml.safe_dump(with_(uplink={"url": "wss://hub/ws",
                                                     "token_file": "token"})))
    for quiet in (0o640, 0o600, 0o440, 0o400):
        token.chmod(quiet)
        assert load_config(cfg_file).warnings == (), oct(quiet)
    for loud in (0o644, 0o604, 0o642, 0o602):
        token.chmod(loud)
        cfg = load_config(cfg_file)
        assert cfg.uplink.token_file == str(token)  # relative to the config file
        assert [str(w) for w in cfg.warnings] == [
            f"uplink.token_file: {token} is readable or writable by others (mode {loud:04o}); "
            "chmod 0640 it (owner root, group slot-agent)"
        ]
    assert read_token(cfg) == "abc123"
    token.write_text("")
    with pytest.raises(ConfigError, match=r"uplink.token_file: .* is empty"):
        read_token(cfg)


def test_check_config_accepts_the_documented_token_mode(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("abc123\n")
    token.chmod(0o640)
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(yaml.safe_dump(with_(uplink={"url": "wss://hub/ws",
                                                     "token_file": "token"})))
    result = run_cli("check-config", "--config", str(cfg_file))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"OK: {cfg_file}\n"
    assert result.stderr == ""


@pytest.mark.skipif(os.geteuid() == 0 and SETPRIV is None,
                    reason="as root, needs setpriv (util-linux) to check as an unprivileged user")
def test_check_config_as_a_user_who_cannot_read_the_token_is_an_error() -> None:
    """What ``sudo -u slot-agent slot-agent check-config`` catches: a 0600 root token."""
    base = Path(tempfile.mkdtemp(prefix="token-rule-"))
    try:
        base.chmod(0o755)
        token = base / "token"
        token.write_text("abc123\n")
        token.chmod(0o600 if os.geteuid() == 0 else 0o000)
        cfg_file = base / "c.yaml"
        cfg_file.write_text(yaml.safe_dump(with_(uplink={"url": "wss://hub/ws",
                                                         "token_file": "token"})))
        cfg_file.chmod(0o644)
        result, uid = run_cli_unprivileged("check-config", "--config", str(cfg_file))
        assert result.returncode == 2, result.stderr
        assert (f"error: uplink.token_file: cannot read {token}: permission denied for this "
                f"user (uid {uid}); the service reads it through its group: chown "
                "root:slot-agent and chmod 0640 it") in result.stderr
    finally:
        shutil.rmtree(base)


def test_card_reader_keys_are_parsed_and_checked() -> None:
    cfg = parse_config(with_(card_reader={"port": "tcp://reader:4001", "baudrate": 19200,
                                          "removal_pattern": "^GONE$"}))
    assert (cfg.card_reader.baudrate, cfg.card_reader.removal_pattern) == (19200, "^GONE$")
    got = problems_of(with_(card_reader={"baudrate": 12, "removal_pattern": "(",
                                         "pattern": "(?P<nr>x)"}))
    assert [g.split(":")[0] for g in got] == [
        "card_reader.baudrate", "card_reader.pattern", "card_reader.removal_pattern"]


def test_read_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUB_TOKEN", raising=False)
    cfg = parse_config(with_(uplink={"url": "wss://hub/ws", "token_env": "HUB_TOKEN"}))
    assert "uplink.token_env: environment variable HUB_TOKEN is not set here" in str(
        cfg.warnings[0])
    with pytest.raises(ConfigError, match=r"uplink\.token_env: environment variable HUB_TOKEN"):
        read_token(cfg)
    monkeypatch.setenv("HUB_TOKEN", "tok")
    assert read_token(cfg) == "tok"
    with pytest.raises(ConfigError, match="no token configured"):
        read_token(parse_config(MINIMAL))


def test_hmac_key_is_read_and_must_be_long_enough(tmp_path: Path) -> None:
    key = tmp_path / "hmac"
    key.write_bytes(b"short")
    key.chmod(0o600)
    cfg = parse_config(with_(actions={"hmac_key_file": str(key)}))
    with pytest.raises(ConfigError, match=r"actions\.hmac_key_file: .* holds 5 bytes"):
        read_hmac_key(cfg)
    key.write_bytes(b"k" * 32)
    assert read_hmac_key(cfg) == b"k" * 32
    assert read_hmac_key(parse_config(MINIMAL)) is None


def test_yaml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("terminal_id: T\nmachines:\n  - address: [1\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    assert "line 4, column 1: invalid YAML" in str(info.value.problems[0])
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_the_example_file_is_valid_and_shows_the_defaults() -> None:
    cfg = load_config(EXAMPLE)
    defaults = parse_config(MINIMAL)
    assert cfg.terminal_id == "EGM-0001"
    # Apart from terminal_id and machines, the example holds exactly the defaults (the
    # outbox and socket paths depend on systemd's variables), and is valid: the only warning
    # is that no hub is set yet (the installer fills url and token_file).
    assert [str(w) for w in cfg.warnings] == [
        "uplink.url: not set: events are kept in the outbox only"]
    assert dataclasses.replace(
        cfg,
        outbox=defaults.outbox,
        control_socket=defaults.control_socket,
    ) == defaults


def _keys(cls: type, prefix: str = "") -> list[str]:
    out = []
    hints = {f.name: f for f in dataclasses.fields(cls)}
    for name, f in hints.items():
        if name in ("source", "warnings", "urls"):
            continue  # urls: uplink.url given as a list, not a key of its own
        sub = f.default_factory if f.default_factory is not dataclasses.MISSING else None
        if isinstance(sub, type) and dataclasses.is_dataclass(sub):
            out += _keys(sub, f"{prefix}{name}.")
        else:
            out.append(f"{prefix}{name}")
    return out


def test_every_key_of_the_dataclasses_appears_in_the_example() -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    keys = _keys(Config)
    assert "uplink.heartbeat_timeout_s" in keys and "machines" in keys
    for key in keys:
        node: Any = data
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, f"{key} missing from the example"
            node = node[part]
    machine_keys = [f.name for f in dataclasses.fields(type(parse_config(MINIMAL).machines[0]))]
    assert set(machine_keys) == set(data["machines"][0])
    # and every key carries a comment stating its default
    for line in EXAMPLE.read_text().splitlines():
        stripped = line.strip()
        if ":" in stripped and not stripped.startswith("#") and not stripped.endswith(":"):
            key = stripped.split(":")[0].lstrip("- ")
            if key in ("path", "url", "control_socket"):
                continue  # their default is stated on the comment line above
            assert "default" in line or "required" in line, f"no default stated: {line}"


def test_reloadable_diff_splits_sighup_changes_from_restarts() -> None:
    old = parse_config(MINIMAL)
    new = parse_config(with_(
        logging={"level": "debug"},
        poll={"interval_ms": 100},
        uplink={"window": 50, "batch": 10},
        serial={"baudrate": 9600},
        machines=[{"address": 1}, {"address": 2}],
    ))
    reloadable, restart = reloadable_diff(old, new)
    assert reloadable == ["logging.level", "poll.interval_ms", "uplink.batch", "uplink.window"]
    assert restart == ["machines", "serial.baudrate"]
    assert reloadable_diff(old, parse_config(MINIMAL)) == ([], [])


def test_config_hash_is_stable_and_changes_with_the_config() -> None:
    a = config_hash(parse_config(MINIMAL))
    assert a == config_hash(parse_config(dict(MINIMAL)))
    assert len(a) == 12 and int(a, 16) >= 0
    assert a != config_hash(parse_config(with_(poll={"interval_ms": 100})))


def test_config_is_frozen() -> None:
    cfg = parse_config(MINIMAL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.terminal_id = "x"  # type: ignore[misc]
    assert os.fspath(EXAMPLE)


def test_uplink_url_may_list_several_hub_instances() -> None:
    one = parse_config(with_(uplink={"url": "wss://a/ws/terminal", "token_env": "T"}))
    assert one.uplink.url == "wss://a/ws/terminal" and one.uplink.urls == ()
    assert hub_urls(one.uplink) == ("wss://a/ws/terminal",)
    many = parse_config(with_(uplink={"url": ["wss://a/ws/terminal", "wss://b/ws/terminal"],
                                      "token_env": "T"}))
    assert many.uplink.url == "wss://a/ws/terminal"
    assert hub_urls(many.uplink) == ("wss://a/ws/terminal", "wss://b/ws/terminal")
    single = parse_config(with_(uplink={"url": ["wss://a/ws/terminal"], "token_env": "T"}))
    assert hub_urls(single.uplink) == ("wss://a/ws/terminal",)
    assert hub_urls(parse_config(MINIMAL).uplink) == ()


@pytest.mark.parametrize(("url", "expected"), [
    ([], "uplink.url: a list of hub URLs must name at least one"),
    (["wss://a", "wss://a"], "uplink.url: the same hub URL is listed twice"),
    (["wss://a", 7], "uplink.url: must be a list of non-empty strings"),
    (["wss://a", "ws://b"], "uplink.url: ws:// sends the token and events in clear text"),
    (["wss://a", "https://b"], 'uplink.url: must start with wss:// (or ws://), got "https://b"'),
])
def test_each_hub_url_of_a_list_is_checked(url: Any, expected: str) -> None:
    got = problems_of(with_(uplink={"url": url, "token_env": "T"}))
    assert len(got) == 1 and got[0].startswith(expected), got


def test_the_fast_interval_is_off_by_default_and_bounded_by_the_interval() -> None:
    base: dict[str, Any] = {"terminal_id": "T-1", "machines": [{"address": 1}]}
    assert parse_config(base).poll.fast_interval_ms is None
    fast = parse_config({**base, "poll": {"fast_interval_ms": 40}})
    assert fast.poll.fast_interval_ms == 40
    with pytest.raises(ConfigError) as info:
        parse_config({**base, "poll": {"interval_ms": 200, "fast_interval_ms": 300}})
    assert [p.path for p in info.value.problems if p.severity == "error"] == [
        "poll.fast_interval_ms"]
    with pytest.raises(ConfigError):
        parse_config({**base, "poll": {"fast_interval_ms": 20}})  # SAS §3.6: 40 ms at least


# ----------------------------------- the ranges config.example.yaml and operations.md state

_RANGE = re.compile(r"(?<![\w.])(-?\d+(?:\.\d+)?)\.\.(-?\d+(?:\.\d+)?)(?![\w.])")
_AT_LEAST = re.compile(r"\(>= (\d+(?:\.\d+)?)\)")


def _example_ranges() -> list[tuple[str, float | None, float | None]]:
    """``(key path, lowest, highest)`` of every example line whose comment states a range:
    ``default 200; 40..5000; ...`` or ``(>= 10)``."""
    found: list[tuple[str, float | None, float | None]] = []
    path: list[str] = []
    for line in EXAMPLE.read_text().splitlines():
        body, _, comment = line.partition("#")
        if not body.strip() or body.lstrip().startswith("-"):
            continue
        indent = len(body) - len(body.lstrip())
        key = body.strip().split(":")[0]
        path = [*path[:indent // 2], key]
        if body.rstrip().endswith(":"):
            continue
        if key == "address":
            continue  # a machine's (machines: is a list), checked by its own tests
        if m := _RANGE.search(comment):
            found.append((".".join(path), float(m.group(1)), float(m.group(2))))
        elif m := _AT_LEAST.search(comment):
            found.append((".".join(path), float(m.group(1)), None))
    return found


def _operations_poll_ranges() -> list[tuple[str, float | None, float | None]]:
    doc = (ROOT / "docs" / "operations.md").read_text()
    found: list[tuple[str, float | None, float | None]] = []
    for line in doc[doc.index("### Poll timing and link health"):].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`poll."):
            if m := _RANGE.match(cells[2]):
                found.append((cells[0].strip("`"), float(m.group(1)), float(m.group(2))))
        elif found and not line.startswith("|"):
            break
    return found


#: The keys a bound of another key depends on, as the docs say: reply_timeout_ms "below
#: interval_ms", batch "<= window".
_COMPANIONS: dict[str, dict[str, Any]] = {
    "poll.interval_ms": {"reply_timeout_ms": 10},
    "poll.reply_timeout_ms": {"interval_ms": 5000},
    "uplink.batch": {"window": 100_000},
    "uplink.window": {"batch": 1},
}


def _with_value(key: str, value: float) -> dict[str, Any]:
    section, name = key.split(".")
    return with_(**{section: {**_COMPANIONS.get(key, {}), name: value}})


@pytest.mark.parametrize(("key", "lo", "hi"), _example_ranges() + _operations_poll_ranges(),
                         ids=lambda v: str(v))
def test_a_documented_range_is_what_the_loader_accepts(
        key: str, lo: float | None, hi: float | None) -> None:
    """Each bound the docs state is accepted and the value just past it is refused with the
    key named: external tools generate configurations from these comments and tables."""
    section, name = key.split(".")
    default = getattr(getattr(parse_config(MINIMAL), section), name)
    step = 1 if isinstance(default, int) and not isinstance(default, bool) else 0.001
    for bound, outside in ((lo, -step), (hi, step)):
        if bound is None:
            continue
        value: float = int(bound) if step == 1 else bound
        parse_config(_with_value(key, value))  # the bound itself is valid
        past = value + outside
        assert any(p.startswith(key) for p in problems_of(_with_value(key, past))), (key, past)


def test_the_ranges_read_from_the_docs_cover_the_poll_table() -> None:
    assert {k for k, _, _ in _operations_poll_ranges()} >= {
        "poll.interval_ms", "poll.reply_timeout_ms", "poll.link_down_after",
        "poll.link_down_after_s", "poll.game_lock_recheck_s", "poll.sync_address"}
    assert len(_example_ranges()) >= 20


def test_the_keys_the_example_marks_reload_are_the_reloadable_ones() -> None:
    """config.example.yaml marks what a SIGHUP applies: ``(reload)`` on a key, ``(reload:
    every uplink key)`` on a section; operations.md's Reload list says the same."""
    from agent.config import RELOADABLE

    marked = set()
    section = prev_key = ""
    for line in EXAMPLE.read_text().splitlines():
        if line and not line.startswith((" ", "#")):
            section = line.split(":")[0]
        body, _, comment = line.partition("#")
        if "(reload: every" in comment:
            marked.add(f"{section}.")
        elif "(reload)" in comment:
            key = body.strip().split(":")[0] or prev_key
            marked.add(f"{section}.{key}")
        if body.strip():
            prev_key = body.strip().split(":")[0]
    assert marked == set(RELOADABLE)
    reload = (ROOT / "docs" / "operations.md").read_text().split("## Reload (SIGHUP)")[1]
    reload = reload[:reload.index("A file with errors")]
    assert {f"`{k}" for k in RELOADABLE} <= set(re.findall(r"`[a-z_.]+", reload))


def test_a_control_socket_path_too_long_to_bind_is_an_error() -> None:
    """The daemon would log "control socket ... not served" and run without it (diag and
    capture then find no daemon): check-config says so first, at the key."""
    from agent.config import MAX_SOCKET_PATH_BYTES
    from agent.ops.control import MAX_SOCKET_PATH_BYTES as SERVER_LIMIT

    assert MAX_SOCKET_PATH_BYTES == SERVER_LIMIT
    longest = "/run/" + "d" * (MAX_SOCKET_PATH_BYTES - len("/run//c.sock")) + "/c.sock"
    assert parse_config(with_(control_socket=longest)).control_socket == longest
    too_long = longest.replace("/c.sock", "/cc.sock")
    assert problems_of(with_(control_socket=too_long)) == [
        f"control_socket: {too_long} is 108 bytes; a Unix socket path holds at most 107: "
        "choose a shorter one"]
    assert parse_config(with_(control_socket=None)).control_socket is None
