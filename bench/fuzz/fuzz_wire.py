"""Coverage-guided fuzzing of the WebSocket API: the parser and every JSON handler of the agent
and the hub, with atheris.

Not part of the test suite (CI runs the hypothesis and seeded fuzz tests in
tests/reliability). For long runs (see docs/reliability.md)::

    .venv/bin/pip install -e '.[fuzz]'      # atheris, not a runtime dependency
    .venv/bin/python bench/fuzz/fuzz_wire.py --make-corpus /tmp/corpus-wire
    .venv/bin/python bench/fuzz/fuzz_wire.py -dict=bench/fuzz/wire.dict \\
        -max_total_time=3600 /tmp/corpus-wire

``--make-corpus DIR`` writes seed inputs built from the golden frames of the tests
(tests/test_wire.py ``EXAMPLES``, tests/reliability/hostile_frames.py ``templates``) and
exits; any other arguments go to libFuzzer. Replay a failure with
``python bench/fuzz/fuzz_wire.py crash-<hash>``.

Input layout: byte 0 holds the target in its low two bits and flags; the rest is UTF-8 text
(invalid sequences replaced, as a WebSocket text frame is always valid UTF-8), one frame a
line (compact JSON never holds a raw newline).

- target 0, ``api.wire.parse_message``: the text is one frame, parsed for every path and
  direction. It must return a message or raise ``WireError``, agree with the ``accept`` sets,
  survive ``encode`` and a second parse unchanged; the ``error`` reply built from a refusal
  must itself parse; an ``action`` must get through ``verify_action`` with ``WireError`` only.
- target 1, the agent: each line is a frame from the hub, read by ``Uplink``'s receive loop,
  whose ``action`` frames run through ``Actions.handle`` (a real outbox in a temporary
  directory, a stand-in line owner). Flags: 0x04 an HMAC key is configured, 0x20 the machine
  command fails. Nothing may be logged with a traceback, every frame the agent sends (replies
  and the events it commits) must parse on the terminal-to-hub path, and every action id
  handled gets an ``actionResult``.
- targets 2 and 3, the hub: each line is ``<route><frame>`` on a real ``Hub`` (fresh database,
  fixed clock) whose connections are in-process stand-ins. Route ``t``/``c``: a text frame on
  the terminal (``T1``) / client connection; ``T``/``C``: the same, after the hub has had a
  chance to run (a new burst); ``b``/``B``: a binary frame on the terminal / client
  connection. Flags: 0x04 the hub has an action key, 0x08 the client authenticates with an
  ``auth`` message instead of the header, 0x10 the client is a viewer instead of an
  operator. Nothing may escape a session or be logged with a traceback, no ``error`` may say
  ``internal``, every frame the hub sends must parse on its path, only ``T1``'s events reach
  the client, and every action forwarded to the terminal must carry a signature that
  verifies (with a key configured).

Flag 0x40 switches any target to structured input: the bytes then choose golden frames of
the right path and direction (every message type, every event name of the catalogue) and
mutate them (a field set to a hostile value: out-of-range numbers such as ``1e400`` or
``2**63``, wrong types, bad timestamps, long or odd strings, deep nesting; a field removed;
an unknown or misspelt field or type), optionally re-signing a mutated action so that it
passes the signature check and reaches the handler behind it. The frames are then run as
above, so a failure found this way replays like any other.

Known defects, tolerated so that a run goes on past them (docs/reliability.md): both come
from ``parse_message`` accepting what ``encode`` (or UTF-8) cannot write back, and whatever
re-encodes the value then fails.

- a lone UTF-16 surrogate (the JSON escape ``"\\ud800"``): ``UnicodeEncodeError``;
- a number beyond the float range (``1e400`` is parsed as ``inf``): ``ValueError: Out of
  range float values are not JSON compliant``, or, once the hub has stored it as
  ``Infinity``, SQLite's ``malformed JSON`` in every later snapshot;
- an event ``amount`` beyond 64 bits (JSON integers have no bound, the protocol's do): the
  hub's money sums overflow, into a ``terminal`` or ``snapshot`` frame that breaks the
  protocol's integer range or SQLite's ``integer overflow`` in every later snapshot.

Such a failure is counted, not reported, when the input holds such a string or number; set
``FUZZ_WIRE_STRICT=1`` to report them too.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import os
import re
import shutil
import sqlite3
import sys
import tempfile
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import atheris  # type: ignore[import-not-found,import-untyped,unused-ignore]
from corpus import write_seeds
from websockets.exceptions import ConnectionClosedOK
from websockets.protocol import State

with atheris.instrument_imports(include=["agent", "hub"]):
    from agent.config import UplinkConfig
    from agent.line.commands import CommandResult, MachineCommand
    from agent.observations import Observation
    from agent.store.outbox import Outbox
    from agent.uplink.actions import Actions
    from agent.uplink.client import Uplink, UplinkError
    from api import decode, wire
    from api.events import CATALOG, Event
    from hub.config import HubConfig
    from hub.server import CLIENT_PATH, TERMINAL_PATH, Hub
    from hub.tokens import parse_tokens

ROOT = Path(__file__).resolve().parents[2]
PARSER, AGENT, HUB = 0, 1, 2
KEYED, AUTH_MESSAGE, VIEWER = 0x04, 0x08, 0x10
COMMAND_FAILS, STRUCTURED = 0x20, 0x40
TERMINAL = "T1"
KEY = b"fuzz-action-key-0123456789abcdef"
NOW = 1_778_497_800.0  # 2026-05-11T11:10:00Z, the clock of every run
MAX_BYTES = 64 * 1024
ACCEPTS = {
    "terminal->hub": wire.TERMINAL_TO_HUB, "hub->terminal": wire.HUB_TO_TERMINAL,
    "client->hub": wire.CLIENT_TO_HUB, "hub->client": wire.HUB_TO_CLIENT,
}
TOKENS = parse_tokens(f"""\
tokens:
  - {{token: tok-t1, role: terminal, terminalId: {TERMINAL}}}
  - {{token: tok-ops, role: operator, name: ops}}
  - {{token: tok-view, role: viewer, name: view}}
""")
STRICT = os.environ.get("FUZZ_WIRE_STRICT", "") not in ("", "0")


def _work_dir() -> Path:
    """This process's scratch directory (databases, key file), in memory where possible.

    libFuzzer ends the process without running Python's clean-up, so the directories of
    processes that are gone are removed here instead."""
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    for old in base.glob("fuzz-wire-*"):
        pid = old.name.removeprefix("fuzz-wire-")
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                shutil.rmtree(old, ignore_errors=True)
            except PermissionError:
                pass  # another user's live process
    work = base / f"fuzz-wire-{os.getpid()}"
    work.mkdir(exist_ok=True)
    return work


WORK = _work_dir()
KEY_FILE = WORK / "action.key"
KEY_FILE.write_bytes(KEY)
known_defects = 0
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
HUGE_NUMBER = re.compile(r"[0-9][eE]\+?0*[1-9][0-9]{2,}|[0-9]{309}")
HUGE_INTEGER = re.compile(r"[0-9]{19}")


class FuzzFailureError(AssertionError):
    """A property of the API does not hold for this input."""


def check(condition: bool, text: str) -> None:
    if not condition:
        raise FuzzFailureError(text)


def _is_surrogate_failure(exc: BaseException) -> bool:
    return isinstance(exc, UnicodeEncodeError) and "surrogates not allowed" in str(exc)


def _is_float_range_failure(exc: BaseException) -> bool:
    return isinstance(exc, ValueError | sqlite3.OperationalError) and (
        "Out of range float values" in str(exc) or "malformed JSON" in str(exc))


def _is_int_range_failure(exc: BaseException) -> bool:
    return (isinstance(exc, wire.WireError) and "is too large" in str(exc)) or (
        isinstance(exc, sqlite3.OperationalError) and "integer overflow" in str(exc))


#: The known defects of the module docstring: what the input holds, how the failure looks.
KNOWN_DEFECTS = (
    (SURROGATE_ESCAPE, _is_surrogate_failure),
    (HUGE_NUMBER, _is_float_range_failure),
    (HUGE_INTEGER, _is_int_range_failure),
)


def _known_defect(exc: BaseException | None, text: str) -> bool:
    """True for one of the known defects of the module docstring (and counts it)."""
    global known_defects
    while exc is not None and not STRICT:
        if any(is_failure(exc) and held.search(text) for held, is_failure in KNOWN_DEFECTS):
            known_defects += 1
            return True
        exc = exc.__cause__ or exc.__context__
    return False


# --------------------------------------------------------------------------- parser


def run_parser(text: str) -> None:
    try:
        msg = wire.parse_message(text, max_bytes=MAX_BYTES)
    except wire.WireError as exc:
        error = wire.encode(wire.error_from(exc))
        for accept in (wire.HUB_TO_CLIENT, wire.HUB_TO_TERMINAL):
            wire.parse_message(error, max_bytes=1 << 20, accept=accept)  # must not raise
        for name, accept in ACCEPTS.items():
            try:
                wire.parse_message(text, max_bytes=MAX_BYTES, accept=accept)
            except wire.WireError:
                continue
            check(False, f"refused without accept, parsed on {name}")
        return
    for name, accept in ACCEPTS.items():
        try:
            same = wire.parse_message(text, max_bytes=MAX_BYTES, accept=accept)
        except wire.WireError as exc:
            check(msg["type"] not in accept and exc.code == wire.ErrorCode.UNKNOWN_TYPE,
                  f"{msg['type']} refused on {name}: {exc}")
        else:
            check(msg["type"] in accept and same == msg, f"{msg['type']} parsed on {name}")
    try:
        again = wire.parse_message(wire.encode(msg), max_bytes=1 << 24)
    except Exception as exc:
        if _known_defect(exc, text):
            return
        raise
    check(again == msg, "parse(encode(msg)) differs")
    typed = decode.from_checked(msg)  # the typed message (api.decode): built, and reads back
    check(decode.decode(wire.encode(typed.to_wire()), max_bytes=1 << 24) == typed,
          "the typed message does not read back as itself")
    if msg["type"] == wire.MessageType.ACTION:
        try:
            wire.verify_action(KEY, msg, NOW)
        except wire.WireError:
            pass
        except Exception as exc:
            if not _known_defect(exc, text):
                raise


# --------------------------------------------------------------------------- log watch


class _Tracebacks(logging.Handler):
    """Collects records logged with a traceback (``log.exception``): a handler that failed."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info is not None:
            self.records.append(record)


TRACEBACKS = _Tracebacks()
logging.getLogger().addHandler(TRACEBACKS)
logging.getLogger().setLevel(logging.ERROR)


@contextlib.contextmanager
def no_tracebacks(text: str) -> Iterator[None]:
    TRACEBACKS.records.clear()
    yield
    for record in TRACEBACKS.records:
        exc = record.exc_info[1] if record.exc_info else None
        if not _known_defect(exc, text):
            raise FuzzFailureError(f"{record.name}: {record.getMessage()}") from exc


# --------------------------------------------------------------------------- agent


class _ClientWs:
    """The uplink's connection: yields the hub's frames, then the hub closes."""

    def __init__(self, frames: list[str]) -> None:
        self._frames = deque(frames)

    def __aiter__(self) -> _ClientWs:
        return self

    async def __anext__(self) -> str:
        if not self._frames:
            raise StopAsyncIteration
        await asyncio.sleep(0)  # action tasks run between frames, as on a real socket
        return self._frames.popleft()


def _line(fails: bool) -> Any:
    def submit(command: MachineCommand) -> Future[CommandResult]:
        future: Future[CommandResult] = Future()
        result = CommandResult(False, "jammed") if fails else CommandResult(True, data={"x": 1})
        future.set_result(result)
        return future
    return submit


def run_agent(flags: int, text: str) -> None:
    frames = text.split("\n")
    path = WORK / "outbox.db"
    outbox = Outbox.open(path, terminal_id=TERMINAL, clock=lambda: NOW)
    emitted: list[Event] = []
    observed: list[Observation] = []
    actions = Actions(
        terminal_id=TERMINAL, store=outbox, submit=_line(bool(flags & COMMAND_FAILS)),
        emit=emitted.append, observe=observed.append, diagnostics_report=lambda: {"ok": True},
        addresses=[1, 2], hmac_key=KEY if flags & KEYED else None, clock=lambda: NOW,
    )
    uplink = Uplink(UplinkConfig(url="ws://hub.invalid/ws/terminal", allow_insecure=True),
                    terminal_id=TERMINAL, outbox=outbox, token=lambda: "tok-t1",
                    actions=actions.handle)
    parsed_actions: set[str] = set()
    for frame in frames:
        try:
            msg = wire.parse_message(frame, max_bytes=1 << 20, accept=wire.HUB_TO_TERMINAL)
        except wire.WireError:
            continue
        if msg["type"] == wire.MessageType.ACTION:
            parsed_actions.add(msg["id"])
        elif msg["type"] == wire.MessageType.ERROR and msg["code"] == wire.ErrorCode.INTERNAL:
            break  # the uplink drops the connection: the frames behind are not read

    async def session() -> None:
        try:
            await uplink._receive_loop(_ClientWs(frames))  # type: ignore[arg-type]
        except UplinkError:
            check('"internal"' in text, "UplinkError without an internal error from the hub")
        while uplink._dispatch.tasks:
            await asyncio.gather(*list(uplink._dispatch.tasks))

    try:
        with no_tracebacks(text):
            asyncio.run(session())
        try:
            outbox.commit(emitted, None)
        except Exception as exc:
            if not _known_defect(exc, text):
                raise
        for reply in list(uplink._window.replies):
            try:
                wire.parse_message(wire.encode(reply), max_bytes=1 << 20,
                                   accept=wire.TERMINAL_TO_HUB)
            except Exception as exc:
                if not _known_defect(exc, text):
                    raise
        for stored in outbox.pending_frames(0, 10_000):
            wire.parse_message(stored.text, max_bytes=1 << 20, accept=wire.TERMINAL_TO_HUB)
        results = {r["id"] for r in uplink._window.replies if r["type"] == "actionResult"}
        check(parsed_actions <= results or known_defects > 0,
              f"actions without a result: {sorted(parsed_actions - results)[:3]}")
    finally:
        outbox.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


# --------------------------------------------------------------------------- hub


class _Script:
    """The frames of one run, in order; each connection takes the frames routed to it."""

    def __init__(self, frames: list[tuple[str, bool, str | bytes]]) -> None:
        self.frames = deque(frames)

    def drop(self, route: str) -> None:
        self.frames = deque(f for f in self.frames if f[0] != route)


class _Protocol:
    """The part of websockets' Sans-I/O protocol the hub writes through (hub/wsio.py
    ``write_now``): each text frame is recorded as sent. ``extensions`` is not empty, so a
    frame built beforehand (``wsio.Framed``) comes here as its payloads, not as wire bytes."""

    extensions = ("recorded",)

    def __init__(self, ws: _ServerWs) -> None:
        self._ws = ws

    @property
    def state(self) -> State:
        return State.OPEN if self._ws.close_code is None else State.CLOSED

    def send_text(self, data: bytes) -> None:
        if self._ws.close_code is not None:
            raise ConnectionClosedOK(None, None)
        try:
            self._ws.sent.append(data.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise FuzzFailureError(f"the hub sent a frame that is not UTF-8: {exc}") from exc

    def data_to_send(self) -> list[bytes]:
        return []  # send_text recorded the frame already


class _Transport:
    """The socket under :class:`_Protocol`: nothing buffered, nothing reaches it."""

    def __init__(self, ws: _ServerWs) -> None:
        self._ws = ws

    def is_closing(self) -> bool:
        return self._ws.close_code is not None

    def get_write_buffer_size(self) -> int:
        return 0

    def write(self, data: bytes) -> None:
        check(not data, "wire bytes written past the recorded frames")

    def can_write_eof(self) -> bool:
        return False

    def write_eof(self) -> None:  # pragma: no cover - can_write_eof is False
        pass


class _ServerWs:
    """Stands in for websockets' ServerConnection on one path: ``send`` and the hub's own
    write path (``protocol``, ``transport``, ``send_context``; hub/wsio.py)."""

    def __init__(self, script: _Script, route: str, path: str, token: str | None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.request = SimpleNamespace(path=path, headers=headers)
        self.remote_address = ("fuzz", 0)
        self.script = script
        self.route = route
        self.sent: list[str | bytes] = []
        self.close_code: int | None = None
        self._waited = False
        self._flushed = False
        self.protocol = _Protocol(self)
        self.transport = _Transport(self)

    @contextlib.asynccontextmanager
    async def send_context(self) -> Any:
        if self.close_code is not None:
            raise ConnectionClosedOK(None, None)
        yield

    async def recv(self) -> str | bytes:
        while True:
            if self.close_code is None and not self.script.frames and not self._flushed:
                self._flushed = True  # let the hub's writers send what they queued
                for _ in range(4):
                    await asyncio.sleep(0)
                continue
            if self.close_code is not None or not self.script.frames:
                raise ConnectionClosedOK(None, None)
            route, burst, payload = self.script.frames[0]
            if route != self.route:
                await asyncio.sleep(0)  # the other connection's turn
                continue
            if burst and not self._waited:
                self._waited = True
                await asyncio.sleep(0)
                continue
            self._waited = False
            self.script.frames.popleft()
            return payload

    def __aiter__(self) -> _ServerWs:
        return self

    async def __anext__(self) -> str | bytes:
        try:
            return await self.recv()
        except ConnectionClosedOK:
            raise StopAsyncIteration from None

    async def send(self, message: str | bytes) -> None:
        if self.close_code is not None:
            raise ConnectionClosedOK(None, None)
        self.sent.append(message)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        check(len(reason.encode("utf-8")) <= 123, f"close reason too long: {reason!r}")
        if self.close_code is None:
            self.close_code = code
        self.script.drop(self.route)


_ROUTES = {"t": ("t", False, False), "T": ("t", True, False), "b": ("t", False, True),
           "c": ("c", False, False), "C": ("c", True, False), "B": ("c", False, True)}


def _hub_script(text: str) -> list[tuple[str, bool, str | bytes]]:
    frames: list[tuple[str, bool, str | bytes]] = []
    for line in text.split("\n"):
        if not line:
            continue
        key = line[0] if line[0] in _ROUTES else "tTbcCB"[ord(line[0]) % 6]
        route, burst, binary = _ROUTES[key]
        payload = line[1:]
        frames.append((route, burst, payload.encode("utf-8", "surrogatepass") if binary
                       else payload))
    return frames


def _check_hub_output(ws: _ServerWs, accept: frozenset[wire.MessageType], text: str,
                      keyed: bool) -> None:
    for frame in ws.sent:
        check(isinstance(frame, str), "the hub sent a binary frame")
        assert isinstance(frame, str)
        try:
            msg = wire.parse_message(frame, max_bytes=1 << 24, accept=accept)
        except wire.WireError as exc:
            if _known_defect(exc, text):
                continue
            raise FuzzFailureError(f"the hub sent an invalid frame: {exc}") from exc
        if msg["type"] == wire.MessageType.ERROR:
            check(msg["code"] != wire.ErrorCode.INTERNAL or known_defects > 0,
                  f"internal error: {msg['message']}")
        if msg["type"] == wire.MessageType.EVENT:
            check(msg["terminalId"] == TERMINAL, f"event of {msg['terminalId']} stored")
        if msg["type"] == wire.MessageType.ACTION and keyed:
            wire.verify_action(KEY, msg, NOW)  # raises WireError: a failure


def run_hub(flags: int, text: str) -> None:
    script = _Script(_hub_script(text))
    database = WORK / "hub.db"
    keyed = bool(flags & KEYED)
    client_token = "tok-view" if flags & VIEWER else "tok-ops"
    config = HubConfig(tokens=WORK / "unused.yaml", database=database, port=0, plain=True,
                       synchronous="OFF", auth_timeout=5.0,
                       action_key_file=KEY_FILE if keyed else None)
    terminal = _ServerWs(script, "t", TERMINAL_PATH, "tok-t1")
    client = _ServerWs(script, "c", CLIENT_PATH,
                       None if flags & AUTH_MESSAGE else client_token)

    async def serve(hub: Hub, ws: _ServerWs) -> None:
        try:
            await hub._handle(ws)  # type: ignore[arg-type]
        finally:
            ws.close_code = ws.close_code or 1000
            script.drop(ws.route)

    async def session() -> None:
        hub = Hub(config, tokens=TOKENS, clock=lambda: NOW)
        # What Hub.start does besides listening: the ingest's commit and publish loops
        # (without them no batch is ever stored) and the actions' timers.
        hub.ingest.start()
        hub.actions.start()
        try:
            await asyncio.gather(serve(hub, terminal), serve(hub, client))
        finally:
            await hub.stop()

    try:
        with no_tracebacks(text):
            try:
                asyncio.run(session())
            except Exception as exc:
                if not _known_defect(exc, text):
                    raise
        _check_hub_output(terminal, wire.HUB_TO_TERMINAL, text, keyed)
        _check_hub_output(client, wire.HUB_TO_CLIENT, text, keyed)
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)


# --------------------------------------------------------------------------- structured input

#: JSON number texts Python cannot write itself (they are spliced into the encoded frame).
RAW_NUMBERS = ("1e400", "-1e400", "1E+309", "-0", "0.0", "1e-400", "123456789012345678901234567890")
HOSTILE: tuple[Any, ...] = (
    None, True, False, 0, -1, 1, 2, 1000, 2**31, 2**53 + 1, 2**62, 2**63 - 1, 2**63, 2**64,
    -(2**63), -(2**63) - 1, 10**30, 1.5, -0.5, *(f"\x01raw{i}" for i in range(len(RAW_NUMBERS))),
    "", " ", "x" * 129, "x" * 5000, "\ud800", "\udfff", "\u0000", "\U0001f4a9", "\u202e",
    "2026-13-45T99:99:99Z", "2026-05-11T11:10:00Z", "2026-05-11T11:10:00.123456Z",
    "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z", "2026-05-11T11:20:00.000Z",
    "2026-05-11 11:10:00Z", "T1", "T2", "hub", "T1-1", "T1-2", "hub-1", "hub-9", "a-1",
    "act-1", "lock", "unlock", "diagnostics", "startPlayerSession", "readMeters", "alerts",
    "game", "money", "accepted", "rejected", "succeeded", "failed", "expired", "sent",
    "queued", "internal", "operator", "viewer", "terminal", "tok-ops", "tok-t1", "0" * 64,
    [], [1, "a"], ["game"], ["T1"], ["x"] * 1001, {}, {"a": {}}, {"amount": 1},
    {"address": 1}, {"address": 2}, {"playerId": "P"}, [[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]],
)
FIELD_NAMES = (
    "type", "id", "seq", "channel", "terminalId", "event", "timestamp", "data", "upTo",
    "eventId", "action", "params", "expiresAt", "issuedAt", "signature", "from", "status",
    "error", "result", "token", "protocol", "role", "name", "channels", "events", "terminals",
    "filters", "lastSeq", "version", "ackedSeq", "serverTime", "code", "message", "amount",
    "address", "playerId", "locked", "Type", "id ", "x",
)


def _templates() -> dict[str, list[dict[str, Any]]]:
    """Valid frames of each route: ``t`` terminal to hub, ``c`` client to hub, ``h`` hub to
    terminal (the agent's input)."""
    ts = wire.format_timestamp(NOW)
    later = wire.format_timestamp(NOW + 60)
    events = [wire.event(event_id=f"{TERMINAL}-{n}", seq=n, channel=channel.value,
                         terminal_id=TERMINAL, name=name, timestamp=ts,
                         data={"amount": 100} if name in ("betPlaced", "winPaid") else {})
              for n, (name, channel) in enumerate(sorted(CATALOG.items()), start=1)]
    action = wire.action("act-1", TERMINAL, "lock", {"address": 1}, issued_at=ts)
    agent_actions: list[tuple[str, dict[str, Any]]] = [
        ("unlock", {"address": 2}), ("startPlayerSession", {"playerId": "P7"}),
        ("endPlayerSession", {}), ("diagnostics", {}), ("readMeters", {}),
        ("syncClock", {"address": 1})]
    return {
        "t": [wire.hello(TERMINAL, "0.1.0", 0), *events, wire.ping("p"), wire.pong("p"),
              wire.action_ack("act-1", TERMINAL, wire.ActionAckStatus.ACCEPTED),
              wire.action_ack("act-1", TERMINAL, wire.ActionAckStatus.REJECTED, "no"),
              wire.action_result("act-1", TERMINAL, wire.ActionStatus.SUCCEEDED,
                                 result={"locked": True}),
              wire.action_result("act-1", TERMINAL, wire.ActionStatus.FAILED, error="x")],
        "c": [wire.auth("tok-ops"), wire.subscribe(channels=["game", "alerts"], request_id="s"),
              wire.subscribe(events=["tilt"], terminals=[TERMINAL], unsubscribe=True),
              wire.ack_alert(f"{TERMINAL}-1", "k"), wire.ack_alert("hub-1"), action,
              wire.action("act-2", TERMINAL, "unlock", {}, expires_at=later),
              wire.get_state("g"), wire.ping("p"), wire.pong()],
        "h": [wire.welcome(TERMINAL, 0, ts), wire.ack(1), wire.ping("p"), action,
              *(wire.action(f"a-{n}", TERMINAL, name, params, issued_at=ts, expires_at=later)
                for n, (name, params) in enumerate(agent_actions)),
              wire.error(wire.ErrorCode.INTERNAL, "store failed"),
              wire.error(wire.ErrorCode.BAD_MESSAGE, "no", "x")],
    }


TEMPLATES = _templates()


def _containers(obj: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Paths to every dict and list inside ``obj`` (``obj`` itself first)."""
    if isinstance(obj, dict | list):
        yield path
        items = obj.items() if isinstance(obj, dict) else enumerate(obj)
        for key, value in items:
            yield from _containers(value, (*path, key))


def _at(obj: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        obj = obj[key]
    return obj


def _value(fdp: Any) -> Any:
    i = fdp.ConsumeIntInRange(0, len(HOSTILE) + 1)
    if i < len(HOSTILE):
        return copy.deepcopy(HOSTILE[i])  # later mutations must not change the table
    if i == len(HOSTILE):
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 40))
    return fdp.ConsumeIntInRange(-(2**70), 2**70)


def _mutate(fdp: Any, msg: dict[str, Any]) -> None:
    for _ in range(fdp.ConsumeIntInRange(0, 3)):
        container = _at(msg, fdp.PickValueInList(list(_containers(msg))))
        how = fdp.ConsumeIntInRange(0, 3)
        if isinstance(container, list):
            if container and how < 2:
                container[fdp.ConsumeIntInRange(0, len(container) - 1)] = _value(fdp)
            else:
                container.append(_value(fdp))
        elif how == 0 and container:  # a field gets a hostile value
            container[fdp.PickValueInList(sorted(container))] = _value(fdp)
        elif how == 1 and container:  # a field goes
            del container[fdp.PickValueInList(sorted(container))]
        elif how == 2:  # a field appears (known name elsewhere, or unknown)
            container[fdp.PickValueInList(list(FIELD_NAMES))] = _value(fdp)
        else:  # another type name
            msg["type"] = fdp.PickValueInList([t.value for t in wire.MessageType])


def _text(msg: dict[str, Any]) -> str:
    text = json.dumps(msg, separators=(",", ":"))  # ASCII: a lone surrogate stays an escape
    for i, raw in enumerate(RAW_NUMBERS):
        text = text.replace(f'"\\u0001raw{i}"', raw)
    return text


def _frame(fdp: Any, route: str, keyed: bool) -> str:
    msg = copy.deepcopy(fdp.PickValueInList(TEMPLATES[route]))
    _mutate(fdp, msg)
    if keyed and msg.get("type") == "action" and isinstance(msg.get("issuedAt"), str) \
            and fdp.ConsumeBool():
        with contextlib.suppress(Exception):  # sign what can be signed: the handler is reached
            msg = wire.sign_action(KEY, msg)
    return _text(msg)


def structured_text(target: int, flags: int, data: bytes) -> str:
    """The text input of ``target`` built from golden frames chosen and mutated by ``data``."""
    fdp = atheris.FuzzedDataProvider(data)
    keyed = bool(flags & KEYED)
    if target == PARSER:
        return _frame(fdp, fdp.PickValueInList(["t", "c", "h"]), keyed)
    count = fdp.ConsumeIntInRange(1, 12)
    if target == AGENT:
        return "\n".join(_frame(fdp, "h", keyed) for _ in range(count))
    lines = []
    if fdp.ConsumeBool():
        lines.append("t" + wire.encode(wire.hello(TERMINAL, "0.1.0", 0)))
    if flags & AUTH_MESSAGE and fdp.ConsumeBool():
        lines.append("c" + wire.encode(wire.auth("tok-view" if flags & VIEWER else "tok-ops")))
    for _ in range(count):
        route = fdp.PickValueInList(["t", "c"])
        prefix = fdp.PickValueInList(list("tTb" if route == "t" else "cCB"))
        lines.append(prefix + _frame(fdp, route, keyed))
    return "\n".join(lines)


# --------------------------------------------------------------------------- entry points


def one_input(data: bytes) -> None:
    global known_defects
    if not data:
        return
    known_defects = 0
    flags = data[0]
    target = flags & 0x03
    if flags & STRUCTURED:
        text = structured_text(min(target, HUB), flags, data[1:])
    else:
        text = data[1:].decode("utf-8", "replace")
    if target == PARSER:
        run_parser(text)
    elif target == AGENT:
        run_agent(flags, text)
    else:
        run_hub(flags, text)


def _golden_frames() -> list[dict[str, Any]]:
    sys.path.insert(0, str(ROOT))
    from tests.reliability.hostile_frames import templates
    from tests.test_wire import EXAMPLES

    frames = [dict(m) for m in EXAMPLES]
    for group in templates(TERMINAL).values():
        frames += group
    return frames


def seed_inputs() -> dict[str, bytes]:
    """Seeds: every golden frame for the parser; the hub's frames to the agent (actions
    signed and not, for lock and every other action); whole hub sessions."""
    ts = wire.format_timestamp(NOW)
    later = wire.format_timestamp(NOW + 60)
    seeds: dict[str, bytes] = {}
    for n, msg in enumerate(_golden_frames()):
        seeds[f"parse-{n:03d}"] = bytes((PARSER,)) + wire.encode(msg).encode()

    def signed(action_id: str, name: str, params: dict[str, Any], **extra: Any) -> str:
        msg = wire.action(action_id, TERMINAL, name, params, issued_at=ts, **extra)
        return wire.encode(wire.sign_action(KEY, msg))

    agent_frames = [
        wire.encode(wire.ack(3)), wire.encode(wire.ping("p")),
        wire.encode(wire.error(wire.ErrorCode.BAD_MESSAGE, "no", "x")),
        signed("a-1", "lock", {"address": 1}), signed("a-1", "lock", {"address": 1}),
        signed("a-2", "startPlayerSession", {"playerId": "P7"}, expires_at=later),
        signed("a-3", "readMeters", {}), signed("a-4", "diagnostics", {}),
        wire.encode(wire.action("a-5", TERMINAL, "unlock", {"address": 2})),
        wire.encode(wire.action("a-6", "T2", "lock", {})),
        wire.encode(wire.welcome(TERMINAL, 0, ts)),
    ]
    for flags in (AGENT, AGENT | KEYED, AGENT | KEYED | COMMAND_FAILS):
        seeds[f"agent-{flags:02x}"] = bytes((flags,)) + "\n".join(agent_frames).encode()
        for n, frame in enumerate(agent_frames):
            seeds[f"agent-{flags:02x}-{n:02d}"] = bytes((flags,)) + frame.encode()

    event = wire.event(event_id=f"{TERMINAL}-1", seq=1, channel="alerts",
                       terminal_id=TERMINAL, name="doorOpened", timestamp=ts,
                       data={"door": "main"})
    bet = wire.event(event_id=f"{TERMINAL}-2", seq=2, channel="game", terminal_id=TERMINAL,
                     name="betPlaced", timestamp=ts, data={"amount": 100})
    terminal = [
        "t" + wire.encode(wire.hello(TERMINAL, "0.1.0", 0)), "t" + wire.encode(event),
        "T" + wire.encode(bet), "t" + wire.encode(wire.ping("p")),
    ]
    client = [
        "c" + wire.encode(wire.subscribe(channels=["game", "alerts"], request_id="s")),
        "c" + wire.encode(wire.action("act-1", TERMINAL, "lock", {"address": 1})),
        "C" + wire.encode(wire.action("act-2", TERMINAL, "unlock", {}, expires_at=later)),
        "c" + wire.encode(wire.ack_alert(f"{TERMINAL}-1", "k")),
        "c" + wire.encode(wire.get_state("g")),
        "c" + wire.encode(wire.subscribe(events=["tilt"], unsubscribe=True)),
    ]
    answers = [
        "t" + wire.encode(wire.action_ack("act-1", TERMINAL, wire.ActionAckStatus.ACCEPTED)),
        "t" + wire.encode(wire.action_result("act-1", TERMINAL, wire.ActionStatus.SUCCEEDED,
                                             result={"locked": True})),
        "b" + wire.encode(wire.ping("bin")),
    ]
    auth = "c" + wire.encode(wire.auth("tok-ops"))
    for flags in (HUB, HUB | KEYED, HUB | AUTH_MESSAGE, HUB | KEYED | AUTH_MESSAGE | VIEWER):
        first = [auth] if flags & AUTH_MESSAGE else []
        script = first + terminal + client + answers
        seeds[f"hub-{flags:02x}"] = bytes((flags,)) + "\n".join(script).encode()
    for flags in (PARSER, AGENT, AGENT | KEYED, HUB, HUB | KEYED, HUB | AUTH_MESSAGE):
        for n in range(4):
            seeds[f"structured-{flags:02x}-{n}"] = (bytes((flags | STRUCTURED,))
                                                    + bytes((n * 37 + i) % 256 for i in range(64)))
    for n, line in enumerate(terminal + client + answers):
        seeds[f"hub-line-{n:02d}"] = bytes((HUB,)) + "\n".join([terminal[0], line]).encode()
    return seeds


def main() -> None:
    try:
        if len(sys.argv) == 3 and sys.argv[1] == "--make-corpus":
            raise SystemExit(write_seeds(Path(sys.argv[2]), seed_inputs()))
        atheris.Setup(sys.argv, one_input)
        atheris.Fuzz()
    finally:
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
