"""Prometheus metrics of the hub: ``GET /metrics`` on the hub's own port (docs/operations.md).

Answered before any WebSocket upgrade, like ``/healthz`` and the history API, and only to a
viewer's or an operator's bearer token (401 / 403 as the history API answers them): the hub
faces the floor network, and its figures say how many terminals are connected and how busy
it is.

Nothing is counted twice and nothing on the hot path talks to prometheus-client: a
:class:`HubCollector` reads the hub's own counters (hub/server.py ``HubStats``, hub/ingest.py
``IngestStats`` and its :class:`~hub.buckets.Buckets` histograms) and its gauges
(connections, the ingest's queue, the in-flight gate) at scrape time. The scrape runs on the
event loop like every other plain HTTP answer, so it reads a consistent state without a lock.

Every hub has a :class:`~prometheus_client.CollectorRegistry` of its own (never the client's
global one), so several hubs in one process (tests, the demo) never collide. It also carries
the client's process, platform and GC collectors: the hub's CPU and memory next to its load.
Names follow the Prometheus conventions: ``slot_hub_`` first, base units in the name, counters
end in ``_total``, labels only with few values (an error code, the store's engine).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from websockets.http11 import Request, Response

from api.wire import ErrorCode
from hub.buckets import Buckets
from hub.http_answers import response
from hub.http_api import refusal

if TYPE_CHECKING:
    from hub.server import Hub

PATH = "/metrics"


def store_backend(hub: Hub) -> str:
    """The store's engine, the ``backend`` label of ``slot_hub_store_info``."""
    return "postgresql" if hub.config.store is not None else "sqlite"


def _le(bound: float) -> str:
    """A bucket bound as prometheus-client prints ``le``: ``0.005``, ``10.0``, ``+Inf``."""
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def _histogram(name: str, documentation: str, buckets: Buckets) -> HistogramMetricFamily:
    return HistogramMetricFamily(
        name, documentation,
        buckets=[(_le(bound), count) for bound, count in buckets.cumulative()],
        sum_value=buckets.sum)


class HubCollector(Collector):
    """Every ``slot_hub_*`` metric of one hub, read from the hub when scraped."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    def collect(self) -> Iterator[Metric]:
        hub = self._hub
        stats, ingest = hub.stats, hub.ingest.stats
        yield InfoMetricFamily("slot_hub_store", "The store's engine (sqlite or postgresql).",
                               value={"backend": store_backend(hub)})
        yield GaugeMetricFamily(
            "slot_hub_terminals_connected",
            "Terminal connections past their hello, on this hub instance.",
            value=len(hub.terminals.connections))
        yield GaugeMetricFamily(
            "slot_hub_clients_connected",
            "Client connections (dashboards, BI, automation) past their authentication, on "
            "this hub instance.", value=len(hub.clients.connected))
        yield CounterMetricFamily(
            "slot_hub_events_stored",
            "Events this instance stored and published, the hub's own (deviceOnline, "
            "deviceOffline) included.", value=stats.events_stored)
        yield CounterMetricFamily(
            "slot_hub_events_from_other_instances",
            "Events other instances on the same PostgreSQL store stored, published here.",
            value=stats.events_from_elsewhere)
        yield CounterMetricFamily(
            "slot_hub_duplicate_events",
            "Events received again (same terminal and seq): acknowledged, not stored again.",
            value=stats.duplicates)
        yield CounterMetricFamily(
            "slot_hub_ingest_transactions", "Transactions the ingest committed.",
            value=ingest.transactions)
        yield CounterMetricFamily(
            "slot_hub_ingest_batches",
            "Batches committed (a connection's events read in one burst, or a hub event).",
            value=ingest.batches)
        yield CounterMetricFamily(
            "slot_hub_ingest_failed_batches",
            "Batches the store refused (the connection gets internal and is closed).",
            value=ingest.failed_batches)
        yield CounterMetricFamily(
            "slot_hub_ingest_failed_transactions",
            "Transactions the store failed to commit (rolled back, nothing of them stored).",
            value=ingest.failed_transactions)
        yield _histogram(
            "slot_hub_ingest_transaction_events",
            "Events (duplicates included) in each committed transaction.",
            ingest.group_events)
        yield _histogram(
            "slot_hub_ingest_commit_duration_seconds",
            "Time a committed transaction took to store (the store's write_events).",
            ingest.commit_seconds)
        yield _histogram(
            "slot_hub_ack_latency_seconds",
            "Time from a batch handed to the ingest to its resolution: stored and fanned "
            "out, its ack may go.", ingest.ack_seconds)
        yield GaugeMetricFamily(
            "slot_hub_ingest_queued_batches",
            "Batches handed to the ingest and not yet in a transaction.", value=hub.ingest.queued)
        yield GaugeMetricFamily(
            "slot_hub_inflight_messages",
            "Terminal messages read and not yet answered (held by the in-flight limits).",
            value=hub.gate.held)
        yield CounterMetricFamily(
            "slot_hub_inflight_waits",
            "Times a terminal connection was not read from because it was over its in-flight "
            "share (backpressure).", value=hub.gate.waits)
        errors = CounterMetricFamily("slot_hub_error_replies",
                                     "error messages sent to peers, by code.", labels=["code"])
        for code in ErrorCode:
            errors.add_metric([code.value], stats.errors_by_code.get(code, 0))
        yield errors
        yield CounterMetricFamily(
            "slot_hub_slow_clients_dropped",
            "Clients closed as slow consumers (4001): their outgoing queue was full.",
            value=stats.slow_consumers_dropped)


class HubMetrics:
    """The registry of one hub and the answer to ``GET /metrics``."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self.registry = CollectorRegistry(auto_describe=False)
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(collector)
        self.registry.register(HubCollector(hub))

    def answer(self, request: Request) -> Response:
        """``GET /metrics``: the text format (or OpenMetrics when the scraper asks for it,
        prometheus-client's negotiation), or 401 / 403."""
        refused = refusal(self._hub, request)
        if refused is not None:
            return refused
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        return response(200, encode(self.registry), content_type)
