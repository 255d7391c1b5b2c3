"""The pure interpreter: (state, observation) -> (events, new state, read requests).

No I/O and no clock: every timestamp is the observation's ``at``. The line owner calls
:meth:`Interpreter.observe` for each observation, hands the events and the new state to the
outbox (one transaction) and turns the read requests into polls.

Money rules (docs/events.md, "Money"):

- Money events come only from meter deltas against the stored baseline, whatever triggered
  the read (7E/7F, a bill, a timer). Exceptions are triggers and per-game hints, so a missing
  7E, a duplicated 7F or a replayed backlog can neither lose nor double money.
- The first read of a meter baselines it silently (``meterSnapshot``).
- A decrease is a BCD rollover only from the top 10 % of the range to the bottom 10 %
  (agent.derive.meters.meter_delta); otherwise it is a reset when one was announced (7A, 3A,
  31-39, 3C, a denomination change) -> ``metersReset``, else ``meterRollback``. Either way
  the meter re-baselines and no money is emitted for the drop.
- After a link-up, a power-up (17) or an exception-queue overflow (70), the next meter read
  covers the gap with single events marked ``reconciled: true``; 7E/7F arriving within
  ``backlog_window`` seconds of the link-up or power-up are the machine's queued backlog and
  give no ``gameStarted``/``gameEnded``.

Size: over 500 lines on purpose: the money, door, game and backlog rules act on one machine
state in one step, and their order matters (a reset before a delta, a backlog window before
a game start); the ledgers that stand alone are in tickets.py, bills.py and sessions.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from agent.derive import bills, sessions, tickets
from agent.derive.exceptions_map import (
    BILL_ACCEPTED,
    BILL_ACCEPTOR_FAULTS,
    DEFINED_CODES,
    DOORS,
    GENERIC_CODES,
    MEMORY_ERRORS,
    OPERATOR_MENU,
    PRINTER_FAULTS,
    PROGRESSIVE_HITS,
    REPEAT_WINDOW_S,
    REPEATED_UNTIL_SERVICED,
    RESET_CODES,
    TILTS,
    Exc,
    code_text,
    machine_exception,
)
from agent.derive.meters import (
    BILL_COUNT_VALUES_CENTS,
    NON_CUMULATIVE,
    Change,
    Meter,
    default_width,
    meter_delta,
    meter_name,
)
from agent.derive.sessions import CardState
from agent.derive.state import AgentState, MachineState
from agent.observations import (
    CardInserted,
    CardRemoved,
    ClockRead,
    ExceptionObserved,
    GameLockRead,
    HandpayInfoRead,
    HostLockChanged,
    LastBillRead,
    LinkDown,
    LinkUp,
    MachineIdentified,
    MeterReason,
    MetersRead,
    Observation,
    RealTimeEventObserved,
    SessionCommand,
    TicketValidationRead,
)
from agent.reads import (
    BILL_METERS,
    CASHOUT_METERS,
    GAME_END_METERS,
    GAME_START_METERS,
    HANDPAY_METERS,
    TICKET_METERS,
    TRANSFER_METERS,
    ReadGameLock,
    ReadHandpay,
    ReadIdentity,
    ReadLastBill,
    ReadMeters,
    ReadRequest,
    ReadTicket,
)
from api.events import Channel, Event, utc_timestamp

#: meter reads that cover every meter: they end a pending reset and produce a meterSnapshot.
FULL_READ_REASONS: frozenset[MeterReason] = frozenset({"discovery", "snapshot", "gap", "reset"})

#: credit meters that become money: they need the accounting denomination (SAS §3.8).
_CREDIT_MONEY = frozenset({
    Meter.COIN_IN, Meter.COIN_OUT, Meter.JACKPOT, Meter.HANDPAID_CANCELLED_CREDITS,
    Meter.CANCELLED_CREDITS, Meter.BILLS, Meter.CURRENT_CREDITS, Meter.TOTAL_DROP,
    Meter.COINS_TO_DROP,
})

#: LP 1B level byte (SAS §3.9): 01-20 progressive, 40 non-progressive jackpot, 80 cancelled
#: credits.
_HANDPAY_CANCELLED_CREDITS = 0x80
_HANDPAY_JACKPOT = 0x40


class Outcome(NamedTuple):
    """What one observation produced. Unpack it: ``events, state, reads = outcome``."""

    events: list[Event]
    state: AgentState
    reads: list[ReadRequest]


@dataclass(slots=True)
class _Step:
    """Scratch space while one observation is interpreted (never escapes ``observe``)."""

    machine: MachineState
    cards: CardState
    at: float
    events: list[Event]
    reads: list[ReadRequest]

    def emit(self, name: str, data: Mapping[str, Any] | None = None,
             route: Channel | None = None) -> None:
        self.events.append(Event(name, utc_timestamp(self.at), dict(data or {}), route))

    def read(self, request: ReadRequest) -> None:
        if request not in self.reads:
            self.reads.append(request)


class Interpreter:
    """Turns observations into events for one terminal.

    ``rte``: the line runs in real-time event mode, so RTE 7E frames carry the coin-in meter
    (SAS §3.12) and are used as a coin-in read, saving a poll per game; without RTE (or when
    the frame has no meter) a 7E asks for a coin-in read.
    ``backlog_window``: seconds after a link-up or power-up (17) during which 7E/7F are taken
    as the machine's queued backlog (SAS §4.3 pitfall 4).
    ``clock_skew_threshold``: |machine clock - our clock| in seconds that raises ``clockSkew``.
    ``ticket_settle``: seconds ticket-out meter movement waits for its LP 4D record before it
    is reported as a reconciled ``ticketPrinted`` (:mod:`agent.derive.tickets`).
    ``card_reader``: an employee card reader is configured. Only then can a door opened
    without an employee card be told from an attendant's visit, so only then is
    ``noEmployeeCard`` a reason for ``bypassAttempt`` (docs/events.md, bypassAttempt).
    """

    def __init__(self, terminal_id: str, *, rte: bool = False, backlog_window: float = 10.0,
                 clock_skew_threshold: float = 60.0, ticket_settle: float = 10.0,
                 card_reader: bool = False) -> None:
        self.terminal_id = terminal_id
        self.card_reader = card_reader
        self.rte = rte
        self.backlog_window = backlog_window
        self.clock_skew_threshold = clock_skew_threshold
        self.ticket_settle = ticket_settle

    @staticmethod
    def initial_state() -> AgentState:
        return AgentState()

    def observe(self, state: AgentState, obs: Observation) -> Outcome:
        """Interpret one observation against ``state``; never mutates ``state``."""
        fresh = obs.address not in state.machines
        step = _Step(state.machine(obs.address), state.cards, obs.at, [], [])
        match obs:
            case MetersRead() if obs.game != 0:
                pass  # per-game meters: the whole-machine meters (game 0) are the money truth
            case MetersRead():
                self._meters(step, obs.meters, obs.widths, obs.reason,
                             obs.at if obs.started_at is None else obs.started_at)
            case ExceptionObserved():
                self._exception(step, obs.code, {}, defined=obs.defined)
            case RealTimeEventObserved():
                self._exception(step, obs.code, obs.fields)
            case LinkUp():
                self._link_up(step)
            case LinkDown():
                self._link_down(step, obs.reason, fresh)
            case MachineIdentified():
                self._identified(step, obs)
            case HandpayInfoRead():
                self._handpay_info(step, obs)
            case TicketValidationRead():
                self._ticket(step, obs)
            case LastBillRead():
                step.machine = bills.last_bill(step.machine, obs)
            case ClockRead():
                self._clock(step, obs)
            case GameLockRead():
                self._game_lock(step, obs)
            case HostLockChanged():
                step.machine = replace(step.machine, host_locked=obs.locked)
                step.emit("machineLocked" if obs.locked else "machineUnlocked",
                          {"by": obs.action_id})
            case CardInserted():
                self._cards(step, *sessions.card_inserted(step.cards, obs))
            case CardRemoved():
                self._cards(step, *sessions.card_removed(step.cards, obs))
            case SessionCommand():
                self._cards(step, *sessions.session_command(step.cards, obs))
            case _:
                raise TypeError(f"unknown observation {type(obs).__name__}")
        new_state = replace(state.with_machine(step.machine), cards=step.cards)
        return Outcome(step.events, new_state, step.reads)

    @staticmethod
    def _game_lock(step: _Step, obs: GameLockRead) -> None:
        """LP 74's lock status: 00 is a game lock; 40 (pending) and FF are not, yet (a
        pending lock is read again, agent.line.schedule). One event per change."""
        if obs.locked != step.machine.game_locked:
            step.machine = replace(step.machine, game_locked=obs.locked)
            step.emit("gameLocked" if obs.locked else "gameUnlocked",
                      {"lockStatus": f"0x{obs.lock_status:02X}"})

    # -- cards -------------------------------------------------------------------------

    @staticmethod
    def _cards(step: _Step, events: list[Event], cards: CardState) -> None:
        step.events.extend(events)
        step.cards = cards

    # -- link, identity, clock ---------------------------------------------------------

    def _link_up(self, step: _Step) -> None:
        m = step.machine
        step.emit("machineLinkUp", {"address": m.address, "since": utc_timestamp(step.at)})
        if m.game_locked:
            step.read(ReadGameLock(m.address))  # still locked? (also after an agent restart)
        step.machine = tickets.link_up(replace(m, link_up=True, backlog_read_requested=False,
                                               repeats_seen={}), step.at)
        self._open_backlog(step)

    def _open_backlog(self, step: _Step) -> None:
        """SAS §4.3 pitfall 4: exceptions queued while we could not see the machine replay
        now (even at the very first link-up); play in the gap is reconciled by one delta
        when there is a baseline to reconcile against."""
        m = step.machine
        step.machine = replace(m, reconcile_pending=bool(m.baseline), game_in_progress=None,
                               backlog_until=step.at + self.backlog_window)

    @staticmethod
    def _link_down(step: _Step, reason: str, fresh: bool) -> None:
        m = step.machine
        if m.link_up or fresh:
            step.emit("machineLinkDown", {"address": m.address, "lostAt": utc_timestamp(step.at),
                                          "reason": reason})
        step.machine = replace(m, link_up=False)

    @staticmethod
    def _identified(step: _Step, obs: MachineIdentified) -> None:
        m = step.machine
        identity: dict[str, Any] = {
            "sasVersion": obs.sas_version,
            "serialNumber": obs.serial_number,
            "gameId": obs.game_id,
            "denomination": obs.denomination_cents,
            "games": obs.games,
        }
        if m.identity is not None:
            # A field left empty because its poll failed (LP 54 or 1F lost to line noise)
            # keeps what was known: a lost reply is not a change of options.
            identity = {key: m.identity.get(key) if value in ("", None)
                        and m.identity.get(key) not in ("", None) else value
                        for key, value in identity.items()}
        step.emit("machineIdentified", {"address": m.address, **identity, "info": dict(obs.info)})
        changed = {
            key: [m.identity.get(key), value]
            for key, value in identity.items()
            if m.identity is not None and m.identity.get(key) != value
        }
        if m.identity is not None and (changed or m.options_pending):
            step.emit("optionsChanged", {"changed": changed})
        # A new accounting denomination changes what the credit meters count: treat the next
        # drop as a reset, not as a rollback (SAS §4.3 pitfall 1).
        denomination_changed = (m.denomination_cents is not None
                                and m.denomination_cents != obs.denomination_cents)
        selected = obs.info.get("selectedGame")  # LP 55, when discovery read it
        step.machine = replace(
            m, identity=identity, denomination_cents=obs.denomination_cents,
            options_pending=False, reset_pending=m.reset_pending or denomination_changed,
            selected_game=int(selected) if isinstance(selected, int) else m.selected_game,
        )

    def _clock(self, step: _Step, obs: ClockRead) -> None:
        skewed = abs(obs.skew_seconds) >= self.clock_skew_threshold
        if skewed and not step.machine.clock_skewed:
            step.emit("clockSkew", {"address": step.machine.address,
                                    "skewSeconds": round(obs.skew_seconds, 3),
                                    "machineTime": utc_timestamp(obs.machine_epoch),
                                    "threshold": self.clock_skew_threshold})
        step.machine = replace(step.machine, clock_skewed=skewed)

    # -- handpay and tickets -----------------------------------------------------------

    @staticmethod
    def _handpay_info(step: _Step, obs: HandpayInfoRead) -> None:
        m = step.machine
        if obs.amount_cents == 0 and obs.level == 0:
            return  # LP 1B answered "nothing pending"
        if m.handpay is not None and m.handpay.get("pending"):
            return  # 51 re-issued every 15 s (SAS §4.3 pitfall 5): one handpay, one event
        if obs.level == _HANDPAY_CANCELLED_CREDITS:
            kind = "cancelledCredits"
        elif obs.level == _HANDPAY_JACKPOT:
            kind = "jackpot"
        else:
            kind = "progressive"
        data: dict[str, Any] = {
            "amount": obs.amount_cents,
            "kind": kind,
            "level": obs.level,
            "progressiveGroup": obs.progressive_group,
            "partialPayCredits": obs.partial_pay_credits,
            "resetId": obs.reset_id,
            "playerId": step.cards.player_id,
        }
        step.emit("handpayPending", data)
        step.machine = replace(m, handpay={"pending": True, "amount": obs.amount_cents,
                                           "kind": kind})

    @staticmethod
    def _ticket(step: _Step, obs: TicketValidationRead) -> None:
        events, step.machine, read_meters = tickets.record_read(step.machine, obs,
                                                                step.cards.player_id)
        step.events.extend(events)
        if read_meters:
            step.read(ReadMeters(step.machine.address, "ticket", TICKET_METERS))

    # -- exceptions --------------------------------------------------------------------

    def _exception(self, step: _Step, code: int, fields: Mapping[str, Any],
                   defined: bool = True) -> None:
        m = step.machine
        address = m.address
        if not defined or code not in DEFINED_CODES:
            # a byte outside SAS Table A-1 (§3.11): reported as it came, nothing else done
            step.emit("machineException", *machine_exception(code, defined=False))
            return
        if code in REPEATED_UNTIL_SERVICED:
            # re-reported until the interaction is over (reference §3.4, §4.3 pitfall 5):
            # a repeat within the window is the same one and yields nothing again
            last = m.repeats_seen.get(code)
            step.machine = m = replace(m, repeats_seen={**m.repeats_seen, code: step.at})
            if last is not None and 0 <= step.at - last < REPEAT_WINDOW_S:
                if code == Exc.GAME_LOCKED and not m.game_locked:
                    # not known locked: LP 74 says whether this is a new lock (an unlock
                    # and a lock again within the window), as it says for the first 6F
                    step.read(ReadGameLock(address))
                return
        if code in DOORS:
            self._door(step, *DOORS[code])
        elif code in TILTS:
            step.emit("tilt", {**TILTS[code], "code": code_text(code)})
        elif code in BILL_ACCEPTOR_FAULTS:
            step.emit("billAcceptorFault", {"kind": BILL_ACCEPTOR_FAULTS[code],
                                            "code": code_text(code)})
        elif code in PRINTER_FAULTS:
            step.emit("printerFault", {"kind": PRINTER_FAULTS[code], "code": code_text(code)})
        elif code in OPERATOR_MENU:
            menu, what = OPERATOR_MENU[code]
            step.emit("operatorMenu", {"menu": menu, "state": what})
        elif code in PROGRESSIVE_HITS:
            step.emit("progressiveHit", {"source": PROGRESSIVE_HITS[code],
                                         "code": code_text(code), "level": fields.get("level"),
                                         "amount": fields.get("amount")})
            step.read(ReadMeters(address, "game_end", GAME_END_METERS))
        elif code in BILL_ACCEPTED:
            # a trigger; on a machine whose only bill meter is the drop, also the bill's
            # value, matched with the drop movement (agent/derive/bills.py), and LP 48 asked
            # for: the bill acceptor's own report values the bill (reference §3.9)
            step.machine = bills.seen(m, code, step.at, fields)
            if bills.drop_only(m):
                step.read(ReadLastBill(address))
            step.read(ReadMeters(address, "bill", BILL_METERS))
        elif code == Exc.GAME_STARTED:
            self._game_started(step, fields)
        elif code == Exc.GAME_ENDED:
            self._game_ended(step, fields)
        elif code == Exc.GAME_SELECTED:
            number = fields.get("game_number")
            step.emit("gameSelected", {"gameNumber": number})
            if number is not None:
                step.machine = replace(m, selected_game=int(number))
        elif code == Exc.POWER_RESTORED:
            step.emit("powerRestored")
            self._open_backlog(step)
            step.read(ReadMeters(address, "gap"))
        elif code == Exc.POWER_LOST:
            step.emit("powerLost")
        elif code == Exc.CASHBOX_REMOVED:
            step.emit("cashboxRemoved")
        elif code == Exc.CASHBOX_INSTALLED:
            step.emit("cashboxInstalled")
        elif code == Exc.QUEUE_OVERFLOW:
            # SAS §4.3 pitfall 6: the oldest exceptions are gone; never rebuild games, take
            # a full snapshot and reconcile by delta.
            step.emit("dataGap", {"reason": "exceptionQueueOverflow", "code": code_text(code)})
            step.machine = replace(m, reconcile_pending=True)
            step.read(ReadMeters(address, "gap"))
        elif code == Exc.HANDPAY_PENDING:
            step.read(ReadHandpay(address))
        elif code == Exc.HANDPAY_RESET:
            self._handpay_reset(step)
        elif code in (Exc.TICKET_PRINTED, Exc.HANDPAY_VALIDATED):
            step.machine = tickets.asked(m, step.at)
            step.read(ReadTicket(address))
            step.read(ReadMeters(address, "ticket", TICKET_METERS))
        elif code == Exc.TICKET_INSERTED:
            step.emit("ticketInserted", {"playerId": step.cards.player_id})
        elif code == Exc.TICKET_TRANSFER_COMPLETE:
            # that ticket is done: a 67 now is the next one
            step.machine = replace(m, repeats_seen={
                c: t for c, t in m.repeats_seen.items() if c != Exc.TICKET_INSERTED})
            step.read(ReadMeters(address, "ticket", TICKET_METERS))
        elif code == Exc.CASHOUT_PRESSED:
            step.read(ReadMeters(address, "cashout", CASHOUT_METERS))
        elif code == Exc.AFT_TRANSFER_COMPLETE:
            step.read(ReadMeters(address, "transfer", TRANSFER_METERS))
        elif code == Exc.GAMES_CHANGED:
            step.machine = replace(m, options_pending=True)
            step.read(ReadIdentity(address))
        elif code in GENERIC_CODES:
            # no event of its own: the generic one, on its category's channel (SAS §3.11)
            step.emit("machineException", *machine_exception(code))
            if code == Exc.GAME_LOCKED:
                # SAS §3.11: 6F has no "unlocked" counterpart; LP 74 says the lock state
                # (and is read again while locked, agent.line.schedule)
                step.read(ReadGameLock(address))
            if code == Exc.LEGACY_BONUS:
                step.read(ReadMeters(address, "game_end", GAME_END_METERS))  # bonus -> winPaid
        if code in MEMORY_ERRORS:
            step.emit("memoryError", {"kind": MEMORY_ERRORS[code], "code": code_text(code)})
        if code in RESET_CODES:
            step.machine = replace(step.machine, reset_pending=True,
                                   options_pending=step.machine.options_pending
                                   or code == Exc.OPTIONS_CHANGED)
            if code == Exc.OPTIONS_CHANGED:
                step.read(ReadIdentity(address))  # SAS §3.11: re-read 1F/53/54/A0/B2-B5
            step.read(ReadMeters(address, "reset"))

    def _door(self, step: _Step, door: str, opened: bool, power_off: bool) -> None:
        """Door exceptions; ``bypassAttempt`` when the opening is not accounted for: no
        employee card in a configured reader, or the host has locked the machine."""
        m = step.machine
        known = m.doors.get(door)
        if not power_off and known is opened:
            return  # duplicated exception: the door is already in that state
        step.emit("doorOpened" if opened else "doorClosed", {"door": door, "powerOff": power_off})
        if not power_off:
            step.machine = replace(m, doors={**m.doors, door: opened})
        if opened:
            reasons = []
            if self.card_reader and step.cards.employee_id is None:
                reasons.append("noEmployeeCard")
            if m.host_locked:
                reasons.append("hostLocked")
            if reasons:
                step.emit("bypassAttempt", {"door": door, "powerOff": power_off,
                                            "reasons": reasons})

    def _in_backlog(self, step: _Step) -> bool:
        until = step.machine.backlog_until
        return until is not None and step.at < until

    def _backlog_read(self, step: _Step) -> None:
        """During the backlog window many queued 7E/7F arrive: one read covers them all."""
        if not step.machine.backlog_read_requested:
            step.machine = replace(step.machine, backlog_read_requested=True,
                                   game_in_progress=None)
            step.read(ReadMeters(step.machine.address, "gap"))

    def _game_started(self, step: _Step, fields: Mapping[str, Any]) -> None:
        address = step.machine.address
        coin_in = fields.get("coin_in_meter")
        if self._in_backlog(step) or self._stale_rte_start(step.machine, coin_in):
            self._backlog_read(step)
            return
        data: dict[str, Any] = {"gameNumber": step.machine.selected_game}
        if "credits_wagered" in fields:
            data["wagerCredits"] = int(fields["credits_wagered"])
        step.emit("gameStarted", data)
        step.machine = replace(step.machine, game_in_progress=True)
        if self.rte and coin_in is not None:
            # SAS §3.12: the RTE 7E frame carries the coin-in meter (4-byte BCD credits).
            self._meters(step, {Meter.COIN_IN: int(coin_in)}, {Meter.COIN_IN: 4}, "game_start",
                         step.at)
            step.machine = replace(step.machine, rte_coin_in_at=step.at)
        else:
            step.read(ReadMeters(address, "game_start", GAME_START_METERS))

    @staticmethod
    def _stale_rte_start(m: MachineState, coin_in: Any) -> bool:
        """An RTE 7E of an old, queued game: its coin-in meter is below the baseline, or at
        it while the game it started is still in progress (the same 7E again).

        Reference §3.12 does not say whether the frame's coin-in meter includes the game's
        own wager: a machine that sends it before the wager has every new game's 7E at the
        baseline exactly, after the last game's 7F (taken for old, not one ``gameStarted``
        was emitted), so a meter at the baseline is old only within a game."""
        before = m.baseline.get(Meter.COIN_IN)
        if coin_in is None or before is None:
            return False
        change = meter_delta(before, int(coin_in), 4).change
        return change is Change.DOWN or (change is Change.SAME and m.game_in_progress is True)

    def _game_ended(self, step: _Step, fields: Mapping[str, Any]) -> None:
        address = step.machine.address
        if self._in_backlog(step):
            self._backlog_read(step)
            return
        if step.machine.game_in_progress is not False:
            data: dict[str, Any] = {"gameNumber": step.machine.selected_game}
            if "game_win" in fields:
                data["winCredits"] = int(fields["game_win"])
            step.emit("gameEnded", data)
        # else: a duplicated 7F (no 7E since the last one): no second gameEnded
        step.machine = replace(step.machine, game_in_progress=False)
        step.read(ReadMeters(address, "game_end", GAME_END_METERS))

    @staticmethod
    def _handpay_reset(step: _Step) -> None:
        m = step.machine
        step.read(ReadMeters(m.address, "handpay", HANDPAY_METERS))
        if m.handpay is not None and not m.handpay.get("pending"):
            return  # 52 repeated: that handpay is already reset
        data: dict[str, Any] = {
            "amount": m.handpay.get("amount") if m.handpay else None,
            "kind": m.handpay.get("kind") if m.handpay else None,
            "method": "standard",
            "playerId": step.cards.player_id,
        }
        step.emit("handpayReset", data)
        step.machine = replace(m, handpay={**(m.handpay or {}), "pending": False})

    # -- meters ------------------------------------------------------------------------

    def _meters(self, step: _Step, meters: Mapping[int, int], widths: Mapping[int, int],
                reason: MeterReason, started_at: float) -> None:
        m = step.machine
        if (m.rte_coin_in_at is not None and started_at < m.rte_coin_in_at
                and Meter.COIN_IN in meters):
            # A read spans several polls; an RTE 7E that arrived meanwhile moved the coin-in
            # baseline past the value this read took before it (SAS §3.12): that value is
            # stale, not a rollback. The next read or 7E carries the meter on.
            meters = {c: v for c, v in meters.items() if c != Meter.COIN_IN}
        all_widths = {**m.widths, **widths}
        baseline = dict(m.baseline)
        moved: dict[int, int] = {}  # money meters: code -> delta (>= 0)
        pairs: dict[int, tuple[int, int]] = {}  # code -> (before, after) for moved meters
        reset: dict[int, tuple[int, int]] = {}
        held = False
        for code, after in sorted(meters.items()):
            before = m.baseline.get(code)
            if before is None:
                baseline[code] = after
                continue
            if code in NON_CUMULATIVE:
                baseline[code] = after
                pairs[code] = (before, after)
                continue
            delta = meter_delta(before, after, all_widths.get(code, default_width(code)))
            if delta.change is Change.DOWN or (delta.change is Change.ROLLOVER
                                               and m.reset_pending):
                if m.reset_pending:
                    reset[code] = (before, after)
                else:
                    step.emit("meterRollback", {"meter": meter_name(code),
                                                "code": code_text(code),
                                                "before": before, "after": after})
                baseline[code] = after
                continue
            if delta.amount and code in _CREDIT_MONEY and m.denomination_cents is None:
                held = True  # keep the old baseline: the delta is emitted once identified
                continue
            baseline[code] = after
            moved[code] = delta.amount
            pairs[code] = (before, after)
        if held:
            step.read(ReadIdentity(m.address))

        if not m.baseline or reason in FULL_READ_REASONS:
            step.emit("meterSnapshot", {
                "reason": reason,
                "first": not m.baseline,
                "meters": {meter_name(c): v for c, v in sorted(meters.items())},
            })
        if reset:
            step.emit("metersReset", {
                "before": {meter_name(c): b for c, (b, _) in reset.items()},
                "after": {meter_name(c): a for c, (_, a) in reset.items()},
            })
        if m.baseline:
            self._money(step, moved, pairs)
        step.machine = replace(
            step.machine,
            baseline=baseline,
            widths=all_widths,
            reconcile_pending=False,
            backlog_read_requested=False,
            reset_pending=m.reset_pending and reason not in FULL_READ_REASONS,
        )
        events, step.machine = tickets.meters_read(
            step.machine, moved=moved, pairs=pairs, read=meters, started_at=started_at,
            at=step.at, settle=self.ticket_settle, player_id=step.cards.player_id)
        step.events.extend(events)
        events, step.machine = bills.meters_read(
            step.machine, moved=moved if m.baseline else {}, pairs=pairs,
            started_at=started_at, at=step.at, settle=self.ticket_settle,
            player_id=step.cards.player_id,
            extra={"reconciled": True} if m.reconcile_pending else {})
        step.events.extend(events)

    def _money(self, step: _Step, moved: Mapping[int, int],
               pairs: Mapping[int, tuple[int, int]]) -> None:
        m = step.machine
        denom = m.denomination_cents or 0
        player = step.cards.player_id
        extra: dict[str, Any] = {"reconciled": True} if m.reconcile_pending else {}

        def used(*codes: int) -> dict[str, list[int]]:
            return {meter_name(c): list(pairs[c]) for c in codes if c in pairs}

        def credit_event(name: str, credits: int, meter_codes: tuple[int, ...],
                         **more: Any) -> int:
            cents = credits * denom
            step.emit(name, {"amount": cents, "credits": credits, "denomination": denom,
                             **more, "meters": used(*meter_codes), **extra})
            return cents

        games = moved.get(Meter.GAMES_PLAYED, 0)
        bet = moved.get(Meter.COIN_IN, 0)
        bet_cents = 0
        if bet:
            # games: the games-played delta, null when that meter was not in the read
            bet_cents = credit_event("betPlaced", bet, (Meter.COIN_IN, Meter.GAMES_PLAYED),
                                     games=games if Meter.GAMES_PLAYED in pairs else None,
                                     gameNumber=m.selected_game, playerId=player)
        win_cents = 0
        for code, kinds in (
            (Meter.COIN_OUT, ((Meter.MACHINE_PAID_PROGRESSIVE_WIN, "progressive"),
                              (Meter.MACHINE_PAID_EXTERNAL_BONUS, "bonus"), (None, "machine"))),
            (Meter.JACKPOT, ((Meter.ATTENDANT_PAID_PROGRESSIVE_WIN, "progressive"),
                             (Meter.ATTENDANT_PAID_EXTERNAL_BONUS, "bonus"), (None, "handpay"))),
        ):
            credits = moved.get(code, 0)
            if not credits:
                continue
            # The win is all progressive / all bonus when that split meter moved by the same
            # amount (SAS §4.2); otherwise machine-paid or hand-paid.
            kind, detail = next((k, d) for d, k in kinds if d is None or moved.get(d) == credits)
            codes = (code,) if detail is None else (code, detail)
            win_cents += credit_event("winPaid", credits, codes, kind=kind,
                                      gameNumber=m.selected_game, playerId=player)
        if bet or win_cents or games:
            step.cards = sessions.account(step.cards, coin_in_cents=bet_cents,
                                          coin_out_cents=win_cents, games=games)

        bill_money = bills.metered_bills(m, moved)
        if bill_money is not None:
            # the best bill meter the machine answers (agent/derive/bills.py): 0B credits, LP 20
            # dollars, or the count meters at face value
            cents, faces = bill_money
            counted = (Meter.BILLS, Meter.BILL_DOLLARS,
                       *(c for c in BILL_COUNT_VALUES_CENTS if moved.get(c)))
            # count: always there (EVENTS.md), null when no count meter says it (0B, LP 20)
            more: dict[str, Any] = {"count": sum(faces.values()) if faces else None}
            if faces:
                more["bills"] = {str(face): n for face, n in faces.items()}
            step.emit("billAccepted", {
                "amount": cents,
                "credits": cents // denom if denom and cents % denom == 0 else None,
                "denomination": denom, **more, "meters": used(*counted), "playerId": player,
                **extra})

        tickets_in = moved.get(Meter.TICKET_IN_CASHABLE, 0) + moved.get(
            Meter.TICKET_IN_RESTRICTED, 0)
        if tickets_in:
            step.emit("ticketRedeemed", {
                "amount": tickets_in,
                "meters": used(Meter.TICKET_IN_CASHABLE, Meter.TICKET_IN_RESTRICTED),
                "playerId": player, **extra})

        cancelled = moved.get(Meter.CANCELLED_CREDITS, 0)
        if cancelled:
            if moved.get(Meter.HANDPAID_CANCELLED_CREDITS):
                method = "handpay"
            elif moved.get(Meter.TICKET_OUT_CASHABLE) or moved.get(Meter.TICKET_OUT_RESTRICTED):
                method = "ticket"
            elif moved.get(Meter.AFT_CASHABLE_OUT):
                method = "transfer"
            else:
                method = "unknown"
            credit_event("cashout", cancelled, (
                Meter.CANCELLED_CREDITS, Meter.HANDPAID_CANCELLED_CREDITS,
                Meter.TICKET_OUT_CASHABLE, Meter.TICKET_OUT_RESTRICTED, Meter.AFT_CASHABLE_OUT),
                method=method, playerId=player)

        for code, name in ((Meter.AFT_CASHABLE_IN, "transferIn"),
                           (Meter.AFT_CASHABLE_OUT, "transferOut")):
            cents = moved.get(code, 0)
            if cents:
                step.emit(name, {"amount": cents, "meters": used(code), "playerId": player,
                                 **extra})

        credits_pair = pairs.get(Meter.CURRENT_CREDITS)
        if credits_pair and credits_pair[0] != credits_pair[1] and denom:
            after = credits_pair[1]
            step.emit("balanceChanged", {"credits": after, "amount": after * denom,
                                         "denomination": denom,
                                         "meters": used(Meter.CURRENT_CREDITS),
                                         "playerId": player})
