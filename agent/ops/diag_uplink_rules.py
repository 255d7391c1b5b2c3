"""The uplink rules of ``slot-agent diag``: the rows ``uplink_dns``, ``uplink_tcp``,
``uplink_tls``, ``uplink_auth``, ``uplink_urls`` and ``clock_skew`` from the facts of
:func:`agent.ops.diag_uplink.probe_uplink` (split from :mod:`agent.ops.diagnostics`, which
holds the other rules, to keep each module to one job).

With several hub URLs the step rows report one URL, the one the agent gets its session on
(:func:`_chosen`), and ``uplink_urls`` lists every URL: the uplink is usable when one passes,
and another failing is a warning that names it (:func:`_urls_check`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.ops.diag_report import Check, CheckStatus, make_check

__all__ = ["uplink_checks"]


_UPLINK_HINTS = {
    "uplink_dns": "the resolver (/etc/resolv.conf, resolvectl status) and the host name in "
                  "uplink.url",
    "uplink_tcp": "a firewall between this PC and the hub, the port in uplink.url, the hub "
                  "running",
    "uplink_tls": "the hub certificate and uplink.ca_file, the host name in uplink.url, and "
                  "this PC's clock (timedatectl)",
    "uplink_auth": "the token file (uplink.token_file): HTTP 401 = unknown token, 403 = not a "
                   "terminal token; ask the hub operator for this terminal's token",
}
#: The hub refused ``hello`` for this terminal id: the token is another terminal's.
_WRONG_BINDING_HINT = ("the token is bound to another terminal at the hub: terminal_id in this "
                       "config and the token's terminal (hub tokens file) must be the same; ask "
                       "the hub operator for this terminal's token, or fix terminal_id")


_STEPS = (("uplink_dns", "dns"), ("uplink_tcp", "tcp"), ("uplink_tls", "tls"),
          ("uplink_auth", "auth"))
_STEP_NAMES = {"dns": "DNS", "tcp": "TCP", "tls": "TLS", "auth": "authentication"}


def _failed_step(result: Mapping[str, Any]) -> str | None:
    """The first step of one URL's probe that failed (``auth`` when it did not pass), or
    None when the URL passes: DNS, TCP, TLS (or plain ws://) and the hub's verdict."""
    for _, step in _STEPS:
        ok = (result.get(step) or {}).get("ok")
        if ok is False or (step == "auth" and ok is not True):
            return step
    return None


def _chosen(results: list[Mapping[str, Any]],
            daemon_uplink: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The URL the uplink rows report: the daemon's current one when its session is up and
    it passes, else the first that passes (where the agent gets its session), else the first
    (the one the agent tries first, failing)."""
    passing = [r for r in results if _failed_step(r) is None]
    if daemon_uplink is not None and daemon_uplink.get("connected"):
        for r in passing:
            if r.get("url") == daemon_uplink.get("url"):
                return r
    return passing[0] if passing else results[0]


def uplink_checks(uplink: Mapping[str, Any] | None, daemon_uplink: Mapping[str, Any] | None,
                   max_skew_s: float) -> list[Check]:
    ids = tuple(cid for cid, _ in _STEPS)
    if uplink is None:
        return [make_check(cid, CheckStatus.SKIP, "uplink not checked")
                for cid in (*ids, "uplink_urls", "clock_skew")]
    if not uplink.get("configured"):
        return [make_check(cid, CheckStatus.SKIP,
                       "uplink.url is not set: events stay in the outbox")
                for cid in (*ids, "uplink_urls", "clock_skew")]
    results: list[Mapping[str, Any]] = list(uplink.get("urls") or [uplink])
    chosen = _chosen(results, daemon_uplink)
    url = chosen.get("url")
    # With several URLs each row names the one it is about (also data.url, always).
    named = f"{url}: " if len(results) > 1 else ""
    out: list[Check] = []
    failed = False
    for cid, step in _STEPS:
        result = chosen.get(step) or {}
        detail = named + str(result.get("detail", ""))
        ok = result.get("ok")
        if failed:
            out.append(make_check(cid, CheckStatus.SKIP, named + "an earlier step failed",
                                  url=url))
        elif ok is True and cid == "uplink_auth" and result.get("actionsRejected"):
            out.append(make_check(cid, CheckStatus.WARN, detail,
                              "the hub had actions queued for this terminal while the agent "
                              "was not running; diag answered them rejected (not executed): "
                              "start the agent, then send them again", url=url,
                              actionsRejected=list(result["actionsRejected"])))
        elif ok is True:
            if cid == "uplink_auth" and daemon_uplink is not None:
                detail += f"; the daemon's session: {daemon_uplink.get('state', 'unknown')}"
            out.append(make_check(cid, CheckStatus.OK, detail, url=url))
        elif ok is None:
            status = CheckStatus.WARN if cid == "uplink_tls" else CheckStatus.SKIP
            out.append(make_check(cid, status, detail,
                              "ws:// sends the token in clear text; use wss:// beyond a test "
                              "bench" if cid == "uplink_tls" else None, url=url))
        else:
            failed = True
            hint = (_WRONG_BINDING_HINT if result.get("verdict") == "forbidden"
                     else _UPLINK_HINTS[cid])
            out.append(make_check(cid, CheckStatus.FAIL, detail, hint, url=url,
                                  **({"verdict": result["verdict"]} if "verdict" in result
                                     else {})))
    out.append(_urls_check(results, url))
    clock = chosen.get("clock") or {}
    skew = clock.get("skewS")
    if skew is None:
        out.append(make_check("clock_skew", CheckStatus.SKIP,
                              named + str(clock.get("detail", "")), url=url))
    else:
        hint = "check timedatectl and NTP (systemd-timesyncd or chrony)"
        status = (CheckStatus.FAIL if abs(skew) > max_skew_s else
                  CheckStatus.WARN if abs(skew) > 5 else CheckStatus.OK)
        out.append(make_check("clock_skew", status, named + str(clock["detail"]), hint,
                              skewS=skew, url=url))
    return out


def _url_summary(result: Mapping[str, Any]) -> dict[str, Any]:
    """One URL as ``uplink_urls`` lists it: passes, or the step that failed and why."""
    step = _failed_step(result)
    about = (result.get(step) or {}) if step is not None else {}
    summary: dict[str, Any] = {"url": result.get("url"), "ok": step is None,
                               "failedStep": step,
                               "detail": None if step is None else str(about.get("detail", ""))}
    if step is not None and "verdict" in about:
        summary["verdict"] = about["verdict"]
    return summary


def _urls_check(results: list[Mapping[str, Any]], using: Any) -> Check:
    """Every configured hub URL, each probed on its own: the agent fails over to the next at
    once when one fails (docs/operations.md), so a bad failover URL is found now, not at the
    failover. One URL passing keeps the uplink usable (the other rows report it): a URL
    failing beside it is a warning that names it; none passing is a failure."""
    listed = [_url_summary(r) for r in results]
    data: dict[str, Any] = {"using": using, "urls": listed}
    if len(results) == 1:
        return make_check("uplink_urls", CheckStatus.SKIP,
                          "one hub URL (uplink.url): no other instance to fail over to", **data)
    bad = [u for u in listed if not u["ok"]]
    if not bad:
        return make_check("uplink_urls", CheckStatus.OK,
                          f"all {len(listed)} hub URLs pass: "
                          + ", ".join(str(u["url"]) for u in listed), **data)
    failures = "; ".join(f"{u['url']}: {_STEP_NAMES[u['failedStep']]} failed: {u['detail']}"
                         for u in bad)
    hints = "; ".join(dict.fromkeys(
        _WRONG_BINDING_HINT if u.get("verdict") == "forbidden"
        else _UPLINK_HINTS[f"uplink_{u['failedStep']}"] for u in bad))
    if len(bad) == len(listed):
        return make_check("uplink_urls", CheckStatus.FAIL,
                          f"no hub URL passes: {failures}",
                          f"the agent cannot reach any hub instance: {hints}", **data)
    return make_check("uplink_urls", CheckStatus.WARN,
                      f"{len(listed) - len(bad)} of {len(listed)} hub URLs pass (the uplink "
                      f"uses {using}); {failures}",
                      "the agent tries the URLs in order and fails over to the next at "
                      "once: a failing URL is an instance it cannot fail over to (the first "
                      "one also costs a failed attempt at every start and reconnect); "
                      f"fix it: {hints}", **data)
