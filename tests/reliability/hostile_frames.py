"""Hostile WebSocket frames: mutations of valid messages (dropped fields, wrong types, unknown
fields, oversized values, wrong type names, broken JSON), reproducible from a seed.

Used by the hypothesis tests of :func:`api.wire.parse_message`, by the hub fuzz over real
connections and by the atheris harness (bench/fuzz/fuzz_wire.py).
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any

from api import wire
from api.wire import ActionAckStatus, ActionStatus

NOW = "2026-05-11T11:10:00.123Z"

WRONG_VALUES: list[Any] = [
    None, True, 0, -1, 2**63, 1.5, float("inf"), "", "x" * 5000, [], [1, "a"], {}, {"a": {}},
    "\u0000", "\U0001f4a9", "2026-13-45T99:99:99Z",
]
#: A lone UTF-16 surrogate: valid as the JSON escape ``"\ud800"`` inside a valid UTF-8 frame,
#: but not encodable as UTF-8 once decoded; ``parse_message`` refuses it with ``bad_message``
#: (test_hostile_actions.py, test_hostile_hub.py).
LONE_SURROGATE = "\ud800"


def templates(terminal_id: str) -> dict[str, list[dict[str, Any]]]:
    """Valid frames of each path, the seeds every mutation starts from."""
    event = wire.event(event_id=f"{terminal_id}-1", seq=1, channel="game",
                       terminal_id=terminal_id, name="betPlaced", timestamp=NOW,
                       data={"amount": 100, "credits": 100, "denomination": 1})
    return {
        "terminal": [
            wire.hello(terminal_id, "0.1.0", 0), event, wire.ping("p"),
            wire.action_ack("a-1", terminal_id, ActionAckStatus.ACCEPTED),
            wire.action_result("a-1", terminal_id, ActionStatus.SUCCEEDED, result={"x": 1}),
        ],
        "client": [
            wire.auth("tok"), wire.subscribe(channels=["game"], request_id="s"),
            wire.subscribe(events=["tilt"], unsubscribe=True), wire.ack_alert(f"{terminal_id}-1"),
            wire.action("act-1", terminal_id, "lock", {"address": 1}, issued_at=NOW),
            wire.get_state("g"), wire.ping("p"),
        ],
        "hub_to_terminal": [
            wire.welcome(terminal_id, 0, NOW), wire.ack(3), wire.ping("p"),
            wire.action("act-1", terminal_id, "lock", {"address": 1}, issued_at=NOW),
            wire.error(wire.ErrorCode.BAD_MESSAGE, "no"),
        ],
    }


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def mutate(rng: random.Random, msg: dict[str, Any]) -> str | bytes:
    """One hostile frame derived from ``msg`` (text, or bytes for a binary frame)."""
    m = copy.deepcopy(msg)
    choice = rng.randrange(12)
    keys = list(m)
    if choice == 0 and keys:  # drop a field
        del m[rng.choice(keys)]
    elif choice == 1 and keys:  # wrong type
        m[rng.choice(keys)] = rng.choice(WRONG_VALUES)
    elif choice == 2:  # unknown fields (must be ignored)
        m[f"x{rng.randrange(1000)}"] = rng.choice(WRONG_VALUES)
    elif choice == 3:  # unknown or misspelt type
        m["type"] = rng.choice(["", "Event", "evnt", "welcome", "snapshot", "x" * 300, 7])
    elif choice == 4:  # not an object
        return json.dumps(rng.choice([[m], "text", 3, None, True]))
    elif choice == 5:  # broken JSON
        text = json.dumps(m)
        return text[: rng.randrange(len(text))]
    elif choice == 6:  # binary frame
        return json.dumps(m).encode()
    elif choice == 7:  # deep nesting
        return '{"type": "ping", "id": "d", "x": ' + _deep(rng.choice([50, 5000, 100000])) + "}"
    elif choice == 8:  # JSON constants Python would accept
        return json.dumps(m)[:-1] + ', "n": NaN}'
    elif choice == 9 and keys:  # the value of a field inside data / params
        for inner in ("data", "params", "result"):
            if isinstance(m.get(inner), dict):
                m[inner][rng.choice(["amount", "address", "playerId", "zz"])] = rng.choice(
                    WRONG_VALUES)
    elif choice == 10:  # huge but valid string id
        m["id"] = "i" * rng.choice([128, 129, 10_000])
    else:  # a duplicate key (the last one wins in json.loads)
        text = json.dumps(m)
        return text[:-1] + ', "type": "ping"}'
    try:
        return json.dumps(m, allow_nan=True)
    except ValueError:
        return json.dumps(str(m))
