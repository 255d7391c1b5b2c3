"""``GET /metrics`` on the hub's port: who may scrape it, the format, and what it counts.

A real hub (tests/support/hub.py): a terminal publishes, a client subscribes, and the scraped
figures must say what happened; parsed with prometheus-client's own parsers.
"""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_families
from prometheus_client.parser import text_string_to_metric_families

from api import wire
from api.wire import ErrorCode
from hub.buckets import Buckets
from hub.store import EventWrite, HubStore
from tests.support.hub import HubHarness, event_frame, http_get, publish_all
from tests.support.tokens import OPERATOR, VIEWER
from tests.support.waits import wait_for


async def scrape(harness: HubHarness, token: str = VIEWER) -> dict[str, Metric]:
    """The hub's metrics by family name (counters without ``_total``, as the parser names
    them)."""
    assert harness.hub is not None
    status, headers, body = await http_get(harness.hub, "/metrics", token)
    assert status == 200, (status, body[:300])
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return {m.name: m for m in text_string_to_metric_families(body.decode("utf-8"))}


def value(families: dict[str, Metric], name: str, **labels: str) -> float:
    """The one sample ``name`` (a family's sample name, e.g. ``..._total``) with ``labels``."""
    for family in families.values():
        found = [s.value for s in family.samples if s.name == name and s.labels == labels]
        if found:
            assert len(found) == 1, (name, labels)
            return found[0]
    raise AssertionError(f"no sample {name} {labels}")


# --------------------------------------------------------------------------- access


@pytest.mark.parametrize(("token", "status", "error"), [
    (None, 401, "unauthorized"),
    ("not-a-token", 401, "unauthorized"),
    ("tok-t1", 403, "forbidden"),  # a terminal token
])
async def test_metrics_refused_without_a_viewer_or_operator_token(
        harness: HubHarness, token: str | None, status: int, error: str) -> None:
    assert harness.hub is not None
    got, headers, body = await http_get(harness.hub, "/metrics", token)
    assert got == status
    assert json.loads(body)["error"] == error
    assert headers["content-type"] == "application/json"
    assert (headers.get("www-authenticate") == "Bearer") == (status == 401)
    assert b"slot_hub" not in body


@pytest.mark.parametrize("token", [VIEWER, OPERATOR])
async def test_metrics_served_in_the_text_format(harness: HubHarness, token: str) -> None:
    families = await scrape(harness, token)
    assert families["slot_hub_store_info"].type == "gauge"  # an info in the text format
    assert value(families, "slot_hub_store_info", backend="sqlite") == 1
    for name, kind in (("slot_hub_terminals_connected", "gauge"),
                       ("slot_hub_clients_connected", "gauge"),
                       ("slot_hub_events_stored", "counter"),
                       ("slot_hub_events_from_other_instances", "counter"),
                       ("slot_hub_duplicate_events", "counter"),
                       ("slot_hub_ingest_transactions", "counter"),
                       ("slot_hub_ingest_batches", "counter"),
                       ("slot_hub_ingest_failed_batches", "counter"),
                       ("slot_hub_ingest_failed_transactions", "counter"),
                       ("slot_hub_ingest_transaction_events", "histogram"),
                       ("slot_hub_ingest_commit_duration_seconds", "histogram"),
                       ("slot_hub_ack_latency_seconds", "histogram"),
                       ("slot_hub_ingest_queued_batches", "gauge"),
                       ("slot_hub_inflight_messages", "gauge"),
                       ("slot_hub_inflight_waits", "counter"),
                       ("slot_hub_error_replies", "counter"),
                       ("slot_hub_slow_clients_dropped", "counter")):
        assert families[name].type == kind, name
    # Every error code is there from the start (a counter that appears at 1 loses its
    # first increase to rate()).
    assert {s.labels["code"] for s in families["slot_hub_error_replies"].samples
            if s.name == "slot_hub_error_replies_total"} == {c.value for c in ErrorCode}
    assert "process_cpu_seconds_total" in {s.name for f in families.values() for s in f.samples}


async def test_openmetrics_when_the_scraper_asks_for_it(harness: HubHarness) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", harness.port)
    writer.write(f"GET /metrics HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {VIEWER}"
                 "\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5"
                 "\r\n\r\n".encode())
    async with asyncio.timeout(5):
        data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"\r\ncontent-type: application/openmetrics-text" in head.lower()
    names = {f.name for f in om_families(body.decode("utf-8"))}
    assert {"slot_hub_events_stored", "slot_hub_ack_latency_seconds"} <= names


# --------------------------------------------------------------------------- what it counts


async def test_metrics_count_what_a_terminal_published(harness: HubHarness) -> None:
    hub = harness.hub
    assert hub is not None
    n = 250
    viewer, _ = await harness.client("tok-carol")
    operator, _ = await harness.client(OPERATOR, header=True)
    term, _ = await harness.terminal("T1")
    await publish_all(term, [event_frame("T1", seq) for seq in range(1, n + 1)])
    await publish_all(term, [event_frame("T1", seq) for seq in range(n - 9, n + 1)])  # again
    await term.send_raw("{not json")
    assert (await term.recv_type("error"))["code"] == "bad_json"
    await harness.published()  # deviceOnline too
    own = len(hub.store.events("T1")) - n  # the hub's deviceOnline
    assert own == 1

    families = await scrape(harness)
    assert value(families, "slot_hub_events_stored_total") == n + own
    assert value(families, "slot_hub_duplicate_events_total") == 10
    assert value(families, "slot_hub_terminals_connected") == 1
    assert value(families, "slot_hub_clients_connected") == 2
    assert value(families, "slot_hub_error_replies_total", code="bad_json") == 1
    assert value(families, "slot_hub_error_replies_total", code="internal") == 0
    transactions = value(families, "slot_hub_ingest_transactions_total")
    assert transactions >= 1
    # Observed once per transaction: the histogram's count is the transactions'.
    assert value(families, "slot_hub_ingest_commit_duration_seconds_count") == transactions
    assert value(families, "slot_hub_ingest_commit_duration_seconds_sum") > 0
    assert value(families, "slot_hub_ingest_transaction_events_count") == transactions
    # Every write committed: the events, the resent ones, deviceOnline.
    assert value(families, "slot_hub_ingest_transaction_events_sum") == n + 10 + own
    batches = value(families, "slot_hub_ingest_batches_total")
    assert value(families, "slot_hub_ack_latency_seconds_count") == batches > 0
    assert value(families, "slot_hub_ack_latency_seconds_bucket", le="+Inf") == batches
    assert value(families, "slot_hub_ingest_failed_batches_total") == 0
    assert value(families, "slot_hub_ingest_failed_transactions_total") == 0
    assert value(families, "slot_hub_ingest_queued_batches") == 0
    assert value(families, "slot_hub_inflight_messages") == 0
    assert value(families, "slot_hub_slow_clients_dropped_total") == 0

    await viewer.close()
    await operator.close()
    await term.close()
    await wait_for(lambda: not hub.terminals.connections and not hub.clients.connected, 5,
                   "the connections gone")
    families = await scrape(harness)
    assert value(families, "slot_hub_terminals_connected") == 0
    assert value(families, "slot_hub_clients_connected") == 0


async def test_a_failed_store_transaction_is_counted_and_not_timed(
        harness: HubHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills up: SQLite's own error, raised on the writer thread where the real
    ``insert_events`` runs. The failed transaction is counted; the commit histogram still
    times committed ones only (its count stays the committed transactions')."""
    hub = harness.hub
    assert hub is not None
    term, _ = await harness.terminal("T1")
    await publish_all(term, [event_frame("T1", 1)])
    await harness.published()
    before = await scrape(harness)
    assert value(before, "slot_hub_ingest_failed_transactions_total") == 0
    store = hub.store
    assert isinstance(store, HubStore)  # the harness's SQLite store
    real = store.insert_events
    refused: list[int] = []  # the writes of each refused transaction

    def disk_full(writes: list[EventWrite], received_at: float) -> list[bool]:
        if any(w.source == "T1" and w.frame["seq"] == 2 for w in writes):
            refused.append(len(writes))
            raise sqlite3.OperationalError("database or disk is full")
        return real(writes, received_at)

    monkeypatch.setattr(store, "insert_events", disk_full)
    await term.send(event_frame("T1", 2))
    assert await term.closed() == 1011  # internal: the terminal resends from ackedSeq
    after = await scrape(harness)
    assert refused  # the store really was asked, and refused
    assert value(after, "slot_hub_ingest_failed_transactions_total") == len(refused)
    assert value(after, "slot_hub_ingest_failed_batches_total") == 1
    assert value(after, "slot_hub_error_replies_total", code="internal") == 1
    assert value(after, "slot_hub_ingest_commit_duration_seconds_count") == value(
        after, "slot_hub_ingest_transactions_total")
    assert [e["seq"] for e in hub.store.events("T1") if e["event"] == "betPlaced"] == [1]


async def test_two_hubs_in_one_process_count_their_own(harness: HubHarness,
                                                      tmp_path: Path) -> None:
    async with HubHarness(tmp_path / "second") as other:
        term, _ = await other.terminal("T2")
        await publish_all(term, [event_frame("T2", seq) for seq in range(1, 6)])
        await term.send(wire.hello("T2", "test", 0))  # a second hello: bad_message
        assert (await term.recv_type("error"))["code"] == "bad_message"
        await other.published()
        mine, theirs = await scrape(harness), await scrape(other)
        assert value(theirs, "slot_hub_events_stored_total") == 5 + 1
        assert value(theirs, "slot_hub_terminals_connected") == 1
        assert value(theirs, "slot_hub_error_replies_total", code="bad_message") == 1
        assert value(mine, "slot_hub_events_stored_total") == 0
        assert value(theirs, "slot_hub_events_from_other_instances_total") == 0
        assert value(mine, "slot_hub_terminals_connected") == 0
        assert value(mine, "slot_hub_error_replies_total", code="bad_message") == 0


async def test_instances_on_postgresql_count_their_own_and_the_others(
        tmp_path: Path, pg_url: str) -> None:
    """Each instance counts what it stored; the events of the other, which it publishes too,
    apart (summing ``slot_hub_events_stored_total`` over instances counts each event once)."""
    a, b = HubHarness(tmp_path / "a"), HubHarness(tmp_path / "b")
    hub_a = await a.start(store=pg_url, database=None)
    hub_b = await b.start(store=pg_url, database=None)
    try:
        term, _ = await a.terminal("T1")
        await publish_all(term, [event_frame("T1", seq) for seq in range(1, 21)])
        await a.published()
        assert hub_a.stats.events_stored == 21  # with its deviceOnline
        await wait_for(lambda: hub_b.stats.events_from_elsewhere == 21, 10, "B published them")
        on_a, on_b = await scrape(a), await scrape(b)
        for families in (on_a, on_b):
            assert value(families, "slot_hub_store_info", backend="postgresql") == 1
        assert value(on_a, "slot_hub_events_stored_total") == 21
        assert value(on_a, "slot_hub_events_from_other_instances_total") == 0
        assert value(on_b, "slot_hub_events_stored_total") == 0
        assert value(on_b, "slot_hub_events_from_other_instances_total") == 21
        assert value(on_a, "slot_hub_terminals_connected") == 1
        assert value(on_b, "slot_hub_terminals_connected") == 0
        assert value(on_a, "slot_hub_ingest_commit_duration_seconds_count") == value(
            on_a, "slot_hub_ingest_transactions_total") >= 1
        assert value(on_b, "slot_hub_ingest_transactions_total") == 0
    finally:
        await a.close()
        await b.close()


# --------------------------------------------------------------------------- the buckets


@given(st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), max_size=200))
def test_buckets_count_each_value_at_or_below_each_bound(values: list[float]) -> None:
    bounds = (0.5, 1.0, 2.0, 10.0)
    buckets = Buckets(bounds)
    for v in values:
        buckets.observe(v)
    expected = [(b, sum(1 for v in values if v <= b)) for b in bounds]
    assert buckets.cumulative() == [*expected, (math.inf, len(values))]
    assert buckets.count == len(values)
    assert buckets.sum == pytest.approx(sum(values))


@pytest.mark.parametrize("bounds", [(), (1.0, 1.0), (2.0, 1.0)])
def test_buckets_need_increasing_bounds(bounds: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="increasing"):
        Buckets(bounds)


async def test_the_hubs_metric_table_in_operations_md_is_what_a_scrape_shows(
        harness: HubHarness) -> None:
    """Each row of operations.md's "The hub's metrics" table is a family the hub exports, of
    that type, with those labels; no ``slot_hub_`` family is left out of it."""
    import re

    doc = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    section = doc[doc.index("### The hub's metrics"):]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`slot_hub_"):
            rows[cells[0].strip("`")] = (cells[1].split()[0], re.findall(r"^`([a-z_]+)`",
                                                                        cells[2]))
    families = {name: f for name, f in (await scrape(harness)).items()
                if name.startswith("slot_hub_")}
    suffix = {"counter": "_total", "info": "_info"}
    exported = {}
    for name, family in families.items():
        kind = "info" if name.endswith("_info") else family.type  # text format: info as gauge
        full = name if name.endswith("_info") else name + suffix.get(kind, "")
        labels = sorted({k for s in family.samples for k in s.labels if k not in ("le",)})
        exported[full] = (kind, labels)
    assert {name: (kind, sorted(labels)) for name, (kind, labels) in rows.items()} == exported
