"""A scripted shift on one machine, interpreted, compared with the golden event frames.

The golden file (tests/agent/data/interpreter_golden_events.json) is the source of the JSON
examples in docs/events.md; tests/agent/test_interpreter_docs.py checks they agree.
Regenerate after a deliberate change with ``SLOT_AGENT_UPDATE_GOLDEN=1``.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from agent.derive.interpreter import Interpreter
from agent.observations import (
    CardInserted,
    CardRemoved,
    ClockRead,
    ExceptionObserved,
    HandpayInfoRead,
    HostLockChanged,
    LinkDown,
    LinkUp,
    MachineIdentified,
    MetersRead,
    Observation,
    RealTimeEventObserved,
    SessionCommand,
    TicketValidationRead,
)
from api.events import StoredEvent

GOLDEN = Path(__file__).parent / "data" / "interpreter_golden_events.json"
TERMINAL = "T-0042"
T0 = 1_778_497_800.0  # 2026-05-11T11:10:00Z


def _meters(at: float, reason: Any, **values: int) -> MetersRead:
    codes = {int(name[1:], 16): value for name, value in values.items()}
    widths = {code: 5 if code in (0x0D, 0x0E, 0xA0, 0xB8) else 4 for code in codes}
    return MetersRead(at=at, meters=codes, widths=widths, reason=reason)


def _exc(at: float, code: int) -> ExceptionObserved:
    return ExceptionObserved(at=at, code=code)


def _identified(at: float, denomination: int) -> MachineIdentified:
    return MachineIdentified(at=at, sas_version="602", serial_number="EGM-778812",
                             game_id="AT", denomination_cents=denomination, games=1,
                             info={"paytableId": "PT0042", "basePercent": 92.5})


def scenario() -> list[Observation]:
    """A shift: discovery, a carded player, a game, a bill, a handpay, a ticket cash-out,
    transfers, doors, faults, an overflow, an outage with backlog, a reset, a new denom."""
    t = T0
    full = {"m00": 1_204_000, "m01": 1_100_000, "m02": 50_000, "m03": 0, "m04": 90_000,
            "m05": 48_000, "m0B": 200_000, "m0C": 0, "m0D": 150_000, "m0E": 9_000_000,
            "mA0": 0, "mB8": 0, "m44": 120, "m47": 300}
    legacy = {"m00": 300_000, "m01": 270_000, "m02": 0, "m04": 10_000, "m05": 9_000,
              "m06": 4_000, "m24": 518_000, "m0C": 0}
    obs: list[Observation] = [
        LinkUp(at=t),
        _identified(t + 0.4, 1),
        _meters(t + 1.2, "discovery", **full),
        CardInserted(at=t + 30, card_id="P0012345", kind="player"),
        RealTimeEventObserved(at=t + 31, code=0x8C, fields={"game_number": 1}),
        _exc(t + 40, 0x4C),  # $100 bill accepted
        _meters(t + 40.3, "bill", m0B=210_000, m0C=10_000, m44=120, m47=301),
        _exc(t + 50, 0x7E),
        _meters(t + 50.2, "game_start", m00=1_204_100, m05=48_001, m0C=9_900),
        _exc(t + 53, 0x7F),
        _meters(t + 53.3, "game_end", m00=1_204_100, m01=1_100_250, m02=50_000,
                m05=48_001, m0C=10_150),
        _exc(t + 60, 0x51),
        HandpayInfoRead(at=t + 60.2, progressive_group=0, level=0x40, amount_cents=125_000,
                        partial_pay_credits=0, reset_id=0),
        _exc(t + 75, 0x51),  # re-issued after 15 s: no second handpayPending
        _exc(t + 300, 0x52),
        _meters(t + 300.3, "handpay", m02=175_000, m03=0, m04=90_000, m0C=10_150),
        _exc(t + 400, 0x66),
        _meters(t + 401, "cashout", m03=0, m04=100_150, m0C=0, m0E=9_010_150, mB8=0),
        _exc(t + 401.5, 0x3D),
        TicketValidationRead(at=t + 401.7, validation_type=0,
                             validation_number="0012345678901234", amount_cents=10_150,
                             ticket_number=311),
        _exc(t + 420, 0x67),
        _exc(t + 421, 0x68),
        _meters(t + 421.3, "ticket", m0C=2_000, m0D=152_000),
        _exc(t + 430, 0x69),
        _meters(t + 430.3, "transfer", m0C=7_000, mA0=5_000, mB8=0),
        _exc(t + 440, 0x69),
        _meters(t + 440.3, "transfer", m0C=0, mA0=5_000, mB8=7_000),
        CardRemoved(at=t + 450, card_id="P0012345", kind="player"),
        _exc(t + 500, 0x11),  # slot door opened, no employee card
        _exc(t + 520, 0x12),
        CardInserted(at=t + 600, card_id="E-77", kind="employee"),
        _exc(t + 610, 0x1B),
        _exc(t + 700, 0x1C),
        _exc(t + 710, 0x84),
        _exc(t + 760, 0x85),
        CardRemoved(at=t + 800, card_id="E-77", kind="employee"),
        _exc(t + 900, 0x23),  # hopper empty
        _exc(t + 910, 0x28),  # bill jam
        _exc(t + 920, 0x61),  # printer paper out
        _exc(t + 930, 0x56),  # SAS progressive level hit
        HostLockChanged(at=t + 1000, locked=True, action_id="act-7f3c"),
        HostLockChanged(at=t + 1100, locked=False, action_id="act-7f40"),
        ClockRead(at=t + 1200, machine_epoch=t + 1200 - 184.5, skew_seconds=-184.5),
        _exc(t + 1300, 0x70),
        _meters(t + 1301, "gap", m00=1_204_300, m01=1_100_400),
        LinkDown(at=t + 1400, reason="no reply to 5 polls"),
        LinkUp(at=t + 1700),
        _exc(t + 1700.4, 0x7E),  # queued backlog: no game storm
        _exc(t + 1700.6, 0x7F),
        _meters(t + 1701, "discovery", m00=1_206_300, m01=1_101_900, m05=48_021),
        _exc(t + 1800, 0x18),
        _exc(t + 1900, 0x17),
        _exc(t + 1900.5, 0x99),  # slot door opened while the power was off
        _meters(t + 1901, "gap", m00=1_206_300),
        _meters(t + 2000, "timer", m01=1_000_000),  # a drop with no reset announced
        _exc(t + 2100, 0x32),  # RAM error, data not recovered
        _meters(t + 2101, "reset", m00=0, m01=0, m02=0, m05=0),
        _exc(t + 2200, 0x3C),
        _identified(t + 2200.5, 5),
        SessionCommand(at=t + 2300, start=True, player_id="P-2002", action_id="act-8001"),
        SessionCommand(at=t + 2400, start=False, player_id=None, action_id="act-8002"),
        _exc(t + 2500, 0x3B),  # low backup battery: no event of its own
        # a second, legacy machine (LP 0F/1A/1C only): its bill meter is the total drop
        LinkUp(at=t + 2600, address=2),
        replace(_identified(t + 2600.4, 1), address=2),
        replace(_meters(t + 2601, "discovery", **legacy), address=2),
        replace(_exc(t + 2700, 0x4A), address=2),  # $20 bill accepted
        replace(_meters(t + 2700.3, "bill", m24=520_000, m0C=2_000), address=2),
        replace(_meters(t + 2800, "timer", m24=525_000), address=2),  # a lost 4B
        replace(_meters(t + 2815, "timer", m24=525_000), address=2),
    ]
    return obs


def run_scenario() -> list[dict[str, Any]]:
    interp = Interpreter(TERMINAL, backlog_window=10.0, clock_skew_threshold=60.0,
                         card_reader=True)
    state = interp.initial_state()
    frames: list[dict[str, Any]] = []
    for obs in scenario():
        events, state, _ = interp.observe(state, obs)
        for event in events:
            frames.append(StoredEvent(len(frames) + 1, TERMINAL, event).to_wire())
    return frames


def test_golden_events() -> None:
    frames = run_scenario()
    if os.environ.get("SLOT_AGENT_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(frames, indent=1) + "\n")
    assert frames == json.loads(GOLDEN.read_text())


def test_golden_money_matches_the_meters() -> None:
    frames = run_scenario()

    def total(name: str) -> int:
        return sum(f["data"]["amount"] for f in frames if f["event"] == name)

    # coin-in 1_204_000 -> 1_206_300 before the RAM clear, 1 cent credits
    assert total("betPlaced") == 2_300
    # coin-out 1_100_000 -> 1_101_900 (the later drop is a rollback), jackpot +125_000
    assert total("winPaid") == 1_900 + 125_000
    # $100 by the bills meter; $20 on the legacy machine by its exception and the drop, whose
    # other 5_000 credits no exception explained
    assert total("billAccepted") == 10_000 + 2_000
    assert total("unexplainedMeterChange") == 5_000
    assert total("cashout") == 10_150
    assert total("transferIn") == 5_000 and total("transferOut") == 7_000
