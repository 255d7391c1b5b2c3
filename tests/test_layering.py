"""The import rules of docs/architecture.md, checked on the real modules."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FORBIDDEN_IN_CORE = ("serial", "socket", "asyncio", "threading", "time", "logging")


def test_sas_protocol_imports_no_io() -> None:
    """Importing the protocol core must not pull in any I/O or clock module.

    CPython itself imports ``time`` while starting up, so the subprocess compares the modules
    loaded before and after importing every sas_protocol module; the source check below
    catches a direct ``import time`` that the runtime check cannot see.
    """
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import sas_protocol, pkgutil, importlib\n"
        "for m in pkgutil.walk_packages(sas_protocol.__path__, 'sas_protocol.'):\n"
        "    importlib.import_module(m.name)\n"
        f"bad = [m for m in {FORBIDDEN_IN_CORE!r} if m in sys.modules and m not in before]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.strip()
    assert out == "", f"sas_protocol imported I/O modules: {out}"
    direct = _imports("sas_protocol") & set(FORBIDDEN_IN_CORE)
    assert not direct, f"sas_protocol imports {sorted(direct)}"


def _imports(package: str) -> set[str]:
    """The top-level names every module of ``package`` imports."""
    found: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        found |= _imports_of(path)
    return found


#: The three floors of shared/DESIGN.md §1, each package with what it may import of ours.
#: Bottom: sas_protocol, drivers, api, configkit, servicekit. Middle: emulator, agent, hub
#: (never each other). Top: cli.
ALLOWED: dict[str, set[str]] = {
    "sas_protocol": set(),
    "drivers": {"sas_protocol"},  # sas_protocol.hexdump only: one rendering of bad bytes
    "api": {"sas_protocol"},
    "configkit": set(),
    "servicekit": set(),
    "emulator": {"sas_protocol", "drivers", "configkit"},
    "agent": {"sas_protocol", "drivers", "api", "configkit", "servicekit"},
    "hub": {"sas_protocol", "drivers", "api", "configkit", "servicekit"},
    "cli": {"sas_protocol", "drivers", "api", "configkit", "servicekit", "emulator", "agent",
            "hub"},
}


def test_every_package_has_a_floor() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench"}
    assert packages == set(ALLOWED), "a new top-level package needs its floor in ALLOWED"


def test_import_direction_has_no_exception() -> None:
    ours = set(ALLOWED)
    for package, allowed in ALLOWED.items():
        for path in (ROOT / package).rglob("*.py"):
            wrong = (_imports_of(path) & ours) - allowed - {package}
            rel = path.relative_to(ROOT).as_posix()
            assert not wrong, f"{rel} imports {sorted(wrong)} (floor rule, docs/architecture.md)"


def _imports_of(path: Path) -> set[str]:
    """The top-level names one module imports (absolute imports only)."""
    found: set[str] = set()
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def _module_path(name: str) -> Path | None:
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _reachable(start: str) -> set[str]:
    """Every module of ours that ``start`` can import, at module level or inside a function."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        path = _module_path(name)
        if name in seen or path is None:
            continue
        seen.add(name)
        parts = name.split(".")
        for parent in range(1, len(parts)):
            todo.append(".".join(parts[:parent]))
        for node in ast.walk(_without_type_checking(path)):
            if isinstance(node, ast.Import):
                todo.extend(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                todo.append(node.module)
                todo.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return seen


def _without_type_checking(path: Path) -> ast.Module:
    """The module's syntax tree less its ``if TYPE_CHECKING:`` blocks (never run)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) \
                and node.test.id == "TYPE_CHECKING":
            node.body = [ast.Pass()]
    return tree


def test_a_command_imports_only_what_it_runs() -> None:
    """``slot-agent run`` can never load the emulator or the hub, ``hub`` never the agent or
    the emulator, and ``decode`` none of the agent's modules (the ``agent`` package itself
    only carries the version)."""
    tops = {name: {m.split(".")[0] for m in _reachable(f"cli.commands.{name}")}
            for name in ("run", "diag", "check_config", "outbox", "decode", "hub", "emulate",
                         "capture", "replay")}
    for name in ("run", "diag", "check_config", "outbox", "capture", "replay"):
        assert "agent" in tops[name]
        assert not tops[name] & {"emulator", "hub"}, name
    # capture asks the daemon: it never loads the line owner or the uplink
    assert not {m for m in _reachable("cli.commands.capture")
                if m.startswith(("agent.line", "agent.uplink"))}
    assert not {m for m in _reachable("cli.commands.hub") if m.startswith(("agent.", "emulator"))}
    assert not {m for m in _reachable("cli.commands.emulate") if m.startswith(("agent.", "hub"))}
    assert not {m for m in _reachable("cli.commands.decode")
                if m.startswith(("agent.", "hub", "emulator"))}


def test_the_parser_loads_only_the_chosen_command() -> None:
    code = (
        "from cli.main import build_parser\nbuild_parser(['decode', 'x'])\n"
        "import sys\nprint(' '.join(sorted(sys.modules)))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=ROOT).stdout.split()
    commands = {m for m in loaded if m.startswith("cli.commands.")}
    assert commands == {"cli.commands.decode", "cli.commands.options"}


def test_command_summaries_match_their_modules() -> None:
    """The lazy ``--help`` summaries in cli.main say what each command's own parser says."""
    import argparse

    from cli.main import COMMANDS, build_parser

    parser = build_parser(None)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help for choice in sub._choices_actions}
    assert helps == {name: summary for name, (_, summary) in COMMANDS.items()}


def test_drivers_take_only_the_hex_rendering_from_sas_protocol() -> None:
    """Drivers know words, not SAS meaning: of sas_protocol they use only its hexdump."""
    for path in (ROOT / "drivers").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sas_protocol"):
                assert node.module == "sas_protocol.hexdump", f"{path}: {node.module}"
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("sas_protocol") for a in node.names), path
