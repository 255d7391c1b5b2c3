"""Plain HTTP answers on the WebSocket port: the dashboard files and /healthz.

``process_request`` runs before the WebSocket upgrade (websockets' documented hook), so the
page, its files and the two WebSocket paths share one port.
"""

from __future__ import annotations

import email.utils
import http
import re
from pathlib import Path

from websockets.datastructures import Headers
from websockets.http11 import Response

STATIC_DIR = Path(__file__).resolve().parent / "static"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}

#: The dashboard loads only its own files and talks only to its own hub: no inline script or
#: style, no framing (clickjacking of the operator's Lock button), no third-party anything.
#: ``connect-src 'self'`` covers the page's ws:// / wss:// connection to the same host (CSP3).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; frame-ancestors 'none'"
)

# One or more plain path segments; no "..", no leading dot, no backslash or percent escapes.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$")


#: On every plain HTTP answer (docs/protocol.md §1).
SECURITY_HEADERS = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
)


def response(status: int, body: bytes, content_type: str) -> Response:
    status_obj = http.HTTPStatus(status)
    headers = Headers([
        ("Date", email.utils.formatdate(usegmt=True)),
        ("Connection", "close"),
        ("Content-Length", str(len(body))),
        ("Content-Type", content_type),
        ("Cache-Control", "no-cache"),
        *SECURITY_HEADERS,
    ])
    return Response(status_obj.value, status_obj.phrase, headers, body)


def secure_response(connection: object, request: object, answer: Response) -> None:
    """websockets' ``process_response`` hook: the answers the library writes itself (426 for
    a plain GET of a WebSocket path, 400 for a broken handshake) carry the security headers
    too; the 101 of an upgrade is left alone."""
    if answer.status_code != http.HTTPStatus.SWITCHING_PROTOCOLS:
        for name, value in SECURITY_HEADERS:
            if name not in answer.headers:
                answer.headers[name] = value


def text_response(status: int, text: str) -> Response:
    return response(status, text.encode("utf-8"), "text/plain; charset=utf-8")


def static_response(path: str, static_dir: Path = STATIC_DIR) -> Response:
    """The answer to ``GET /`` or ``GET /static/<name>``: the file, or 404."""
    name = "index.html" if path == "/" else path.removeprefix("/static/")
    if not _SAFE_NAME.match(name):
        return text_response(404, "not found\n")
    root = static_dir.resolve()
    target = (root / name).resolve()
    if root not in target.parents or not target.is_file():
        return text_response(404, "not found\n")
    content_type = CONTENT_TYPES.get(target.suffix.lower(), "application/octet-stream")
    return response(200, target.read_bytes(), content_type)
