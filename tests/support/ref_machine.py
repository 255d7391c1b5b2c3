"""A small SAS gaming machine written from the reference alone (shared reference
sas-protocol.md), not from ``emulator`` nor ``sas_protocol``'s machine side: the agent is
tested against habits the reference allows and our emulator does not have.

It imports nothing of the project but the transport contract (``drivers.base``) and builds
every frame itself (CRC-16/KERMIT, packed BCD). What it does, with the section it follows:

- §3.3 sync: after power-up it ignores polls to itself until it sees a poll to another
  address or to address 0;
- §3.5 implied ACK / NACK: the same poll again (a general poll, or a long poll with the same
  address and command) gets the stored reply again; any other poll acknowledges it (and
  drops the exception it reported from the queue); a bad CRC gets ``addr|80``; a poll it
  does not support gets no reply at all;
- §3.4 a FIFO exception queue; the idle answer is ``00``, or ``1F`` (``idle_byte``, IGT);
- §3.6 timing: the reply starts ``reply_delay_s`` after the poll (≤ 20 ms) and its bytes
  are ``byte_gap_s`` apart (≤ 5 ms), both allowed by the reference;
- §3.9 / §3.10 the polls below, LP 2F with sizes per meter code (``selected_sizes``: the
  reference gives none for 25/26, LP 18 sends them in two bytes);
- §3.12 real-time event reporting after an acknowledged LP 0E 01 (``rte_capable``): general
  polls get ``A FF code data CRC``, or silence when idle (§3.4: the spec summary sends no
  00 in RTE mode); a long poll with an event pending gets the event instead of its reply.
  7E's coin-in meter includes the game's wager, or not (``rte_meter_before_wager``: §3.12
  does not say).
"""

from __future__ import annotations

import threading
import time
from collections import deque

from drivers.base import Transport, TransportError

#: §3.9: polls with no data (type R): ``addr cmd``.
_R_POLLS = frozenset({0x0F, *range(0x10, 0x1D), 0x1E, 0x1F, 0x20, *range(0x31, 0x47), 0x48,
                      0x51, 0x54, 0x55, 0x56, 0x7E, 0xB1, 0xB2})
#: §3.3 / §3.9: whole lengths of the fixed-length S and M polls (address to CRC).
_FIXED = {**{c: 4 for c in range(0x01, 0x08)}, 0x09: 7, 0x0E: 5, 0x21: 6, 0x2E: 6, 0x4D: 5,
          0x52: 6, 0x53: 6, 0x74: 8, 0x7F: 11, 0x94: 4, 0xA0: 6, 0xA8: 5, 0xB5: 6}
#: §3.3: variable polls carry a length byte after the command.
_VARIABLE = frozenset({0x2F, 0x6F, 0xAF, 0xB0, 0x72, 0x08})
#: §3.9: the legacy meter polls, as table C-7 codes in reply order (4 BCD bytes each).
_LEGACY = {0x0F: (0x04, 0x00, 0x01, 0x24, 0x02, 0x05), 0x10: (0x04,), 0x11: (0x00,),
           0x12: (0x01,), 0x13: (0x24,), 0x14: (0x02,), 0x15: (0x05,), 0x16: (0x06,),
           0x17: (0x07,), 0x19: (0x00, 0x01, 0x24, 0x02, 0x05), 0x1A: (0x0C,)}
#: what it answers by default: meters, identification, a few commands
DEFAULT_SUPPORTED = frozenset({*_LEGACY, 0x1F, 0x54, 0x2F, 0x6F, 0xAF, 0x01, 0x02, 0x0E})


def crc(data: bytes) -> bytes:
    """§3.7: CRC-16/KERMIT, low byte first."""
    value = 0
    for byte in data:
        value ^= byte
        for _ in range(8):
            value = (value >> 1) ^ 0x8408 if value & 1 else value >> 1
    return bytes((value & 0xFF, value >> 8))


def bcd(value: int, size: int) -> bytes:
    """§3.8: packed BCD, most significant first."""
    digits = f"{value:0{size * 2}d}"[-size * 2:]
    return bytes(int(digits[i : i + 2], 16) for i in range(0, len(digits), 2))


def _size(code: int) -> int:
    """§3.10 sizes: cents meters are 5 bytes, the rest 4."""
    if 0x0D <= code <= 0x10 or (0x80 <= code <= 0xBD and code % 2 == 0):
        return 5
    return 4


class RefMachine:
    """One machine at ``address`` on ``transport`` (the machine end), served on a thread."""

    def __init__(self, transport: Transport, address: int = 1, *, denomination: int = 0x01,
                 supported: frozenset[int] = DEFAULT_SUPPORTED, idle_byte: int = 0x00,
                 reply_delay_s: float = 0.0, byte_gap_s: float = 0.0,
                 selected_sizes: dict[int, int] | None = None,
                 rte_capable: bool = False, rte_meter_before_wager: bool = False) -> None:
        self.transport = transport
        self.address = address
        self.denomination = denomination
        self.supported = supported
        self.idle_byte = idle_byte
        self.reply_delay_s = reply_delay_s
        self.byte_gap_s = byte_gap_s
        self.selected_sizes = selected_sizes or {}
        self.meters: dict[int, int] = {c: 0 for c in (0x00, 0x01, 0x02, 0x04, 0x05, 0x06,
                                                      0x07, 0x0C, 0x24, 0x25, 0x26)}
        #: queued exceptions: code and its RTE data (§3.12), reported oldest first
        self.queue: deque[tuple[int, bytes]] = deque()
        self.rte_capable = rte_capable
        self.rte = False
        #: §3.12 leaves open whether 7E's coin-in meter includes the game's own wager
        self.rte_meter_before_wager = rte_meter_before_wager
        self.lock = threading.Lock()
        self.synced = False  # §3.3: a machine powers up out of sync
        self.polls: list[bytes] = []  # every complete poll to this machine, for asserts
        self._last_key: tuple[int, ...] | None = None
        self._last_reply: bytes | None = None
        self._reported: tuple[int, bytes] | None = None  # the queued exception last sent
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ref-machine", daemon=True)

    # -- the game ---------------------------------------------------------------------------

    def play(self, bet: int, win: int) -> None:
        """One game of ``bet`` credits winning ``win``: 7E, meters, 7F (§4.1)."""
        with self.lock:
            before = self.meters[0x00]
            self.meters[0x00] += bet
            self.meters[0x05] += 1
            self.meters[0x25] += 1
            self.meters[0x26] += 1
            meter = before if self.rte_meter_before_wager else self.meters[0x00]
            started = bcd(bet, 2) + bcd(meter, 4) + b"\x00\x00"
            self.meters[0x06 if win else 0x07] += 1
            self.meters[0x01] += win
            self.meters[0x0C] += win - bet
            self.queue.extend(((0x7E, started), (0x7F, bcd(win, 4))))

    def raise_exception(self, code: int) -> None:
        """Queue an exception without data (§3.12: most codes carry none)."""
        with self.lock:
            self.queue.append((code, b""))

    def pending(self) -> int:
        with self.lock:
            return len(self.queue)

    # -- the line ---------------------------------------------------------------------------

    def start(self) -> RefMachine:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def _run(self) -> None:
        buf = bytearray()
        while not self._stop.is_set():
            try:
                words = self.transport.read(time.monotonic() + 0.05)
            except TransportError:
                return
            for word in words:
                if word.wakeup:
                    buf = bytearray((word.value,))
                    if word.value & 0x80:  # §3.2: a general poll is one byte, 80|address
                        self._general(word.value & 0x7F)
                        buf.clear()
                    continue
                if not buf:
                    continue  # a byte outside any message
                buf.append(word.value)
                if self._complete(buf):
                    self._long(bytes(buf))
                    buf.clear()

    @staticmethod
    def _complete(buf: bytearray) -> bool:
        cmd = buf[1]
        if cmd in _R_POLLS:
            return True
        if cmd in _VARIABLE:
            return len(buf) >= 3 and len(buf) == 3 + buf[2] + 2
        return len(buf) == _FIXED.get(cmd, -1)  # unknown: never complete, never answered

    def _other_address(self) -> None:
        """§3.3 / §3.5: a poll to another address (or address 0) syncs and is an implied
        ACK."""
        self.synced = True
        self._acknowledged()
        self._last_key = None

    def _acknowledged(self) -> None:
        with self.lock:
            if self._reported is not None and self.queue and self.queue[0] is self._reported:
                self.queue.popleft()
        self._reported = None
        self._last_reply = None

    def _general(self, address: int) -> None:
        if address != self.address:
            self._other_address()
            return
        if not self.synced:
            return
        key = (0x80 | address,)
        self.polls.append(bytes(key))
        if key == self._last_key and self._last_reply is not None:
            self._send(self._last_reply)  # §3.5: the same general poll is an implied NACK
            return
        self._acknowledged()
        with self.lock:
            head = self.queue[0] if self.queue else None
        self._reported = head
        self._last_key = key
        if self.rte:
            if head is None:
                self._last_reply = None
                return  # §3.4: no 00 in RTE mode
            self._last_reply = self._event(head)
        else:
            self._last_reply = bytes((head[0] if head else self.idle_byte,))
        self._send(self._last_reply)

    def _long(self, frame: bytes) -> None:
        if frame[0] != self.address:
            self._other_address()
            return
        if not self.synced:
            return
        self.polls.append(frame)
        if len(frame) > 2 and crc(frame[:-2]) != frame[-2:]:
            self._send(bytes((self.address | 0x80,)))  # §3.5 NACK, not stored
            return
        key = (frame[0], frame[1])
        if key == self._last_key and self._last_reply is not None:
            self._send(self._last_reply)
            return
        self._acknowledged()
        self._last_key = key
        with self.lock:
            head = self.queue[0] if self.queue else None
        if self.rte and head is not None:
            # §3.12: an event pending takes the place of any long poll's reply
            self._reported = head
            self._last_reply = self._event(head)
            self._send(self._last_reply)
            return
        if frame[1] not in self.supported:
            return  # §3.5: an unsupported long poll gets no reply at all
        reply = self._answer(frame)
        if reply is not None:
            self._last_reply = reply
            self._send(reply)

    def _answer(self, frame: bytes) -> bytes | None:
        a, cmd = self.address, frame[1]
        with self.lock:
            meters = dict(self.meters)
        if cmd in (0x01, 0x02):
            return bytes((a,))
        if cmd == 0x0E:
            if not self.rte_capable:
                return None  # §3.9b: an EGM without RTE stays silent
            self.rte = frame[2] == 0x01
            return bytes((a,))
        if cmd in _LEGACY:
            body = b"".join(bcd(meters.get(c, 0), 4) for c in _LEGACY[cmd])
            return self._framed(bytes((a, cmd)) + body)
        if cmd == 0x1F:  # §3.9: 24 bytes
            body = (b"RM" + b"001" + bytes((self.denomination, 0x05, 0x00, 0x00, 0x00))
                    + b"PT0001" + b"9500")
            return self._framed(bytes((a, cmd)) + body)
        if cmd == 0x54:
            data = b"602" + b"REF0001"
            return self._framed(bytes((a, cmd, len(data))) + data)
        if cmd == 0x2F:
            codes = frame[5:-2]
            body = bytes(frame[3:5]) + b"".join(
                bytes((c,)) + bcd(meters[c], self.selected_sizes.get(c, _size(c)))
                for c in codes if c in meters)
            return self._framed(bytes((a, cmd, len(body))) + body)
        if cmd in (0x6F, 0xAF):
            raw = frame[5:-2]
            codes = [raw[i] | raw[i + 1] << 8 for i in range(0, len(raw) - 1, 2)]
            body = bytes(frame[3:5])
            for c in codes:
                size = _size(c) if c in meters else 0
                body += c.to_bytes(2, "little") + bytes((size,))
                if size:
                    body += bcd(meters[c], size)
            return self._framed(bytes((a, cmd, len(body))) + body)
        return None

    def _event(self, head: tuple[int, bytes]) -> bytes:
        return self._framed(bytes((self.address, 0xFF, head[0])) + head[1])

    @staticmethod
    def _framed(data: bytes) -> bytes:
        return data + crc(data)

    def _send(self, reply: bytes) -> None:
        if self.reply_delay_s:
            time.sleep(self.reply_delay_s)  # §3.6: the machine may take up to 20 ms
        if not self.byte_gap_s:
            self.transport.write(reply, wakeup=False)
            return
        for i, byte in enumerate(reply):  # §3.6: up to 5 ms between bytes
            if i:
                time.sleep(self.byte_gap_s)
            self.transport.write(bytes((byte,)), wakeup=False)
