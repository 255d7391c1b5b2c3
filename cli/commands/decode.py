"""``slot-agent decode HEX...``: explain one captured SAS frame (poll or reply)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from cli.commands.options import command_parser
from sas_protocol.crc import crc_ok
from sas_protocol.describe import describe_frame, parse_hex
from sas_protocol.errors import CrcError, RemoteProtocolError


def add_parser(subparsers: Any) -> None:
    parser = command_parser(
        subparsers, "decode",
        help="decode one captured SAS frame",
        description="Decode one captured SAS frame (a host poll or a machine reply). "
        "Hex bytes, spaces optional: slot-agent decode 01 2F 05 00 00 00 01 0C FB 3C",
        exit_codes={0: "decoded", 1: "not a valid frame (the reason is printed)",
                    2: "bad usage"},
    )
    parser.add_argument("hex", nargs="+", help="the frame as hex (one or more words)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    text = " ".join(args.hex)
    try:
        frame = parse_hex(text)
        description = describe_frame(frame)
    except RemoteProtocolError as exc:
        if args.json:
            payload = {
                "error": exc.reason,
                "crc_ok": False if isinstance(exc, CrcError) else _crc_state(text),
                "hex": exc.raw.hex().upper(),
            }
            print(json.dumps(payload))
        print(f"slot-agent decode: cannot decode {text!r}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(description.to_json()))
        return 0
    out = description.to_json()
    print(f"{out['kind']}: {out['meaning']}")
    print(f"  address {out['address']}, command {out['command'] or '-'}, CRC "
          f"{'n/a' if out['crc_ok'] is None else ('ok' if out['crc_ok'] else 'BAD')}")
    if "type" in out:
        print(f"  {out['type']}")
        for name, value in out["fields"].items():
            print(f"    {name}: {value}")
    if "meters" in out:
        print("  meters:")
        for code, value in out["meters"].items():
            print(f"    {code}: {value}")
    return 0


def _crc_state(text: str) -> bool | None:
    try:
        frame = parse_hex(text)
    except RemoteProtocolError:
        return None
    return crc_ok(frame) if len(frame) > 2 else None
