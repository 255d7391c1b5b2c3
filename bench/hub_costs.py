"""Where the hub's CPU goes per event: each step of the ingest path timed on its own.

``bench/hub_load.py`` measures the hub as a whole (CPU per stored event, with the load of the
machine in it); its ``--py-spy`` option shows the shares under load. This script times each
step of the path an event takes, in this process, with the hub's own code, so the figures
add up to a per-event budget and say what a change saved:

- ``frames in``: the hub's reader of whole text frames (hub/frame_reader.py) on a burst of
  masked client frames (what the hub's connection does before ``recv``; the asyncio side
  adds to it); "before", websockets' Sans-I/O parser, which read them until 2026-12-07;
- ``parse_message``: JSON decode and the per-type checks (api/parse.py, api/checks.py);
- ``data text``: ``data`` encoded once, for the store and the fan-out (hub/store.py
  ``data_text``, its encoder made once: hub/json_text.py);
- ``store``: the SQLite write path per event (one transaction per 1,000 events, as the group
  commit makes under load; ``synchronous: FULL``), on the writer thread;
- ``floor``: the per-terminal accounting (hub/floor.py ``Floor.apply``);
- ``event frame``: the fanned-out frame built and framed (hub/fanout.py);
- per burst (divided by the burst size): the ``terminal`` state frame and the ``ack`` frame;
- the fan-out to ``--clients`` viewers subscribed to everything (queueing, per event).

Each step the fan-out work changed is also timed the way the hub did it before
(``wire.encode`` per frame, websockets' framing, one queue item per event and per client, the
subscription checked per event and per client), marked "before", so what the change saved
is measured in the same run.

Each figure is the median of ``--runs`` runs of many iterations, in µs of this thread's CPU
per event (not wall time: the store's fsync waits and other processes' load are not in
it). Run:
``.venv/bin/python bench/hub_costs.py [--burst 5] [--runs 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchlib import HelpDefaults, header

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from websockets.frames import Frame, Opcode  # noqa: E402
from websockets.protocol import Protocol, Side, State  # noqa: E402

from api import wire  # noqa: E402
from hub.fanout import (  # noqa: E402
    ENCODER,
    GroupFanOut,
    ack_frame,
    event_text,
    terminal_frame,
)
from hub.floor import Floor  # noqa: E402
from hub.frame_reader import FrameReader  # noqa: E402
from hub.peer import FrameQueue  # noqa: E402
from hub.store import EventWrite, HubStore, data_text  # noqa: E402
from hub.subscriptions import Filter, Subscription  # noqa: E402
from hub.wsio import frame_header, framed  # noqa: E402

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


class _Client:
    """What the fan-out needs of a client: its subscription and a peer with a queue."""

    def __init__(self, everything: bool, limit: int) -> None:
        self.subscription = Subscription()
        if everything:
            self.subscription.subscribe(Filter())
        self.peer = self
        self.queue = FrameQueue(limit)
        self.old: asyncio.Queue[bytes] = asyncio.Queue(maxsize=limit)

    def send_text(self, item: bytes) -> bool:
        self.queue.put_nowait(item)
        return True

    def filling(self) -> bool:
        return False


class _Clients:
    def __init__(self, clients: list[_Client]) -> None:
        self.connected = clients


async def _fan_out(writes: list[EventWrite], clients: int, runs: int) -> float:
    """The fan-out's queueing for ``clients`` viewers taking everything (hub/fanout.py),
    per event; the frames' building is timed apart (``event frame``)."""
    viewers = [_Client(True, 1 << 30) for _ in range(clients)]
    figures = []
    for _ in range(runs):
        fan = GroupFanOut(_Clients(viewers), 1000)  # type: ignore[arg-type]
        payloads = [event_text(w.frame, w.data_text).encode() for w in writes]
        frames = [(frame_header(len(p)) + p, p) for p in payloads]
        start = time.thread_time()
        for w, (wire_bytes, payload) in zip(writes, frames, strict=True):
            fan._frames.append((wire_bytes, payload, w.frame))
            if len(fan._frames) >= 250:
                await fan.flush()
        await fan.flush()
        figures.append((time.thread_time() - start) * 1e6 / len(writes))
        for v in viewers:
            await v.queue.take()
    return statistics.median(figures)


async def _old_fan_out(writes: list[EventWrite], clients: int, runs: int) -> float:
    """The same as the hub did it before: per event and per client, the subscription
    checked and one queue item."""
    viewers = [_Client(True, len(writes)) for _ in range(clients)]
    figures = []
    for _ in range(runs):
        frames = [framed(event_text(w.frame, w.data_text).encode()) for w in writes]
        start = time.thread_time()
        for w, f in zip(writes, frames, strict=True):
            for v in viewers:
                if v.subscription.matches(w.frame):
                    v.old.put_nowait(f)
                    _ = v.old.qsize() * 2 >= v.old.maxsize
        figures.append((time.thread_time() - start) * 1e6 / len(writes))
        for v in viewers:
            while not v.old.empty():
                v.old.get_nowait()
    return statistics.median(figures)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpDefaults)
    parser.add_argument("--burst", type=int, default=5, help="events per terminal burst")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--events", type=int, default=20_000, help="events per run")
    parser.add_argument("--clients", type=int, default=50, help="viewers for the fan-out")
    args = parser.parse_args()
    n: int = args.events
    burst: int = args.burst
    header("hub CPU per event, step by step (the ingest path of one event)")
    print(f"# {n:,} events per run, median of {args.runs} runs, bursts of {burst}")
    sample = texts(n)
    results: list[tuple[str, float]] = []
    before: list[tuple[str, float]] = []

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
    before.append(("frames in (websockets parser)", per_event(frames_in, args.runs)))

    def frames_in_reader(_run: int) -> int:
        proto = Protocol(Side.SERVER, state=State.OPEN, max_size=2**20)
        got: list[Frame] = []
        reader = FrameReader(proto, got.append, proto.receive_data)
        for data in bursts:
            reader.feed(data)
        assert len(got) == n and reader.active
        return n
    results.append(("frames in (hub's frame reader)", per_event(frames_in_reader, args.runs)))

    def parse(_run: int) -> int:
        for t in sample:
            wire.parse_message(t, max_bytes=65536, accept=wire.TERMINAL_TO_HUB)
        return n
    results.append(("parse_message (decode + checks)", per_event(parse, args.runs)))
    frames = [wire.parse_message(t, max_bytes=65536) for t in sample]

    def encode_data_once(_run: int) -> int:
        for f in frames:
            data_text(f["data"])
        return n
    results.append(("data text (one encode)", per_event(encode_data_once, args.runs)))

    per_call = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))

    def old_data(_run: int) -> int:
        for f in frames:  # JSONEncoder.encode: a C encoder made per call
            per_call.encode(f["data"])
        return n
    before.append(("data text", per_event(old_data, args.runs)))
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
                for w in writes:  # as GroupFanOut.event: the wire bytes and the payload
                    payload = event_text(w.frame, w.data_text).encode()
                    _ = frame_header(len(payload)) + payload
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
            results.append(("fan-out queueing, per event", asyncio.run(
                _fan_out(writes, args.clients, args.runs))))

            def old_frames(_run: int) -> int:
                for w in writes:  # data encoded again, the whole frame by json.dumps
                    Frame(Opcode.TEXT, wire.encode(w.frame).encode()).serialize(mask=False)
                return n
            before.append(("event frame", per_event(old_frames, args.runs)))

            def old_states(_run: int) -> int:
                for _ in range(0, n, burst):
                    wire.encode(wire.terminal_state(state.to_wire()))
                return n
            before.append(("terminal state frame", per_event(old_states, args.runs)))

            def per_call_encoder_states(_run: int) -> int:
                for _ in range(0, n, burst):  # framed, but JSONEncoder.encode per frame
                    framed(ENCODER.encode({"type": "terminal",
                                           "terminal": state.to_wire()}).encode())
                return n
            before.append(("terminal state frame (encoder per call)",
                           per_event(per_call_encoder_states, args.runs)))

            def old_acks(_run: int) -> int:
                for i in range(0, n, burst):
                    Frame(Opcode.TEXT, wire.encode(wire.ack(i)).encode()).serialize(mask=False)
                return n
            before.append(("ack frame", per_event(old_acks, args.runs)))
            before.append(("fan-out queueing, per event", asyncio.run(
                _old_fan_out(writes, args.clients, args.runs))))
        finally:
            store.close()

    total = sum(v for _, v in results)
    for label, value in results:
        print(f"{label:<45} {value:7.2f} µs/event  {100 * value / total:5.1f} %")
    print(f"{'sum of the steps':<45} {total:7.2f} µs/event")
    print(f"# the same steps as the hub did them before (fan-out to {args.clients} clients):")
    for label, value in before:
        now = next(v for k, v in results if k.startswith(label.split(" (")[0]))
        print(f"{label + ', before':<45} {value:7.2f} µs/event  (now {now:.2f})")
    print(f"# load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    random.seed(1)
    raise SystemExit(main())
