"""``slot-agent decode HEX...`` / ``slot-agent decode --file CAPTURE``: explain SAS frames.

One frame typed in (a poll or a reply), or every frame of a capture file written by
``slot-agent capture`` (api/capture.py, docs/operations.md), frame by frame with its time,
direction and wakeup bit. A frame that fails says why: not hex, truncated (fewer bytes than
its layout), too long, or a bad CRC (expected and found, with the fields decoded anyway and
marked unverified). Codes print in hex as in the SAS tables; meters with their names and units.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from cli.commands.options import command_parser
from sas_protocol.describe import FrameDescription, HexInputError, describe_frame, parse_hex
from sas_protocol.errors import RemoteProtocolError

if TYPE_CHECKING:
    from api.capture import Frame

#: Fields that hold SAS codes: printed in hex like the tables (``command: 2F``, not 47).
HEX_FIELDS = frozenset({"command", "poll", "code", "codes", "event_code", "exception", "base",
                        "denomination", "denomination_code", "denominations", "features1",
                        "features2", "features3", "features4"})

EXIT_DECODED = 0
EXIT_BAD_FRAME = 1
EXIT_USAGE = 2


def add_parser(subparsers: Any) -> None:
    parser = command_parser(
        subparsers, "decode",
        help="decode one captured SAS frame, or a capture file frame by frame",
        description="Decode one captured SAS frame (a host poll or a machine reply), or every "
        "frame of a capture file (slot-agent capture). Hex bytes, spaces optional: "
        "slot-agent decode 01 2F 05 00 00 00 01 0C FB 3C",
        exit_codes={EXIT_DECODED: "decoded (every frame of the file)",
                    EXIT_BAD_FRAME: "not a valid frame: truncated, too long, bad CRC, unknown "
                                    "layout (the reason is printed)",
                    EXIT_USAGE: "bad usage: no frame, input that is not hex, an unreadable "
                                "capture file"},
    )
    parser.add_argument("hex", nargs="*", help="the frame as hex (one or more words)")
    parser.add_argument("--file", metavar="CAPTURE",
                        help="a capture file (slot-agent capture) to decode frame by frame")
    parser.add_argument("--json", action="store_true",
                        help="print JSON (one object per frame for --file)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if bool(args.hex) == bool(args.file):
        print("slot-agent decode: give either hex bytes or --file CAPTURE", file=sys.stderr)
        return EXIT_USAGE
    if args.file:
        return _run_file(args.file, as_json=args.json)
    text = " ".join(args.hex)
    try:
        frame = parse_hex(text)
    except HexInputError as exc:
        if args.json:
            print(json.dumps({"error": str(exc), "input": text}))
        print(f"slot-agent decode: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        description = describe_frame(frame)
    except RemoteProtocolError as exc:
        if args.json:
            print(json.dumps(error_json(exc, frame)))
        print(f"slot-agent decode: cannot decode {frame.hex(' ').upper()}: {exc.reason}",
              file=sys.stderr)
        return EXIT_BAD_FRAME
    if args.json:
        print(json.dumps(description.to_json()))
    else:
        print("\n".join(render(description)))
    return EXIT_DECODED if description.crc_ok is not False else EXIT_BAD_FRAME


def error_json(exc: RemoteProtocolError, frame: bytes) -> dict[str, Any]:
    """A frame that did not decode: why (``truncated frame: ...``, ``bad CRC ...``)."""
    return {"error": exc.reason, "errorType": type(exc).__name__, "hex": frame.hex().upper()}


def render(description: FrameDescription) -> list[str]:
    """The text form: what it is, address/command/CRC, then each field and meter."""
    out = description.to_json()
    lines = [f"{out['kind']}: {out['meaning']}"]
    if description.crc_mismatch is not None:
        crc = description.crc_mismatch
        state = (f"BAD (expected {crc.expected.hex(' ').upper()}, found "
                 f"{crc.found.hex(' ').upper()})")
    else:
        state = "n/a" if out["crc_ok"] is None else "ok"
    lines.append(f"  address {out['address']}, command {out['command'] or '-'}, CRC {state}")
    if "type" in out:
        unverified = " (UNVERIFIED: the CRC does not match)" if description.unverified else ""
        lines.append(f"  {out['type']}{unverified}")
        for name, value in out["fields"].items():
            lines.append(f"    {name}: {_field_text(name, value)}")
    if out.get("meters"):
        lines.append("  meters:")
        names = out.get("meterNames", {})
        for code, value in out["meters"].items():
            label = names.get(code, {})
            lines.append(f"    {code} {label.get('name', '?')}: {value} {label.get('unit', '')}"
                         .rstrip())
    return lines


def _field_text(name: str, value: Any) -> str:
    if name in HEX_FIELDS:
        return _hex(value)
    if isinstance(value, dict):  # a message inside another (the reply an LP B0 wraps)
        kind = value.get("type")
        inner = ", ".join(f"{k} {_field_text(k, v)}" for k, v in value.items() if k != "type")
        return f"{kind}: {inner}" if kind else inner
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return "; ".join(_field_text(name, item) for item in value)
    if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
        return "; ".join(" ".join(str(x) for x in item) for item in value)  # (name, value)
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


def _hex(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | list):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_hex(v) for v in value) + "]"
    return f"{value:02X}" if value <= 0xFF else f"{value:04X}"


def _in_context(frame: Frame, last_tx: bytes, sync_address: int) -> FrameDescription | None:
    """One-byte frames read with what a capture knows (direction, wakeup bit, the poll
    before): a general poll or sync poll; the exception code answering a general poll; the
    ACK or NACK answering a long poll (SAS §3.4, §3.5). None: describe the bytes alone."""
    data = frame.data
    if len(data) != 1:
        return None
    byte = data[0]
    if frame.direction == "tx":
        if not frame.wakeup or not byte & 0x80:
            return None
        address = byte & 0x7F
        if address == sync_address:
            return FrameDescription("sync poll", address, None, None,
                                    f"general poll to address {address}, where no machine "
                                    "is: it synchronises the line (SAS §3.5)")
        return FrameDescription("general poll", address, None, None,
                                f"general poll to address {address}")
    if len(last_tx) == 1 and last_tx[0] & 0x80:
        return FrameDescription("exception", last_tx[0] & 0x7F, None, None,
                                f"general-poll exception {byte:02X}: {_exception(byte)}")
    if len(last_tx) >= 2 and byte == last_tx[0]:
        return FrameDescription("ACK", byte, None, None,
                                f"ACK from address {byte}: LP {last_tx[1]:02X} accepted")
    if len(last_tx) >= 2 and byte == last_tx[0] | 0x80:
        return FrameDescription("NACK", last_tx[0], None, None,
                                f"NACK from address {last_tx[0]}: the machine saw a bad CRC "
                                f"on LP {last_tx[1]:02X}")
    return None


def _exception(code: int) -> str:
    from sas_protocol.codes import EXCEPTION_MEANING, ExceptionCode, category_of

    try:
        return f"{EXCEPTION_MEANING[ExceptionCode(code)]} ({category_of(code).value})"
    except (ValueError, KeyError):
        return "unknown exception code"


def _run_file(path: str, *, as_json: bool) -> int:
    from api.capture import CaptureFileError, conversations, parse_capture

    try:
        with open(path, encoding="utf-8") as f:
            capture = parse_capture(f, path)
    except OSError as exc:
        print(f"slot-agent decode: {path}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except CaptureFileError as exc:
        print(f"slot-agent decode: {exc}", file=sys.stderr)
        return EXIT_USAGE
    header = capture.header
    if as_json:
        print(json.dumps({"header": dict(header)}))
    else:
        print(f"capture of {header.get('terminalId')} on {header.get('port')}, addresses "
              f"{', '.join(str(a) for a in header.get('addresses', []))}, started "
              f"{header.get('startedAt')}, {header.get('seconds')} s, {len(capture.frames)} "
              f"reads and writes" + (f", {header['dropped']} frames DROPPED (over the "
                                     f"capture limit)" if header.get("dropped") else ""))
    bad = 0
    sync_address = int(header.get("syncAddress", 0))
    last_tx = b""
    for frame in conversations(capture.frames):
        description: FrameDescription | None = _in_context(frame, last_tx, sync_address)
        error: RemoteProtocolError | None = None
        if description is None:
            try:
                description = describe_frame(frame.data)
            except RemoteProtocolError as exc:
                error = exc
        if frame.direction == "tx":
            last_tx = frame.data
        if error is not None or (description is not None and description.crc_ok is False):
            bad += 1
        if as_json:
            item: dict[str, Any] = frame.to_json()
            if description is not None:
                item["description"] = description.to_json()
            else:
                assert error is not None
                item["error"] = error.reason
            print(json.dumps(item))
            continue
        arrow = "->" if frame.direction == "tx" else "<-"
        wake = " (wakeup)" if frame.wakeup else ""
        print(f"\n{frame.t:9.3f} s  {frame.direction} {arrow} address {frame.address}  "
              f"{frame.data.hex(' ').upper()}{wake}")
        if description is not None:
            print("\n".join("  " + line for line in render(description)))
        else:
            assert error is not None
            print(f"  NOT DECODED: {error.reason}")
    if not as_json:
        print(f"\n{bad} frame(s) did not decode" if bad else "\nevery frame decoded")
    return EXIT_BAD_FRAME if bad else EXIT_DECODED
