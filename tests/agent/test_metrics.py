"""The agent's Prometheus metrics: names, labels, values and the HTTP endpoint."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agent import __version__
from agent.ops.metrics import ActionStatus, AgentMetrics, BadFrameKind, PollResult, stop_server

DOCS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def exposition(metrics: AgentMetrics) -> str:
    return generate_latest(metrics.registry).decode()


def sample(metrics: AgentMetrics, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(exposition(metrics)):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return None


def exposed_names(metrics: AgentMetrics) -> set[str]:
    """The names a scrape shows for our own families (counter -> _total, info -> _info)."""
    names = set()
    for family in metrics.registry.collect():
        if not family.name.startswith("slot_agent_"):
            continue
        suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
        names.add(family.name + suffix)
    return names


@pytest.fixture
def metrics() -> AgentMetrics:
    return AgentMetrics(CollectorRegistry())


def test_every_required_metric_is_exposed(metrics: AgentMetrics) -> None:
    assert exposed_names(metrics) == {
        "slot_agent_polls_total",
        "slot_agent_poll_latency_seconds",
        "slot_agent_poll_interval_deviation_seconds",
        "slot_agent_link_up",
        "slot_agent_bad_frames_total",
        "slot_agent_events_total",
        "slot_agent_outbox_depth",
        "slot_agent_outbox_oldest_unacked_age_seconds",
        "slot_agent_uplink_connected",
        "slot_agent_uplink_reconnects_total",
        "slot_agent_uplink_ack_latency_seconds",
        "slot_agent_actions_total",
        "slot_agent_machine_info",
        "slot_agent_line_priority_info",
        "slot_agent_build_info",
    }


def test_build_info_carries_the_version(metrics: AgentMetrics) -> None:
    assert sample(metrics, "slot_agent_build_info", version=__version__) == 1.0


def test_polls_are_counted_by_address_and_result(metrics: AgentMetrics) -> None:
    metrics.record_poll(1, PollResult.OK, latency=0.012)
    metrics.record_poll(1, PollResult.OK, latency=0.004)
    metrics.record_poll(1, PollResult.TIMEOUT)
    metrics.record_poll(2, PollResult.CRC)
    assert sample(metrics, "slot_agent_polls_total", address="1", result="ok") == 2
    assert sample(metrics, "slot_agent_polls_total", address="1", result="timeout") == 1
    assert sample(metrics, "slot_agent_polls_total", address="2", result="crc") == 1
    # only answered polls have a latency
    assert sample(metrics, "slot_agent_poll_latency_seconds_count") == 2
    assert sample(metrics, "slot_agent_poll_latency_seconds_bucket", le="0.005") == 1
    assert sample(metrics, "slot_agent_poll_latency_seconds_bucket", le="0.015") == 2


def test_poll_result_values_are_the_documented_set() -> None:
    assert {r.value for r in PollResult} == {
        "ok", "timeout", "crc", "framing", "nack", "busy", "unsupported"
    }
    row = next(line for line in DOCS.read_text(encoding="utf-8").splitlines()
               if line.startswith("| `slot_agent_polls_total`"))
    assert all(f"`{r.value}`" in row for r in PollResult)


def test_latency_buckets_resolve_the_sas_reply_window(metrics: AgentMetrics) -> None:
    text = exposition(metrics)
    bounds = {
        float(b)
        for b in re.findall(r'slot_agent_poll_latency_seconds_bucket\{le="([0-9.e+-]+)"\}', text)
    }
    # 1 ms resolution at the low end, the 20 ms SAS reply window, 100 ms at the top
    assert {0.001, 0.02, 0.1} <= bounds
    assert min(bounds) <= 0.001 and max(bounds) >= 0.1


def test_link_bad_frames_events_and_actions(metrics: AgentMetrics) -> None:
    metrics.set_link_up(1, True)
    metrics.set_link_up(3, False)
    metrics.record_bad_frame(1, BadFrameKind.CRC)
    metrics.record_event("betPlaced")
    metrics.record_event("betPlaced")
    metrics.record_action("lock", ActionStatus.OK)
    assert sample(metrics, "slot_agent_link_up", address="1") == 1
    assert sample(metrics, "slot_agent_link_up", address="3") == 0
    assert sample(metrics, "slot_agent_bad_frames_total", address="1", kind="crc") == 1
    assert sample(metrics, "slot_agent_events_total", event="betPlaced") == 2
    assert sample(metrics, "slot_agent_actions_total", action="lock", status="ok") == 1


def test_outbox_and_uplink(metrics: AgentMetrics) -> None:
    metrics.set_outbox(42, 12.5)
    metrics.uplink_connected.set(1)
    metrics.uplink_reconnects.inc()
    metrics.uplink_ack_latency.observe(0.2)
    assert sample(metrics, "slot_agent_outbox_depth") == 42
    assert sample(metrics, "slot_agent_outbox_oldest_unacked_age_seconds") == 12.5
    metrics.set_outbox(0, None)
    assert sample(metrics, "slot_agent_outbox_oldest_unacked_age_seconds") == 0
    assert sample(metrics, "slot_agent_uplink_connected") == 1
    assert sample(metrics, "slot_agent_uplink_reconnects_total") == 1
    assert sample(metrics, "slot_agent_uplink_ack_latency_seconds_count") == 1


def test_machine_info(metrics: AgentMetrics) -> None:
    metrics.set_machine(
        address=1,
        sas_version="602",
        serial_number="EGM-000123",
        game_id="AT",
        denomination_cents=1,
    )
    assert (
        sample(
            metrics,
            "slot_agent_machine_info",
            address="1",
            sas_version="602",
            serial_number="EGM-000123",
            game_id="AT",
            denomination_cents="1",
        )
        == 1
    )


def test_two_agents_in_one_process_do_not_collide() -> None:
    a, b = AgentMetrics(), AgentMetrics()
    a.record_event("billInserted")
    assert sample(a, "slot_agent_events_total", event="billInserted") == 1
    assert sample(b, "slot_agent_events_total", event="billInserted") is None
    # a default registry also exports the process collector
    assert "process_" in exposition(a) or "python_info" in exposition(a)


def test_http_endpoint_serves_the_registry(metrics: AgentMetrics) -> None:
    metrics.record_poll(1, PollResult.BUSY)
    server, thread = metrics.serve("127.0.0.1", 0)
    try:
        port = server.server_port
        assert port != 0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            assert resp.status == 200
            body = resp.read().decode()
    finally:
        stop_server(server, thread)
    assert 'slot_agent_polls_total{address="1",result="busy"} 1.0' in body
    assert not thread.is_alive()


def test_every_metric_is_documented(metrics: AgentMetrics) -> None:
    docs = DOCS.read_text(encoding="utf-8")
    missing = sorted(name for name in exposed_names(metrics) if f"`{name}`" not in docs)
    assert not missing, f"metrics missing from docs/operations.md: {missing}"


def _documented_metrics() -> dict[str, tuple[str, str]]:
    """operations.md's metric table: name -> (type, labels cell)."""
    rows = {}
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`slot_agent_"):
            rows[cells[0].strip("`")] = (cells[1].split()[0], cells[2])
    return rows


def test_the_metrics_table_is_what_a_scrape_shows(metrics: AgentMetrics) -> None:
    """Each row of operations.md's table is a family the agent exports, of that type, with
    exactly those labels, and every value the table lists for a label is one the code uses."""
    rows = _documented_metrics()
    assert set(rows) == exposed_names(metrics)
    metrics.set_machine(address=1, sas_version="602", serial_number="S", game_id="AT",
                        denomination_cents=1)
    metrics.set_line_priority("nice", "nice")
    values = {"result": {r.value for r in PollResult}, "kind": {k.value for k in BadFrameKind},
              "status": {s.value for s in ActionStatus}}
    for family in metrics.registry.collect():
        if not family.name.startswith("slot_agent_"):
            continue
        suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
        kind, labels = rows[family.name + suffix]
        assert kind == family.type, family.name
        documented = re.findall(r"`([a-z_]+)`(?: = ((?:`[a-z_]+`(?:, )?)+))?", labels)
        names = [name for name, _ in documented]
        if family.type == "info":  # an info's labels are its value: read them off a sample
            got = tuple(k for k in family.samples[0].labels)
        else:
            collector = metrics.registry._names_to_collectors[family.name + suffix]
            got = tuple(getattr(collector, "_labelnames"))  # noqa: B009 (private, no stub)
        assert tuple(names) == got, family.name
        for name, listed in documented:
            if listed:
                assert set(re.findall(r"`([a-z_]+)`", listed)) == values[name], (family, name)
