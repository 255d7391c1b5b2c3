"""One way to call every command: --config everywhere, options before or after an action,
log levels in any case, exit codes in every --help."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from cli.main import COMMANDS, build_parser, main

CONFIG = """\
terminal_id: T-1
machines: [{address: 1}]
outbox: {path: outbox.db}
"""


def _help(*words: str) -> str:
    out = subprocess.run([sys.executable, "-m", "cli.main", *words, "--help"],
                         capture_output=True, text=True, check=True)
    return out.stdout


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_help_lists_the_exit_codes(command: str) -> None:
    text = _help(command)
    assert "exit codes:" in text
    assert "  0  " in text and "  2  " in text  # success, and bad usage (argparse's own 2)
    assert "  130  interrupted (Ctrl-C" in text  # cli/main.py, whatever the command


def test_diag_help_says_what_exit_2_means() -> None:
    assert "2  invalid configuration, or bad usage" in _help("diag")


def test_check_config_takes_config_like_every_command(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    assert main(["check-config", "--config", str(config)]) == 0
    assert main(["check-config", str(config)]) == 0  # the positional alias
    with pytest.raises(SystemExit) as info:
        main(["check-config"])
    assert info.value.code == 2
    assert "--config" in capsys.readouterr().err


@pytest.mark.parametrize("words", [
    ["outbox", "--config", "{c}", "status", "--json"],
    ["outbox", "status", "--config", "{c}", "--json"],
    ["outbox", "status", "--json", "--config", "{c}"],
])
def test_outbox_takes_config_before_or_after_the_action(
        tmp_path: Path, words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    code = main([w.format(c=config) for w in words])
    # no outbox yet: a clear "missing" (exit 1), not a usage error (exit 2)
    assert code == 1
    assert "usage:" not in capsys.readouterr().err


def test_outbox_without_config_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["outbox", "status"])
    assert info.value.code == 2
    assert "--config" in capsys.readouterr().err


@pytest.mark.parametrize(("command", "level"), [
    ("run", "INFO"), ("run", "debug"), ("hub", "Warning"), ("hub", "error"),
])
def test_log_levels_take_any_case(command: str, level: str) -> None:
    args = build_parser([command]).parse_args([command, "--config", "x", "--log-level", level])
    assert args.log_level == level.lower()


def test_an_unknown_log_level_is_a_usage_error() -> None:
    parser = build_parser(["run"])
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["run", "--config", "x", "--log-level", "loud"])
    assert info.value.code == 2
    assert isinstance(parser, argparse.ArgumentParser)


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path: Path) -> None:
    """``slot-agent decode --file capture | head -1``: no traceback when the pipe closes. The
    capture is made long enough that its decoding cannot fit in the pipe's buffer."""
    vectors = Path(__file__).resolve().parent.parent / "vectors" / "capture_emulator.jsonl"
    header, *frames = vectors.read_text().splitlines()
    capture = tmp_path / "long.jsonl"
    capture.write_text("\n".join([header, *frames * 40]) + "\n")
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "decode", "--file", str(capture)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline()  # the reader takes one line, then goes away
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 1
    assert "Traceback" not in err and "BrokenPipeError" not in err


# ------------------------------------------------- docs/operations.md, as an outsider reads it

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _table_after(heading: str, doc: str = "operations.md", *,
                 header: bool = False) -> list[list[str]]:
    """The first Markdown table from ``heading`` on: its rows, cells stripped; its header row
    first with ``header``, else none (the separator row never)."""
    text = (DOCS / doc).read_text()
    text = text[text.index(heading):]
    rows = []
    for line in text.splitlines():
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif rows:
            break
    return [rows[0], *rows[2:]] if header else rows[2:]


def _help_exit_codes(command: str) -> set[str]:
    text = _help(command)
    block = text[text.index("exit codes:"):].splitlines()[1:]
    return {line.split()[0] for line in block if line.strip()}


def test_the_exit_code_table_of_operations_md_is_every_help() -> None:
    """Each command's row of "exit codes" names exactly the codes its ``--help`` lists."""
    head, *table = _table_after("## The command line: conventions and exit codes",
                                header=True)
    assert head == ["command", "0", "1", "2", "3", "130"]
    documented = {row[0].strip("`"): {code for code, cell in zip(head[1:], row[1:], strict=True)
                                      if cell} for row in table}
    assert set(documented) == set(COMMANDS)
    for command, codes in documented.items():
        assert _help_exit_codes(command) == codes, command


def _options(command: str) -> dict[str, argparse.Action]:
    parser = build_parser([command])
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {opt: action for action in sub.choices[command]._actions
            for opt in action.option_strings}


@pytest.mark.parametrize(("doc", "heading", "command"), [
    ("operations.md", "## The demo: `slot-agent demo`", "demo"),
    ("emulator.md", "| Option | Meaning |", "emulate"),
])
def test_an_options_table_of_the_docs_is_the_commands_parser(
        doc: str, heading: str, command: str) -> None:
    """Every option of the table exists and every option is in the table; a default the
    table states as "(default N" is the parser's, and ``--help`` says it too."""
    options = _options(command)
    table = _table_after(heading, doc)
    named = {opt.strip("`").split()[0] for row in table for opt in row[0].split(", ")}
    assert named == {opt for opt in options if opt != "-h" and opt != "--help"}
    for row in table:
        action = options[row[0].split(", ")[0].strip("`").split()[0]]
        if "(default " in row[1]:
            stated = row[1].split("(default ")[1].split(";")[0].split(")")[0]
            # (emulate's are None: its options override a scenario's, defaults come after)
            assert action.default is None or float(stated) == float(action.default), row
            assert f"default {stated}" in (action.help or ""), row


def test_every_option_of_every_command_is_named_in_the_docs() -> None:
    """An outsider learns the options from docs/ and ``--help``: each long option of each
    command appears somewhere in docs/ (or the README), in the text or an example."""
    import re

    text = "\n".join(p.read_text() for p in [*DOCS.glob("*.md"), DOCS.parent / "README.md"])
    missing = []
    for command in COMMANDS:
        for option in _options(command):
            if option.startswith("--") and option != "--help" and not re.search(
                    rf"(?<![\w-]){option}(?![\w-])", text):
                missing.append((command, option))
    assert missing == []


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "soon"])
def test_a_diag_timeout_that_is_not_a_positive_duration_is_a_usage_error(
        tmp_path: Path, value: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    result = subprocess.run([sys.executable, "-m", "cli.main", "diag", "--config", str(config),
                             "--timeout", value], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "argument --timeout:" in result.stderr and "Traceback" not in result.stderr
