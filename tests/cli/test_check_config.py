"""``slot-agent check-config`` run as a real process."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support import ROOT
from tests.support.processes import run_cli


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    return run_cli("check-config", str(path))


def test_valid_file_prints_ok_and_warnings_exit_0(tmp_path: Path) -> None:
    cfg = tmp_path / "ok.yaml"
    token = tmp_path / "token"
    token.write_text("t0k3n")
    token.chmod(0o644)  # readable by others: a warning (the rule is 0640 root:slot-agent)
    cfg.write_text(
        "terminal_id: EGM-1\nmachines:\n  - address: 3\n"
        "uplink:\n  url: wss://hub.example/ws\n  token_file: token\n"
    )
    result = check_config(cfg)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"OK: {cfg}"
    assert "warning: uplink.token_file:" in result.stderr
    assert "readable or writable by others (mode 0644); chmod 0640 it" in result.stderr
    assert "t0k3n" not in result.stdout + result.stderr


def test_every_problem_is_printed_with_its_key_path_exit_2(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        "terminal_id: EGM-1\nmachines:\n  - address: 300\n"
        "uplink:\n  window: abc\n  token: inline\n"
        "poll:\n  intervall_ms: 100\n"
    )
    result = check_config(cfg)
    assert result.returncode == 2
    assert result.stdout == ""
    err = result.stderr
    assert f"{cfg}: 4 error(s)" in err
    assert "error: machines[0].address: must be an integer from 1 to 127, got 300" in err
    assert 'error: uplink.window: must be an integer from 1 to 100000, got "abc"' in err
    assert "error: uplink.token: secrets are not accepted inline" in err
    assert "error: poll.intervall_ms: unknown key in 'poll'; did you mean 'interval_ms'?" in err


def test_the_shipped_example_passes() -> None:
    result = check_config(ROOT / "config.example.yaml")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK: ")


def test_unreadable_or_broken_yaml_exit_2(tmp_path: Path) -> None:
    missing = check_config(tmp_path / "nope.yaml")
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("terminal_id: [\n")
    result = check_config(broken)
    assert result.returncode == 2 and "invalid YAML" in result.stderr


def test_a_hub_yaml_given_to_the_agents_check_gets_a_hint(tmp_path: Path) -> None:
    hub_yaml = tmp_path / "hub.yaml"
    hub_yaml.write_text("listen: {port: 8765}\nplain: true\ntokens: tokens.txt\n"
                        "database: hub.db\n")
    result = check_config(hub_yaml)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        f"  hint: this looks like the hub's configuration: slot-agent hub --check-config "
        f"--config {hub_yaml}")
    agent_yaml = tmp_path / "agent.yaml"
    agent_yaml.write_text("terminal_id: EGM-1\nmachines: [{address: 300}]\n")
    assert "hint" not in check_config(agent_yaml).stderr


def test_secrets_run_would_refuse_are_errors_with_their_keys(tmp_path: Path) -> None:
    """``run`` exits 1 on an empty token file (the install recipe's ``install ... /dev/null
    /etc/slot-agent/token`` before ``sudoedit``), on an action key under 16 bytes (protocol.md
    §7) and on a CA bundle that does not load: check-config, run before a start, says so with
    the key, exit 2."""
    token = tmp_path / "token"
    token.write_text("\n")
    token.chmod(0o640)
    key = tmp_path / "action.key"
    key.write_text("short\n")
    key.chmod(0o640)
    cfg = tmp_path / "c.yaml"
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate\n")
    cfg.write_text("terminal_id: EGM-1\nmachines: [{address: 1}]\noutbox: {path: o.db}\n"
                   "uplink: {url: wss://hub.example/ws/terminal, token_file: token, "
                   "ca_file: ca.pem}\n"
                   "actions: {hmac_key_file: action.key}\n")
    result = check_config(cfg)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert lines[:3] == [
        f"{cfg}: 3 error(s)",
        f"  error: uplink.token_file: {token} is empty",
        f"  error: actions.hmac_key_file: {key} holds 5 bytes; use at least 16",
    ]
    assert lines[3].startswith(f"  error: uplink.ca_file: cannot load CA bundle {ca}: ")
    assert len(lines) == 4
    token.write_text("t0k3n\n")
    key.write_text("k" * 16 + "\n")
    ca.unlink()
    cfg.write_text(cfg.read_text().replace(", ca_file: ca.pem", ""))
    result = check_config(cfg)
    assert (result.returncode, result.stdout, result.stderr) == (0, f"OK: {cfg}\n", "")
    assert not (tmp_path / "o.db").exists()  # a check writes nothing
    # with no hub URL, run never reads the token (nor builds the TLS context): not an error
    token.write_text("")
    ca.write_text("not a certificate\n")
    cfg.write_text(cfg.read_text().replace("url: wss://hub.example/ws/terminal, ", "")
                   .replace("token_file: token", "token_file: token, ca_file: ca.pem"))
    result = check_config(cfg)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "warning: uplink.url: not set: events are kept in the outbox only\n"


def test_a_token_or_tokens_file_that_is_not_text_is_an_error_not_a_traceback(
        tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_bytes(b"\xff\xfe\x00")
    token.chmod(0o640)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("terminal_id: EGM-1\nmachines: [{address: 1}]\noutbox: {path: o.db}\n"
                   "uplink: {url: wss://hub.example/ws/terminal, token_file: token}\n")
    result = check_config(cfg)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[1] == (
        f"  error: uplink.token_file: {token} is not UTF-8 text: a token is one line of text")
    tokens = tmp_path / "tokens.txt"
    tokens.write_bytes(b"\xff\xfe\x00")
    tokens.chmod(0o640)
    hub_yaml = tmp_path / "hub.yaml"
    hub_yaml.write_text("plain: true\ntokens: tokens.txt\ndatabase: hub.db\n")
    for words in (["hub", "--check-config"], ["hub"]):
        result = run_cli(*words, "--config", str(hub_yaml))
        assert result.returncode == 2, result.stderr
        assert f"cannot read {tokens}: not UTF-8 text" in result.stderr
        assert "Traceback" not in result.stderr
