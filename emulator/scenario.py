"""Scenarios: what happens on the emulated machine over time.

A scenario is a YAML file (format in docs/emulator.md): optional ``options`` for the machine
and the link, an ``end`` policy, and a list of ``steps``. Each step is a mapping with one
action key (``play: 10``, ``open_door: slot``, ``power_cycle: 10`` ...) and optionally
``at: SECONDS`` (run at that offset from the scenario start) — without ``at`` a step starts
when the previous one finished. A file may also be a bare list of steps.

``ScenarioRunner.advance(now)`` runs everything due by ``now``; time is injected, so tests
step it by hand. Steps that act on the link rather than the machine (corrupt bytes, stop
answering, busy) go to a ``LinkControl`` — the served ``Emulator`` is one.

Size: just over 500 lines: the scenario format's parser and its runner, kept together so
that each step's validation stands beside what it does.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from emulator.autoplay import AutoPlayer, AutoplaySettings
from emulator.model import KNOWN_TILTS, Door, Machine, PlayRefusedError
from emulator.profiles import ProfileError, parse_profile_names

BUILTIN = ("autoplay", "idle")
SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"  # bundled (package data)
FOREVER = float("inf")


class ScenarioError(ValueError):
    """A scenario file or step is invalid; the message names the file, step and key."""


class LinkControl(Protocol):
    """Link-level faults a scenario can ask for (the served ``Emulator`` implements them)."""

    def set_corruption(self, fraction: float) -> None: ...
    def silence(self, now: float, seconds: float) -> None: ...
    def set_busy(self, now: float, seconds: float) -> None: ...


@dataclass(frozen=True, slots=True)
class Step:
    action: str
    arg: Any
    at: float | None = None
    line: str = ""  # where it came from, for errors and logs


@dataclass(frozen=True, slots=True)
class ScenarioOptions:
    """Machine and link settings a scenario may carry; command-line flags override them."""

    seed: int | None = None
    address: int | None = None
    rte: bool | None = None
    denomination: int | None = None  # cents per credit
    games_per_minute: float | None = None
    handpay_limit_cents: int | None = None
    unsupported_polls: tuple[int, ...] = ()
    profile: tuple[str, ...] = ()  # emulator.profiles names; empty: not set
    busy_share: float | None = None
    busy_seconds: float | None = None
    noise: float | None = None


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    steps: tuple[Step, ...]
    description: str = ""
    options: ScenarioOptions = field(default_factory=ScenarioOptions)
    end: str = "idle"  # "idle": keep serving after the last step; "stop": stop the emulator


def _money_cents(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ScenarioError(f"{where}: expected an amount like 20 or 1500.00, got {value!r}")
    try:
        cents = round(float(value) * 100)
    except ValueError:
        raise ScenarioError(
            f"{where}: expected an amount like 20 or 1500.00, got {value!r}") from None
    if cents <= 0:
        raise ScenarioError(f"{where}: amount must be positive, got {value!r}")
    return cents


def _seconds(value: Any, where: str, *, allow_forever: bool = False) -> float:
    if allow_forever and value in ("forever", None, True):
        return FOREVER
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScenarioError(f"{where}: expected seconds, got {value!r}")
    if value < 0:
        raise ScenarioError(f"{where}: seconds must not be negative, got {value!r}")
    return float(value)


def _int(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ScenarioError(f"{where}: expected an integer {low}..{high}, got {value!r}")
    return value


def _code(value: Any, where: str) -> int:
    if isinstance(value, str):
        try:
            value = int(value, 16)
        except ValueError:
            raise ScenarioError(
                f"{where}: expected a hex code like 0x20, got {value!r}") from None
    return _int(value, where, 0, 0xFF)


def _play_arg(value: Any, where: str) -> dict[str, int | None]:
    if isinstance(value, int) and not isinstance(value, bool):
        return {"games": _int(value, where, 1, 10**6), "bet": None, "win": None}
    if isinstance(value, Mapping):
        unknown = set(value) - {"games", "bet", "win"}
        if unknown:
            raise ScenarioError(f"{where}: unknown keys {sorted(unknown)} (games, bet, win)")
        return {
            "games": _int(value.get("games", 1), f"{where}.games", 1, 10**6),
            "bet": None if "bet" not in value else _int(value["bet"], f"{where}.bet", 1, 10**4),
            "win": None if "win" not in value else _int(value["win"], f"{where}.win", 0, 10**9),
        }
    raise ScenarioError(f"{where}: expected a game count or {{games, bet, win}}, got {value!r}")


def _door(value: Any, where: str) -> Door:
    try:
        return Door.parse(str(value))
    except ValueError as exc:
        raise ScenarioError(f"{where}: {exc}") from None


def _tilt(value: Any, where: str) -> int:
    code = _code(value, where)
    if code not in KNOWN_TILTS:
        known = ", ".join(f"0x{c:02X}" for c in sorted(KNOWN_TILTS))
        raise ScenarioError(f"{where}: unknown tilt 0x{code:02X} (one of {known})")
    return code


def _fraction(value: Any, where: str) -> float:
    if isinstance(value, str) and value.endswith("%"):
        value = float(value[:-1]) / 100
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ScenarioError(f"{where}: expected a fraction 0..1 or a percentage, got {value!r}")
    return float(value)


def _flag(value: Any, where: str) -> bool:
    if value is None or value is True:
        return True
    if value is False:
        return False
    raise ScenarioError(f"{where}: expected true (or nothing), got {value!r}")


#: action -> validator of its argument (the runner's ``_do_<action>`` executes it)
ACTIONS: dict[str, Callable[[Any, str], Any]] = {
    "play": _play_arg,
    "autoplay": lambda v, w: _seconds(v, w, allow_forever=True),
    "wait": _seconds,
    "open_door": _door,
    "close_door": _door,
    "insert_bill": lambda v, w: _int(v, w, 1, 1_000_000),
    "insert_ticket": _money_cents,
    "print_ticket": _flag,
    "cash_out": _flag,
    "handpay": _money_cents,
    "reset_handpay": _flag,
    "tilt": _tilt,
    "clear_tilts": _flag,
    "game_lock": _flag,
    "game_unlock": _flag,
    "select_game": lambda v, w: _int(v, w, 1, 9999),
    "aft_in": _money_cents,
    "aft_out": _money_cents,
    "power_cycle": lambda v, w: 10.0 if v is None else _seconds(v, w),
    "overflow_queue": lambda v, w: None if v in (None, True) else _int(v, w, 1, 10_000),
    "reset_meters": _flag,
    "meters_near_rollover": lambda v, w: 100 if v in (None, True) else _int(v, w, 1, 10**9),
    "corrupt": _fraction,
    "silence": _seconds,
    "busy": _seconds,
}


def parse_step(raw: Any, where: str) -> Step:
    if isinstance(raw, str):  # a bare action name: "cash_out"
        raw = {raw: None}
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"{where}: a step is a mapping like {{play: 10}}, got {raw!r}")
    at = None
    if "at" in raw:
        at = _seconds(raw["at"], f"{where}.at")
    actions = [k for k in raw if k != "at"]
    if len(actions) != 1:
        raise ScenarioError(
            f"{where}: a step has exactly one action (plus optional 'at'), got {actions}")
    action = str(actions[0])
    validator = ACTIONS.get(action)
    if validator is None:
        raise ScenarioError(
            f"{where}: unknown action {action!r} (one of: {', '.join(sorted(ACTIONS))})")
    return Step(action, validator(raw[action], f"{where}.{action}"), at, where)


_OPTION_KEYS = {"seed", "address", "rte", "denomination", "games_per_minute", "handpay_limit",
                "unsupported_polls", "profile", "busy_share", "busy_seconds", "noise"}


def _profile(raw: Any, where: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, str | list):
        raise ScenarioError(f"{where}: expected a profile name or a list of names, got {raw!r}")
    try:
        return parse_profile_names(raw)
    except ProfileError as exc:
        raise ScenarioError(f"{where}: {exc}") from None


def _options(raw: Any, where: str) -> ScenarioOptions:
    if raw is None:
        return ScenarioOptions()
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"{where}: expected a mapping, got {raw!r}")
    unknown = set(raw) - _OPTION_KEYS
    if unknown:
        raise ScenarioError(f"{where}: unknown keys {sorted(unknown)} "
                            f"(one of: {', '.join(sorted(_OPTION_KEYS))})")
    rte = raw.get("rte")
    if rte is not None and not isinstance(rte, bool):
        raise ScenarioError(f"{where}.rte: expected true or false, got {rte!r}")
    gpm = raw.get("games_per_minute")
    if gpm is not None and (isinstance(gpm, bool) or not isinstance(gpm, int | float)
                            or not 0 < gpm <= 60_000):
        raise ScenarioError(f"{where}.games_per_minute: expected 0 < N <= 60000, got {gpm!r}")
    polls = raw.get("unsupported_polls") or []
    if not isinstance(polls, list):
        raise ScenarioError(f"{where}.unsupported_polls: expected a list, got {polls!r}")
    return ScenarioOptions(
        seed=None if raw.get("seed") is None else _int(raw["seed"], f"{where}.seed", 0, 2**63),
        address=None if raw.get("address") is None else _int(
            raw["address"], f"{where}.address", 1, 127),
        rte=rte,
        denomination=None if raw.get("denomination") is None else _int(
            raw["denomination"], f"{where}.denomination", 1, 500_000),
        games_per_minute=None if gpm is None else float(gpm),
        handpay_limit_cents=None if raw.get("handpay_limit") is None else _money_cents(
            raw["handpay_limit"], f"{where}.handpay_limit"),
        unsupported_polls=tuple(_code(p, f"{where}.unsupported_polls[{i}]")
                                for i, p in enumerate(polls)),
        profile=_profile(raw.get("profile"), f"{where}.profile"),
        busy_share=None if raw.get("busy_share") is None else _fraction(
            raw["busy_share"], f"{where}.busy_share"),
        busy_seconds=None if raw.get("busy_seconds") is None else _seconds(
            raw["busy_seconds"], f"{where}.busy_seconds"),
        noise=None if raw.get("noise") is None else _fraction(raw["noise"], f"{where}.noise"),
    )


def parse_scenario(data: Any, name: str) -> Scenario:
    """Build a scenario from parsed YAML; every problem raises ScenarioError naming the key."""
    if data is None:
        data = []
    if isinstance(data, list):
        data = {"steps": data}
    if not isinstance(data, Mapping):
        raise ScenarioError(f"{name}: a scenario is a list of steps or a mapping with 'steps'")
    unknown = set(data) - {"name", "description", "options", "end", "steps"}
    if unknown:
        raise ScenarioError(f"{name}: unknown top-level keys {sorted(unknown)} "
                            "(name, description, options, end, steps)")
    end = data.get("end", "idle")
    if end not in ("idle", "stop"):
        raise ScenarioError(f"{name}.end: expected 'idle' or 'stop', got {end!r}")
    raw_steps = data.get("steps") or []
    if not isinstance(raw_steps, list):
        raise ScenarioError(f"{name}.steps: expected a list, got {raw_steps!r}")
    steps = tuple(parse_step(raw, f"{name}.steps[{i}]") for i, raw in enumerate(raw_steps))
    return Scenario(
        name=str(data.get("name", name)),
        description=str(data.get("description", "")),
        steps=steps,
        options=_options(data.get("options"), f"{name}.options"),
        end=end,
    )


def bundled_names() -> list[str]:
    names = [p.stem for p in SCENARIO_DIR.glob("*.yaml")]
    return sorted({*BUILTIN, *names})


def load_scenario(name_or_path: str) -> Scenario:
    """``autoplay``, ``idle``, a bundled scenario name, or a path to a YAML file."""
    if name_or_path == "autoplay":
        return Scenario("autoplay", (Step("autoplay", FOREVER),),
                        "a seeded random player, forever")
    if name_or_path == "idle":
        return Scenario("idle", (), "a machine nobody plays")
    path = Path(name_or_path)
    if not path.suffix:
        bundled = SCENARIO_DIR / f"{name_or_path}.yaml"
        if not bundled.is_file():
            raise ScenarioError(f"unknown scenario {name_or_path!r} "
                                f"(one of: {', '.join(bundled_names())}, or a YAML file)")
        text = bundled.read_text(encoding="utf-8")
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ScenarioError(f"{path}: cannot read scenario: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{name_or_path}: not valid YAML: {exc}") from None
    return parse_scenario(data, path.stem if path.suffix else name_or_path)


class NullLink:
    """A ``LinkControl`` that records what was asked (for running a scenario without a link)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []

    def set_corruption(self, fraction: float) -> None:
        self.calls.append(("corrupt", fraction))

    def silence(self, now: float, seconds: float) -> None:
        self.calls.append(("silence", seconds))

    def set_busy(self, now: float, seconds: float) -> None:
        self.calls.append(("busy", seconds))


class ScenarioRunner:
    """Runs a scenario's steps against a machine as injected time advances."""

    def __init__(
        self,
        scenario: Scenario,
        machine: Machine,
        *,
        start: float,
        seed: int = 0,
        link: LinkControl | None = None,
        autoplay: AutoplaySettings | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.scenario = scenario
        self.machine = machine
        self.link: LinkControl = link if link is not None else NullLink()
        self.start = start
        self.rng = random.Random(seed)
        self.player = AutoPlayer(machine, self.rng, autoplay)
        self._log = log or (lambda _message: None)
        self._steps: Iterator[Step] = iter(scenario.steps)
        self._current: Iterator[float] | None = None
        self._wake = start
        self.finished = not scenario.steps
        self.refused: list[str] = []  # why scripted games could not be played
        self.done: list[str] = []  # steps completed, in order

    @property
    def next_due(self) -> float | None:
        return None if self.finished else self._wake

    def advance(self, now: float) -> None:
        """Run every step (or part of one) due by ``now``.

        Steps act at their scheduled time (``at`` offsets and the delays steps yield), so a
        test that jumps the clock far ahead still sees games spaced as configured.
        """
        while not self.finished and self._wake <= now:
            if self._current is None:
                step = next(self._steps, None)
                if step is None:
                    self.finished = True
                    self._log(f"scenario {self.scenario.name}: finished")
                    return
                if step.at is not None:
                    self._wake = max(self._wake, self.start + step.at)
                self._current = self._run(step)
                continue
            delay = next(self._current, None)
            if delay is None:
                self._current = None
            else:
                self._wake += delay

    def _run(self, step: Step) -> Iterator[float]:
        self._log(f"step {step.line}: {step.action} {step.arg!r}")
        handler: Callable[[Step, float], Iterator[float]] = getattr(self, f"_do_{step.action}")
        yield from handler(step, self._wake)
        self.done.append(step.action)

    # -- actions; each is a generator of delays (seconds) --------------------------------

    def _interval(self) -> float:
        return self.player.settings.interval

    def _do_play(self, step: Step, now: float) -> Iterator[float]:
        arg: dict[str, int | None] = step.arg
        m = self.machine
        for index in range(arg["games"] or 1):
            now = self._wake
            game = m.games[m.selected_game]
            bet = arg["bet"] if arg["bet"] is not None else self.player._bet(game.max_bet)
            win = arg["win"] if arg["win"] is not None else self.player._win(bet)
            if m.credits < bet and m.play_refusal(bet) == "not enough credits":
                m.insert_bill(now, 20)  # the player feeds a $20 bill when short
            try:
                m.play_game(now, bet=bet, win=win)
            except PlayRefusedError as exc:
                self.refused.append(f"{step.line} game {index + 1}: {exc.reason}")
            yield self._interval()

    def _do_autoplay(self, step: Step, now: float) -> Iterator[float]:
        until = self._wake + step.arg
        while self._wake < until:
            self.player.tick(self._wake)
            yield self._interval()

    def _do_wait(self, step: Step, now: float) -> Iterator[float]:
        yield step.arg

    def _do_open_door(self, step: Step, now: float) -> Iterator[float]:
        self.machine.open_door(now, step.arg)
        yield from ()

    def _do_close_door(self, step: Step, now: float) -> Iterator[float]:
        self.machine.close_door(now, step.arg)
        yield from ()

    def _do_insert_bill(self, step: Step, now: float) -> Iterator[float]:
        if not self.machine.insert_bill(now, step.arg):
            self.refused.append(f"{step.line}: bill ${step.arg} rejected")
        yield from ()

    def _do_insert_ticket(self, step: Step, now: float) -> Iterator[float]:
        if not self.machine.insert_ticket(now, step.arg):
            self.refused.append(f"{step.line}: ticket rejected")
        yield from ()

    def _do_print_ticket(self, step: Step, now: float) -> Iterator[float]:
        if self.machine.credits == 0:
            self.machine.insert_bill(now, 20)  # something to cash out
        self.machine.cash_out(now)
        yield from ()

    _do_cash_out = _do_print_ticket

    def _do_handpay(self, step: Step, now: float) -> Iterator[float]:
        """A jackpot of the given amount: one minimum-bet game that wins it."""
        m = self.machine
        win = -(-step.arg // m.denomination_cents)
        if m.credits < 1:
            m.insert_bill(now, 20)
        try:
            m.play_game(now, bet=1, win=win)
        except PlayRefusedError as exc:
            self.refused.append(f"{step.line}: {exc.reason}")
        yield from ()

    def _do_reset_handpay(self, step: Step, now: float) -> Iterator[float]:
        self.machine.reset_handpay(now)
        yield from ()

    def _do_tilt(self, step: Step, now: float) -> Iterator[float]:
        self.machine.tilt(now, step.arg)
        yield from ()

    def _do_clear_tilts(self, step: Step, now: float) -> Iterator[float]:
        self.machine.clear_tilts()
        yield from ()

    def _do_game_lock(self, step: Step, now: float) -> Iterator[float]:
        self.machine.game_lock(now)
        yield from ()

    def _do_game_unlock(self, step: Step, now: float) -> Iterator[float]:
        self.machine.game_unlock()
        yield from ()

    def _do_select_game(self, step: Step, now: float) -> Iterator[float]:
        try:
            self.machine.select_game(now, step.arg)
        except PlayRefusedError as exc:
            self.refused.append(f"{step.line}: {exc.reason}")
        yield from ()

    def _do_aft_in(self, step: Step, now: float) -> Iterator[float]:
        self.machine.aft_in(now, step.arg)
        yield from ()

    def _do_aft_out(self, step: Step, now: float) -> Iterator[float]:
        self.machine.aft_out(now, step.arg)
        yield from ()

    def _do_power_cycle(self, step: Step, now: float) -> Iterator[float]:
        self.machine.power_off(now)
        yield step.arg
        self.machine.power_on(self._wake)

    def _do_overflow_queue(self, step: Step, now: float) -> Iterator[float]:
        """Open and close the belly door until the queue has overflowed."""
        m = self.machine
        count = step.arg if step.arg is not None else m.queue.capacity + 6
        for i in range(count):
            (m.open_door if i % 2 == 0 else m.close_door)(now, Door.BELLY)
        if m.doors[Door.BELLY]:
            m.close_door(now, Door.BELLY)
        yield from ()

    def _do_reset_meters(self, step: Step, now: float) -> Iterator[float]:
        self.machine.reset_soft_meters(now)
        yield from ()

    def _do_meters_near_rollover(self, step: Step, now: float) -> Iterator[float]:
        self.machine.set_meters_near_rollover(step.arg)
        yield from ()

    def _do_corrupt(self, step: Step, now: float) -> Iterator[float]:
        self.link.set_corruption(step.arg)
        yield from ()

    def _do_silence(self, step: Step, now: float) -> Iterator[float]:
        self.link.silence(now, step.arg)
        yield from ()

    def _do_busy(self, step: Step, now: float) -> Iterator[float]:
        self.link.set_busy(now, step.arg)
        yield from ()

