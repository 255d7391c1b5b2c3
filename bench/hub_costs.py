"""Where the hub's CPU goes per event: each step of the ingest path timed on its own.

``bench/hub_load.py`` measures the hub as a whole (CPU per stored event, with the load of the
machine in it); its ``--py-spy`` option shows the shares under load. This script times each
step of the path an event takes, in this process, with the hub's own code, so the figures
add up to a per-event budget and say what a change saved:

- ``frames in``: websockets' Sans-I/O parser on a burst of masked client frames (what the
  hub's connection does before ``recv``; the asyncio side adds to it);
- ``parse_message``: JSON decode and the per-type checks (api/parse.py, api/checks.py);
- ``data text``: ``data`` encoded once, for the store and the fan-out (hub/store.py);
- ``store``: the SQLite write path per event (one transaction per 1,000 events, as the group
  commit makes under load; ``synchronous: FULL``), on the writer thread;
- ``floor``: the per-terminal accounting (hub/floor.py ``Floor.apply``);
- ``event frame``: the fanned-out frame built and framed (hub/fanout.py);
- per burst (divided by the burst size): the ``terminal`` state frame and the ``ack`` frame.

Each figure is the median of ``--runs`` runs of many iterations, in µs of this thread's CPU
per event (not wall time: the store's fsync waits and other processes' load are not in
it). Run:
``.venv/bin/python bench/hub_costs.py [--burst 5] [--runs 5]``.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchlib import header

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from websockets.frames import Frame, Opcode  # noqa: E402
from websockets.protocol import Protocol, Side, State  # noqa: E402

from api import wire  # noqa: E402
from hub.fanout import ack_frame, event_text, terminal_frame  # noqa: E402
from hub.floor import Floor  # noqa: E402
from hub.store import EventWrite, HubStore, data_text  # noqa: E402
from hub.wsio import framed  # noqa: E402

EVENT = ('{"type":"event","id":"%s-%d","seq":%d,"channel":"game","terminalId":"%s",'
         '"event":"betPlaced","timestamp":"%s","data":{"amount":100,"credits":100,'
         '"denomination":1,"games":1,"gameNumber":%d,"meters":{"coinIn":[%d,%d]}}}')
STAMP = "2026-12-06T22:00:00.000Z"


def texts(n: int, tid: str = "T00001") -> list[str]:
    return [EVENT % (tid, s, s, tid, STAMP, s, 100 * s, 100 * s + 100) for s in range(1, n + 1)]


def per_event(fn: Callable[[int], int], runs: int) -> float:
    """Median µs per event over ``runs`` calls of ``fn(run)`` (which returns its events)."""
    figures = []
    for run in range(runs):
        start = time.thread_time()  # CPU of this thread: not the fsync waits, not the load
        events = fn(run)
        figures.append((time.thread_time() - start) * 1e6 / events)
    return statistics.median(figures)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--burst", type=int, default=5, help="events per terminal burst")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--events", type=int, default=20_000, help="events per run")
    args = parser.parse_args()
    n: int = args.events
    burst: int = args.burst
    header("hub CPU per event, step by step (the ingest path of one event)")
    print(f"# {n:,} events per run, median of {args.runs} runs, bursts of {burst}")
    sample = texts(n)
    results: list[tuple[str, float]] = []

    # websockets' parser on bursts of masked frames, as a terminal sends them
    bursts = [b"".join(Frame(Opcode.TEXT, t.encode()).serialize(mask=True)
                       for t in sample[i:i + burst]) for i in range(0, n, burst)]

    def frames_in(_run: int) -> int:
        proto = Protocol(Side.SERVER, state=State.OPEN, max_size=2**20)
        got = 0
        for data in bursts:
            proto.receive_data(data)
            got += len(proto.events_received())
        assert got == n
        return n
    results.append(("frames in (websockets parser)", per_event(frames_in, args.runs)))

    def parse(_run: int) -> int:
        for t in sample:
            wire.parse_message(t, max_bytes=65536, accept=wire.TERMINAL_TO_HUB)
        return n
    results.append(("parse_message (decode + checks)", per_event(parse, args.runs)))
    frames = [wire.parse_message(t, max_bytes=65536) for t in sample]

    def encode_data(_run: int) -> int:
        for f in frames:
            data_text(f["data"])
        return n
    results.append(("data text (one encode)", per_event(encode_data, args.runs)))
    writes = [EventWrite(f, "T00001", acked_seq=f["seq"], data_text=data_text(f["data"]))
              for f in frames]

    with tempfile.TemporaryDirectory() as tmp:
        store = HubStore(Path(tmp) / "hub.db", synchronous="FULL")
        try:
            def write(run: int) -> int:
                base = (run + 1) * 10 * n
                for i in range(0, n, 1000):
                    chunk = [EventWrite(dict(w.frame, seq=base + i + k), w.source,
                                        base + i + k, w.data_text)
                             for k, w in enumerate(writes[i:i + 1000])]
                    store.insert_events(chunk, time.time())
                return n
            results.append(("store (1,000 per transaction, FULL)",
                            per_event(write, args.runs)))

            floor = Floor(store, ["T00001"], time.time())

            def account(_run: int) -> int:
                now = time.time()
                for f in frames:
                    floor.apply(f, now)
                return n
            results.append(("floor accounting", per_event(account, args.runs)))
            for i, f in enumerate(frames):
                f["cursor"] = i + 1

            def event_frames(_run: int) -> int:
                for w in writes:
                    framed(event_text(w.frame, w.data_text).encode())
                return n
            results.append(("event frame (built once for all clients)",
                            per_event(event_frames, args.runs)))
            state = floor.get("T00001", time.time())

            def states(_run: int) -> int:
                for _ in range(0, n, burst):
                    terminal_frame(state)
                return n
            results.append((f"terminal state frame (per burst of {burst})",
                            per_event(states, args.runs)))

            def acks(_run: int) -> int:
                for i in range(0, n, burst):
                    ack_frame(i)
                return n
            results.append((f"ack frame (per burst of {burst})", per_event(acks, args.runs)))
        finally:
            store.close()

    total = sum(v for _, v in results)
    for label, value in results:
        print(f"{label:<45} {value:7.2f} µs/event  {100 * value / total:5.1f} %")
    print(f"{'sum of the steps':<45} {total:7.2f} µs/event")
    print(f"# load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    random.seed(1)
    raise SystemExit(main())
