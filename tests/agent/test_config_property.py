"""Property: any YAML-shaped input gives a Config or a ConfigError naming keys, never a crash."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config import Config, ConfigError, parse_config

SECTIONS = ["serial", "poll", "card_reader", "outbox", "uplink", "actions", "metrics", "logging"]
KEYS = ["port", "baudrate", "interval_ms", "reply_timeout_ms", "pattern", "player_prefixes",
        "path", "max_events", "url", "token", "token_env", "window", "batch", "level",
        "format", "enabled", "address", "rte", "hmac_key_file", "typo_key"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**7, 10**7), st.floats(allow_nan=True),
    st.text(max_size=12),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)
), max_leaves=8)
documents = st.one_of(
    values,
    st.fixed_dictionaries(
        {"terminal_id": st.one_of(st.just("EGM-1"), scalars)},
        optional={
            "machines": st.one_of(values, st.lists(
                st.dictionaries(st.sampled_from(["address", "rte", "x"]), scalars), max_size=3)),
            **{name: st.one_of(values, st.dictionaries(st.sampled_from(KEYS), scalars))
               for name in SECTIONS},
        },
    ),
)


@settings(max_examples=300, deadline=None)
@given(documents)
def test_parse_config_only_raises_config_error_with_key_paths(data: Any) -> None:
    try:
        cfg = parse_config(data)
    except ConfigError as exc:
        assert exc.problems
        for problem in exc.problems:
            head = problem.path.split(".")[0].split("[")[0]
            known = {"(root)", "terminal_id", "machines", "control_socket", *SECTIONS}
            assert head in known or (isinstance(data, dict) and head in map(str, data)), problem
            assert problem.message
    else:
        assert isinstance(cfg, Config) and cfg.machines
