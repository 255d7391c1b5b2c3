"""Coverage-guided fuzzing of the SAS codecs and both SAS state machines with atheris.

Not part of the test suite (CI runs the hypothesis properties in tests/reliability). For long
runs (see docs/reliability.md)::

    .venv/bin/pip install -e '.[fuzz]'      # atheris, not a runtime dependency
    .venv/bin/python bench/fuzz/fuzz_sas.py --make-corpus /tmp/corpus-sas
    .venv/bin/python bench/fuzz/fuzz_sas.py -max_total_time=3600 /tmp/corpus-sas

``--make-corpus DIR`` writes seed inputs built from the golden vectors
(tests/vectors/sas_frames.json) and exits; any other arguments go to libFuzzer. A failure is
written as ``crash-<hash>``; replay it with ``python bench/fuzz/fuzz_sas.py crash-<hash>``.

Input layout (so that seeds can be written by hand and mutations stay meaningful):

- byte 0, low two bits, the target: 0 the decoders, 1 (and 3) ``HostProtocol``, 2
  ``MachineProtocol``; flag 0x04 fixes up the CRC of every frame the host or the machine is
  given (the last two bytes of each chunk of four bytes or more, of each machine frame from
  its wakeup byte), so that mutated frames get past the CRC check; 0x08 starts the host in
  RTE mode, 0x20 makes it confirm every alarm exception (``confirm_exceptions``), 0x10
  starts the machine out of sync;
- byte 1: the index of the first poll in :data:`POLLS`;
- the rest: the target's payload (see each ``run_*`` function).

What counts as a failure (the design rule: decoders raise only the protocol's own errors,
the state machines never raise on received bytes and never wedge):

- a decoder raising anything but ``RemoteProtocolError`` (a ``LocalProtocolError`` from a
  decoder is a bug too: the bad bytes came from the line, not from the caller);
- a decoded message that does not survive ``encode`` then decode unchanged (RTE frames and
  requests: the very same bytes);
- ``describe_frame`` giving a description that is not JSON;
- ``HostProtocol`` or ``MachineProtocol`` raising, reporting an event of another type, a
  reply that does not answer its poll, bytes to send other than the poll or the sync poll,
  or a poll still awaiting its reply after its last window closed.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import atheris  # type: ignore[import-not-found,import-untyped,unused-ignore]
from corpus import write_seeds

with atheris.instrument_imports(include=["sas_protocol"]):
    import sas_protocol as sp

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors" / "sas_frames.json"

DECODE, HOST, MACHINE = 0, 1, 2
FIX_CRC, RTE_MODE, OUT_OF_SYNC, CONFIRM = 0x04, 0x08, 0x10, 0x20
#: Host payload record header: low 6 bits the chunk size, then these flags.
WINDOW_CLOSES, LATE_BYTES = 0x80, 0x40
ADDRESS = 1

#: Every poll the host may send; the input selects by index, so the order is fixed (append
#: only). It holds each poll of the golden reply vectors.
POLLS: tuple[Any, ...] = (
    sp.GeneralPoll(), sp.LockRequest(), sp.UnlockRequest(), sp.SoundOffRequest(),
    sp.SoundOnRequest(), sp.EnableBillAcceptorRequest(), sp.DisableBillAcceptorRequest(),
    sp.RealTimeReportingRequest(True), sp.RealTimeReportingRequest(False),
    sp.RomSignatureRequest(0), sp.RomSignatureRequest(0x1234),
    sp.SasVersionRequest(), sp.MachineInfoRequest(), sp.HandpayInfoRequest(),
    sp.LastBillRequest(), sp.GameCountRequest(), sp.SelectedGameRequest(),
    sp.EnabledGamesRequest(), sp.DateTimeRequest(), sp.RemoteHandpayResetRequest(),
    sp.HandpayResetMethodRequest(1),
    sp.SelectedMetersRequest(0, (0x00, 0x0D, 0x0C)),
    sp.SelectedMetersRequest(1, (0x00, 0x01, 0x0C)),
    sp.ExtendedMetersRequest(0, (0x00, 0xA0)), sp.ExtendedMetersRequest(0, (0x00, 0x01)),
    sp.ExtendedMetersRequest(1, (0x05,), alternate=True),
    sp.GameConfigurationRequest(1), sp.ExtendedGameInfoRequest(1),
    sp.EnhancedValidationRequest(0), sp.EnhancedValidationRequest(0xFF),
    sp.AftLockStatusRequest(0xFF, 0, 0), sp.AftLockStatusRequest(0, 0, 0),
    *[sp.MetersRequest(c) for c in sorted(sp.LEGACY_METER_POLLS)],
    sp.EnabledFeaturesRequest(0), sp.EnabledFeaturesRequest(1),
    sp.GameEnableRequest(1, True), sp.CashoutTicketRequest(), sp.GameMetersRequest(1),
    sp.MultiDenomRequest(1, sp.MetersRequest(0x11)),
    sp.MultiDenomRequest(4, sp.GameEnableRequest(1, True)),
    sp.MultiDenomRequest(1, sp.MetersRequest(0x1E)),
    sp.MultiDenomRequest(0, sp.EnabledGamesRequest()),
    sp.MultiDenomRequest(1, sp.SelectedMetersRequest(0, (0x00, 0x01, 0x0C))),
    sp.CurrentDenominationRequest(), sp.EnabledDenominationsRequest(),
)

#: Every exception code but the idle ones: all confirmed before they are reported.
ALARMS = frozenset(range(256)) - sp.IDLE_EXCEPTIONS

HOST_EVENTS = (sp.ReplyReceived, sp.ExceptionReported, sp.NoActivity, sp.RealTimeEventReceived,
               sp.NotSupported, sp.PollFailed, sp.LinkUp, sp.LinkDown, sp.FrameRejected)
MACHINE_EVENTS = (sp.PollReceived, sp.ReplyResent, sp.ReplyAcknowledged, sp.PollRejected,
                  sp.PollIgnored, sp.Synchronized, sp.BroadcastReceived)


class FuzzFailureError(AssertionError):
    """A property of the protocol core does not hold for this input."""


def check(condition: bool, text: str) -> None:
    if not condition:
        raise FuzzFailureError(text)


# --------------------------------------------------------------------------- decoders


def _reencoded(reply: Any, address: int) -> bytes | None:
    """``reply.encode(address)``, or None when the encoder refuses the value (its limits)."""
    try:
        return bytes(reply.encode(address))
    except sp.LocalProtocolError:
        return None


def run_decoders(frame: bytes, poll: Any) -> None:
    """Every decoder on ``frame``: a message (that survives a round trip) or a protocol error."""
    with contextlib.suppress(sp.RemoteProtocolError):
        sp.parse_hex(frame.decode("latin-1"))  # the text form of a capture, as typed in
    frame_address = frame[0] if frame and 1 <= frame[0] <= 127 else ADDRESS
    try:
        address, request = sp.decode_request(frame)
    except sp.RemoteProtocolError as exc:
        check(isinstance(exc.raw, bytes), "error without raw bytes")
    else:
        if 1 <= address <= 127:
            check(request.encode(address) == frame, f"request round trip: {request!r}")
        check(sp.decode_request(frame) == (address, request), "decode_request not stable")
    try:
        reply = sp.decode_reply_frame(frame)
    except sp.RemoteProtocolError as exc:
        check(isinstance(exc.raw, bytes), "error without raw bytes")
    else:
        again = _reencoded(reply, frame[0])
        if again is not None:
            check(sp.decode_reply_frame(again) == reply, f"reply round trip: {reply!r}")
    try:
        event = sp.decode_rte_frame(frame)
    except sp.RemoteProtocolError as exc:
        check(isinstance(exc.raw, bytes), "error without raw bytes")
    else:
        check(sp.encode_rte_frame(frame[0], event) == frame, f"RTE round trip: {event!r}")
    try:
        description = sp.describe_frame(frame)
    except sp.RemoteProtocolError as exc:
        check(isinstance(exc.raw, bytes), "error without raw bytes")
    else:
        json.dumps(description.to_json())
    for addr in {ADDRESS, frame_address}:
        try:
            answer = sp.decode_reply(poll, frame, address=addr)
        except sp.RemoteProtocolError as exc:
            check(isinstance(exc.raw, bytes), "error without raw bytes")
            continue
        again = _reencoded(answer, addr)
        if again is not None:
            check(sp.decode_reply(poll, again, address=addr) == answer,
                  f"decode_reply round trip: {answer!r} to {poll!r}")


# --------------------------------------------------------------------------- host


def _check_host_output(host: sp.HostProtocol, poll: Any) -> None:
    frame = poll.encode(host.address)
    sync = bytes((0x80 | host.sync_address,))
    for item in host.data_to_send():
        check(item.wakeup and item.data in (frame, sync), f"host sent {item.data.hex()}")


def _was_received(received: bytes, reply: Any) -> bool:
    """True if a frame with a good CRC that decodes to ``reply`` is among the bytes read."""
    again = _reencoded(reply, ADDRESS)
    if again is not None and again in received:
        return True  # the usual case; else the frame differs from the encoder's (6F order)
    start = received.find(bytes((ADDRESS, reply.command)))
    while start >= 0:
        for end in range(start + 4, min(len(received), start + 260) + 1):
            frame = received[start:end]
            if sp.crc_ok(frame):
                with contextlib.suppress(sp.RemoteProtocolError):
                    if sp.decode_reply_frame(frame, address=ADDRESS) == reply:
                        return True
        start = received.find(bytes((ADDRESS, reply.command)), start + 1)
    return False


def _check_host_events(events: list[Any], received: bytes) -> None:
    """Each event is of a known type and answers its poll; what it reports was read: a data
    reply or an RTE event from a frame with a good CRC (SAS §2.3: no phantom data), an
    exception code from a byte on the line."""
    for event in events:
        check(isinstance(event, HOST_EVENTS), f"unknown host event {event!r}")
        if isinstance(event, sp.FrameRejected):
            check(isinstance(event.error.raw, bytes), "rejection without raw bytes")
        elif isinstance(event, sp.ExceptionReported):
            check(bytes((event.code,)) in received, f"exception {event.code:02X} never read")
        elif isinstance(event, sp.RealTimeEventReceived):
            check(sp.encode_rte_frame(ADDRESS, event.event) in received,
                  f"RTE event never read: {event!r}")
        elif isinstance(event, sp.ReplyReceived):
            poll, reply = event.poll, event.reply
            if isinstance(poll, sp.GeneralPoll):
                check(False, f"general poll answered as a reply: {reply!r}")
            elif isinstance(reply, sp.RomSignatureReply):
                check(isinstance(poll, sp.RomSignatureRequest), f"signature for {poll!r}")
            elif poll.expects_ack:
                check(isinstance(reply, sp.Ack), f"{poll!r} answered by {reply!r}")
            else:
                check(not isinstance(reply, sp.Ack | sp.Nack | sp.Busy | sp.ExceptionReply)
                      and reply.command == poll.command, f"{poll!r} answered by {reply!r}")
            if not isinstance(reply, sp.Ack):
                check(_was_received(received, reply), f"phantom reply {reply!r}")


def run_host(first_poll: int, rte: bool, confirm: bool, fix_crc: bool, payload: bytes) -> None:
    """Drive ``HostProtocol``: ``payload`` is a list of records, one per reply window.

    A record is a header byte (chunk size in the low 6 bits; ``WINDOW_CLOSES`` closes the
    window after the chunk, as does an empty chunk; ``LATE_BYTES`` feeds the chunk again
    once the poll is over) and the chunk. When a poll is over, the next byte selects the
    next poll.
    """
    host = sp.HostProtocol(ADDRESS, rte_mode=rte,
                           confirm_exceptions=ALARMS if confirm else frozenset())
    poll = POLLS[first_poll % len(POLLS)]
    host.send(poll)
    received = bytearray()  # every byte read so far
    i = 0
    while i < len(payload):
        if not host.awaiting_reply:
            poll = POLLS[payload[i] % len(POLLS)]
            i += 1
            host.send(poll)
            continue
        _check_host_output(host, poll)
        header = payload[i]
        chunk = payload[i + 1 : i + 1 + (header & 0x3F)]
        i += 1 + len(chunk)
        if fix_crc and len(chunk) >= 4:
            chunk = sp.append_crc(chunk[:-2])
        received += chunk
        host.receive_data(chunk)
        if host.awaiting_reply:
            _check_host_output(host, poll)  # a re-send is written before the window closes
        if header & WINDOW_CLOSES or not chunk:
            host.receive_timeout()
        if header & LATE_BYTES and chunk and not host.awaiting_reply:
            host.receive_data(chunk)
        _check_host_events(host.events_received(), bytes(received))
    # SAS §3.2: every poll ends within its sends; closing the windows must conclude it.
    for _ in range(host.max_sends + 2):
        if not host.awaiting_reply:
            break
        _check_host_output(host, poll)
        host.receive_timeout()
    check(not host.awaiting_reply, f"host wedged awaiting {poll!r}")
    _check_host_events(host.events_received(), bytes(received))


# --------------------------------------------------------------------------- machine


def _crc_fixed(pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The (value, control) pairs with the CRC of each frame (from a wakeup word to the next)
    of four words or more recomputed into its last two values."""
    starts = [n for n, (_, ctl) in enumerate(pairs) if ctl & 0x01] + [len(pairs)]
    out = list(pairs)
    for start, end in itertools.pairwise(starts):
        if end - start >= 4:
            crc = sp.append_crc(bytes(v for v, _ in pairs[start : end - 2]))[-2:]
            out[end - 2] = (crc[0], pairs[end - 2][1])
            out[end - 1] = (crc[1], pairs[end - 1][1])
    return out


def _answer(machine: sp.MachineProtocol, how: int, value: int) -> None:
    if how == 0:
        machine.ignore()
    elif how == 1:
        machine.send_ack()
    elif how == 2:
        machine.send_busy()
    elif how == 3:
        machine.send_nack()
    elif how == 4:
        machine.send_exception(value)
    elif how == 5:
        machine.send_event(sp.PlainEvent(0x51))
    elif how == 6:
        machine.send_raw(bytes((ADDRESS, value)))
    # 7: leave the poll pending while more words arrive


def run_machine(out_of_sync: bool, fix_crc: bool, payload: bytes) -> None:
    """Drive ``MachineProtocol`` with (value, control) byte pairs.

    Control bit 0 is the wakeup bit; bits 1-3 choose how a pending poll is answered
    (:func:`_answer`); bit 5 is a loop break (``lose_sync``) and bit 6 a power-up (``reset``)
    before the word.
    """
    machine = sp.MachineProtocol(ADDRESS, synced=not out_of_sync)
    pairs = [(payload[j], payload[j + 1]) for j in range(0, len(payload) - 1, 2)]
    if fix_crc:
        pairs = _crc_fixed(pairs)
    for value, ctl in pairs:
        if ctl & 0x20:
            machine.lose_sync()
        if ctl & 0x40:
            machine.reset()
        machine.receive_words([(value, bool(ctl & 0x01))])
        if machine.awaiting_answer:
            _answer(machine, (ctl >> 1) & 0x07, value)
        check(isinstance(machine.data_to_send(), bytes), "machine output is not bytes")
        for event in machine.events_received():
            check(isinstance(event, MACHINE_EVENTS), f"unknown machine event {event!r}")
            if isinstance(event, sp.PollReceived | sp.ReplyResent):
                check(event.poll.encode(ADDRESS) == event.frame,
                      f"machine poll round trip: {event!r}")
            elif isinstance(event, sp.BroadcastReceived):
                check(sp.decode_request(event.frame) == (0, event.poll), f"{event!r}")
            elif isinstance(event, sp.PollRejected):
                check(isinstance(event.error.raw, bytes), "rejection without raw bytes")


# --------------------------------------------------------------------------- entry points


def one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    flags, poll_index, payload = data[0], data[1], data[2:]
    target = flags & 0x03
    if target == DECODE:
        poll = POLLS[poll_index % len(POLLS)]
        run_decoders(payload, poll)
        if len(payload) >= 3:
            # The same bytes with their CRC fixed up: mutations reach the body decoders.
            run_decoders(sp.append_crc(payload[:-2]), poll)
    elif target == MACHINE:
        run_machine(bool(flags & OUT_OF_SYNC), bool(flags & FIX_CRC), payload)
    else:
        run_host(poll_index, bool(flags & RTE_MODE), bool(flags & CONFIRM), bool(flags & FIX_CRC),
                 payload)


def _words(frame: bytes) -> bytes:
    """A host frame as machine payload pairs: wakeup on the first byte only (SAS §3.1)."""
    return b"".join(bytes((b, 0x01 if i == 0 else 0x00)) for i, b in enumerate(frame))


def _host_records(frame: bytes, *, close: bool = True) -> bytes:
    """``frame`` as host payload records of at most 63 bytes; the window closes at the end."""
    out = bytearray()
    for start in range(0, len(frame), 63):
        chunk = frame[start : start + 63]
        last = start + 63 >= len(frame)
        out += bytes(((WINDOW_CLOSES if last and close else 0) | len(chunk),)) + chunk
    return bytes(out)


def seed_inputs() -> dict[str, bytes]:
    """Seeds from the golden vectors: each frame for the decoders, each reply and RTE frame
    answered to its poll (whole and byte by byte, RTE mode on and off), each request as
    machine words, plus the two-step flows (ROM signature, LP 0E then an event)."""
    vectors = json.loads(VECTORS.read_text())["vectors"]
    seeds: dict[str, bytes] = {}

    def index_of(poll: Any) -> int:
        if poll not in POLLS:
            raise SystemExit(f"fuzz_sas.POLLS lacks {poll!r} (a vector's poll): append it")
        return POLLS.index(poll)

    for n, vector in enumerate(vectors):
        frame = bytes.fromhex(vector["hex"])
        name = f"{n:03d}-{vector['kind']}"
        poll: Any = sp.GeneralPoll()
        if "poll" in vector:
            poll_frame = bytes.fromhex(vector["poll"])
            if len(poll_frame) > 1:
                poll = sp.decode_request(poll_frame)[1]
        seeds[f"{name}-decode"] = bytes((DECODE, index_of(poll))) + frame
        if vector["kind"] == "request":
            seeds[f"{name}-machine"] = bytes((MACHINE, 0)) + _words(frame) + b"\x00\x03"
            seeds[f"{name}-machine-crc"] = bytes((MACHINE | FIX_CRC, 0)) + _words(frame)
            if len(frame) > 2 and sp.crc_ok(frame):
                # The same poll as a global broadcast (address 0, SAS §2.2.2.4).
                broadcast = sp.append_crc(b"\x00" + frame[1:-2])
                seeds[f"{name}-broadcast"] = (bytes((MACHINE | OUT_OF_SYNC, 0))
                                              + _words(broadcast))
        elif vector["kind"] == "reply":
            if vector["type"] == "RomSignatureReply":
                # SAS §6: LP 21 is ACKed, the signature answers a later general poll.
                seeds[f"{name}-host"] = (
                    bytes((HOST, index_of(sp.RomSignatureRequest(0))))
                    + _host_records(bytes((ADDRESS,))) + bytes((index_of(sp.GeneralPoll()),))
                    + _host_records(frame))
                continue
            for flags in (HOST, HOST | RTE_MODE, HOST | CONFIRM):
                seeds[f"{name}-host-{flags:02x}"] = (bytes((flags, index_of(poll)))
                                                     + _host_records(frame))
            if vector["type"] == "ExceptionReply":
                # Confirmed by a second reading, or outvoted by the third (noise on one).
                seeds[f"{name}-host-confirmed"] = (bytes((HOST | CONFIRM, 0))
                                                   + _host_records(frame) * 2)
                seeds[f"{name}-host-outvoted"] = (bytes((HOST | CONFIRM, 0))
                                                  + _host_records(frame) + b"\x81\x00" * 2)
            bytewise = b"".join(bytes((1,)) + bytes((b,)) for b in frame) + b"\x80"
            seeds[f"{name}-host-bytes"] = bytes((HOST, index_of(poll))) + bytewise
        elif vector["kind"] == "rte":
            if vector["type"] == "PlainEvent":
                idle = sp.encode_rte_frame(ADDRESS, sp.PlainEvent(0x00))  # [unsure] FF 00
                seeds[f"{name}-host-ff00"] = bytes((HOST | RTE_MODE, 0)) + _host_records(idle)
            for flags in (HOST, HOST | RTE_MODE):
                seeds[f"{name}-host-{flags:02x}"] = (bytes((flags, 0)) + _host_records(frame))
            # SAS §12.3: an event instead of the reply to a long poll, then the reply.
            seeds[f"{name}-host-substituted"] = (
                bytes((HOST | RTE_MODE, index_of(sp.MetersRequest(0x11))))
                + _host_records(frame) + b"\x80" * 4)
            # LP 0E ACKed, then a general poll answered by the event.
            seeds[f"{name}-host-lp0e"] = (
                bytes((HOST, index_of(sp.RealTimeReportingRequest(True))))
                + _host_records(bytes((ADDRESS,))) + bytes((0,)) + _host_records(frame))
    return seeds


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--make-corpus":
        raise SystemExit(write_seeds(Path(sys.argv[2]), seed_inputs()))
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
