"""A seeded random player (and attendant) for the emulator.

Each ``tick`` is one player decision, spaced ``60 / games_per_minute`` seconds apart by the
caller (:class:`emulator.scenario.ScenarioRunner`): feed money when short of credits, mostly
play a game (bet 1..max bet, a hit rate of about 30 %, rare big wins, very rare jackpots
over the handpay limit), sometimes cash out, redeem a ticket, open a door, raise a tilt or
switch games. It also plays the attendant: handpays are keyed off, doors closed and tilts
cleared after a while. The same seed and the same sequence of ticks give the same session.

A game is not over when it starts: the reels spin for ``game_seconds`` (2 s by default, as on
a real machine), so 7E (game started) and 7F (game ended) reach the host seconds apart, as on
a real floor, and a host's latency from the game's end is measured from a real end. The spin
never takes more than half the pace's interval (``game_length``), so the pace holds at any
games per minute; 0 ends every game as it starts (7E and 7F queued together).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from emulator.model import Door, Machine, PlayRefusedError

HIT_RATE = 0.30


@dataclass(frozen=True, slots=True)
class AutoplaySettings:
    games_per_minute: float = 30.0
    jackpot_probability: float = 0.002  # per game, a win over the handpay limit
    cashout_probability: float = 0.02
    door_probability: float = 0.004
    tilt_probability: float = 0.002
    attendant_delay: float = 20.0  # seconds before a handpay is keyed off
    door_open_for: float = 8.0
    tilt_clears_after: float = 12.0
    game_seconds: float = 2.0  # the reels spin this long: 7F follows 7E after it

    def __post_init__(self) -> None:
        if not 0 < self.games_per_minute <= 60_000:
            raise ValueError("games_per_minute must be in (0, 60000]")
        if not 0 <= self.game_seconds <= 3600:
            raise ValueError("game_seconds must be in [0, 3600]")

    @property
    def interval(self) -> float:
        return 60.0 / self.games_per_minute

    @property
    def game_length(self) -> float:
        """How long a game is in play: ``game_seconds``, at most half the pace's interval."""
        return min(self.game_seconds, self.interval / 2)


class AutoPlayer:
    def __init__(self, machine: Machine, rng: random.Random,
                 settings: AutoplaySettings | None = None) -> None:
        self.machine = machine
        self.rng = rng
        self.settings = settings or AutoplaySettings()
        self._handpay_since: float | None = None
        self._door_open_since: float | None = None
        self._tilt_since: float | None = None
        self.games = 0
        self.refused = 0
        self._spinning: tuple[float, int] | None = None  # (the game ends at, its win)

    @property
    def game_ends_at(self) -> float | None:
        """When the game in play ends (the next ``tick`` at or after it ends it), or None."""
        return None if self._spinning is None else self._spinning[0]

    def tick(self, now: float) -> str:
        """One decision; returns what happened (for logs and tests)."""
        m, rng, s = self.machine, self.rng, self.settings
        if not m.powered:
            return "powered off"
        if self._spinning is not None:
            ends_at, win = self._spinning
            if now < ends_at:
                return "reels spinning"
            self._spinning = None
            m.end_game(now, win=win)
            return "game ended"
        if m.handpay is not None:
            self._handpay_since = self._handpay_since if self._handpay_since is not None else now
            if now - self._handpay_since >= s.attendant_delay:
                self._handpay_since = None
                m.reset_handpay(now)
                return "attendant reset handpay"
            return "waiting for attendant"
        if any(m.doors.values()):
            self._door_open_since = (self._door_open_since if self._door_open_since is not None
                                     else now)
            if now - self._door_open_since >= s.door_open_for:
                self._door_open_since = None
                for door, is_open in m.doors.items():
                    if is_open:
                        m.close_door(now, door)
                return "closed doors"
            return "door open"
        if m.tilts:
            self._tilt_since = self._tilt_since if self._tilt_since is not None else now
            if now - self._tilt_since >= s.tilt_clears_after:
                self._tilt_since = None
                m.clear_tilts()
                return "tilt cleared"
        if m.locked:
            return "locked"
        roll = rng.random()
        if roll < s.door_probability:
            door = rng.choice([Door.SLOT, Door.SLOT, Door.CASHBOX, Door.DROP, Door.BELLY])
            m.open_door(now, door)
            return f"opened {door.name.lower()} door"
        roll -= s.door_probability
        if roll < s.tilt_probability:
            code = rng.choice([0x20, 0x28, 0x61])
            m.tilt(now, code)
            return f"tilt {code:02X}"
        roll -= s.tilt_probability
        game = m.games[m.selected_game]
        if m.credits >= 1 and roll < s.cashout_probability:
            result = m.cash_out(now)
            return f"cashed out {result}"
        if m.credits < game.max_bet:
            return self._feed(now)
        if rng.random() < 0.02:
            m.select_game(now, rng.choice(list(m.enabled_games)))
            game = m.games[m.selected_game]
        bet = self._bet(game.max_bet)
        if bet > m.credits:
            return self._feed(now)
        win = self._win(bet)
        try:
            if s.game_length > 0:
                m.start_game(now, bet=bet)
            else:
                m.play_game(now, bet=bet, win=win)
        except PlayRefusedError as exc:
            self.refused += 1
            return f"refused: {exc.reason}"
        self.games += 1
        if s.game_length > 0:
            self._spinning = (now + s.game_length, win)
            return "game started"
        return "played"

    def _feed(self, now: float) -> str:
        rng, m = self.rng, self.machine
        if rng.random() < 0.8 or not m.bill_acceptor_enabled:
            dollars = rng.choice([1, 5, 5, 10, 20, 20, 20, 50, 100])
            if m.bill_acceptor_enabled and m.insert_bill(now, dollars):
                return f"bill ${dollars}"
        cents = rng.choice([500, 1000, 2000, 2500, 5000])
        cents -= cents % m.denomination_cents
        if cents and m.insert_ticket(now, cents):
            return f"ticket in {cents}"
        return "could not add money"

    def _bet(self, max_bet: int) -> int:
        choices = sorted({1, max(1, max_bet // 5), max(1, max_bet // 2), max_bet})
        return self.rng.choice(choices)

    def _win(self, bet: int) -> int:
        rng, m = self.rng, self.machine
        if rng.random() < self.settings.jackpot_probability:
            limit_credits = -(-m.config.handpay_limit_cents // m.denomination_cents)
            return limit_credits * rng.choice([1, 1, 2, 3])
        if rng.random() >= HIT_RATE:
            return 0
        roll = rng.random()
        if roll < 0.70:
            factor = rng.choice([0.5, 1, 1, 2, 2, 3])
        elif roll < 0.95:
            factor = rng.choice([5, 8, 10, 15, 20])
        else:
            factor = rng.choice([50, 100, 250])
        return max(1, int(bet * factor))
