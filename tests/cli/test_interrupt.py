"""Ctrl-C (SIGINT): a one-shot command ends at once with 130 and one line, a service stops
cleanly with 0 once it handles signals, and 130 while it still starts; never a traceback
(docs/operations.md, "The command line: conventions and exit codes").

No sleep decides when the signal goes: a FIFO stands for the file the command reads, and
opening its other end returns only once the command has opened it, so the command is
known to be inside its work (its modules loaded, its parser done) when SIGINT is sent.
"""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path

import pytest

from cli.main import main
from tests.support.processes import Proc
from tests.support.waits import wait_until


def _writer_end(fifo: Path, proc: Proc) -> int:
    """The FIFO's write end, opened once ``proc`` has opened it for reading (a non-blocking
    open fails with ENXIO until then), so a command that died first fails the test instead
    of hanging it."""

    def opened() -> int | None:
        assert proc.alive(), (proc.out_lines, proc.err_lines)
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                return None
            raise

    fd = wait_until(opened, 60, f"{proc.args} opening {fifo}")
    assert fd is not None
    return fd


def _interrupted_while_reading(tmp_path: Path, args: list[str], name: str) -> Proc:
    """``args`` with ``{fifo}`` for a FIFO: started, SIGINT once it reads the FIFO."""
    fifo = tmp_path / name
    os.mkfifo(fifo)
    proc = Proc([a.format(fifo=fifo) for a in args])
    fd = _writer_end(fifo, proc)
    try:
        proc.signal(signal.SIGINT)
        proc.wait(30)
    finally:
        os.close(fd)
    return proc


def _no_traceback(proc: Proc) -> None:
    err = "\n".join(proc.err_lines)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err


def test_ctrl_c_ends_a_one_shot_command_with_130_and_one_line(tmp_path: Path) -> None:
    """``slot-agent decode --file`` blocked reading its capture (a pipe nobody writes)."""
    proc = _interrupted_while_reading(tmp_path, ["decode", "--file", "{fifo}"], "capture.jsonl")
    assert proc.popen.returncode == 130
    assert proc.err_lines == ["slot-agent decode: interrupted"]
    assert proc.out_lines == []


def test_ctrl_c_while_the_hub_starts_is_130(tmp_path: Path) -> None:
    """Before the hub handles signals (here: reading hub.yaml), SIGINT interrupts it like a
    one-shot command."""
    proc = _interrupted_while_reading(tmp_path, ["hub", "--config", "{fifo}"], "hub.yaml")
    assert proc.popen.returncode == 130
    assert proc.err_lines == ["slot-agent hub: interrupted"]
    assert proc.out_lines == []  # no URL: it never listened


def test_ctrl_c_stops_a_running_hub_cleanly_with_0(tmp_path: Path) -> None:
    (tmp_path / "tokens.txt").write_text("tok-op-1 operator bench\n")
    config = tmp_path / "hub.yaml"
    config.write_text("listen: {host: 127.0.0.1, port: 0}\nplain: true\n"
                      "tokens: tokens.txt\ndatabase: hub.db\n")
    proc = Proc(["hub", "--config", str(config)])
    try:
        assert proc.first_line().startswith("http://127.0.0.1:")  # listening, handlers set
        proc.signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        proc.stop()
    _no_traceback(proc)
    assert any("hub stopped in" in line for line in proc.err_lines), proc.err_lines
    assert not any("interrupted" in line for line in proc.err_lines)


def test_ctrl_c_while_the_command_loads_is_130_too(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """SIGINT while the chosen command's module is imported (a slow machine's first second)
    is the same interruption, not a KeyboardInterrupt traceback from the import."""
    import importlib

    def interrupted(name: str) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib, "import_module", interrupted)
    assert main(["diag", "--config", "x.yaml"]) == 130
    assert capsys.readouterr().err == "slot-agent diag: interrupted\n"
