"""Golden vectors (tests/vectors/sas_frames.json): decoded whole, one byte at a time and with
trailing bytes; every request built from its fields equals its bytes."""

from __future__ import annotations

from typing import Any

import pytest

import sas_protocol as sp
from sas_protocol.describe import jsonable_fields
from tests.sas_protocol.sas_helpers import load_vectors, words

REQUESTS = load_vectors("request")
REPLIES = load_vectors("reply")
RTES = load_vectors("rte")
CRC_ONLY = load_vectors("crc_only")


def _ids(vectors: list[dict[str, Any]]) -> list[str]:
    return [v["hex"] for v in vectors]


#: Layout-choice fields (reference §3.9b [unsure]) and their enums, by field name.
_CHOICES = {
    "flag_style": sp.GameEnableFlag,
    "encoding": sp.DelayEncoding,
    "number_size": sp.TicketNumberSize,
    "wrapped_ack": sp.WrappedAck,
}


def _layouts(vector: dict[str, Any]) -> sp.PollLayouts:
    """The machine's layout choices a vector was recorded with (default: the majority's)."""
    enums: dict[str, Any] = {"game_enable": sp.GameEnableFlag, "delay": sp.DelayEncoding,
                             "ticket_number": sp.TicketNumberSize, "wrapped_ack": sp.WrappedAck}
    chosen = vector.get("layouts", {})
    return sp.PollLayouts(**{key: enums[key](value) for key, value in chosen.items()})


def _poll_of(hex_text: str, layouts: sp.PollLayouts = sp.DEFAULT_LAYOUTS) -> sp.Poll:
    frame = bytes.fromhex(hex_text)
    if len(frame) == 1:
        return sp.GeneralPoll()
    return sp.decode_request(frame, layouts)[1]


def _build(vector: dict[str, Any]) -> Any:
    return _message(vector["type"], vector["fields"])


def _message(type_name: str, fields: dict[str, Any]) -> Any:
    kwargs: dict[str, Any] = {}
    for key, value in fields.items():
        if key in _CHOICES:
            value = _CHOICES[key](value)
        elif isinstance(value, dict):  # a poll wrapped in B0
            inner = dict(value)
            value = _message(inner.pop("type"), inner)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    return getattr(sp, type_name)(**kwargs)


def test_vector_file_covers_every_reference_crc_frame() -> None:
    reference = {
        "01 71 01 FF 1F D0", "01 B0 02 01 11 B0 C7", "01 01 51 08", "01 02 CA 3A",
        "01 03 43 2B", "01 04 FC 5F", "01 06 EE 7C", "01 07 67 6D", "01 0E 01 45 D1",
        "01 0E 00 CC C0", "01 94 75 CB", "01 A8 01 6A 2A", "01 4D 00 C2 AC",
        "01 21 00 00 5C 45", "01 53 00 01 B5 61", "01 B5 00 01 CD BE",
        "01 7F 03 15 20 24 13 45 30 ED 74", "01 74 FF 00 00 00 1A F9",
        "01 2F 05 00 00 00 01 0C FB 3C", "01 6F 08 00 00 00 00 01 00 0C 00 52 CF",
    }
    assert reference <= {v["hex"] for v in load_vectors()}
    assert all(v["source"] and v["meaning"] for v in load_vectors())


@pytest.mark.parametrize("vector", CRC_ONLY, ids=_ids(CRC_ONLY))
def test_crc_only_frames(vector: dict[str, Any]) -> None:
    frame = bytes.fromhex(vector["hex"])
    assert sp.crc_ok(frame)
    assert sp.append_crc(frame[:-2]) == frame
    for i in range(len(frame)):
        assert not sp.crc_ok(frame[:i] + bytes((frame[i] ^ 0x01,)) + frame[i + 1 :])


@pytest.mark.parametrize("vector", REQUESTS, ids=_ids(REQUESTS))
def test_request_vectors(vector: dict[str, Any]) -> None:
    frame = bytes.fromhex(vector["hex"])
    layouts = _layouts(vector)
    built = _build(vector)
    assert built.encode(1) == frame
    address, decoded = sp.decode_request(frame, layouts)
    assert (address, decoded) == (1, built)
    assert type(decoded).__name__ == vector["type"]
    assert jsonable_fields(decoded) == vector["fields"]
    # Trailing bytes: a whole-frame decoder rejects them ...
    with pytest.raises(sp.LengthError):
        sp.decode_request(frame + b"\x00", layouts)
    # ... while the machine, fed one word at a time, frames the poll and ignores the rest.
    machine = sp.MachineProtocol(1, layouts=layouts)
    for word in [*words(frame), (0x00, False), (0x55, False)]:
        machine.receive_words([word])
    assert machine.events_received() == [sp.PollReceived(built, frame)]
    assert machine.data_to_send() == b""


def _run_reply(poll: sp.Poll, frame: bytes, *, rte: bool, chunks: list[bytes]) -> list[Any]:
    host = sp.HostProtocol(1, rte_mode=rte)
    host.send(poll)
    host.data_to_send()
    for chunk in chunks:
        host.receive_data(chunk)
    if host.awaiting_reply:
        host.receive_timeout()
    return host.events_received()


@pytest.mark.parametrize("vector", REPLIES, ids=_ids(REPLIES))
def test_reply_vectors(vector: dict[str, Any]) -> None:
    frame = bytes.fromhex(vector["hex"])
    poll = _poll_of(vector["poll"], _layouts(vector))
    reply = sp.decode_reply(poll, frame, address=1)
    assert type(reply).__name__ == vector["type"]
    assert jsonable_fields(reply) == vector["fields"]
    if "meters" in vector:
        assert isinstance(reply, sp.MeterReply)
        assert {f"{c:02X}": v for c, v in reply.meters.items()} == vector["meters"]
        assert set(reply.widths) == set(reply.meters)
    assert reply.encode(1) == frame
    if len(frame) > 2:
        with pytest.raises(sp.SasProtocolError):
            sp.decode_reply(poll, frame + b"\x00", address=1)

    whole = _host_events(poll, frame, [frame])
    byte_by_byte = _host_events(poll, frame, [bytes((b,)) for b in frame])
    assert whole == byte_by_byte
    trailing = _host_events(poll, frame, [frame + b"\x55"])
    if isinstance(reply, sp.Ack):
        # An ACK has no CRC: a byte after it means the frame answered another poll
        # (SAS §3.5), so it is rejected and the poll sent again, never taken as done.
        assert len(trailing) == 1 and isinstance(trailing[0], sp.FrameRejected)
    else:
        assert [e for e in trailing if not isinstance(e, sp.FrameRejected)] == whole
    if isinstance(reply, sp.Nack | sp.Busy):
        assert whole == [sp.LinkUp()]  # not delivered: the host re-sends instead
    elif isinstance(reply, sp.ExceptionReply):
        assert whole == [sp.LinkUp(), sp.ExceptionReported(reply.code)]
    else:
        assert whole[-1] == sp.ReplyReceived(
            sp.RomSignatureRequest(0) if isinstance(reply, sp.RomSignatureReply) else poll, reply
        )


def _host_events(poll: sp.Poll, frame: bytes, chunks: list[bytes]) -> list[Any]:
    host = sp.HostProtocol(1)
    if isinstance(poll, sp.GeneralPoll) and frame[1:2] == b"\x21":
        host.send(sp.RomSignatureRequest(0))  # SAS §6: the signature comes later
        host.data_to_send()
        host.receive_data(b"\x01")
        host.receive_timeout()
        assert host.events_received()[-1] == sp.ReplyReceived(sp.RomSignatureRequest(0), sp.Ack())
    host.send(poll)
    host.data_to_send()
    for chunk in chunks:
        host.receive_data(chunk)
    resend = host.data_to_send()
    if resend:
        assert resend == [sp.Outgoing(poll.encode(1), True)]  # SAS §3.2 re-send
    elif host.awaiting_reply:
        host.receive_timeout()  # a lone ACK byte is known only when the window closes
    return host.events_received()


@pytest.mark.parametrize("vector", RTES, ids=_ids(RTES))
def test_rte_vectors(vector: dict[str, Any]) -> None:
    frame = bytes.fromhex(vector["hex"])
    event = sp.decode_rte_frame(frame, address=1)
    assert type(event).__name__ == vector["type"]
    assert event.fields() == vector["fields"]
    assert len(frame) == sp.rte_frame_length(frame[2])
    assert sp.encode_rte_frame(1, event) == frame
    with pytest.raises(sp.LengthError):
        sp.decode_rte_frame(frame + b"\x00")
    expected = [sp.LinkUp(), sp.RealTimeEventReceived(event, sp.GeneralPoll(), substituted=False)]
    # rte=False: a machine left in RTE mode (the host restarted) answers general polls with
    # event frames until LP 0E is ACKed; the host takes them in either mode.
    for rte in (True, False):
        for chunks in ([frame], [bytes((b,)) for b in frame]):
            assert _run_reply(sp.GeneralPoll(), frame, rte=rte, chunks=chunks) == expected
        trailing = _run_reply(sp.GeneralPoll(), frame, rte=rte, chunks=[frame + b"\x00"])
        assert [e for e in trailing if not isinstance(e, sp.FrameRejected)] == expected
