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
    found: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


def test_import_direction() -> None:
    ours = {"sas_protocol", "drivers", "emulator", "agent", "hub"}
    assert _imports("sas_protocol") & ours <= {"sas_protocol"}
    assert _imports("drivers") & ours <= {"drivers"}
    assert _imports("emulator") & ours <= {"emulator", "sas_protocol", "drivers"}
    assert "emulator" not in _imports("hub")


def test_hub_imports_only_the_wire_module_of_agent() -> None:
    for path in (ROOT / "hub").rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("agent"):
                assert node.module in ("agent.wire", "agent"), f"{path}: imports {node.module}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("agent.") or alias.name == "agent.wire"


def test_only_cli_composes_emulator_and_hub() -> None:
    for path in (ROOT / "agent").rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        if rel == "agent/cli.py" or rel.startswith("agent/commands/"):
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top not in ("emulator", "hub"), f"{rel} imports {name}"
