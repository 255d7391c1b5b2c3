"""Machine discovery, pure: the identification replies become ``MachineIdentified`` and the
machine's clock becomes ``ClockRead``.

At every link-up (and when the interpreter asks, after exceptions 3C / A2) the line owner
sends LP 54 (SAS version, serial), 1F (ids, accounting denomination), 51 / 55 / 56 (games),
53 and B5 per game (bounded), then 7E (date and time). :class:`Identity` collects the replies
in any order; polls the machine ignores are simply missing.
"""

from __future__ import annotations

import time
from collections.abc import Set
from dataclasses import dataclass, field
from typing import Any

from agent.derive.meters import BILL_COUNT_VALUES_CENTS, Meter, meter_name
from agent.line.meter_reads import EXTENDED, MAX_TABLE_CODE, SELECTED, legacy_poll_for
from agent.observations import ClockRead, MachineIdentified
from sas_protocol.denominations import DENOMINATION_CENTS
from sas_protocol.messages.features import (
    EnabledFeaturesReply,
    Features1,
    Features2,
    Features3,
    Features4,
)
from sas_protocol.messages.responses import (
    DateTimeReply,
    EnabledGamesReply,
    ExtendedGameInfoReply,
    GameConfigurationReply,
    GameCountReply,
    MachineInfoReply,
    SasVersionReply,
    SelectedGameReply,
)

#: per-game polls (53, B5) are sent for at most this many games: a 200-game machine must not
#: hold the line for minutes at every link-up.
MAX_GAMES_DETAILED = 8


def machine_epoch(reply: DateTimeReply) -> float | None:
    """LP 7E fields as epoch seconds; machines keep local time (the host's zone is assumed).

    None when the machine sent an impossible date (an unset clock reads all zeros)."""
    try:
        return time.mktime((reply.year, reply.month, reply.day, reply.hour, reply.minute,
                            reply.second, 0, 0, -1))
    except (OverflowError, ValueError):
        return None


def clock_read(reply: DateTimeReply, *, address: int, at: float) -> ClockRead | None:
    epoch = machine_epoch(reply)
    if epoch is None or not 1 <= reply.month <= 12 or not 1 <= reply.day <= 31:
        return None
    return ClockRead(at=at, address=address, machine_epoch=epoch, skew_seconds=epoch - at)


@dataclass(slots=True)
class Identity:
    """What the identification polls told about one machine."""

    address: int
    version: SasVersionReply | None = None
    info: MachineInfoReply | None = None
    game_count: int | None = None
    selected_game: int | None = None
    enabled_games: tuple[int, ...] | None = None
    games: dict[int, dict[str, Any]] = field(default_factory=dict)
    features: EnabledFeaturesReply | None = None  # LP A0 for the whole machine (game 0)

    def add(self, reply: object) -> None:
        """Record one reply (types other than the identification replies are ignored)."""
        match reply:
            case SasVersionReply():
                self.version = reply
            case MachineInfoReply():
                self.info = reply
            case GameCountReply():
                self.game_count = reply.count
            case SelectedGameReply():
                self.selected_game = reply.game
            case EnabledGamesReply():
                self.enabled_games = reply.games
            case EnabledFeaturesReply(game=0):
                self.features = reply
            case GameConfigurationReply():
                self.games.setdefault(reply.game, {}).update({
                    "gameId": reply.game_id.strip(),
                    "paytableId": reply.paytable_id.strip(),
                    "maxBet": reply.max_bet,
                    "basePercent": _percent(reply.base_percent),
                    "denomination": DENOMINATION_CENTS.get(reply.denomination),
                })
            case ExtendedGameInfoReply():
                self.games.setdefault(reply.game, {}).update({
                    "name": reply.name,
                    "paytable": reply.paytable,
                    "maxBet": reply.max_bet,
                    "progressiveGroup": reply.progressive_group,
                })

    def detail_games(self) -> list[int]:
        """Games to ask 53 / B5 about: the enabled ones, else 1..count, bounded."""
        if self.enabled_games:
            games = list(self.enabled_games)
        elif self.game_count:
            games = list(range(1, self.game_count + 1))
        else:
            games = []
        return games[:MAX_GAMES_DETAILED]

    def denomination_cents(self) -> int | None:
        """The accounting denomination from LP 1F, else from game 1's LP 53 (SAS §3.8)."""
        if self.info is not None and self.info.denomination in DENOMINATION_CENTS:
            return DENOMINATION_CENTS[self.info.denomination]
        for number in sorted(self.games):
            cents = self.games[number].get("denomination")
            if cents:
                return int(cents)
        return None

    def observation(self, *, at: float, unsupported: tuple[int, ...]) -> MachineIdentified | None:
        """``MachineIdentified``, or None while the denomination is unknown: credit meters
        cannot become money without it, so the interpreter keeps asking (ReadIdentity)."""
        denomination = self.denomination_cents()
        if denomination is None:
            return None
        extra: dict[str, Any] = {}
        if self.info is not None:
            extra.update({
                "additionalId": self.info.additional_id.strip(),
                "maxBet": self.info.max_bet,
                "paytableId": self.info.paytable_id.strip(),
                "basePercent": _percent(self.info.base_percent),
                "progressiveGroup": self.info.progressive_group,
            })
        if self.selected_game is not None:
            extra["selectedGame"] = self.selected_game
        if self.enabled_games is not None:
            extra["enabledGames"] = list(self.enabled_games)
        if self.games:
            extra["gameDetails"] = {str(n): d for n, d in sorted(self.games.items())}
        if self.features is not None:
            extra["features"] = feature_names(self.features)
        games = self.game_count
        if games is None:
            games = len(self.enabled_games) if self.enabled_games else 1
        return MachineIdentified(
            at=at,
            address=self.address,
            sas_version=self.version.version if self.version else "",
            serial_number=self.version.serial.strip() if self.version else "",
            game_id=self.info.game_id.strip() if self.info else "",
            denomination_cents=denomination,
            games=games,
            info=extra,
            unsupported_polls=unsupported,
        )

    def as_result(self) -> dict[str, Any]:
        """The data of a MACHINE_INFO command result."""
        out: dict[str, Any] = {"address": self.address}
        if self.version is not None:
            out["sasVersion"] = self.version.version
            out["serialNumber"] = self.version.serial.strip()
        if self.info is not None:
            out.update({
                "gameId": self.info.game_id.strip(),
                "additionalId": self.info.additional_id.strip(),
                "denomination": DENOMINATION_CENTS.get(self.info.denomination),
                "maxBet": self.info.max_bet,
                "paytableId": self.info.paytable_id.strip(),
                "basePercent": _percent(self.info.base_percent),
            })
        return out


def _percent(text: str) -> float | None:
    """4 ASCII digits with an implied decimal point ("9500" -> 95.0)."""
    digits = text.strip()
    return int(digits) / 100 if digits.isdigit() else None


#: money classes and the meters that count them, best first (docs/events.md, "Which meters
#: make which event" and "Bills on every meter profile").
_MONEY_METERS: dict[str, tuple[int, ...]] = {
    "bets": (Meter.COIN_IN,),
    "wins": (Meter.COIN_OUT, Meter.JACKPOT),
    "bills": (Meter.BILLS, Meter.BILL_DOLLARS, *BILL_COUNT_VALUES_CENTS, Meter.TOTAL_DROP),
    "ticketsIn": (Meter.TICKET_IN_CASHABLE, Meter.TICKET_IN_RESTRICTED),
    "ticketsOut": (Meter.TICKET_OUT_CASHABLE, Meter.TICKET_OUT_RESTRICTED),
    "cashouts": (Meter.CANCELLED_CREDITS,),
    "handpays": (Meter.JACKPOT, Meter.HANDPAID_CANCELLED_CREDITS),
    "transfers": (Meter.AFT_CASHABLE_IN, Meter.AFT_CASHABLE_OUT),
}


def feature_names(reply: EnabledFeaturesReply) -> list[str]:
    """The LP A0 feature bits a machine set, by name (``maxPollingRate40ms``, ``aft``, ...),
    in the order of the reference's table (§3.9b)."""
    names: list[str] = []
    for flags, value in ((Features1, reply.features1), (Features2, reply.features2),
                         (Features3, reply.features3), (Features4, reply.features4)):
        for flag in flags:
            if value & flag and flag.name is not None:
                head, *rest = flag.name.lower().split("_")
                names.append(head + "".join(word.capitalize() for word in rest))
    return names


def meter_poll(code: int, ignored: Set[int], lacking: Set[int] = frozenset()) -> str | None:
    """The long poll that reads meter ``code`` on a machine that ignores the polls in
    ``ignored`` and lacks the meters in ``lacking`` (the agent.line.meter_reads stepdown)."""
    if code in lacking:
        return None
    if code <= MAX_TABLE_CODE and EXTENDED not in ignored:
        return "LP 6F"
    if code <= 0xFF and SELECTED not in ignored:
        return "LP 2F"
    if code > MAX_TABLE_CODE and (EXTENDED not in ignored or SELECTED not in ignored):
        return None  # a legacy stand-in: read only where 6F and 2F are not answered
    legacy = legacy_poll_for({code}, ignored)
    return None if legacy is None else f"LP {legacy:02X}"


def ticket_records(ignored: Set[int]) -> str | None:
    """The poll that reads a cash-out ticket's record: LP 4D, else LP 3D (standard
    validation, reference §3.9b), else None."""
    if 0x4D not in ignored:
        return "LP 4D"
    if 0x3D not in ignored:
        return "LP 3D"
    return None


def money_sources(ignored: Set[int], lacking: Set[int] = frozenset()) -> dict[str, str]:
    """Per money class, the meters (and polls) it is counted from on this machine, or
    ``"not metered"``: the ``diag`` fact "which money it can meter, and from what". A machine
    without LP 2F/6F counts bills by LP 46 (0B), else LP 20 (dollars), else LP 1E (counts),
    else by the drop and the bill exceptions, valued by LP 48 where it answers it."""
    records = ticket_records(ignored)
    out: dict[str, str] = {}
    for money, codes in _MONEY_METERS.items():
        found = [(code, poll) for code in codes
                 if (poll := meter_poll(code, ignored, lacking)) is not None]
        if money == "bills" and found:
            found = [found[0]]  # the best bill meter is the one counted from
        if not found:
            out[money] = "not metered"
            continue
        parts = [f"{meter_name(code)} ({poll})" for code, poll in found]
        if money == "bills" and found[0][0] == Meter.TOTAL_DROP:
            parts.append("exceptions 47-4F")
            if 0x48 not in ignored:
                parts.append("LP 48")
        elif money == "ticketsOut" and records is not None:
            parts.append(f"{records} records")
        elif money == "handpays":
            parts.append("LP 1B")
        out[money] = " + ".join(parts)
    if (out["ticketsOut"] == "not metered" and records is not None
            and out["cashouts"] != "not metered"):
        out["ticketsOut"] = f"{records} records matched with {out['cashouts']}"
    return out

