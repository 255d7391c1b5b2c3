"""CRC-16/KERMIT as SAS uses it (SAS §5): polynomial 0x1021 reflected (0x8408), seed 0,
no final XOR, sent low byte first."""

from __future__ import annotations


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _make_table()


def crc16_kermit(data: bytes, crc: int = 0) -> int:
    """The CRC of ``data``, continuing from ``crc`` (0 starts a new frame)."""
    for byte in data:
        crc = (crc >> 8) ^ _TABLE[(crc ^ byte) & 0xFF]
    return crc


def append_crc(data: bytes) -> bytes:
    """``data`` followed by its CRC, low byte first (SAS §5)."""
    crc = crc16_kermit(data)
    return bytes(data) + bytes((crc & 0xFF, crc >> 8))


def crc_ok(frame: bytes) -> bool:
    """True when the last two bytes of ``frame`` are the CRC of the rest.

    Running the reflected CRC over a frame including its own CRC gives 0."""
    return len(frame) >= 3 and crc16_kermit(frame) == 0
