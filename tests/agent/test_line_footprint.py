"""The line process's footprint (issue 17): what it loads, and glibc's arenas.

The line process (agent/line/child.py) is a second interpreter beside the daemon; every module
it imports and does not need costs its own private memory, counted in the agent's PSS bound
(docs/performance.md, "Footprint: the line process's imports"). These tests pin the module
set: the daemon's libraries (the uplink's websockets, the metrics server, the outbox's
SQLite, YAML, asyncio, the diagnostics) stay out of it, both at import and in a running child.
The child also starts with one glibc arena (``MALLOC_ARENA_MAX``, agent/line/process.py).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from agent.line.process import MALLOC_ARENAS, child_environment
from tests.agent.test_line_process import Bench, bench  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parents[2]

#: Modules only the daemon (or a command-line tool) needs. Each was in the line process once
#: or is a plausible slip: a top-level import in a module the line process imports.
DAEMON_ONLY = (
    "yaml", "difflib", "hashlib", "sqlite3", "websockets", "prometheus_client", "asyncio",
    "ssl", "http", "email", "agent.uplink", "agent.store", "agent.ops.diagnostics",
    "agent.ops.control", "agent.daemon", "agent.assembly", "agent.derive.interpreter",
    "api.messages", "hub", "emulator",
)

#: The shared objects of the daemon-only modules that are extensions: what a running child's
#: memory map would show had one been imported after start (for example by the transport).
DAEMON_ONLY_LIBRARIES = re.compile(r"/(_yaml|_sqlite3|_ssl|_hashlib|_asyncio|speedups)[.\w-]*\.so$")


def _loaded(entry: str, then: str = "") -> set[str]:
    code = f"import sys\nimport {entry}\n{then}\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    return set(out.split())


def _heavy(loaded: set[str]) -> list[str]:
    return sorted(m for m in loaded
                  if any(m == name or m.startswith(name + ".") for name in DAEMON_ONLY))


def test_the_child_gets_one_malloc_arena_whatever_the_daemon_has() -> None:
    assert MALLOC_ARENAS == "1"
    assert child_environment({"PATH": "/bin"}) == {"PATH": "/bin", "MALLOC_ARENA_MAX": "1"}
    assert child_environment({"MALLOC_ARENA_MAX": "2"}) == {"MALLOC_ARENA_MAX": "1"}


def test_the_line_process_entry_loads_none_of_the_daemons_libraries() -> None:
    loaded = _loaded("agent.line.child")
    assert "agent.line.owner" in loaded  # the check would pass vacuously otherwise
    assert _heavy(loaded) == []


def test_the_daemon_still_loads_them(tmp_path: Path) -> None:
    """The list above names modules that exist and are imported somewhere: a rename would
    otherwise leave the first test checking for nothing. (YAML is loaded with the file.)"""
    config = tmp_path / "agent.yaml"
    config.write_text("terminal_id: T-1\nmachines:\n  - address: 1\n")
    loaded = _loaded("agent.daemon", f"agent.config.load_config({str(config)!r})")
    missing = [name for name in ("yaml", "hashlib", "sqlite3", "websockets", "asyncio",
                                 "agent.uplink", "agent.store", "agent.ops.diagnostics")
               if name not in loaded]
    assert missing == []


@pytest.mark.timeout(90)
def test_a_running_line_process_maps_none_of_their_extensions_and_has_one_arena(
        bench: Bench) -> None:  # noqa: F811
    from agent.line.process import LineProcess
    from agent.observations import LinkUp
    from tests.agent.e2e_helpers import Collected
    from tests.support.waits import wait_until

    seen = Collected()
    line = LineProcess(bench.config(), seen)
    line.start()
    try:
        wait_until(lambda: seen.of(LinkUp), what="the machine link up")
        assert line.pid is not None
        maps = Path(f"/proc/{line.pid}/maps").read_text()
        environ = Path(f"/proc/{line.pid}/environ").read_bytes().split(b"\0")
    finally:
        line.stop()
    assert f"MALLOC_ARENA_MAX={MALLOC_ARENAS}".encode() in environ
    libraries = {row.split()[-1] for row in maps.splitlines() if ".so" in row}
    assert any("/_pickle." in lib for lib in libraries)  # the map is read, and lists extensions
    assert sorted(lib for lib in libraries if DAEMON_ONLY_LIBRARIES.search(lib)) == []
