"""Plain HTTP on the hub's port: dashboard files, /healthz, 404s, no path traversal."""

from __future__ import annotations

import re

import pytest

from hub.http_answers import STATIC_DIR
from tests.support.hub import HubHarness, http_get


async def _get(harness: HubHarness, raw_path: str) -> tuple[int, dict[str, str], bytes]:
    """A raw HTTP/1.1 GET, so paths reach the server exactly as written."""
    assert harness.hub is not None
    return await http_get(harness.hub, raw_path)


@pytest.fixture
def static_files(harness: HubHarness) -> None:
    (harness.static_dir / "index.html").write_text("<!doctype html><title>floor</title>")
    (harness.static_dir / "app.js").write_text("console.log('hi')")
    (harness.static_dir / "style.css").write_text("body{}")
    (harness.static_dir.parent / "secret.txt").write_text("do not serve")


@pytest.mark.usefixtures("static_files")
async def test_dashboard_files_with_content_types(harness: HubHarness) -> None:
    status, headers, body = await _get(harness, "/")
    assert status == 200 and body.startswith(b"<!doctype html>")
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["cache-control"] == "no-cache"
    for path, ctype in (("/static/app.js", "text/javascript; charset=utf-8"),
                        ("/static/style.css", "text/css; charset=utf-8"),
                        ("/static/index.html", "text/html; charset=utf-8")):
        status, headers, _ = await _get(harness, path)
        assert (status, headers["content-type"]) == (200, ctype), path


@pytest.mark.usefixtures("static_files")
@pytest.mark.parametrize("path", ["/", "/static/app.js", "/static/style.css", "/nope",
                                  # the library's own answer: 426 for a GET without upgrade
                                  "/ws/client", "/healthz", "/api/summary"])
async def test_security_headers_on_every_answer(harness: HubHarness, path: str) -> None:
    status, headers, _ = await _get(harness, path)
    if path == "/ws/client":
        assert status == 426  # protocol.md §1
    policy = {d.split()[0]: d.split()[1:] for d in
              (part.strip() for part in headers["content-security-policy"].split(";"))}
    assert policy == {
        "default-src": ["'self'"], "connect-src": ["'self'"], "img-src": ["'self'", "data:"],
        "style-src": ["'self'"], "script-src": ["'self'"], "frame-ancestors": ["'none'"],
    }
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"


def test_the_dashboard_page_needs_no_inline_script_or_style() -> None:
    """What the policy forbids must not be on the page (it would silently not run)."""
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    assert re.findall(r"<script\b[^>]*>", html) == ['<script src="/static/app.js" defer>']
    assert "<style" not in html
    assert not re.search(r"\sstyle\s*=", html)
    assert not re.search(r"\son[a-z]+\s*=", html)  # inline event handlers
    assert not re.search(r"(href|src)\s*=\s*\"(https?:)?//", html)  # nothing third-party
    app = (STATIC_DIR / "app.js").read_text(encoding="utf-8")
    for construct in ("eval(", "new Function(", "innerHTML", 'setAttribute("style"',
                      "setAttribute('style'"):
        assert construct not in app, construct


@pytest.mark.usefixtures("static_files")
@pytest.mark.parametrize("path", [
    "/static/../secret.txt", "/static/%2e%2e/secret.txt", "/static/..%2fsecret.txt",
    "/static/.hidden", "/static//etc/passwd", "/static/", "/static/missing.js", "/nope",
    "/static/app.js/..", "/../secret.txt",
])
async def test_no_traversal_and_unknown_paths_are_404(harness: HubHarness, path: str) -> None:
    status, _, body = await _get(harness, path)
    assert status == 404, path
    assert b"do not serve" not in body


async def test_healthz(harness: HubHarness) -> None:
    status, headers, body = await _get(harness, "/healthz")
    assert (status, body) == (200, b"ok\n")
    assert headers["content-type"].startswith("text/plain")
