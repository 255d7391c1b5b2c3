"""Property tests of the money rules: meters are the truth, whatever the observations.

A model machine plays games (coin-in/coin-out/jackpot meters that wrap at 10^8), while the
interpreter sees a random mix of 7E/7F (missing, duplicated, replayed), partial reads at
random moments, link outages, power cycles and soft meter resets. Whatever the mix, the sum
of betPlaced amounts equals the coin-in the interpreter could see (unwrapped) times the
denomination, the same for wins, and no money event is ever negative.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.derive.interpreter import Interpreter
from agent.derive.sessions import CardState, PlayerSession
from agent.derive.state import AgentState, MachineState
from agent.observations import (
    ExceptionObserved,
    LinkDown,
    LinkUp,
    MachineIdentified,
    MeterReason,
    MetersRead,
    Observation,
    RealTimeEventObserved,
)
from api.events import Event

RANGE = 10**8  # 4-byte BCD credit meters
COIN_IN, COIN_OUT, JACKPOT, GAMES, CREDITS = 0x00, 0x01, 0x02, 0x05, 0x0C
MONEY_EVENTS = {"betPlaced", "winPaid", "billAccepted", "ticketPrinted", "ticketRedeemed",
                "handpayPending", "handpayReset", "cashout", "transferIn", "transferOut",
                "balanceChanged"}


@dataclass
class Model:
    """The machine's true meters and what the interpreter has been shown of them."""

    rte: bool
    denom: int
    meters: dict[int, int]
    interp: Interpreter = field(init=False)
    state: AgentState = field(init=False)
    at: float = 1_700_000_000.0
    events: list[Event] = field(default_factory=list)
    seen: dict[int, int] = field(default_factory=dict)  # last value fed, per money meter
    expected: dict[int, int] = field(default_factory=dict)  # credits the interpreter can see

    def __post_init__(self) -> None:
        self.interp = Interpreter("T1", rte=self.rte, backlog_window=5.0)
        self.state = self.interp.initial_state()

    def feed(self, obs: Observation) -> None:
        events, self.state, _ = self.interp.observe(self.state, obs)
        self.events += events

    def tick(self, seconds: float) -> float:
        self.at += seconds
        return self.at

    def read(self, codes: tuple[int, ...], reason: MeterReason, gap: float = 0.3) -> None:
        values = {c: self.meters[c] for c in codes}
        for code, value in values.items():
            if code in self.seen and code != GAMES:
                self.expected[code] = (self.expected.get(code, 0)
                                       + (value - self.seen[code]) % RANGE)
            self.seen[code] = value
        self.feed(MetersRead(at=self.tick(gap), meters=values, widths=dict.fromkeys(values, 4),
                             reason=reason))

    def play(self, bet: int, win: int, jackpot: int, signal: str) -> None:
        self.meters[COIN_IN] = (self.meters[COIN_IN] + bet) % RANGE
        self.meters[GAMES] += 1
        if signal in ("rte", "both") and self.rte:
            fields = {"credits_wagered": bet, "coin_in_meter": self.meters[COIN_IN],
                      "wager_type": 0, "progressive_group": 0}
            # an RTE 7E carries a coin-in value: the interpreter may use it as a read
            before = self.seen.get(COIN_IN)
            self.feed(RealTimeEventObserved(at=self.tick(0.5), code=0x7E, fields=fields))
            if before is not None and self._used_rte_coin_in():
                self.expected[COIN_IN] = (self.expected.get(COIN_IN, 0)
                                          + (self.meters[COIN_IN] - before) % RANGE)
                self.seen[COIN_IN] = self.meters[COIN_IN]
        elif signal in ("exc", "both"):
            self.feed(ExceptionObserved(at=self.tick(0.5), code=0x7E))
        if signal == "both":
            self.read((COIN_IN, GAMES), "game_start")
        self.meters[COIN_OUT] = (self.meters[COIN_OUT] + win) % RANGE
        self.meters[JACKPOT] = (self.meters[JACKPOT] + jackpot) % RANGE
        if signal != "none":
            self.feed(ExceptionObserved(at=self.tick(2.0), code=0x7F))
        if signal == "dup":
            self.feed(ExceptionObserved(at=self.tick(0.1), code=0x7F))
        if signal in ("exc", "both", "dup"):
            self.read((COIN_IN, COIN_OUT, JACKPOT, GAMES, CREDITS), "game_end")

    def _used_rte_coin_in(self) -> bool:
        baseline = self.state.machine(1).baseline
        return baseline.get(COIN_IN) == self.meters[COIN_IN]

    def sum_of(self, name: str) -> int:
        return sum(e.data["amount"] for e in self.events if e.name == name)


play = st.tuples(st.just("play"), st.integers(1, 200_000), st.integers(0, 200_000),
                 st.integers(0, 1) .map(lambda j: j * 5_000),
                 st.sampled_from(["none", "exc", "rte", "both", "dup"]))
read = st.tuples(st.just("read"),
                 st.sets(st.sampled_from([COIN_IN, COIN_OUT, JACKPOT, GAMES, CREDITS]),
                         min_size=1))
exc = st.tuples(st.just("exc"), st.sampled_from([0x7E, 0x7F, 0x7F, 0x51, 0x70, 0x11, 0x12]))
outage = st.tuples(st.just("outage"), st.sampled_from(["link", "power"]),
                   st.lists(st.integers(1, 50_000), max_size=6))
wait = st.tuples(st.just("wait"), st.floats(0.1, 30.0))
ACTIONS = st.lists(st.one_of(play, read, exc, outage, wait), min_size=5, max_size=40)


def run(model: Model, actions: list[tuple[Any, ...]], *, resets: bool) -> None:
    model.feed(LinkUp(at=model.tick(1)))
    model.feed(MachineIdentified(at=model.tick(0.2), sas_version="602", serial_number="S",
                                 game_id="AB", denomination_cents=model.denom, games=1))
    model.read((COIN_IN, COIN_OUT, JACKPOT, GAMES, CREDITS), "discovery")
    for action in actions:
        kind = action[0]
        if kind == "play":
            model.play(*action[1:])
        elif kind == "read":
            model.read(tuple(sorted(action[1])), "timer")
        elif kind == "exc":
            model.feed(ExceptionObserved(at=model.tick(0.2), code=action[1]))
        elif kind == "wait":
            model.tick(action[1])
        elif kind == "outage":
            if action[1] == "link":
                model.feed(LinkDown(at=model.tick(1), reason="timeout"))
            else:
                model.feed(ExceptionObserved(at=model.tick(1), code=0x18))
            for bet in action[2]:  # play while the agent cannot see
                model.meters[COIN_IN] = (model.meters[COIN_IN] + bet) % RANGE
                model.meters[COIN_OUT] = (model.meters[COIN_OUT] + bet // 2) % RANGE
                model.meters[GAMES] += 1
            if action[1] == "link":
                model.feed(LinkUp(at=model.tick(60)))
            else:
                model.feed(ExceptionObserved(at=model.tick(60), code=0x17))
            for _ in action[2]:  # the queued backlog replays right after
                model.feed(ExceptionObserved(at=model.tick(0.2), code=0x7E))
                model.feed(ExceptionObserved(at=model.tick(0.2), code=0x7F))
        if resets and kind == "wait" and action[1] > 20:
            # soft meters reset (7A): meters go to zero, the reset read follows at once
            model.feed(ExceptionObserved(at=model.tick(0.2), code=0x7A))
            for code in model.meters:
                model.meters[code] = 0
            model.seen.clear()
            model.read((COIN_IN, COIN_OUT, JACKPOT, GAMES, CREDITS), "reset")
    model.read((COIN_IN, COIN_OUT, JACKPOT, GAMES, CREDITS), "snapshot")


def check(model: Model) -> None:
    assert model.sum_of("betPlaced") == model.expected.get(COIN_IN, 0) * model.denom
    wins = model.expected.get(COIN_OUT, 0) + model.expected.get(JACKPOT, 0)
    assert model.sum_of("winPaid") == wins * model.denom
    for event in model.events:
        if event.name in MONEY_EVENTS and event.data.get("amount") is not None:
            assert event.data["amount"] >= 0, event
            assert event.data.get("credits", 0) >= 0, event
    assert "meterRollback" not in {e.name for e in model.events}  # the model never rolls back


start = st.fixed_dictionaries({
    COIN_IN: st.one_of(st.integers(0, RANGE - 1), st.integers(RANGE - 300_000, RANGE - 1)),
    COIN_OUT: st.one_of(st.integers(0, RANGE - 1), st.integers(RANGE - 300_000, RANGE - 1)),
    JACKPOT: st.integers(0, RANGE - 1),
    GAMES: st.integers(0, 10**6),
    CREDITS: st.integers(0, 10_000),
})


@settings(max_examples=150, deadline=None)
@given(st.booleans(), st.sampled_from([1, 2, 5, 10, 25, 100]), start, ACTIONS)
def test_money_sums_equal_meter_deltas(rte: bool, denom: int, meters: dict[int, int],
                                       actions: list[tuple[Any, ...]]) -> None:
    model = Model(rte=rte, denom=denom, meters=dict(meters))
    run(model, actions, resets=False)
    check(model)
    # nothing the interpreter was shown is lost: the whole play is in the sums
    assert model.expected.get(COIN_IN, 0) == (model.meters[COIN_IN] - meters[COIN_IN]) % RANGE


@settings(max_examples=100, deadline=None)
@given(st.booleans(), st.sampled_from([1, 5, 25]), start, ACTIONS)
def test_money_after_resets_sums_right_and_never_negative(
        rte: bool, denom: int, meters: dict[int, int], actions: list[tuple[Any, ...]]) -> None:
    model = Model(rte=rte, denom=denom, meters=dict(meters))
    run(model, actions, resets=True)
    check(model)


# -- state round trip ----------------------------------------------------------------

codes = st.integers(0, 0xFF)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                         st.text(max_size=8))
machines = st.builds(
    MachineState,
    address=st.integers(1, 127),
    baseline=st.dictionaries(codes, st.integers(0, 10**10 - 1), max_size=8),
    widths=st.dictionaries(codes, st.integers(1, 9), max_size=8),
    denomination_cents=st.one_of(st.none(), st.integers(1, 500_000)),
    identity=st.one_of(st.none(), st.dictionaries(st.text(max_size=8), json_scalars,
                                                  max_size=5)),
    link_up=st.booleans(),
    host_locked=st.booleans(),
    doors=st.dictionaries(st.sampled_from(["slot", "drop", "cardCage", "cashbox", "belly"]),
                          st.booleans()),
    handpay=st.one_of(st.none(), st.fixed_dictionaries(
        {"pending": st.booleans(), "amount": st.integers(0, 10**9), "kind": st.text(max_size=8)})),
    game_in_progress=st.one_of(st.none(), st.booleans()),
    selected_game=st.one_of(st.none(), st.integers(0, 9999)),
    reset_pending=st.booleans(),
    options_pending=st.booleans(),
    reconcile_pending=st.booleans(),
    backlog_until=st.one_of(st.none(), st.floats(0, 4e9, allow_nan=False)),
    backlog_read_requested=st.booleans(),
    last_ticket=st.one_of(st.none(), st.text(max_size=18)),
    clock_skewed=st.booleans(),
)
sessions = st.builds(
    PlayerSession, player_id=st.text(min_size=1, max_size=12),
    started_at=st.floats(0, 4e9, allow_nan=False), source=st.sampled_from(["card", "action"]),
    coin_in_cents=st.integers(0, 10**12), coin_out_cents=st.integers(0, 10**12),
    games=st.integers(0, 10**9))
cards = st.builds(CardState, session=st.one_of(st.none(), sessions),
                  employee_id=st.one_of(st.none(), st.text(max_size=12)))
states = st.builds(
    AgentState,
    machines=st.lists(machines, max_size=3).map(lambda ms: {m.address: m for m in ms}),
    cards=cards,
)


@given(states)
def test_state_json_round_trip(state: AgentState) -> None:
    import json

    data = json.loads(json.dumps(state.to_json()))  # what SQLite stores
    assert AgentState.from_json(data) == state


# -- any observation sequence ----------------------------------------------------------

meter_values = st.dictionaries(st.sampled_from([0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x0B, 0x0C,
                                                0x0D, 0x0E, 0x1D, 0x44, 0xA0, 0xB8]),
                               st.integers(0, 10**10 - 1), min_size=1)


def _observations() -> st.SearchStrategy[Observation]:
    at = 0.0  # replaced by the test's clock
    from agent.observations import (
        CardInserted,
        CardRemoved,
        ClockRead,
        HandpayInfoRead,
        HostLockChanged,
        SessionCommand,
        TicketValidationRead,
    )

    card = st.sampled_from(["P1", "P2", "E1"])
    return st.one_of(
        st.builds(ExceptionObserved, at=st.just(at), code=st.integers(0, 0xFF)),
        st.builds(RealTimeEventObserved, at=st.just(at), code=st.sampled_from([0x7E, 0x7F, 0x8C]),
                  fields=st.fixed_dictionaries({
                      "credits_wagered": st.integers(0, 9999),
                      "coin_in_meter": st.integers(0, RANGE - 1),
                      "game_win": st.integers(0, RANGE - 1),
                      "game_number": st.integers(0, 99)})),
        st.builds(MetersRead, at=st.just(at), meters=meter_values,
                  widths=st.dictionaries(st.integers(0, 0xFF), st.sampled_from([4, 5])),
                  reason=st.sampled_from(["timer", "game_end", "reset", "gap", "discovery"])),
        st.builds(LinkUp, at=st.just(at)),
        st.builds(LinkDown, at=st.just(at), reason=st.just("timeout")),
        st.builds(MachineIdentified, at=st.just(at), sas_version=st.just("602"),
                  serial_number=st.just("S"), game_id=st.just("AB"),
                  denomination_cents=st.sampled_from([1, 5, 10]), games=st.integers(1, 3)),
        st.builds(HandpayInfoRead, at=st.just(at), progressive_group=st.integers(0, 255),
                  level=st.sampled_from([0, 1, 0x40, 0x80]), amount_cents=st.integers(0, 10**9),
                  partial_pay_credits=st.integers(0, 9999), reset_id=st.integers(0, 255)),
        st.builds(TicketValidationRead, at=st.just(at), validation_type=st.integers(0, 255),
                  validation_number=st.sampled_from(["0000", "1234", "5678"]),
                  amount_cents=st.integers(0, 10**9), ticket_number=st.integers(0, 9999)),
        st.builds(ClockRead, at=st.just(at), machine_epoch=st.just(at),
                  skew_seconds=st.floats(-1e4, 1e4)),
        st.builds(CardInserted, at=st.just(at), card_id=card,
                  kind=st.sampled_from(["player", "employee"])),
        st.builds(CardRemoved, at=st.just(at), card_id=card,
                  kind=st.sampled_from(["player", "employee"])),
        st.builds(HostLockChanged, at=st.just(at), locked=st.booleans()),
        st.builds(SessionCommand, at=st.just(at), start=st.booleans(),
                  player_id=st.one_of(st.none(), card)),
    )


OBSERVATIONS = _observations()


@settings(max_examples=200, deadline=None)
@given(st.data(), st.booleans())
def test_any_observation_sequence_is_safe(data: st.DataObject, rte: bool) -> None:
    """Whatever arrives: no crash, catalog names only, JSON data, never negative money,
    and the state always survives the outbox's JSON round trip."""
    import json

    interp = Interpreter("T1", rte=rte)
    state = interp.initial_state()
    at = 1_700_000_000.0
    for _ in range(data.draw(st.integers(1, 40))):
        at += data.draw(st.floats(0.05, 30.0))
        obs = replace(data.draw(OBSERVATIONS), at=at)
        events, state, reads = interp.observe(state, obs)
        for event in events:
            json.dumps(event.data)
            for key in ("amount", "credits"):
                value = event.data.get(key)
                assert value is None or (isinstance(value, int) and value >= 0), event
        assert all(read.address == obs.address for read in reads)
        assert AgentState.from_json(json.loads(json.dumps(state.to_json()))) == state
