"""Logging: JSON shape, human format, secret masking, runtime level changes, elided hex."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.ops import logs
from agent.ops.logs import (
    redact,
    register_secret,
    set_level,
    setup_logging,
    under_systemd,
)

TOKEN = "s3cr3t-T0ken.with+chars/=="


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def clean_logging() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    if logs._installed is not None:
        root.removeHandler(logs._installed)
        logs._installed = None
    root.setLevel(level)
    logs._clear_secrets()


def lines(stream: io.StringIO) -> list[str]:
    return [line for line in stream.getvalue().splitlines() if line]


def test_json_lines_shape() -> None:
    out = io.StringIO()
    setup_logging("INFO", "json", out, syslog_prefix=False)
    logging.getLogger("agent.line").info("link up at %d", 1, extra={"address": 1, "port": "x"})
    [line] = lines(out)
    entry = json.loads(line)
    assert entry["level"] == "INFO"
    assert entry["logger"] == "agent.line"
    assert entry["msg"] == "link up at 1"
    assert entry["address"] == 1 and entry["port"] == "x"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["ts"])


def test_json_carries_the_traceback_and_bytes_as_hex() -> None:
    out = io.StringIO()
    setup_logging("INFO", "json", out, syslog_prefix=False)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("t").exception("failed", extra={"frame": b"\x01\x1a\x00"})
    entry = json.loads(lines(out)[0])
    assert "RuntimeError: boom" in entry["exc"]
    assert entry["frame"] == "01 1a 00"


def test_syslog_prefix_gives_journald_the_priority() -> None:
    out = io.StringIO()
    setup_logging("DEBUG", "json", out, syslog_prefix=True)
    log = logging.getLogger("t")
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    prefixes = [line[:3] for line in lines(out)]
    assert prefixes == ["<7>", "<6>", "<4>", "<3>"]
    assert json.loads(lines(out)[2][3:])["msg"] == "w"


def test_auto_is_human_on_a_tty_and_json_otherwise() -> None:
    tty = Tty()
    setup_logging("INFO", "auto", tty)
    logging.getLogger("agent.uplink.client").info("connected", extra={"hub": "wss://hub"})
    text = tty.getvalue()
    assert " INFO    agent.uplink.client: connected hub=wss://hub" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)

    pipe = io.StringIO()
    setup_logging("INFO", "auto", pipe, syslog_prefix=False)
    logging.getLogger("t").info("x")
    assert json.loads(lines(pipe)[0])["msg"] == "x"
    # the second set-up replaced the first handler: nothing more on the tty
    assert tty.getvalue() == text


@pytest.mark.parametrize("fmt", ["json", "human"])
def test_registered_secret_never_appears(fmt: str) -> None:
    out = io.StringIO()
    setup_logging("DEBUG", fmt, out, syslog_prefix=False)  # type: ignore[arg-type]
    register_secret(TOKEN)
    log = logging.getLogger("agent.uplink.client")
    log.info("token is %s", TOKEN)
    log.info("plain " + TOKEN)
    log.info("extra", extra={"token": TOKEN, "nested": {"t": [TOKEN]}})
    try:
        raise ValueError(f"bad token {TOKEN}")
    except ValueError:
        log.exception("handshake failed")
    text = out.getvalue()
    assert TOKEN not in text
    assert text.count(logs.MASK) >= 5


@pytest.mark.parametrize(
    "message",
    [
        "headers: {'Authorization': 'Bearer abc.def-ghi'}",
        "Authorization: Bearer abc.def-ghi",
        "authorization=abc.def-ghi",
        "sending bearer abc.def-ghi to hub",
    ],
)
def test_bearer_tokens_and_authorization_headers_are_masked(message: str) -> None:
    out = io.StringIO()
    setup_logging("INFO", "json", out, syslog_prefix=False)
    logging.getLogger("t").info(message)
    text = out.getvalue()
    assert "abc.def-ghi" not in text
    assert logs.MASK in text


def test_redaction_keeps_ordinary_text() -> None:
    assert redact("polled address 1, 0x1f reply ok") == "polled address 1, 0x1f reply ok"


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        register_secret("  ")


SECRETS = st.text(
    alphabet=st.characters(codec="utf-8"), min_size=4, max_size=40
).filter(str.strip)


@given(SECRETS)
def test_any_registered_secret_is_masked_in_json(secret: str) -> None:
    # JSON escaping (quotes, backslashes, control characters) must not let a secret through
    logs._clear_secrets()
    register_secret(secret)
    handler_out = io.StringIO()
    handler = logging.StreamHandler(handler_out)
    handler.addFilter(logs.RedactingFilter())
    handler.setFormatter(logs.JsonFormatter())
    log = logging.getLogger("prop")
    log.propagate = False
    log.addHandler(handler)
    try:
        log.warning("value=%s", secret, extra={"field": secret})
    finally:
        log.removeHandler(handler)
        log.propagate = True
    entry = json.loads(handler_out.getvalue())
    assert secret.strip() not in entry["msg"]
    assert secret.strip() not in entry["field"]


def test_level_changes_at_runtime() -> None:
    out = io.StringIO()
    setup_logging("WARNING", "json", out, syslog_prefix=False)
    log = logging.getLogger("agent.line")
    log.info("hidden")
    set_level("debug")
    log.debug("shown")
    set_level("ERROR")
    log.warning("hidden again")
    assert [json.loads(line)["msg"] for line in lines(out)] == ["shown"]


def test_unknown_level_and_format_are_named() -> None:
    with pytest.raises(ValueError, match="'LOUD'"):
        setup_logging("LOUD", "json", io.StringIO())
    with pytest.raises(ValueError, match="'xml'"):
        setup_logging("INFO", "xml", io.StringIO())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'verbose'"):
        set_level("verbose")


def test_under_systemd() -> None:
    assert under_systemd({"INVOCATION_ID": "abc"})
    assert under_systemd({"JOURNAL_STREAM": "8:1234"})
    assert not under_systemd({"HOME": "/root"})

