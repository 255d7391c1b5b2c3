"""Coverage-guided fuzzing of the SAS decoders and the host state machine with atheris.

Not part of the test suite (CI runs the hypothesis properties in tests/reliability). For long
runs::

    .venv/bin/pip install atheris          # not a project dependency
    .venv/bin/python bench/fuzz/fuzz_sas.py -max_total_time=3600 -rss_limit_mb=2048 corpus/

Any exception other than ``sas_protocol.SasProtocolError`` (from a decoder) or any exception
at all (from ``HostProtocol.receive_data`` / ``receive_timeout``) is a crash: atheris stops
and writes the input as ``crash-<hash>``; replay it with
``python bench/fuzz/fuzz_sas.py crash-<hash>``.
"""

from __future__ import annotations

import contextlib
import sys

import atheris  # type: ignore[import-not-found]

with atheris.instrument_imports():
    import sas_protocol as sp

POLLS = [
    sp.GeneralPoll(), sp.LockRequest(), sp.SasVersionRequest(), sp.MachineInfoRequest(),
    sp.HandpayInfoRequest(), sp.LastBillRequest(), sp.GameCountRequest(),
    sp.SelectedGameRequest(), sp.EnabledGamesRequest(), sp.DateTimeRequest(),
    sp.SelectedMetersRequest(0, (0x00, 0x01)), sp.ExtendedMetersRequest(0, (0x00, 0x01)),
    sp.GameConfigurationRequest(1), sp.ExtendedGameInfoRequest(1),
    sp.EnhancedValidationRequest(0), sp.AftLockStatusRequest(0, 0, 0),
    *[sp.MetersRequest(c) for c in sorted(sp.LEGACY_METER_POLLS)],
]


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    poll = POLLS[fdp.ConsumeIntInRange(0, len(POLLS) - 1)]
    fix_crc = fdp.ConsumeBool()
    frame = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 300))
    if fix_crc and len(frame) >= 2:
        frame = sp.append_crc(frame[:-2])  # reach the body decoders past the CRC check
    for decode in (sp.decode_request, sp.decode_reply_frame, sp.decode_rte_frame,
                   sp.describe_frame,
                   lambda d: sp.decode_reply(poll, d, address=1)):
        with contextlib.suppress(sp.SasProtocolError):
            decode(frame)
    host = sp.HostProtocol(1, rte_mode=fdp.ConsumeBool())
    host.send(poll)
    rest = fdp.ConsumeBytes(fdp.remaining_bytes())
    chunks = [frame, *(rest[i:i + 7] for i in range(0, len(rest), 7))]
    for chunk in chunks:
        host.data_to_send()
        host.receive_data(chunk)
        host.receive_timeout()
        if not host.awaiting_reply:
            host.send(poll)
    host.events_received()


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
