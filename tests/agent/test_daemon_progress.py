"""The human status line the daemon and the demo print."""

from __future__ import annotations

import io

import pytest

from agent.ops.progress import Progress, Snapshot, format_line, status_text


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _snap(games: int = 0, events: int = 0) -> Snapshot:
    return Snapshot(link="up", events=events, games=games, coin_in_cents=12345,
                    outbox_depth=3, uplink="connected")


def test_the_line_says_link_games_money_outbox_and_uplink() -> None:
    line = format_line(_snap(7, 40), games_per_min=30.0, events_per_s=1.5)
    assert line == ("link up | games 7 (30.0/min) | coin in 123.45 | events 40 (1.5/s) | "
                    "outbox 3 waiting | uplink connected")
    assert status_text(_snap(1, 2)) == "link up; outbox 3 waiting; uplink connected; 2 events"


def test_on_a_terminal_the_line_is_rewritten_in_place_with_rates() -> None:
    now = [100.0]
    out = _Tty()
    progress = Progress(out, enabled=True, interval=1.0, clock=lambda: now[0])
    progress.update(_snap(0, 0))
    now[0] += 0.5
    progress.update(_snap(1, 5))  # throttled: less than interval since the last line
    now[0] += 9.5
    progress.update(_snap(5, 50))
    progress.close()
    text = out.getvalue()
    assert text.count("\r\x1b[2K") == 2
    assert "games 5 (30.0/min)" in text and "events 50 (5.0/s)" in text
    assert text.endswith("\n")


def test_on_a_pipe_plain_lines_at_most_every_five_seconds() -> None:
    now = [0.0]
    out = io.StringIO()
    progress = Progress(out, enabled=True, interval=1.0, clock=lambda: now[0])
    for _ in range(12):
        progress.update(_snap())
        now[0] += 1.0
    assert "\r" not in out.getvalue()
    assert len(out.getvalue().splitlines()) == 3  # at 0, 5 and 10 s


def test_silent_under_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVOCATION_ID", "abc")
    out = _Tty()
    progress = Progress(out)
    progress.update(_snap(), force=True)
    progress.message("hello")
    assert out.getvalue() == ""
