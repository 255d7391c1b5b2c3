"""What the hub's metrics cost: the hot-path additions, and one scrape.

``GET /metrics`` (hub/metrics.py) reads the hub's counters when scraped; the only work added
to the ingest is timing, once per transaction and once per batch (hub/ingest.py):

- per batch: a ``time.monotonic()`` at submit and a :class:`hub.buckets.Buckets` observe of
  its ack latency;
- per transaction: two ``time.monotonic()`` and two observes (commit duration, events);
- for comparison, prometheus-client's ``Histogram.observe``, which takes a lock every call
  (what the hub does not use on its hot path), and ``Counter.inc``;
- one scrape: ``generate_latest`` of a real hub's registry (its process, platform and GC
  collectors included), on the event loop like the hub's answer.

Each figure is the median of ``--runs`` runs, in µs of this thread's CPU per call. Run:
``.venv/bin/python bench/hub_metrics_cost.py [--runs 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchlib import HelpDefaults, header, load_average

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prometheus_client import CollectorRegistry, Counter, Histogram  # noqa: E402
from prometheus_client.exposition import generate_latest  # noqa: E402

from hub.buckets import Buckets  # noqa: E402
from hub.config import HubConfig  # noqa: E402
from hub.ingest import ACK_BUCKETS, COMMIT_BUCKETS, GROUP_EVENTS_BUCKETS  # noqa: E402
from hub.server import Hub  # noqa: E402
from tests.support.tokens import write_token_file  # noqa: E402


def per_call(fn: Callable[[], object], number: int, runs: int) -> float:
    """Median µs of thread CPU per call of ``fn``."""
    results = []
    for _ in range(runs):
        start = time.thread_time()
        for _ in range(number):
            fn()
        results.append((time.thread_time() - start) / number * 1e6)
    return statistics.median(results)


def hot_path(runs: int) -> None:
    ack = Buckets(ACK_BUCKETS)
    commit, events = Buckets(COMMIT_BUCKETS), Buckets(GROUP_EVENTS_BUCKETS)
    n = 200_000
    empty = per_call(lambda: None, n, runs)

    def batch() -> None:
        submitted = time.monotonic()
        ack.observe(time.monotonic() - submitted)  # the resolution's clock is per group

    def transaction() -> None:
        started = time.monotonic()
        seconds = time.monotonic() - started
        commit.observe(seconds)
        events.observe(120)

    registry = CollectorRegistry()
    histogram = Histogram("x_seconds", "x", buckets=ACK_BUCKETS, registry=registry)
    counter = Counter("y", "y", registry=registry)
    rows: list[tuple[str, Callable[[], object]]] = [
        ("per batch (monotonic + Buckets.observe)", batch),
        ("per transaction (2 monotonic + 2 observes)", transaction),
        ("Buckets.observe alone", lambda: ack.observe(0.0123)),
        ("prometheus_client Histogram.observe (locks)", lambda: histogram.observe(0.0123)),
        ("prometheus_client Counter.inc (locks)", counter.inc),
    ]
    for name, fn in rows:
        print(f"{name:50s} {per_call(fn, n, runs) - empty:6.3f} µs")


async def scrape(runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = HubConfig(tokens=write_token_file(Path(tmp)), database=Path(tmp) / "hub.db",
                           host="127.0.0.1", port=0, plain=True, synchronous="NORMAL")
        hub = Hub(config)
        await hub.start()
        try:
            body = generate_latest(hub.metrics.registry)
            cost = per_call(lambda: generate_latest(hub.metrics.registry), 200, runs)
            print(f"{'one scrape (generate_latest, on the loop)':50s} {cost:6.0f} µs "
                  f"({len(body)} bytes)")
        finally:
            await hub.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpDefaults)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    header("hub metrics: CPU per call")
    hot_path(args.runs)
    asyncio.run(scrape(args.runs))
    print(f"# load average {load_average()}")


if __name__ == "__main__":
    main()
