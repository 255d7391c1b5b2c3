"""The one config validation mechanism: every problem at once, key paths, did-you-mean."""

from __future__ import annotations

from pathlib import Path

import pytest

from configkit import ConfigError, Problem, Section, load_yaml


def test_every_problem_is_reported_with_its_key_path() -> None:
    problems: list[Problem] = []
    top = Section({"poll": {"interval_ms": "fast", "retries": 0}, "levle": "x"}, "", problems)
    poll = top.section("poll")
    assert poll.integer("interval_ms", 200, lo=1) == 200  # the default, and a problem
    assert poll.integer("retries", 3, lo=1, hi=5) == 3
    poll.finish()
    top.choice("level", "info", ("debug", "info"))
    top.finish()
    assert [str(p) for p in problems] == [
        'poll.interval_ms: must be an integer >= 1, got "fast"',
        "poll.retries: must be an integer from 1 to 5, got 0",
        "levle: unknown key at the top level; did you mean 'level'?",
    ]


def test_choices_ignore_case_and_come_back_as_declared() -> None:
    problems: list[Problem] = []
    sec = Section({"synchronous": "full", "level": "INFO"}, "", problems)
    assert sec.choice("synchronous", "FULL", ("FULL", "NORMAL")) == "FULL"
    assert sec.choice("level", "warning", ("debug", "info", "warning")) == "info"
    assert problems == []


@pytest.mark.parametrize(("data", "expected"), [
    ({}, 90.0), ({"days": None}, None), ({"days": 7}, 7.0),
])
def test_optional_numbers_take_null_for_none(data: dict[str, object],
                                             expected: float | None) -> None:
    problems: list[Problem] = []
    assert Section(data, "", problems).optional_number("days", 90.0, lo=1) == expected
    assert problems == []


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), True, "1"])
def test_numbers_refuse_what_is_not_a_finite_number(bad: object) -> None:
    problems: list[Problem] = []
    assert Section({"x": bad}, "s", problems).number("x", 1.5) == 1.5
    assert [p.path for p in problems] == ["s.x"]


def test_relative_paths_are_relative_to_the_config_folder(tmp_path: Path) -> None:
    problems: list[Problem] = []
    sec = Section({"tokens": "tokens.yaml", "db": "/var/db"}, "", problems)
    assert sec.file_path("tokens", tmp_path) == tmp_path / "tokens.yaml"
    assert sec.file_path("db", tmp_path) == Path("/var/db")
    assert sec.file_path("key", tmp_path, required=True) is None
    assert [str(p) for p in problems] == ["key: required: a path"]


def test_a_yaml_syntax_error_names_the_line_and_column(tmp_path: Path) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text("a: 1\nb: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_yaml(file)
    (problem,) = info.value.problems
    assert problem.path == "(file)" and "line 3, column 1" in problem.message
    with pytest.raises(ConfigError, match="cannot read"):
        load_yaml(tmp_path / "missing.yaml")
