"""What the docs print is what works: the bench recipe of docs/operations.md run as written,
the hub configuration of docs/protocol.md §11 as printed, the README's demo output.

Only the ports the recipe names as examples are changed (to 0, and then to the ports the
emulator and the hub print), as the recipe itself says to when a port is taken.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from hub.config import parse_config as parse_hub_config
from hub.tokens import parse_tokens
from tests.support import ROOT
from tests.support.processes import SCRIPT, Proc, command

OPERATIONS = (ROOT / "docs" / "operations.md").read_text()
PROTOCOL = (ROOT / "docs" / "protocol.md").read_text()
README = (ROOT / "README.md").read_text()
FENCE = re.compile(r"```(\w*)\n(.*?)```", re.S)


def section(doc: str, heading: str) -> str:
    start = doc.index(heading)
    end = doc.find("\n## ", start + len(heading))
    return doc[start:end if end != -1 else len(doc)]


def blocks(text: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(text)]


BENCH = section(OPERATIONS, "## A bench on one PC")


def bench_files() -> dict[str, str]:
    files = {}
    for _, body in blocks(BENCH):
        first = body.partition("\n")[0]
        if first.startswith("# file: "):
            files[first[len("# file: "):]] = body
    return files


def bench_commands() -> list[str]:
    return [body.strip() for lang, body in blocks(BENCH) if lang == "sh"]


def test_the_bench_recipe_has_the_files_and_commands_it_describes() -> None:
    assert sorted(bench_files()) == ["agent.yaml", "hub.yaml", "tokens.txt"]
    setup, *programs = bench_commands()
    assert setup.splitlines()[0] == "mkdir -p slot-bench && cd slot-bench"
    assert [p.split()[:2] for p in programs] == [
        ["slot-agent", "emulate"], ["slot-agent", "hub"], ["slot-agent", "run"]]


def _events_at_hub(database: Path, terminal: str) -> list[str]:
    if not database.exists():
        return []
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as db:
        try:
            rows = db.execute("SELECT event FROM events WHERE terminal_id = ? ORDER BY n",
                              (terminal,)).fetchall()
        except sqlite3.OperationalError:
            return []  # the hub has not created its tables yet
    return [row[0] for row in rows]


def _program(line: str, bench: Path) -> Proc:
    args = shlex.split(line)
    assert args[0] == "slot-agent"
    return Proc(args[1:], cwd=bench)


def test_the_bench_recipe_runs_as_written_and_events_reach_the_hub(tmp_path: Path) -> None:
    files = bench_files()
    setup, emulate, hub, run = bench_commands()
    bench = tmp_path / "slot-bench"
    bench.mkdir()
    # The ports are examples (the recipe says so): port 0, then the ports printed.
    assert "127.0.0.1:5001" in emulate and "port: 8765" in files["hub.yaml"]
    for name, body in files.items():
        if name == "hub.yaml":
            body = body.replace("port: 8765", "port: 0")
        if name != "agent.yaml":
            (bench / name).write_text(body)
    procs: list[Proc] = []
    try:
        emulator = _program(emulate.replace("127.0.0.1:5001", "127.0.0.1:0"), bench)
        procs.append(emulator)
        emulator_port = emulator.first_line().rpartition(":")[2]
        hub_proc = _program(hub, bench)
        procs.append(hub_proc)
        hub_port = hub_proc.wait_for_re(r"^http://127\.0\.0\.1:(\d+)/$").group(1)
        agent_yaml = (files["agent.yaml"].replace("127.0.0.1:5001", f"127.0.0.1:{emulator_port}")
                      .replace("127.0.0.1:8765", f"127.0.0.1:{hub_port}")
                      .replace("port: 9464", "port: 0"))
        (bench / "agent.yaml").write_text(agent_yaml)

        # The setup block, run by a shell as written (slot-agent on the PATH).
        env = {**os.environ, "PATH": f"{Path(command()[0]).parent}:{os.environ['PATH']}"}
        assert SCRIPT.exists(), "the recipe runs the installed console script"
        done = subprocess.run(["bash", "-euc", setup], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout == "OK: agent.yaml\n", done.stdout + done.stderr
        assert (bench / "token").stat().st_mode & 0o777 == 0o640

        agent = _program(run, bench)
        procs.append(agent)
        deadline = time.monotonic() + 60
        wanted = {"agentStarted", "machineLinkUp", "machineIdentified", "betPlaced"}
        while not wanted <= set(_events_at_hub(bench / "hub.db", "EGM-0001")):
            assert agent.popen.poll() is None, agent.err_lines[-20:]
            assert time.monotonic() < deadline, (
                f"events at the hub: {_events_at_hub(bench / 'hub.db', 'EGM-0001')}; "
                f"agent: {agent.out_lines[-10:]} {agent.err_lines[-10:]}")
            time.sleep(0.1)  # a polling step of the bounded wait above

        diag = subprocess.run(["slot-agent", "diag", "--config", "agent.yaml"], cwd=bench,
                              env=env, capture_output=True, text=True, timeout=60)
        assert diag.returncode == 0, diag.stdout + diag.stderr

        agent.signal(signal.SIGINT)  # Ctrl-C stops each program
        assert agent.wait(30) == 0
    finally:
        for proc in reversed(procs):
            proc.stop()


def _protocol_yaml_blocks() -> list[str]:
    return [body for lang, body in blocks(section(PROTOCOL, "## 11.")) if lang == "yaml"]


def test_the_hub_configuration_of_protocol_section_11_is_valid_as_printed() -> None:
    hub_yaml, tokens_yaml = _protocol_yaml_blocks()
    raw = yaml.safe_load(hub_yaml)
    assert raw["plain"] is False and "plain" not in raw["tls"]  # a top-level key
    cfg = parse_hub_config(raw, Path("/"))
    assert (cfg.port, cfg.plain, cfg.tls_cert) == (8765, False,
                                                   Path("/etc/slot-hub/cert.pem"))
    # "required unless plain is true": the plain variant, with no tls, is valid too.
    plain = {k: v for k, v in raw.items() if k != "tls"} | {"plain": True}
    assert parse_hub_config(plain, Path("/")).plain is True
    table = parse_tokens(tokens_yaml)
    terminal = table.lookup("t0k-terminal-42")
    assert terminal is not None and terminal.terminal_id == "T-0042"
    viewer = table.lookup("t0k-view-1")
    assert viewer is not None and (viewer.role.value, viewer.name) == ("viewer", "cctv-room")
    lines = next(body for lang, body in blocks(section(PROTOCOL, "## 11.")) if lang == "")
    operator = parse_tokens(lines).lookup("t0k-ops-1")
    assert operator is not None
    assert (operator.role.value, operator.name) == ("operator", "floor-supervisor")


def _shape(line: str) -> str:
    """A printed line with what changes from run to run (numbers, tokens) blanked."""
    line = re.sub(r"token: \S+", "token: T", line)
    line = re.sub(r"\d+(\.\d+)?", "N", line)
    return line


@pytest.mark.xdist_group("demo_stopped_by_ctrl_c")  # the demo run once: tests/cli/test_demo.py
def test_the_readme_demo_output_is_what_demo_prints(demo_stopped_by_ctrl_c: Proc) -> None:
    sample = next(body for lang, body in blocks(section(README, "## What the demo shows"))
                  if lang == "")
    expected = [_shape(line) for line in sample.splitlines()]
    # the README's run: until a summary line with games played, then Ctrl-C
    proc = demo_stopped_by_ctrl_c
    assert proc.popen.returncode == 0, proc.err_lines[-20:]
    got = [_shape(line) for line in proc.out_lines]
    missing = [line for line in expected if line not in got]
    assert missing == [], f"README lines the demo does not print: {missing}; got {got}"
    # ... and in that order (the summary line repeats: the README shows one of them)
    rest = iter(got)
    assert all(line in rest for line in expected), got


@pytest.mark.parametrize("name", ["config.example.yaml"])
def test_the_shipped_example_is_valid_as_printed(name: str) -> None:
    result = subprocess.run(command("check-config", "--config", str(ROOT / name)),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"OK: {ROOT / name}\n"
    assert result.stderr == "warning: uplink.url: not set: events are kept in the outbox only\n"


def test_every_file_of_the_repository_the_docs_name_exists() -> None:
    """A path such as ``agent/line/owner.py`` or ``tests/hub/test_hub_stop.py`` in docs/ or
    the README names a file of this repository: modules move, and the pointer must move
    with them (docs named ``agent/line.py`` after it became a package)."""
    roots = ("agent", "api", "bench", "cli", "configkit", "docs", "drivers", "emulator",
             "hub", "packaging", "sas_protocol", "systemd", "tests")
    pattern = re.compile(rf"(?<![\w/.-])((?:{'|'.join(roots)})/[\w/.-]*\w)")
    missing = set()
    for doc in [*(ROOT / "docs").glob("*.md"), ROOT / "README.md"]:
        for path in pattern.findall(doc.read_text()):
            if not (ROOT / path).exists() and not (ROOT / "docs" / path).exists():
                missing.add((doc.name, path))
    assert missing == set()


def test_every_test_the_docs_name_exists() -> None:
    """A ``test_…`` function cited as evidence in docs/ is a test of the suite."""
    sources = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("*.py"))
    defined = set(re.findall(r"def (test_\w+)", sources))
    cited = set()
    for doc in [*(ROOT / "docs").glob("*.md"), ROOT / "README.md"]:
        cited |= set(re.findall(r"`(test_\w+)`", doc.read_text()))
    assert cited and cited - defined == set()


def test_every_section_the_shipped_files_point_to_exists() -> None:
    """config.example.yaml, the units and the packaging scripts send the operator to a page
    and a section (``docs/operations.md, "Line process priority"``): that page has a heading
    or a bold paragraph lead so named; and every page they name exists."""
    shipped = [ROOT / "config.example.yaml", *(ROOT / "systemd").glob("*.service"),
               *(ROOT / "packaging").glob("*.sh")]
    pointer = re.compile(r"docs/([\w-]+\.md)(?:,? \(?[\"']([^\"']+)[\"'])?")
    wrong = []
    for path in shipped:
        text = re.sub(r"\s*\n\s*#\s*", " ", path.read_text())  # comments joined up
        for page, heading in pointer.findall(text):
            doc = ROOT / "docs" / page
            if not doc.exists():
                wrong.append((path.name, page, ""))
            elif heading and not re.search(
                    rf"^(#+ |\*\*){re.escape(heading)}", doc.read_text(), re.M):
                wrong.append((path.name, page, heading))
    assert wrong == []


def test_every_code_block_of_the_docs_is_closed_and_its_yaml_parses() -> None:
    """An unclosed fence turns the rest of a page into code (the hub's alert rules once ran
    into "The floor monitor"); every YAML example parses, and a hub.yaml example is a valid
    hub configuration (the agent's are run by the bench recipe above)."""
    problems = []
    for doc in [*(ROOT / "docs").glob("*.md"), ROOT / "README.md"]:
        lang, start, body = None, 0, []
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            fence = line.strip()
            if lang is None:
                if fence.startswith("```"):
                    lang, start, body = fence[3:], number, []
            elif fence == "```":
                if lang in ("yaml", "yml"):
                    try:
                        data = yaml.safe_load("\n".join(body))
                    except yaml.YAMLError as exc:
                        problems.append((doc.name, start, f"invalid YAML: {exc}"))
                    else:
                        if isinstance(data, dict) and "listen" in data:
                            parse_hub_config(data, Path("/etc/slot-hub"))
                lang = None
            elif fence.startswith("```"):
                problems.append((doc.name, number, f"a fence opens in the block of line {start}"))
            else:
                body.append(line)
        if lang is not None:
            problems.append((doc.name, start, "a block never closed"))
    assert problems == []
