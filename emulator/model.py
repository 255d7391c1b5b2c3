"""The virtual slot machine: games, credits, meters, doors, devices, handpay, exceptions.

The model is pure: it never reads a clock. Every operation that can raise an exception takes
``now`` (monotonic seconds, supplied by the caller) so tests step time by hand. It knows
nothing of bytes on a wire; the server (``emulator.server``) maps SAS long polls onto it.

Money facts that matter to the agent (reference §3.8-§3.10):
- credit meters count accounting-denomination credits; ticket/AFT meters count cents;
- coin out (01) is machine-paid *wins*, jackpot (02) is hand-paid wins (counted when the
  handpay is reset), cash-outs are cancelled credits (04);
- meters are BCD counters that wrap (see ``emulator.meters``).

Size: over 500 lines on purpose: one machine, whose play, bills, tickets, handpays, doors
and meters all change the same credit and meter state in the order a real machine does;
the meters' arithmetic, the exception queue and the long-poll answers live apart.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum

from emulator.exceptions_queue import ExceptionQueue, PendingException
from emulator.meters import BILL_METERS, DERIVED, GAME_METERS, METERS, MeterBank, meter_def, wrap
from sas_protocol.variants import DEFAULT_LAYOUTS, PollLayouts


class PlayRefusedError(Exception):
    """The machine cannot do what was asked in its current state (locked, door open, ...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Door(Enum):
    """Doors and their (opened, closed) exception codes (reference §3.11)."""

    SLOT = (0x11, 0x12)
    DROP = (0x13, 0x14)
    CARD_CAGE = (0x15, 0x16)
    CASHBOX = (0x19, 0x1A)
    BELLY = (0x1D, 0x1E)

    @classmethod
    def parse(cls, name: str) -> Door:
        key = name.strip().lower().replace("-", "_").replace(" ", "_")
        key = key.removesuffix("_door")
        try:
            return cls[key.upper()]
        except KeyError:
            choices = ", ".join(d.name.lower() for d in cls)
            raise ValueError(f"unknown door {name!r} (one of: {choices})") from None


#: Tilts that stop play until cleared.
BLOCKING_TILTS = frozenset({0x20, 0x21, 0x22, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46})
#: Tilts that take the bill acceptor out of service until cleared.
BILL_ACCEPTOR_TILTS = frozenset({0x27, 0x28, 0x29})
#: Tilts that take the printer out of service until cleared.
PRINTER_TILTS = frozenset({0x60, 0x61})
KNOWN_TILTS = BLOCKING_TILTS | BILL_ACCEPTOR_TILTS | PRINTER_TILTS | {0x23}

#: Non-RTE "bill accepted" exception per bill (reference §3.11); others report 4F.
BILL_EXCEPTIONS: dict[int, int] = {
    1: 0x47, 5: 0x48, 10: 0x49, 20: 0x4A, 50: 0x4B, 100: 0x4C, 2: 0x4D, 500: 0x4E, 200: 0x50,
}
BILL_ACCEPTED_RTE = 0x4F
#: Bill denomination codes carried by RTE 4F / LP 48 (SAS table C-5 order: $1, $2, $5, ...).
BILL_DENOMINATION_CODES: dict[int, int] = {
    dollars: index for index, dollars in enumerate(BILL_METERS)
}
COUNTRY_CODE_US = 0x00

HANDPAY_PENDING = 0x51
HANDPAY_RESET = 0x52
TICKET_PRINTED = 0x3D
TICKET_TRANSFER_COMPLETE = 0x68
CASHOUT_PRESSED = 0x66
GAME_STARTED = 0x7E
GAME_ENDED = 0x7F
GAME_SELECTED = 0x8C
POWER_APPLIED = 0x17
POWER_LOST = 0x18
SOFT_METERS_RESET = 0x7A
BILL_REJECTED = 0x2B
AFT_TRANSFER_COMPLETE = 0x69
GAME_LOCKED = 0x6F  # reference §3.11; no "unlocked" counterpart: LP 74 tells
HANDPAY_LEVEL_JACKPOT = 0x40
HANDPAY_LEVEL_CANCELLED_CREDITS = 0x80
#: LP 4D reads the validation buffer by index 01-1F (reference §3.9): 31 records
VALIDATION_BUFFER_SIZE = 0x1F


def bcd(value: int, width: int) -> bytes:
    """Packed BCD, MSB first (reference §3.8); the value must already fit."""
    digits = f"{value:0{2 * width}d}"
    if len(digits) > 2 * width:
        raise ValueError(f"{value} does not fit in {width} BCD bytes")
    return bytes.fromhex(digits)


@dataclass(frozen=True, slots=True)
class GameConfig:
    number: int
    name: str
    paytable_id: str = "EMU001"
    max_bet: int = 10  # credits
    base_percent: str = "9500"  # theoretical payback, implied decimal (95.00 %)


DEFAULT_GAMES = (
    GameConfig(1, "Lucky Sevens", "LS0001", 10, "9500"),
    GameConfig(2, "Fruit Frenzy", "FF0001", 25, "9320"),
    GameConfig(3, "Gold Rush", "GR0001", 50, "9610"),
)


@dataclass(frozen=True, slots=True)
class MachineConfig:
    denomination_cents: int = 1
    games: tuple[GameConfig, ...] = DEFAULT_GAMES
    serial_number: str = "EMU0000001"
    sas_version: str = "602"
    game_id: str = "EM"
    additional_id: str = "001"
    #: wins and cash-outs of at least this many cents lock up for a handpay
    handpay_limit_cents: int = 120_000
    queue_capacity: int = 25
    reissue_interval: float = 15.0
    #: LP A0 F3 bit 0: the machine says it may be polled every 40 ms (reference §3.6, §3.9b)
    polling_40ms: bool = True
    #: answer the multi-denomination polls B0/B1/B2 (one player denomination: this one)
    multi_denom: bool = False
    #: layouts of the long polls the sources disagree on (reference §3.9b [unsure])
    layouts: PollLayouts = DEFAULT_LAYOUTS

    def __post_init__(self) -> None:
        if self.denomination_cents <= 0:
            raise ValueError("denomination_cents must be positive")
        numbers = [g.number for g in self.games]
        if not self.games or numbers != list(range(1, len(self.games) + 1)):
            raise ValueError("games must be numbered 1..N without gaps (SAS LP 51)")
        if self.handpay_limit_cents <= 0:
            raise ValueError("handpay_limit_cents must be positive")


class HandpayKind(Enum):
    JACKPOT = "jackpot"
    CANCELLED_CREDITS = "cancelled_credits"


@dataclass(frozen=True, slots=True)
class Handpay:
    kind: HandpayKind
    credits: int
    cents: int
    game: int  # 0 for a cancelled-credit handpay

    @property
    def level(self) -> int:
        """LP 1B level byte: 40 non-progressive win, 80 cancelled credits (reference §3.9)."""
        if self.kind is HandpayKind.JACKPOT:
            return HANDPAY_LEVEL_JACKPOT
        return HANDPAY_LEVEL_CANCELLED_CREDITS


@dataclass(frozen=True, slots=True)
class Ticket:
    """A printed cash-out ticket: the machine's validation record for it."""

    validation_number: int  # 16 digits (LP 4D: 8-byte BCD)
    amount_cents: int
    printed_at: datetime
    ticket_number: int

    @property
    def buffer_index(self) -> int:
        """Its slot in the validation buffer, 01-1F (LP 4D by index), reused in turn."""
        return (self.ticket_number - 1) % VALIDATION_BUFFER_SIZE + 1


@dataclass(frozen=True, slots=True)
class Bill:
    dollars: int
    count: int  # lifetime count of that bill after this one


@dataclass(frozen=True, slots=True)
class GameResult:
    game: int
    bet: int  # credits
    win: int  # credits
    handpay: Handpay | None


@dataclass(frozen=True, slots=True)
class LifetimeTotals:
    """Money that moved through the machine since the model was created, in cents.

    Never reset (not by a soft meter reset, not by rollover), never including the starting
    values a scenario may give the meters: the ground truth for money-invariant tests.
    """

    coin_in: int = 0
    coin_out: int = 0  # machine-paid wins (meter 01)
    jackpot: int = 0  # hand-paid wins, counted at handpay reset (meter 02)
    bills: int = 0
    ticket_in: int = 0
    ticket_out: int = 0
    cancelled_credits: int = 0  # all cash-outs (meter 04)
    handpaid_cancelled_credits: int = 0  # cash-outs paid by an attendant (meter 03)
    aft_in: int = 0
    aft_out: int = 0
    games_played: int = 0


@dataclass(slots=True)
class _Totals:
    values: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        LifetimeTotals.__dataclass_fields__, 0))

    def add(self, name: str, cents: int) -> None:
        self.values[name] += cents

    def freeze(self) -> LifetimeTotals:
        return LifetimeTotals(**self.values)


class Machine:
    """One electronic gaming machine (EGM)."""

    def __init__(
        self,
        config: MachineConfig | None = None,
        *,
        now: float = 0.0,
        wall_clock: datetime | None = None,
        seed: int = 0,
    ) -> None:
        self.config = config or MachineConfig()
        self.denomination_cents = self.config.denomination_cents
        self.games = {g.number: g for g in self.config.games}
        self.queue = ExceptionQueue(self.config.queue_capacity, self.config.reissue_interval)
        self._meters = MeterBank(METERS)
        self._game_meters = {n: MeterBank(GAME_METERS) for n in self.games}
        self._totals = _Totals()
        self._rng = random.Random(seed)
        self.credits = 0
        self.selected_game = 1
        self.enabled_games = set(self.games)
        self.locked = False  # LP 01 shutdown / LP 02 startup
        self.game_locked = False  # AFT game lock (LP 74 lock status 00), raised with 6F
        self.sound_on = True
        self.game_sounds_on = True
        self.bill_acceptor_enabled = True
        self.rte_enabled = False
        self.powered = True
        self.doors: dict[Door, bool] = dict.fromkeys(Door, False)  # True = open
        self.tilts: set[int] = set()
        self.handpay: Handpay | None = None
        self.handpay_reset_to_credits = False  # LP A8 method 01
        self.game_delay_ms = 0  # LP 2E: each game end is held this long (0: not at all)
        self._last_game_end: float | None = None
        self.last_bill: Bill | None = None
        self.tickets: list[Ticket] = []  # printed tickets, newest last
        # validation records LP 4D 00 has not read yet, oldest first; 3D persists meanwhile
        self._unread_tickets: deque[Ticket] = deque()
        self.slot_door_openings = 0  # LP 1C "slot door opened" (not a table C-7 meter)
        self.power_resets = 0  # LP 1C "power resets"
        self._clock_base = (now, wall_clock or datetime(2026, 1, 1, tzinfo=UTC))
        self.now = now

    # ------------------------------------------------------------------ reading meters

    def meter(self, code: int, game: int = 0) -> int:
        """True (unwrapped) value of a meter since the last soft reset."""
        bank = self._bank(game)
        if code == 0x0C:
            return self.credits if game == 0 else 0
        if code == 0x22:
            return bank.get(0x01) + bank.get(0x02)
        if code == 0x23:
            return self._meters.get(0x03) + self._meters.get(0x02) if game == 0 else 0
        if code == 0x24:
            return self._meters.get(0x0A) + self._meters.get(0x0B) if game == 0 else 0
        if code not in bank:
            meter_def(code)  # raises UnknownMeterError for codes the machine lacks
            return 0
        return bank.get(code)

    def reported_meter(self, code: int, game: int = 0) -> int:
        """What the machine reports: the true value wrapped at its BCD width."""
        return wrap(code, self.meter(code, game))

    def meters(self, game: int = 0) -> dict[int, int]:
        codes = METERS if game == 0 else (*GAME_METERS, 0x22)
        return {code: self.meter(code, game) for code in codes}

    def reported_meters(self, game: int = 0) -> dict[int, int]:
        return {code: wrap(code, value) for code, value in self.meters(game).items()}

    def totals(self) -> LifetimeTotals:
        return self._totals.freeze()

    def _bank(self, game: int) -> MeterBank:
        if game == 0:
            return self._meters
        try:
            return self._game_meters[game]
        except KeyError:
            raise PlayRefusedError(f"no game {game}") from None

    def _credit(self, code: int, credits: int, game: int = 0) -> None:
        self._meters.add(code, credits)
        if game and code in self._game_meters[game]:
            self._game_meters[game].add(code, credits)

    # ------------------------------------------------------------------ exceptions

    def _report(self, now: float, code: int, rte_code: int | None = None,
                rte_data: bytes = b"") -> None:
        self.queue.push(PendingException(code, code if rte_code is None else rte_code,
                                         rte_data), now)

    def next_exception(self, now: float) -> PendingException | None:
        return self.queue.peek(now)

    def acknowledge_exception(self, exception: PendingException, now: float) -> None:
        self.queue.acknowledge(exception, now)

    # ------------------------------------------------------------------ state checks

    def play_refusal(self, bet: int = 1, game: int | None = None) -> str | None:
        """Why a game cannot be played now, or None if it can."""
        number = self.selected_game if game is None else game
        if not self.powered:
            return "powered off"
        if self.locked:
            return "locked by the host (LP 01)"
        if self.game_locked:
            return "game locked (AFT lock)"
        if self.handpay is not None:
            return "handpay pending"
        if self.doors[Door.SLOT]:
            return "slot door open"
        if self.tilts & BLOCKING_TILTS:
            return "tilt"
        if number not in self.games:
            return f"no game {number}"
        if number not in self.enabled_games:
            return f"game {number} disabled"
        if bet < 1 or bet > self.games[number].max_bet:
            return f"bet {bet} outside 1..{self.games[number].max_bet}"
        if self.credits < bet:
            return "not enough credits"
        return None

    def bill_refusal(self, dollars: int) -> str | None:
        if not self.powered:
            return "powered off"
        if not self.bill_acceptor_enabled:
            return "bill acceptor disabled"
        if self.locked:
            return "locked by the host (LP 01)"
        if self.handpay is not None:
            return "handpay pending"
        if self.tilts & BILL_ACCEPTOR_TILTS:
            return "bill acceptor fault"
        if dollars not in BILL_METERS:
            return f"unknown bill ${dollars}"
        if (dollars * 100) % self.denomination_cents:
            return f"${dollars} is not a whole number of credits"
        return None

    # ------------------------------------------------------------------ play

    def select_game(self, now: float, game: int) -> None:
        if game not in self.games:
            raise PlayRefusedError(f"no game {game}")
        if game != self.selected_game:
            self.selected_game = game
            self._report(now, GAME_SELECTED, rte_data=bcd(game, 2))

    def play_game(self, now: float, *, bet: int, win: int, game: int | None = None) -> GameResult:
        """One complete game: wager, outcome, meters, 7E/7F exceptions.

        A win worth at least the handpay limit locks the machine up for a jackpot handpay
        (51, read with LP 1B); the jackpot meter moves when the handpay is reset.
        """
        if win < 0:
            raise ValueError("win must not be negative")
        number = self.selected_game if game is None else game
        reason = self.play_refusal(bet, number)
        if reason is None and self._delayed(now):
            reason = "game end held by the host (LP 2E)"
        if reason is not None:
            raise PlayRefusedError(reason)
        self._last_game_end = now
        denom = self.denomination_cents
        self.credits -= bet
        self._credit(0x00, bet, number)
        self._credit(0x05, 1, number)
        self._meters.add(0x25, 1)
        self._meters.add(0x26, 1)
        self._totals.add("coin_in", bet * denom)
        self._totals.add("games_played", 1)
        # RTE 7E: credits wagered 2B, coin-in meter 4B, wager type, progressive group (§3.12)
        self._report(now, GAME_STARTED, rte_data=bcd(bet % 10**4, 2)
                     + bcd(self.reported_meter(0x00), 4) + b"\x00\x00")
        handpay: Handpay | None = None
        if win > 0:
            self._credit(0x06, 1, number)
            if win * denom >= self.config.handpay_limit_cents:
                handpay = Handpay(HandpayKind.JACKPOT, win, win * denom, number)
                self._start_handpay(now, handpay)
            else:
                self.credits += win
                self._credit(0x01, win, number)
                self._credit(0x1C, win, number)
                self._totals.add("coin_out", win * denom)
        else:
            self._credit(0x07, 1, number)
        # RTE 7F: game win 4B, excluding bonus awards (§3.12)
        self._report(now, GAME_ENDED, rte_data=bcd(win % 10**8, 4))
        return GameResult(number, bet, win, handpay)

    def _delayed(self, now: float) -> bool:
        """LP 2E: the last game's end is still held, so no new game may start yet."""
        if not self.game_delay_ms or self._last_game_end is None:
            return False
        return now < self._last_game_end + self.game_delay_ms / 1000

    def delay_games(self, delay_ms: int) -> None:
        """LP 2E delay game: hold every game end ``delay_ms`` until changed; 0 ends it
        (reference §3.9b: Monaco delays every game end until changed)."""
        self.game_delay_ms = delay_ms

    def set_game_enabled(self, game: int, enabled: bool) -> bool:
        """LP 09: enable or disable game N; False when there is no such game."""
        if game not in self.games:
            return False
        if enabled:
            self.enabled_games.add(game)
        else:
            self.enabled_games.discard(game)
        return True

    @property
    def last_cashout_ticket(self) -> Ticket | None:
        """LP 3D (reference §3.9b): the cash-out ticket the 3D exception is about, i.e. the
        oldest whose record LP 4D has not read, else the most recent one. Reading it marks
        nothing read: LP 4D services the 3D exception in this model, or on a machine that
        does not answer LP 4D the server marks the record read after a 3D reply."""
        unread = self.peek_validation_info()
        if unread is not None:
            return unread
        return self.tickets[-1] if self.tickets else None

    # ------------------------------------------------------------------ money in

    def insert_bill(self, now: float, dollars: int) -> bool:
        """A bill offered to the acceptor: accepted (True) or rejected with exception 2B."""
        if not self.powered:
            return False
        if self.bill_refusal(dollars) is not None:
            self._report(now, BILL_REJECTED)
            return False
        credits = dollars * 100 // self.denomination_cents
        self.credits += credits
        self._meters.add(0x0B, credits)
        self._meters.add(BILL_METERS[dollars], 1)
        self._totals.add("bills", dollars * 100)
        count = self._meters.get(BILL_METERS[dollars])
        self.last_bill = Bill(dollars, count)
        # non-RTE: a code per common bill, 4F for the rest; RTE: 4F with data (§3.11, §3.12)
        data = bytes([COUNTRY_CODE_US, BILL_DENOMINATION_CODES[dollars]]) + bcd(
            wrap(BILL_METERS[dollars], count), 4)
        self._report(now, BILL_EXCEPTIONS.get(dollars, BILL_ACCEPTED_RTE), BILL_ACCEPTED_RTE,
                     data)
        return True

    def insert_ticket(self, now: float, cents: int) -> bool:
        """A cashable ticket redeemed (the validation system is assumed to approve it)."""
        if cents <= 0:
            raise ValueError("ticket amount must be positive")
        if not self.powered or self.locked or self.handpay is not None:
            return False
        if cents % self.denomination_cents:
            return False
        credits = cents // self.denomination_cents
        self.credits += credits
        self._meters.add(0x0D, cents)
        self._meters.add(0x11, 1)
        self._meters.add(0x15, credits)
        self._meters.add(0x80, cents)
        self._meters.add(0x81, 1)
        self._totals.add("ticket_in", cents)
        self._report(now, TICKET_TRANSFER_COMPLETE)
        return True

    def aft_in(self, now: float, cents: int) -> bool:
        """An in-house cashable AFT transfer to the machine."""
        if cents <= 0 or cents % self.denomination_cents or not self.powered:
            return False
        credits = cents // self.denomination_cents
        self.credits += credits
        self._meters.add(0xA0, cents)
        self._meters.add(0xA1, 1)
        self._meters.add(0x17, credits)
        self._totals.add("aft_in", cents)
        self._report(now, AFT_TRANSFER_COMPLETE)
        return True

    def aft_out(self, now: float, cents: int | None = None) -> int:
        """An in-house cashable AFT transfer to the host; returns the cents moved."""
        if not self.powered or self.handpay is not None:
            return 0
        credits = self.credits if cents is None else min(self.credits,
                                                          cents // self.denomination_cents)
        if credits <= 0:
            return 0
        moved = credits * self.denomination_cents
        self.credits -= credits
        self._meters.add(0xB8, moved)
        self._meters.add(0xB9, 1)
        self._meters.add(0x18, credits)
        self._totals.add("aft_out", moved)
        self._report(now, AFT_TRANSFER_COMPLETE)
        return moved

    # ------------------------------------------------------------------ money out

    def cash_out(self, now: float) -> Ticket | Handpay | None:
        """The player pressed cash-out: a ticket, or a handpay when over the limit or the
        printer cannot print. None when there is nothing to cash out."""
        if not self.powered or self.credits == 0 or self.handpay is not None:
            return None
        self._report(now, CASHOUT_PRESSED)
        credits = self.credits
        cents = credits * self.denomination_cents
        # a full validation buffer (every record unread) cannot take another ticket: a
        # record is never overwritten before the host has read it, so pay by hand instead
        buffer_full = len(self._unread_tickets) >= VALIDATION_BUFFER_SIZE
        if (cents >= self.config.handpay_limit_cents or self.tilts & PRINTER_TILTS
                or buffer_full):
            handpay = Handpay(HandpayKind.CANCELLED_CREDITS, credits, cents, 0)
            self.credits = 0
            self._start_handpay(now, handpay)
            return handpay
        self.credits = 0
        self._meters.add(0x04, credits)
        self._meters.add(0x0E, cents)
        self._meters.add(0x12, 1)
        self._meters.add(0x16, credits)
        self._meters.add(0x86, cents)
        self._meters.add(0x87, 1)
        self._totals.add("cancelled_credits", cents)
        self._totals.add("ticket_out", cents)
        ticket = Ticket(self._rng.randrange(10**15, 10**16), cents, self.clock(now),
                        len(self.tickets) + 1)
        self.tickets.append(ticket)
        self._unread_tickets.append(ticket)
        # SAS priority 3D persists until LP 4D has read every ticket's record
        self.queue.raise_priority(PendingException.simple(TICKET_PRINTED), now, persistent=True)
        return ticket

    @property
    def unread_tickets(self) -> list[Ticket]:
        """Validation records LP 4D 00 has not read yet, oldest first."""
        return list(self._unread_tickets)

    def read_validation_info(self, now: float) -> Ticket | None:
        """LP 4D 00 (current): the oldest record not read yet, now marked read, so a second
        ticket printed before the host read the first is not lost: successive reads return
        them in order. 3D is serviced when none is left; otherwise it is reported again at
        once, so a host that reads one record per 3D reads them all. With nothing unread,
        the most recent record again (a host that lost its reply can read it once more)."""
        if not self._unread_tickets:
            self.queue.service(TICKET_PRINTED)
            return self.tickets[-1] if self.tickets else None
        ticket = self._unread_tickets.popleft()
        if self._unread_tickets:
            self.queue.raise_priority(PendingException.simple(TICKET_PRINTED), now,
                                      persistent=True)
        else:
            self.queue.service(TICKET_PRINTED)
        return ticket

    def peek_validation_info(self) -> Ticket | None:
        """LP 4D FF (look-ahead): the record 00 would return next; nothing is marked read."""
        return self._unread_tickets[0] if self._unread_tickets else None

    def validation_record(self, index: int) -> Ticket | None:
        """LP 4D 01-1F: the record in that buffer slot (read or not; reading changes
        nothing), or None for an empty slot. The buffer keeps the last 31 tickets."""
        for ticket in reversed(self.tickets[-VALIDATION_BUFFER_SIZE:]):
            if ticket.buffer_index == index:
                return ticket
        return None

    # ------------------------------------------------------------------ handpay

    def _start_handpay(self, now: float, handpay: Handpay) -> None:
        self.handpay = handpay
        # SAS §7.8.1: 51 is re-issued every 15 s until LP 1B is read
        self.queue.raise_priority(PendingException.simple(HANDPAY_PENDING), now,
                                  persistent=True)

    def read_handpay_info(self, now: float) -> Handpay | None:
        """LP 1B: the pending handpay; reading it services exception 51."""
        self.queue.service(HANDPAY_PENDING)
        return self.handpay

    def reset_handpay(self, now: float, *, to_credits: bool | None = None) -> Handpay | None:
        """Attendant key-off or LP 94: pay the handpay and unlock. None if none was pending."""
        handpay = self.handpay
        if handpay is None:
            return None
        self.queue.service(HANDPAY_PENDING)
        credit_meter = self.handpay_reset_to_credits if to_credits is None else to_credits
        denom = self.denomination_cents
        if handpay.kind is HandpayKind.JACKPOT:
            if credit_meter:  # LP A8 method 01: the win goes to the credit meter
                self.credits += handpay.credits
                self._credit(0x01, handpay.credits, handpay.game)
                self._credit(0x1C, handpay.credits, handpay.game)
                self._totals.add("coin_out", handpay.credits * denom)
            else:
                self._credit(0x02, handpay.credits, handpay.game)
                self._credit(0x1F, handpay.credits, handpay.game)
                self._totals.add("jackpot", handpay.credits * denom)
        else:
            self._meters.add(0x03, handpay.credits)
            self._meters.add(0x04, handpay.credits)
            self._totals.add("cancelled_credits", handpay.cents)
            self._totals.add("handpaid_cancelled_credits", handpay.cents)
        self.handpay = None
        self.queue.raise_priority(PendingException.simple(HANDPAY_RESET), now)
        return handpay

    # ------------------------------------------------------------------ doors, devices

    def open_door(self, now: float, door: Door) -> None:
        if not self.doors[door]:
            self.doors[door] = True
            if door is Door.SLOT:
                self.slot_door_openings += 1
            self._report(now, door.value[0])

    def close_door(self, now: float, door: Door) -> None:
        if self.doors[door]:
            self.doors[door] = False
            if door is Door.SLOT:
                self._meters.set(0x26, 0)
            self._report(now, door.value[1])

    def tilt(self, now: float, code: int) -> None:
        if code not in KNOWN_TILTS:
            raise ValueError(f"unknown tilt code {code:02X}")
        self.tilts.add(code)
        self._report(now, code)

    def clear_tilts(self) -> None:
        self.tilts.clear()

    def lock(self) -> None:
        """LP 01: stop play (player inputs other than cash-out disabled)."""
        self.locked = True

    def unlock(self) -> None:
        """LP 02."""
        self.locked = False

    def game_lock(self, now: float) -> None:
        """The game locks (as for another host's AFT lock): exception 6F, and LP 74 reads
        lock status 00 until :meth:`game_unlock`."""
        if not self.game_locked:
            self.game_locked = True
            self._report(now, GAME_LOCKED)

    def game_unlock(self) -> None:
        """The game lock is released: no exception (SAS has none for it); LP 74 reads FF."""
        self.game_locked = False

    def set_sound(self, on: bool, *, game_sounds_only: bool = False) -> None:
        if game_sounds_only:
            self.game_sounds_on = on
        else:
            self.sound_on = on
            self.game_sounds_on = on

    def set_bill_acceptor(self, enabled: bool) -> None:
        self.bill_acceptor_enabled = enabled

    def set_rte(self, enabled: bool) -> None:
        self.rte_enabled = enabled

    # ------------------------------------------------------------------ power, resets

    def power_off(self, now: float) -> None:
        if self.powered:
            self._report(now, POWER_LOST)  # kept in NVRAM, reported after power-up
            self.powered = False

    def power_on(self, now: float) -> None:
        if not self.powered:
            self.powered = True
            self.power_resets += 1
            self._meters.set(0x25, 0)
            self._report(now, POWER_APPLIED)

    def reset_soft_meters(self, now: float) -> None:
        """Soft (lifetime) meters to zero, exception 7A. Lifetime totals are untouched."""
        self._meters.reset()
        for bank in self._game_meters.values():
            bank.reset()
        self._report(now, SOFT_METERS_RESET)

    def set_meters_near_rollover(self, margin: int = 100) -> None:
        """Start every stored meter ``margin`` units below its BCD rollover."""
        if margin < 1:
            raise ValueError("margin must be at least 1")
        for code in self._meters.stored():
            if code not in (0x25, 0x26):
                self._meters.set(code, meter_def(code).modulus - margin)
        # games played = won + lost still holds; game 1 carries the history, so the
        # per-game meters still add up to the machine meters
        played = self._meters.get(0x05)
        self._meters.set(0x06, played // 3)
        self._meters.set(0x07, played - played // 3)
        first = min(self._game_meters)
        for code in GAME_METERS:
            if code not in DERIVED:
                self._game_meters[first].set(code, self._meters.get(code))

    def set_meter(self, code: int, value: int, game: int = 0) -> None:
        if code in DERIVED:
            raise ValueError(f"meter {code:02X} is derived from others")
        self._bank(game).set(code, value)

    # ------------------------------------------------------------------ clock

    def clock(self, now: float) -> datetime:
        base_now, base_wall = self._clock_base
        return base_wall + timedelta(seconds=now - base_now)

    def set_clock(self, now: float, wall: datetime) -> None:
        """LP 7F: the host sets date and time."""
        self._clock_base = (now, wall)

    # ------------------------------------------------------------------ snapshot

    def snapshot(self) -> Mapping[str, object]:
        return {
            "credits": self.credits,
            "locked": self.locked,
            "gameLocked": self.game_locked,
            "powered": self.powered,
            "handpay": None if self.handpay is None else self.handpay.cents,
            "doors_open": sorted(d.name.lower() for d, is_open in self.doors.items() if is_open),
            "tilts": sorted(self.tilts),
            "queued": len(self.queue),
        }
