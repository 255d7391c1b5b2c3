"""Money-path latency: a game ends on the machine -> ``betPlaced`` and ``winPaid`` reach a
dashboard subscriber, with where the time goes.

A game is played on a machine emulated in this process as on a real one: the wager and 7E
when the player presses spin (``Machine.start_game``), the win and 7F when the reels stop
``--game-seconds`` later (``Machine.end_game``; 2.5 s by default), so 7E and 7F do not wait
behind each other in the exception queue; the machine is served over a pty; ``slot-agent
run`` (its own process, its line process beside it) polls it at ``--interval-ms`` (200 ms,
the reference's per-machine spacing, by default); the reference hub (its own process) stores
and fans the events out; a subscriber in this process, connected to ``/ws/client`` like the
dashboard, receives them. A bet or a win needs more than an exception: the general poll that
fetches 7E (or 7F), then the meter read the interpreter asks for, then the outbox commit
(fsync), the uplink and the hub. Games are played at random moments ``--gap`` apart, so the
wait for the next general poll is spread over the whole interval; each game wins something,
so each has one ``betPlaced`` and one ``winPaid``.

Printed: the latency to the subscriber (``betPlaced`` from the game's start, when the wager
is made; ``winPaid`` from the game's real end, when the reels stop), p50/p99/max, and
the breakdown, p50/p99 of each stage, from the timestamps the pieces leave behind:

- poll wait: game start (bet) / end (win) -> the general poll that fetched 7E / 7F (the
  ``gameStarted`` / ``gameEnded`` event's timestamp, taken in the line process);
- to the read poll: that poll -> the meter long poll of the read reaches the machine: one
  poll interval, since a machine is polled no faster than once per interval (reference
  §2.3.3: 200 ms; the long poll goes out in the machine's next slot);
- read concluded: that long poll -> the meter read the money event comes from (its
  timestamp: the reply is in and decoded);
- interpreter: the read -> the row in the outbox (its ``created_at``, set in the transaction
  before the commit's fsync);
- commit + uplink: the row -> the hub received it (the hub store's ``received_at``): the
  fsync, the uplink's notification, the frame on the socket;
- hub: received -> the subscriber has the frame (the hub's store and fan-out).

Timestamps are wall-clock (event timestamps to the millisecond), all taken on this machine.
Target: p99 <= 2 poll intervals + 20 ms for each of ``betPlaced`` and ``winPaid``.
Run: ``python bench/money_latency.py [--games 100] [--interval-ms 200] [--quick]`` with the
Python of the environment where slot-agent is installed.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from benchlib import (
    HelpDefaults,
    Verdict,
    exit_with,
    header,
    load_average,
    percentile,
    run_in_workdir,
    verdicts,
)
from procs import PassThrough, dashboard, pty_floor

from agent.line.messages import NICE_AHEAD
from drivers.base import Transport, Word

TERMINAL = "BENCH-MONEY"
#: 7E/7F within this long of the first link-up are taken as the machine's backlog and give
#: no gameStarted / gameEnded (docs/events.md): the games start after it.
BACKLOG_WINDOW_S = 10.0
STAGES = ("poll wait", "to the read poll", "read concluded", "interpreter", "commit + uplink",
          "hub")
#: The meter long polls a game-end read uses (SAS §7: 6F / AF extended, 2F selected meters).
METER_POLLS = frozenset((0x6F, 0xAF, 0x2F))


class MeterPollClock(PassThrough):
    """The machine's end of the line, timestamping (wall clock) every meter long poll that
    reaches the machine: where the read stands between the exception and the money event."""

    def __init__(self, inner: Transport) -> None:
        super().__init__(inner)
        self.meter_polls: list[float] = []
        self.long_polls: Counter[int] = Counter()  # every long poll's command, counted

    def read(self, deadline: float, max_words: int = 512) -> list[Word]:
        words = self.inner.read(deadline, max_words)
        now = time.time()
        commands = self.commands_read(words)
        self.long_polls.update(commands)
        self.meter_polls += [now for c in commands if c in METER_POLLS]
        return words


def wall(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@dataclass
class Received:
    event: str
    seq: int
    timestamp: float  # the event's own timestamp (wall clock)
    wall: float  # when the subscriber had it (wall clock)
    mono: float  # the same, monotonic


@dataclass
class Game:
    wall: float  # the game's start: the wager (7E)
    mono: float
    bet: int
    win: int
    end_wall: float = 0.0  # the game's end: the reels stop (7F)
    end_mono: float = 0.0
    events: dict[str, Received] = field(default_factory=dict)


async def run(args: argparse.Namespace, workdir: Path) -> tuple[
        list[Game], dict[int, float], dict[int, float], list[float]]:
    received: list[Received] = []
    games: list[Game] = []
    clocks: list[MeterPollClock] = []

    def meter_poll_clock(master: Transport) -> Transport:
        clocks.append(MeterPollClock(master))
        return clocks[0]

    def on_event(msg: dict[str, Any], mono: float, now: float) -> None:
        if msg["event"] in ("betPlaced", "winPaid", "gameStarted", "gameEnded"):
            received.append(Received(msg["event"], int(msg["seq"]), wall(msg["timestamp"]),
                                     now, mono))

    ahead = NICE_AHEAD if args.machine_priority else 0
    async with pty_floor(workdir, TERMINAL, args.interval_ms, priority=args.priority,
                         wrap=meter_poll_clock, machine_ahead=ahead) as floor, \
            dashboard(floor.hub, TERMINAL, on_event):
        machine, emulator = floor.machine, floor.emulator
        with emulator.lock:  # credits to play with (wins never fall below the bet)
            if not machine.insert_bill(time.monotonic(), 100):
                raise SystemExit("the emulated bill acceptor refused a $100 bill")
        await asyncio.sleep(BACKLOG_WINDOW_S + 1.0)  # past the link-up backlog window
        del received[:]
        clocks[0].long_polls.clear()
        rng = random.Random(7)
        print(f" playing {args.games} games (load average {load_average()}) ...",
              flush=True)
        for _ in range(args.games):
            await asyncio.sleep(rng.uniform(args.gap * 0.75, args.gap * 1.25))
            bet = rng.randint(1, 5)
            win = bet * rng.randint(1, 4)
            with emulator.lock:
                mono, now = time.monotonic(), time.time()
                machine.start_game(mono, bet=bet)
            game = Game(now, mono, bet, win)
            games.append(game)
            await asyncio.sleep(args.game_seconds)  # the reels spin
            with emulator.lock:
                game.end_mono, game.end_wall = time.monotonic(), time.time()
                machine.end_game(game.end_mono, win=win)
        deadline = time.monotonic() + 30
        while (sum(r.event in ("betPlaced", "winPaid") for r in received) < 2 * len(games)
               and time.monotonic() < deadline):
            await asyncio.sleep(0.05)  # bounded wait for the last game's events
    # Match in order: each game gives gameStarted, betPlaced, gameEnded, winPaid.
    by_name: dict[str, list[Received]] = {}
    for r in received:
        by_name.setdefault(r.event, []).append(r)
    for name in ("gameStarted", "betPlaced", "gameEnded", "winPaid"):
        got = by_name.get(name, [])
        if len(got) != len(games):
            raise SystemExit(f"{len(games)} games played, {len(got)} {name} events received "
                             "(games merged into one read, or events lost)")
        for game, r in zip(games, got, strict=True):
            game.events[name] = r
    for game in games:
        if not game.events["gameStarted"].wall <= game.events["betPlaced"].wall + 1:
            raise SystemExit("events out of order: a game's events matched the wrong game")
    created = dict(sqlite3.connect(workdir / "outbox.db").execute(
        "SELECT seq, created_at FROM events"))
    hub_at = dict(sqlite3.connect(workdir / "hub.db").execute(
        "SELECT seq, received_at FROM events WHERE terminal_id = ?", (TERMINAL,)))
    polls = ", ".join(f"{c:02X} x{n}" for c, n in sorted(clocks[0].long_polls.items()))
    print(f"  long polls while playing: {polls or 'none'}")
    return games, created, hub_at, clocks[0].meter_polls


def stages(game: Game, money: str, marker: str, created: dict[int, float],
           hub_at: dict[int, float], meter_polls: list[float]) -> list[float]:
    m, x = game.events[money], game.events[marker]
    # The read's poll: the last meter long poll the machine received before the read
    # concluded (event timestamps are truncated to the millisecond, so a poll sent after the
    # conclusion, for the next read, arrives after the truncated stamp).
    polled = max((t for t in meter_polls if x.timestamp - 0.001 <= t <= m.timestamp),
                 default=m.timestamp)
    start = game.wall if money == "betPlaced" else game.end_wall
    points = [start, x.timestamp, polled, m.timestamp, created[m.seq], hub_at[m.seq], m.wall]
    return [(b - a) * 1000.0 for a, b in itertools.pairwise(points)]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpDefaults)
    parser.add_argument("--games", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="20 games: a smoke test")
    parser.add_argument("--interval-ms", type=int, default=200)
    parser.add_argument("--gap", type=float, default=1.5,
                        help="seconds from one game's end to the next one's start, on average "
                        "(random within +-25 %%)")
    parser.add_argument("--game-seconds", type=float, default=2.5,
                        help="how long the reels spin, 7E to 7F (0: 7E and 7F queued at once, "
                        "the figure then includes 7F's wait behind 7E)")
    parser.add_argument("--priority", default="nice", choices=["realtime", "nice", "normal"],
                        help="poll.line_priority of the agent")
    parser.add_argument("--no-machine-priority", dest="machine_priority",
                        action="store_false",
                        help="leave the emulated machine's thread at the bench's nice value "
                        "(by default it gets the line process's nice lead: a real machine "
                        "has its own CPU, bench/e2e_latency.py)")
    parser.add_argument("--show", type=int, default=3,
                        help="print the timeline of the first N games")
    args = parser.parse_args()
    if args.quick:
        args.games = 20
    header("money-path latency: game end -> betPlaced / winPaid at a dashboard subscriber")
    print(f"# {args.games} games{' (--quick: a smoke test)' if args.quick else ''}; poll "
          f"interval {args.interval_ms} ms; reels spin {args.game_seconds} s; line_priority "
          f"{args.priority}; emulator on a pty "
          "in this process; agent (two processes) and hub in their own processes")
    games, created, hub_at, meter_polls = run_in_workdir(
        "money-bench-", lambda workdir: run(args, workdir))
    for game in games[:args.show]:
        ev = game.events
        print(f"  game started at 0 ms, ended at {(game.end_wall - game.wall) * 1000:.0f} ms: "
              + ", ".join(f"{name} {(ev[name].timestamp - game.wall) * 1000:.0f} (at the "
                          f"subscriber {(ev[name].wall - game.wall) * 1000:.0f})"
                          for name in ("gameStarted", "betPlaced", "gameEnded", "winPaid")))
    interval = float(args.interval_ms)
    limit = 2 * interval + 20.0
    items: list[Verdict] = []
    for money, marker in (("betPlaced", "gameStarted"), ("winPaid", "gameEnded")):
        lat = [(g.events[money].mono - (g.mono if money == "betPlaced" else g.end_mono))
               * 1000.0 for g in games]
        print(f"  {money:9} latency from the game's {'start' if money == 'betPlaced' else 'end'}"
              f"  p50 {percentile(lat, 50):7.1f} ms  p99 "
              f"{percentile(lat, 99):7.1f} ms  max {max(lat):7.1f} ms  (target p99 <= "
              f"{limit:.0f} ms: 2 intervals + 20 ms)")
        parts = [stages(g, money, marker, created, hub_at, meter_polls) for g in games]
        for i, stage in enumerate(STAGES):
            column = [p[i] for p in parts]
            print(f"    {stage:16} p50 {percentile(column, 50):7.1f} ms  p99 "
                  f"{percentile(column, 99):7.1f} ms  max {max(column):7.1f} ms")
        # the tail's two shapes: a read that needed a second long poll (a retry), and a
        # general poll or long poll that went out a slot later than the design's
        retried = sum(len([t for t in meter_polls if g.events[marker].timestamp - 0.001 <= t
                           <= g.events[money].timestamp]) > 1 for g in games)
        late_read = sum(p[1] > 1.5 * interval for p in parts)
        late_poll = sum(p[0] > 1.05 * interval for p in parts)
        print(f"    games whose read took 2+ long polls: {retried}; whose read poll came a "
              f"slot late: {late_read}; whose general poll came after 1 interval: {late_poll}")
        items.append(Verdict(f"{money} p99 (ms)", percentile(lat, 99), limit, at_least=False))
    return verdicts(items)


if __name__ == "__main__":
    exit_with(main())
