"""The shipped systemd units (systemd/*.service) as tests read them: parsed into directives,
copied with a runnable ``ExecStart=``, verified and scored by ``systemd-analyze``."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.support import ROOT

UNITS = ROOT / "systemd"
#: Every unit's program, as installed (docs/operations.md, "Where things live").
EXEC = "/opt/slot-agent/venv/bin/slot-agent"

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze not installed")


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> every value in order (keys like DeviceAllow= repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"directive outside a section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not a directive: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def read_unit(unit: Path) -> dict[str, dict[str, list[str]]]:
    return parse_unit(unit.read_text(encoding="utf-8"))


def runnable_copy(unit: Path, tmp_path: Path, *, extra_service_lines: Sequence[str] = ()) -> Path:
    """The unit with ExecStart pointing at a binary that exists here (verify checks it), and
    ``extra_service_lines`` (a drop-in's [Service] lines) appended to its [Service] section."""
    text = unit.read_text(encoding="utf-8")
    assert EXEC in text
    text = text.replace(EXEC, "/bin/true")
    if extra_service_lines:
        assert "[Install]" in text
        text = text.replace("[Install]", "\n".join(extra_service_lines) + "\n\n[Install]")
    copy = tmp_path / unit.name
    copy.write_text(text, encoding="utf-8")
    return copy


def systemd_version() -> int:
    assert SYSTEMD_ANALYZE is not None
    out = subprocess.run(
        [SYSTEMD_ANALYZE, "--version"], capture_output=True, text=True, timeout=30
    ).stdout
    match = re.search(r"systemd (\d+)", out)
    return int(match.group(1)) if match else 0


def assert_verifies_clean(unit_file: Path) -> None:
    """``systemd-analyze verify``: exit 0 and not one word on stderr."""
    assert SYSTEMD_ANALYZE is not None
    result = subprocess.run([SYSTEMD_ANALYZE, "verify", str(unit_file)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def offline_exposure(unit_file: Path) -> float:
    """``systemd-analyze security --offline``'s overall exposure (0 fully confined, 10 not);
    skips the test where systemd is older than 252 (no offline mode)."""
    assert SYSTEMD_ANALYZE is not None
    if systemd_version() < 252:
        pytest.skip("systemd-analyze security --offline needs systemd >= 252")
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=true", "--no-pager", str(unit_file)],
        capture_output=True, text=True, timeout=60)
    name = re.escape(unit_file.name)
    match = re.search(rf"Overall exposure level for {name}: ([0-9.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    return float(match.group(1))


def ini_block_after(doc: Path, heading: str) -> list[str]:
    """The [Service] lines of the first ```ini block after ``heading`` in ``doc`` (a drop-in
    the docs give), without comments."""
    section = doc.read_text(encoding="utf-8").split(heading, 1)[1]
    block = section.split("```ini", 1)[1].split("```", 1)[0]
    return [line for line in block.strip().splitlines()
            if line and not line.startswith(("#", "[Service]"))]
