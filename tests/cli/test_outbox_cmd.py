"""``slot-agent outbox`` run as a real process beside an open writer (the daemon's role)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from agent.store.outbox import Outbox
from api.events import Event
from tests.support.processes import run_cli

TS = "2026-01-01T00:00:00.000Z"


def outbox_cmd(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("outbox", "--config", str(config), *args)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    cfg = tmp_path / "agent.yaml"
    cfg.write_text("terminal_id: EGM-9\nmachines:\n  - address: 1\noutbox:\n  path: ob.db\n")
    return cfg


def test_status_tail_and_export_while_the_writer_is_open(config: Path, tmp_path: Path) -> None:
    with Outbox.open(tmp_path / "ob.db", terminal_id="EGM-9") as ob:
        ob.commit([Event("gameStarted", TS, {"n": i}) for i in range(5)], {"k": 1})
        ob.ack(2)

        status = outbox_cmd(config, "status", "--json")
        assert status.returncode == 0, status.stderr
        report = json.loads(status.stdout)
        assert report["terminalId"] == "EGM-9"
        assert (report["depth"], report["lastSeq"], report["ackedSeq"]) == (3, 5, 2)
        assert report["health"] == "ok" and report["dbBytes"] > 0
        assert report["oldestUnackedAgeSeconds"] >= 0
        doc = (Path(__file__).resolve().parents[2] / "docs" / "outbox.md").read_text()
        listed = doc[doc.index("`--json` prints one object with the keys"):].split(".\n")[0]
        assert set(re.findall(r"`(\w+)`", listed)) - {"ok", "quick_check"} == set(report)

        human = outbox_cmd(config, "status")
        assert human.returncode == 0
        assert "depth (unacked):  3" in human.stdout and "last acked seq:   2" in human.stdout

        ob.commit([Event("doorOpened", TS, {"door": "main"})], None)  # seen by a new reader
        tail = outbox_cmd(config, "tail", "-n", "2")
        assert tail.returncode == 0
        lines = [json.loads(x) for x in tail.stdout.splitlines()]
        assert [x["id"] for x in lines] == ["EGM-9-5", "EGM-9-6"]
        assert lines[1]["event"] == "doorOpened" and lines[1]["channel"] == "alerts"

        out = tmp_path / "export.jsonl"
        export = outbox_cmd(config, "export", "--out", str(out), "--after", "3")
        assert export.returncode == 0 and "exported 3 event(s)" in export.stderr
        assert [json.loads(x)["seq"] for x in out.read_text().splitlines()] == [4, 5, 6]

        stdout_export = outbox_cmd(config, "export")
        assert len(stdout_export.stdout.splitlines()) == 6
        # the writer is unaffected and still owns the file
        assert ob.commit([Event("gameEnded", TS, {})], None)[0].seq == 7


def test_missing_outbox_and_bad_config_are_clear_errors(config: Path, tmp_path: Path) -> None:
    missing = outbox_cmd(config, "status")
    assert missing.returncode == 1 and "no outbox at" in missing.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("terminal_id: EGM-9\n")
    result = outbox_cmd(bad, "status")
    assert result.returncode == 2 and "machines: required" in result.stderr


def test_a_damaged_outbox_is_reported_not_a_traceback(config: Path, tmp_path: Path) -> None:
    (tmp_path / "ob.db").write_bytes(b"garbage, not SQLite" * 100)
    result = outbox_cmd(config, "status")
    assert result.returncode == 1
    assert "cannot read outbox" in result.stderr and "Traceback" not in result.stderr
    assert (tmp_path / "ob.db").exists()  # the reader never moves or changes the file


def test_an_interrupted_export_leaves_no_file(tmp_path: Path) -> None:
    """Ctrl-C (or a full disk) in the middle of ``outbox export --out FILE``: the events
    already written go to ``FILE.part``, which is removed, so no file that looks like a
    whole export is left; a complete one is renamed into place."""
    from cli.commands.outbox import _export

    with Outbox.open(tmp_path / "ob.db", terminal_id="EGM-9") as ob:
        ob.commit([Event("gameStarted", TS, {"n": i}) for i in range(5)], {"k": 1})
        with Outbox.open_reader(tmp_path / "ob.db") as reader:
            out = tmp_path / "export.jsonl"
            real = reader.export

            def interrupted(fileobj: Any, *, after_seq: int = 0) -> int:
                fileobj.write('{"seq": 1}\n')
                assert (tmp_path / "export.jsonl.part").exists() and not out.exists()
                raise KeyboardInterrupt

            reader.export = interrupted  # type: ignore[method-assign]
            with pytest.raises(KeyboardInterrupt):
                _export(reader, str(out), 0)
            assert list(tmp_path.glob("export.jsonl*")) == []

            reader.export = real  # type: ignore[method-assign]
            assert _export(reader, str(out), 0) == 0
            assert len(out.read_text().splitlines()) == 5
            assert list(tmp_path.glob("export.jsonl*")) == [out]


def test_an_export_file_that_cannot_be_written_is_a_usage_error(config: Path,
                                                                tmp_path: Path) -> None:
    Outbox.open(tmp_path / "ob.db", terminal_id="EGM-9").close()
    out = tmp_path / "no-such-dir" / "export.jsonl"
    result = outbox_cmd(config, "export", "--out", str(out))
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"error: cannot write {out}: No such file or directory\n"
    assert not out.parent.exists()
