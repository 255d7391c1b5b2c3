"""Serve a ``Machine`` over a ``drivers.Transport`` with ``sas_protocol.MachineProtocol``.

``MachineProtocol`` does the framing, the NACK of a corrupted long poll, the sync rule
(SAS §3.5: out of sync, polls to its own address are not heard until a poll to another
address or address 0) and the implied ACK / NACK bookkeeping; this module adds what a real
machine does around it:

- the clock of the sync rule: power-up resets the protocol (``MachineProtocol.reset``), a
  loop break loses sync (``MachineProtocol.lose_sync``);
- the chirp (SAS §4.2): after 5 s without an address byte, its own address with the wakeup
  bit every 200 ms, until an address byte arrives; a loop break also loses sync;
- unsupported long polls are ignored, never NACKed (SAS §3.5), including those the
  configuration says to ignore (``unsupported_polls``), so a host's stepdown is exercised;
- global broadcasts (address 0, SAS §2.2.2.4) are applied and never answered: LP 7F sets
  the clock;
- busy (``addr 00``) to long polls while a busy period lasts;
- RTE substitution (SAS §12): with real-time reporting on, a pending event answers any poll
  in place of its reply, and the host re-sends its long poll;
- exceptions leave the queue only when the host implicitly acknowledges them;
- profiles (``emulator.profiles``): the ignore list of an old machine, a share of long
  polls answered busy, line noise in both directions;
- fault injection: corrupted reply bytes, silence, power off (no answers at all).

Time is injected: ``step(now)`` / ``receive(words, now)`` / ``tick(now)`` take the time, so
tests step it by hand; ``start()`` runs the same on a thread on ``time.monotonic()``.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from drivers.base import Transport, TransportClosedError, TransportError, Word
from emulator.exceptions_queue import PendingException
from emulator.model import Machine
from emulator.responder import answer, apply_broadcast, rom_signature
from emulator.scenario import ScenarioRunner
from sas_protocol.machine import (
    BroadcastReceived,
    MachineProtocol,
    PollIgnored,
    PollReceived,
    PollRejected,
    ReplyAcknowledged,
    ReplyResent,
    Synchronized,
)
from sas_protocol.messages.requests import GeneralPoll, Request
from sas_protocol.messages.responses import ExceptionReply, RomSignatureReply
from sas_protocol.rte import PlainEvent, RealTimeEvent, decode_event_data

CHIRP_AFTER = 5.0  # SAS §4.2: no address byte for 5 s
CHIRP_INTERVAL = 0.2  # SAS §4.2: chirp every ~200 ms


@dataclass(frozen=True, slots=True)
class LinkOptions:
    """How the machine behaves on the line (its quirks). ``emulator.profiles`` builds these
    from profile names."""

    #: the profile names these options came from (``emulator.profiles``), for reports
    profile: str = "modern"
    #: long polls to ignore as if the machine did not implement them
    unsupported_polls: frozenset[int] = frozenset()
    #: real-time event reporting on from power-up (as after LP 0E 01)
    rte: bool = False
    #: in RTE mode, answer an idle general poll with ``addr FF 00 CRC`` (Monaco) or not at all
    rte_idle_event: bool = True
    #: fraction of reply bytes that get one bit flipped
    corrupt: float = 0.0
    #: fraction of received bytes that get one bit flipped before the machine hears them
    corrupt_received: float = 0.0
    #: fraction of long polls that start a busy period (answered ``addr 00``, §3.5) ...
    busy_share: float = 0.0
    #: ... lasting this long; 0 makes only that one poll busy
    busy_seconds: float = 0.0
    seed: int = 0
    chirp_after: float = CHIRP_AFTER
    chirp_interval: float = CHIRP_INTERVAL


@dataclass(slots=True)
class LinkStats:
    polls: int = 0
    replies: int = 0
    resent: int = 0  # implied NACKs answered by a re-send
    rejected: int = 0  # malformed polls (bad CRC: NACKed)
    ignored: int = 0  # unsupported polls, polls while unsynced / silent / powered off
    busy: int = 0
    chirps: int = 0
    rte_substituted: int = 0
    corrupted_bytes: int = 0  # reply bytes with a bit flipped
    corrupted_received: int = 0  # received bytes with a bit flipped (line noise)
    #: exceptions taken as acknowledged because of a received byte line noise flipped (a
    #: host's implied NACK heard as a poll to another address, SAS §3.5): the machine
    #: dropped them, and no host could have read them
    noise_acknowledged: list[int] = field(default_factory=list)
    #: (exception, the byte the host got instead) for exceptions acknowledged while the last
    #: copy sent was corrupted by line noise: the answer to a general poll is one byte with
    #: no CRC (SAS §3.4), so a host that took the other byte (00, or a code it does not
    #: confirm) moved on, and the machine dropped an exception no host could have read
    noise_misread: list[tuple[int, int]] = field(default_factory=list)
    acknowledged_exceptions: int = 0
    syncs: int = 0
    broadcasts: int = 0  # global broadcasts applied (LP 7F); others count as ignored
    unsupported: dict[int, int] = field(default_factory=dict)


class Emulator:
    """A served machine. Implements ``emulator.scenario.LinkControl``."""

    def __init__(
        self,
        machine: Machine,
        transport: Transport | None = None,
        *,
        address: int = 1,
        options: LinkOptions | None = None,
        runner: ScenarioRunner | None = None,
        now: float | None = None,
        log: Callable[[str], None] | None = None,
        on_disconnect: Callable[[Transport, Exception], None] | None = None,
    ) -> None:
        self.machine = machine
        self.address = address
        self.options = options or LinkOptions()
        # SAS §3.5: a machine starts out of sync (power-up)
        self.protocol = MachineProtocol(address, synced=False, layouts=machine.config.layouts)
        self.runner = runner
        self.stats = LinkStats()
        self.lock = threading.RLock()  # hold it to read the machine while the thread runs
        self._transport = transport
        self._log = log or (lambda _message: None)
        #: called when a read or write of the transport fails, once it is detached (on the
        #: thread that was serving); settable after construction, as ``runner`` is
        #: (``emulator.tcp_serving.TcpServing`` sets it to close the lost connection)
        self.on_disconnect = on_disconnect
        self._rng = random.Random(self.options.seed)
        self._noisy_word = False  # the word being handled had a bit flipped by line noise
        # separate streams, so turning one quirk on does not change the others' draws
        self._rx_rng = random.Random(f"{self.options.seed}:received")
        self._busy_rng = random.Random(f"{self.options.seed}:busy")
        self.corrupt = self.options.corrupt
        start = machine.now if now is None else now
        self._last_address_at = start
        self._next_chirp = start + self.options.chirp_after
        self._silent_until = float("-inf")
        self._busy_until = float("-inf")
        self._was_powered = machine.powered
        self._in_flight: tuple[object, PendingException] | None = None
        self._in_flight_sent_as: int | None = None  # its one-byte answer, last sent corrupted
        self._rom_signature: RomSignatureReply | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        if self.options.rte:
            machine.set_rte(True)

    @property
    def synced(self) -> bool:
        """False after power-up or a loop break until the host polls another address."""
        return self.protocol.synced

    # ------------------------------------------------------------------ LinkControl

    def set_corruption(self, fraction: float) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"corruption is a fraction 0..1, not {fraction}")
        self.corrupt = fraction

    def silence(self, now: float, seconds: float) -> None:
        """Stop answering (and hearing) for ``seconds``: a hung machine or a cut cable."""
        self._silent_until = now + seconds

    def set_busy(self, now: float, seconds: float) -> None:
        self._busy_until = now + seconds

    # ------------------------------------------------------------------ transport

    @property
    def transport(self) -> Transport | None:
        return self._transport

    def attach(self, transport: Transport) -> None:
        """Serve a (new) connection; the old one, if any, is closed."""
        with self.lock:
            old, self._transport = self._transport, transport
        if old is not None and old is not transport:
            old.close()

    def detach(self) -> Transport | None:
        with self.lock:
            old, self._transport = self._transport, None
        return old

    # ------------------------------------------------------------------ stepping

    def step(self, now: float) -> None:
        """Read what has arrived (without waiting), answer it and run timers, as of ``now``."""
        transport = self._transport
        words: list[Word] = []
        if transport is not None:
            try:
                words = transport.read(deadline=0.0)
            except TransportError as exc:
                self._disconnected(transport, exc)
        self.receive(words, now)
        self.tick(now)

    def receive(self, words: Sequence[Word], now: float) -> None:
        """Handle received words as of ``now`` and write the replies."""
        with self.lock:
            self._check_power(now)
            if not words:
                return
            if not self.machine.powered or now < self._silent_until:
                self.stats.ignored += sum(1 for w in words if w.wakeup)
                return
            flipped = [False] * len(words)
            if self.options.corrupt_received > 0:
                words, flipped = self._noise(words)
            for word, noisy in zip(words, flipped, strict=True):
                if word.wakeup:
                    self._address_byte(now)
                # one word at a time: a poll is answered before the next one is read
                self._noisy_word = noisy
                self.protocol.receive_words([word])
                self._handle_events(now)
            self._flush()

    def tick(self, now: float) -> None:
        """Timers: the scenario, power changes, chirps, unfinished frames."""
        with self.lock:
            if self.runner is not None:
                self.runner.advance(now)
            self._check_power(now)
            if not self.machine.powered:
                return
            if now - self._last_address_at >= self.options.chirp_after:
                self._loop_break()
                if now >= self._next_chirp and now >= self._silent_until:
                    self._write(self.protocol.chirp(), wakeup=True)  # SAS §4.2 chirp
                    self.stats.chirps += 1
                    self._next_chirp = now + self.options.chirp_interval

    def next_timer(self, now: float) -> float:
        """When ``tick`` next has something to do (for the serving thread's deadline)."""
        due = [self._last_address_at + self.options.chirp_after]
        if now >= due[0]:
            due.append(self._next_chirp)
        if self.runner is not None and self.runner.next_due is not None:
            due.append(self.runner.next_due)
        if self._silent_until > now:
            due.append(self._silent_until)
        return max(now, min(due))

    # ------------------------------------------------------------------ internals

    def _check_power(self, now: float) -> None:
        powered = self.machine.powered
        if powered and not self._was_powered:
            # SAS §3.5: after power-up the machine forgets its last reply and waits for a
            # sync poll
            self.protocol.reset()
            self._in_flight = None
            self._last_address_at = now
            self._next_chirp = now + self.options.chirp_after
            self._log("power applied: waiting for a sync poll")
        self._was_powered = powered

    def _loop_break(self) -> None:
        if self.protocol.synced:
            self._log("no address byte for 5 s: loop break, re-sync needed")
            self.protocol.lose_sync()  # SAS §4.2 loop break: the machine waits for a sync poll

    def _address_byte(self, now: float) -> None:
        if now - self._last_address_at >= self.options.chirp_after:
            self._loop_break()
        self._last_address_at = now
        self._next_chirp = now + self.options.chirp_after

    def _handle_events(self, now: float) -> None:
        for event in self.protocol.events_received():
            if isinstance(event, ReplyAcknowledged):
                self._acknowledged(event.reply, now)
            elif isinstance(event, ReplyResent):
                self.stats.resent += 1
            elif isinstance(event, PollRejected):
                self.stats.rejected += 1
                self._log(f"rejected poll: {event.error}")
            elif isinstance(event, PollIgnored):
                self.stats.ignored += 1  # SAS §3.5: out of sync, not heard
            elif isinstance(event, Synchronized):
                self.stats.syncs += 1
                self._log(f"sync: saw a poll to another address ({event.address_byte:02X})")
            elif isinstance(event, BroadcastReceived):
                self._broadcast(event, now)
            elif isinstance(event, PollReceived):
                self._poll(event, now)

    def _broadcast(self, event: BroadcastReceived, now: float) -> None:
        # SAS §2.2.2.4: type G is never answered, whatever the machine does with it
        if apply_broadcast(self.machine, event.poll, now):
            self.stats.broadcasts += 1
        else:
            self.stats.ignored += 1
            self._log(f"broadcast not acted on: LP {event.poll.command:02X}")

    def _acknowledged(self, reply: object, now: float) -> None:
        if self._in_flight is not None and self._in_flight[0] is reply:
            # SAS §3.5 implied ACK: the exception reached the host; it leaves the queue
            self.machine.acknowledge_exception(self._in_flight[1], now)
            self.stats.acknowledged_exceptions += 1
            if self._noisy_word:
                self.stats.noise_acknowledged.append(self._in_flight[1].code)
            elif self._in_flight_sent_as is not None:
                self.stats.noise_misread.append((self._in_flight[1].code,
                                                 self._in_flight_sent_as))
        self._in_flight = None

    def _poll(self, event: PollReceived, now: float) -> None:
        p = self.protocol
        poll = event.poll
        self.stats.polls += 1
        if isinstance(poll, Request) and poll.command in self.options.unsupported_polls:
            self._unsupported(poll.command)
            return
        if isinstance(poll, Request) and self._starts_busy(now):
            self._busy_until = now + self.options.busy_seconds
            self.stats.busy += 1
            p.send_busy()
            return
        if isinstance(poll, Request) and now < self._busy_until:
            self.stats.busy += 1
            p.send_busy()
            return
        if isinstance(poll, GeneralPoll) and self._rom_signature is not None:
            # SAS §6: the ROM signature answers a later poll, never as an RTE event
            p.send_reply(self._rom_signature)
            self._rom_signature = None
            self.stats.replies += 1
            return
        pending = self.machine.next_exception(now)
        if self.machine.rte_enabled:
            if pending is not None:
                # SAS §12.3: a pending event replaces the reply to any poll
                rte_event = self._rte_event(pending)
                p.send_event(rte_event)
                self._in_flight = (rte_event, pending)
                self.stats.replies += 1
                if isinstance(poll, Request):
                    self.stats.rte_substituted += 1
                return
            if isinstance(poll, GeneralPoll):
                if self.options.rte_idle_event:
                    p.send_event(PlainEvent(0x00))
                    self.stats.replies += 1
                else:
                    p.ignore()
                return
        elif isinstance(poll, GeneralPoll):
            reply = ExceptionReply(pending.code if pending is not None else 0x00)
            p.send_reply(reply)
            if pending is not None:
                self._in_flight = (reply, pending)
            self.stats.replies += 1
            return
        assert isinstance(poll, Request)
        result = answer(self.machine, poll, now)
        if result is None:
            self._unsupported(poll.command)
            return
        if poll.command == 0x21:
            seed = getattr(poll, "seed", 0)
            self._rom_signature = RomSignatureReply(
                rom_signature(seed, self.machine.config.serial_number))
        if poll.command == 0x3D and 0x4D in self.options.unsupported_polls:
            # Standard validation (reference §3.9b): on a machine without LP 4D, LP 3D is
            # the host's read of the cash-out ticket, so it services the 3D exception and
            # the next 3D read is about the next ticket
            self.machine.read_validation_info(now)
        p.send_reply(result)
        self.stats.replies += 1

    def _starts_busy(self, now: float) -> bool:
        """``busy`` profile: a long poll outside a busy period starts one at the set share."""
        share = self.options.busy_share
        return share > 0 and now >= self._busy_until and self._busy_rng.random() < share

    def _noise(self, words: Sequence[Word]) -> tuple[list[Word], list[bool]]:
        """Line noise on the way in: one data bit flipped at the set rate (the 9th bit
        survives, so an address byte stays an address byte); also which words were hit."""
        out, flipped = [], []
        for word in words:
            hit = self._rx_rng.random() < self.options.corrupt_received
            if hit:
                word = Word(word.value ^ (1 << self._rx_rng.randrange(8)), word.wakeup)
                self.stats.corrupted_received += 1
            out.append(word)
            flipped.append(hit)
        return out, flipped

    def _unsupported(self, command: int) -> None:
        # SAS §3.5: an unsupported long poll gets no answer at all (never a NACK)
        self.stats.ignored += 1
        self.stats.unsupported[command] = self.stats.unsupported.get(command, 0) + 1
        self.protocol.ignore()

    @staticmethod
    def _rte_event(pending: PendingException) -> RealTimeEvent:
        return decode_event_data(pending.rte_code, pending.rte_data, pending.rte_data)

    def _flush(self) -> None:
        data = self.protocol.data_to_send()
        if data:
            sent = self._write(data, wakeup=False)
            if self._in_flight is not None and isinstance(self._in_flight[0], ExceptionReply):
                # this write carried the exception's byte (first sent or re-sent, SAS §3.5)
                garbled = sent != data and len(sent) == 1
                self._in_flight_sent_as = sent[0] if garbled else None

    def _write(self, data: bytes, *, wakeup: bool) -> bytes:
        """Write ``data`` with line noise at the set rate; the bytes as sent."""
        if self.corrupt > 0:
            out = bytearray(data)
            for i in range(len(out)):
                if self._rng.random() < self.corrupt:
                    out[i] ^= 1 << self._rng.randrange(8)
                    self.stats.corrupted_bytes += 1
            data = bytes(out)
        transport = self._transport
        if transport is None:
            return data
        try:
            transport.write(data, wakeup=wakeup)
        except TransportError as exc:
            self._disconnected(transport, exc)
        return data

    def _disconnected(self, transport: Transport, exc: Exception) -> None:
        if self._stop.is_set() and isinstance(exc, TransportClosedError):
            return  # close() closed it while stopping the thread: nothing was lost
        with self.lock:
            if self._transport is transport:
                self._transport = None
        self._log(f"connection lost: {exc}")
        if self.on_disconnect is not None:
            self.on_disconnect(transport, exc)

    # ------------------------------------------------------------------ thread

    def start(self) -> None:
        """Serve on a thread, on ``time.monotonic()``."""
        if self._thread is not None:
            raise RuntimeError("emulator already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="emulator", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the serving thread (the transport stays open: ``detach()`` and close it)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the serving thread, detach the transport and close it.

        The transport is closed before the thread is joined: that ends at once a read, or a
        write a host that does not read keeps waiting up to the write timeout (the transport
        lets a close from another thread wait for either to let go of the descriptor). The
        thread's error from that close is the stop's own doing, not a lost connection. It is
        closed before ``lock`` is taken to detach it: the thread holds the lock while it writes.
        """
        self._stop.set()
        transport = self._transport
        if transport is not None:
            transport.close()
        attached = self.detach()  # the same one, or one attached meanwhile
        if attached is not None:
            attached.close()
        self.stop(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _serve(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            deadline = min(now + 0.05, self.next_timer(now))
            transport = self._transport
            words: list[Word] = []
            if transport is None:
                self._stop.wait(max(0.0, deadline - now))
            else:
                try:
                    words = transport.read(deadline=max(deadline, now + 0.001))
                except TransportError as exc:
                    self._disconnected(transport, exc)
            now = time.monotonic()
            self.receive(words, now)
            self.tick(now)
