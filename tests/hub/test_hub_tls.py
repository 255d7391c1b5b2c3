"""The hub over TLS (wss://): a verified client connects; a plain one does not."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from api import wire
from tests.support.hub import HubHarness, Peer

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30,
    )
    return cert, key


async def test_terminal_over_wss_with_certificate_verification(
    harness: HubHarness, tmp_path: Path,
) -> None:
    cert, key = _self_signed(tmp_path)
    hub = await harness.restart(plain=False, tls_cert=cert, tls_key=key)
    assert hub.ws_url.startswith("wss://") and hub.url.startswith("https://")
    context = ssl.create_default_context(cafile=str(cert))
    peer = await harness.connect("/ws/terminal", "tok-t1", ssl=context)
    assert isinstance(peer, Peer)
    await peer.send(wire.hello("T1", "test", 0))
    assert (await peer.recv())["type"] == "welcome"
    untrusting = ssl.create_default_context()  # system CAs only: must refuse the self-signed
    with pytest.raises(ssl.SSLCertVerificationError):
        await harness.connect("/ws/terminal", "tok-t1", ssl=untrusting)
