"""The uplink half of ``slot-agent diag``: each step to the hub on its own, up to the hub's
verdict on this terminal id with this token, for every configured hub URL
(:func:`probe_uplink`, one URL: :func:`probe_hub_url`; the report's rules are in
:mod:`agent.ops.diagnostics`). Split from it to keep each module to one job."""

from __future__ import annotations

import contextlib
import email.utils
import json
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from agent import __version__
from agent.config import Config, ConfigError, hub_urls
from agent.uplink.tls import client_ssl_context

__all__ = ["probe_hub_url", "probe_uplink"]



def probe_uplink(config: Config, token: str | None, *, timeout: float = 5.0,
                 now: Callable[[], float] = time.time,
                 hello_last_seq: int | None = None) -> dict[str, Any]:
    """Every configured hub URL (``uplink.url``, one or a list: the agent fails over between
    them, docs/operations.md), each probed on its own by :func:`probe_hub_url`, in order.

    Returns ``{"configured", "url", "dns", "tcp", "tls", "auth", "clock", "urls"}``:
    ``urls`` holds one :func:`probe_hub_url` result per URL in the configuration's order;
    ``url`` and the steps at the top are the first URL's (the one the agent tries first),
    as with a single URL. A failover URL that fails is found here, not at the failover."""
    urls = hub_urls(config.uplink)
    results = [probe_hub_url(config, url, token, timeout=timeout, now=now,
                             hello_last_seq=hello_last_seq) for url in urls]
    out: dict[str, Any] = dict(results[0]) if results else _not_run(None)
    out["configured"] = bool(urls)
    out["urls"] = results
    return out


def _not_run(url: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"url": url}
    for step in ("dns", "tcp", "tls", "auth"):
        out[step] = {"ok": None, "detail": "not run"}
    out["clock"] = {"skewS": None, "detail": "not measured"}
    return out


def probe_hub_url(config: Config, url: str, token: str | None, *, timeout: float = 5.0,
                  now: Callable[[], float] = time.time,
                  hello_last_seq: int | None = None) -> dict[str, Any]:
    """Each step to the hub at ``url`` on its own: DNS, TCP, TLS, WebSocket handshake with
    the token, then (``hello_last_seq`` given) ``hello`` as ``config.terminal_id`` for the
    hub's verdict.

    Returns ``{"url", "dns", "tcp", "tls", "auth", "clock"}``; each step is
    ``{"ok": bool | None, "detail": str}`` (None: not run); ``auth`` also has ``verdict``:
    ``welcome``, ``forbidden`` (the token is another terminal's), ``refused`` (HTTP 401/403
    or another error) or ``handshake`` (no hello sent). Without ``hello_last_seq`` the
    connection is closed after the handshake, so a running daemon's session is never replaced
    (a hello would: close 4002). The hub's clock comes from the handshake's HTTP ``Date``
    header (1 s resolution).
    """
    out = _not_run(url)
    parts = urlsplit(url)
    secure = parts.scheme == "wss"
    host = parts.hostname or ""
    port = parts.port or (443 if secure else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        out["dns"] = {"ok": False, "detail": f"cannot resolve {host}: {exc.strerror}"}
        return out
    addresses = sorted({str(info[4][0]) for info in infos})
    out["dns"] = {"ok": True, "detail": f"{host} -> {', '.join(addresses)}"}
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        out["tcp"] = {"ok": False, "detail": f"cannot connect to {host}:{port}: "
                                             f"{exc.strerror or exc}"}
        return out
    out["tcp"] = {"ok": True, "detail": f"connected to {host}:{port}"}
    context: ssl.SSLContext | None = None
    try:
        if secure:
            # The uplink's own context (agent.uplink.tls), so diag tests the handshake the daemon
            # makes: the same CA, client certificate and TLS 1.2 floor.
            try:
                context = client_ssl_context(config.uplink)
            except ConfigError as exc:
                out["tls"] = {"ok": False, "detail": "; ".join(str(p) for p in exc.problems)}
                return out
            try:
                with context.wrap_socket(sock, server_hostname=host) as tls:
                    cert = tls.getpeercert() or {}
                    out["tls"] = {"ok": True, "detail": _describe_cert(cert, tls.version())}
            except (ssl.SSLError, OSError) as exc:
                reason = getattr(exc, "verify_message", None) or exc
                out["tls"] = {"ok": False, "detail": f"TLS handshake with {host} failed: {reason}"}
                return out
        else:
            out["tls"] = {"ok": None, "detail": "plain ws:// (uplink.allow_insecure): no TLS"}
    finally:
        with contextlib.suppress(OSError):
            sock.close()
    if token is None:
        out["auth"] = {"ok": False, "detail": "no token could be read (see uplink.token_file "
                                              "or uplink.token_env)"}
        return out
    hello = None if hello_last_seq is None else (config.terminal_id, hello_last_seq)
    out["auth"], date = _handshake(url, token, context, timeout, hello)
    if date is not None:
        skew = now() - date
        out["clock"] = {"skewS": round(skew, 1),
                        "detail": f"this PC is {abs(skew):.0f} s "
                                  f"{'ahead of' if skew >= 0 else 'behind'} the hub"}
    return out


def _describe_cert(cert: Mapping[str, Any], version: str | None) -> str:
    subject = dict(item[0] for item in cert.get("subject", ()) if item)
    issuer = dict(item[0] for item in cert.get("issuer", ()) if item)
    return (f"{version or 'TLS'}, certificate for {subject.get('commonName', '?')} issued by "
            f"{issuer.get('commonName') or issuer.get('organizationName', '?')}, valid until "
            f"{cert.get('notAfter', '?')}")


def _handshake(url: str, token: str, context: ssl.SSLContext | None, timeout: float,
               hello: tuple[str, int] | None = None) -> tuple[dict[str, Any], float | None]:
    from websockets.exceptions import InvalidStatus, WebSocketException
    from websockets.sync.client import connect

    try:
        # as a context manager: websockets deprecates a sync connection opened without one
        with connect(url, additional_headers={"Authorization": f"Bearer {token}"},
                     ssl=context, open_timeout=timeout, proxy=None) as ws:
            response = ws.response
            date = _date(response.headers) if response is not None else None
            if hello is None:
                return {"ok": True, "detail": "the hub accepted the token",
                        "verdict": "handshake"}, date
            return _hello(ws, *hello, timeout), date
    except InvalidStatus as exc:
        code = exc.response.status_code
        reason = {401: "the hub does not know this token (401)",
                  403: "the token is not a terminal token (403)"}.get(
            code, f"the hub refused the connection with HTTP {code}")
        return ({"ok": False, "detail": reason, "status": code, "verdict": "refused"},
                _date(exc.response.headers))
    except (WebSocketException, OSError, TimeoutError) as exc:
        return {"ok": False, "detail": f"WebSocket handshake failed: {exc}"}, None


def _hello(ws: Any, terminal_id: str, last_seq: int, timeout: float) -> dict[str, Any]:
    """Say ``hello`` as ``terminal_id`` and read the hub's verdict (docs/protocol.md §4)."""
    from websockets.exceptions import ConnectionClosed

    from api import wire

    try:
        ws.send(wire.encode(wire.hello(terminal_id, __version__, last_seq)))
        while True:
            message = json.loads(ws.recv(timeout=timeout))
            kind = message.get("type") if isinstance(message, dict) else None
            if kind == "welcome":
                detail = (f"the hub welcomed terminal {terminal_id} with this token (it holds "
                          f"its events up to seq {message.get('ackedSeq')})")
                rejected = _reject_queued_actions(ws, terminal_id)
                if rejected:
                    detail += (f"; it delivered {len(rejected)} queued action(s) to diag, "
                               f"rejected as not executed: {', '.join(rejected)}")
                return {"ok": True, "verdict": "welcome", "detail": detail,
                        "actionsRejected": rejected}
            if kind == "error":
                code = message.get("code")
                verdict = "forbidden" if code == "forbidden" else "refused"
                return {"ok": False, "verdict": verdict, "code": code,
                        "detail": f"the hub refused hello for terminal {terminal_id}: {code}: "
                                  f"{message.get('message')}"}
    except ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd is not None else None
        verdict = "forbidden" if code == 1008 else "refused"
        return {"ok": False, "verdict": verdict,
                "detail": f"the hub closed the connection after hello for terminal "
                          f"{terminal_id} (close {code})"}
    except (TimeoutError, ValueError, OSError) as exc:
        return {"ok": False, "verdict": "refused",
                "detail": f"no welcome for terminal {terminal_id}: {exc or 'timeout'}"}


#: After ``welcome`` the hub sends the actions it queued for the terminal at once; diag reads
#: until the line is quiet this long (bounded by :data:`DRAIN_MAX_S`).
DRAIN_QUIET_S = 0.3
DRAIN_MAX_S = 3.0
NOT_EXECUTED = ("not executed: slot-agent diag held this terminal's connection while the "
                "agent was not running; send the action again when the agent runs")


def _reject_queued_actions(ws: Any, terminal_id: str) -> list[str]:
    """The actions the hub delivered to diag's connection, each answered ``rejected`` (ack
    and result, as the protocol requires, docs/protocol.md §4): marked sent by the hub, they
    would otherwise be lost without a word. Their ids."""
    from api import wire

    rejected: list[str] = []
    deadline = time.monotonic() + DRAIN_MAX_S
    while time.monotonic() < deadline:
        try:
            message = json.loads(ws.recv(timeout=DRAIN_QUIET_S))
        except (TimeoutError, ValueError, OSError):
            break
        if not isinstance(message, dict) or message.get("type") != "action":
            continue
        action_id = str(message.get("id"))
        ws.send(wire.encode(wire.action_ack(action_id, terminal_id,
                                            wire.ActionAckStatus.REJECTED, NOT_EXECUTED)))
        ws.send(wire.encode(wire.action_result(action_id, terminal_id,
                                               wire.ActionStatus.REJECTED,
                                               error=NOT_EXECUTED)))
        rejected.append(action_id)
    return rejected


def _date(headers: Any) -> float | None:
    value = headers.get("Date") if headers is not None else None
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
