"""Prometheus metrics of the agent.

One :class:`AgentMetrics` object owns every metric the daemon exports. It registers them in its
own :class:`~prometheus_client.CollectorRegistry` (not the client's global one), so two agents
in one process (tests, the demo) never collide, and a test can read exactly what one agent
exported with ``generate_latest(metrics.registry)``.

Names follow the Prometheus conventions: base units in the name (``_seconds``), counters are
declared without ``_total`` (the client adds it), labels only where their values are few
(a SAS address, a poll result, an event name; never an event id or a player id).
docs/operations.md lists every metric with its type, labels and meaning.

``prometheus_client`` is imported when an :class:`AgentMetrics` is made, not with this module:
the line process (:mod:`agent.line.process`) needs the enums below but keeps no metrics of its
own, and the client library is a third of a bare interpreter's memory.
"""

from __future__ import annotations

import threading
from enum import StrEnum
from typing import TYPE_CHECKING

from agent import __version__

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from prometheus_client import CollectorRegistry

__all__ = [
    "DEFAULT_METRICS_ADDRESS",
    "DEFAULT_METRICS_PORT",
    "ActionStatus",
    "AgentMetrics",
    "BadFrameKind",
    "PollResult",
    "stop_server",
]

#: Loopback by default: a scrape from elsewhere goes through a reverse proxy or an explicit
#: configuration change, never by accident.
DEFAULT_METRICS_ADDRESS = "127.0.0.1"
DEFAULT_METRICS_PORT = 9464


class PollResult(StrEnum):
    """Outcome of one poll, the ``result`` label of ``slot_agent_polls_total``."""

    OK = "ok"
    TIMEOUT = "timeout"  # no reply inside the SAS reply window
    CRC = "crc"  # a reply arrived but its CRC-16/KERMIT did not check
    FRAMING = "framing"  # a reply arrived but is not a frame for the poll (address, length)
    NACK = "nack"  # the machine answered with its address | 0x80 (long poll NACK)
    BUSY = "busy"  # the machine answered "busy" (address + 00)
    UNSUPPORTED = "unsupported"  # the machine ignored a long poll it does not implement


class BadFrameKind(StrEnum):
    """Why a received frame was dropped, the ``kind`` label of ``slot_agent_bad_frames_total``."""

    CRC = "crc"
    LENGTH = "length"  # shorter or longer than the poll's reply layout
    ADDRESS = "address"  # reply from an address that was not polled
    UNEXPECTED = "unexpected"  # bytes while no reply was expected
    DECODE = "decode"  # framing fine, content not decodable
    #: a general-poll exception byte outside the SAS table (SAS §3.11), confirmed by a
    #: re-send and reported as an undefined exception (not dropped)
    UNDEFINED_EXCEPTION = "undefined_exception"
    #: bytes that came after their reply window closed, thrown away before the next send
    #: (agent.line.reply_window: the machine's window is widened)
    LATE = "late"


class ActionStatus(StrEnum):
    """Final status of a remote action, the ``status`` label of ``slot_agent_actions_total``."""

    OK = "ok"
    FAILED = "failed"
    REJECTED = "rejected"  # malformed or unknown: nothing was changed
    EXPIRED = "expired"
    DUPLICATE = "duplicate"  # already executed under this id


# Poll replies arrive within the 20 ms SAS reply window plus transfer time at 19200 baud
# (about 0.57 ms per byte): 1-100 ms is where the interesting values live.
POLL_LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1)
# How far a poll started from its schedule. Sub-millisecond is healthy; tens of ms is a
# stalled line thread.
POLL_DEVIATION_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)
# Send -> cumulative ack from the hub, over a WAN.
ACK_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class AgentMetrics:
    """Every metric of one agent, registered in ``registry`` (a fresh one by default).

    A fresh registry also carries the client's process, platform and GC collectors, so the
    endpoint shows memory, CPU and file descriptors next to the agent's own figures.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        from prometheus_client import (
            GC_COLLECTOR,
            PLATFORM_COLLECTOR,
            PROCESS_COLLECTOR,
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
            Info,
        )

        if registry is None:
            registry = CollectorRegistry()
            for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
                registry.register(collector)
        self.registry = registry

        self.polls = Counter(
            "slot_agent_polls",
            "Polls sent to the machine, by SAS address and result.",
            ["address", "result"],
            registry=registry,
        )
        self.poll_latency = Histogram(
            "slot_agent_poll_latency_seconds",
            "Time from the end of a poll to the end of the machine's reply.",
            buckets=POLL_LATENCY_BUCKETS,
            registry=registry,
        )
        self.poll_interval_deviation = Histogram(
            "slot_agent_poll_interval_deviation_seconds",
            "Absolute difference between when a poll was scheduled and when it was sent.",
            buckets=POLL_DEVIATION_BUCKETS,
            registry=registry,
        )
        self.link_up = Gauge(
            "slot_agent_link_up",
            "1 while the machine at this SAS address answers polls, 0 while it does not.",
            ["address"],
            registry=registry,
        )
        self.bad_frames = Counter(
            "slot_agent_bad_frames",
            "Received frames dropped as invalid (and undefined exception codes), by SAS "
            "address and reason.",
            ["address", "kind"],
            registry=registry,
        )
        self.events = Counter(
            "slot_agent_events",
            "Business events derived and committed to the outbox, by event name.",
            ["event"],
            registry=registry,
        )
        self.outbox_depth = Gauge(
            "slot_agent_outbox_depth",
            "Events in the outbox not yet acknowledged by the hub.",
            registry=registry,
        )
        self.outbox_oldest_unacked_age = Gauge(
            "slot_agent_outbox_oldest_unacked_age_seconds",
            "Age of the oldest event the hub has not acknowledged (0 when none).",
            registry=registry,
        )
        self.uplink_connected = Gauge(
            "slot_agent_uplink_connected",
            "1 while the WebSocket session with the hub is established (after welcome).",
            registry=registry,
        )
        self.uplink_reconnects = Counter(
            "slot_agent_uplink_reconnects",
            "Connection attempts to the hub after the first one.",
            registry=registry,
        )
        self.uplink_ack_latency = Histogram(
            "slot_agent_uplink_ack_latency_seconds",
            "Time from sending an event to the hub's acknowledgement covering it.",
            buckets=ACK_LATENCY_BUCKETS,
            registry=registry,
        )
        self.actions = Counter(
            "slot_agent_actions",
            "Remote actions handled, by action name and final status.",
            ["action", "status"],
            registry=registry,
        )
        self.machine = Info(
            "slot_agent_machine",
            "Identity of the polled machine as it reported it at link-up.",
            registry=registry,
        )
        self.line_priority = Info(
            "slot_agent_line_priority",
            "The scheduling poll.line_priority asked for the line process and what it got "
            "(realtime, nice or normal): got below asked means the unit refused it.",
            registry=registry,
        )
        self.build = Info(
            "slot_agent_build",
            "Version of the running agent.",
            registry=registry,
        )
        self.build.info({"version": __version__})

    # Convenience recorders: the label sets are spelled once, here.

    def record_poll(self, address: int, result: PollResult, latency: float | None = None) -> None:
        """Count one poll; ``latency`` (seconds) is observed for answered polls only."""
        self.polls.labels(address=str(address), result=result.value).inc()
        if latency is not None:
            self.poll_latency.observe(latency)

    def record_poll_deviation(self, seconds: float) -> None:
        """How far a poll cycle started from its schedule (seconds, absolute)."""
        self.poll_interval_deviation.observe(seconds)

    def record_bad_frame(self, address: int, kind: BadFrameKind) -> None:
        self.bad_frames.labels(address=str(address), kind=kind.value).inc()

    def set_link_up(self, address: int, up: bool) -> None:
        self.link_up.labels(address=str(address)).set(1 if up else 0)

    def record_event(self, event: str) -> None:
        self.events.labels(event=event).inc()

    def record_action(self, action: str, status: ActionStatus) -> None:
        self.actions.labels(action=action, status=status.value).inc()

    def set_outbox(self, depth: int, oldest_unacked_age: float | None) -> None:
        """Publish the outbox backlog; ``oldest_unacked_age`` is None when nothing is pending."""
        self.outbox_depth.set(depth)
        self.outbox_oldest_unacked_age.set(oldest_unacked_age or 0.0)

    def set_machine(
        self,
        *,
        address: int,
        sas_version: str,
        serial_number: str,
        game_id: str,
        denomination_cents: int,
    ) -> None:
        """Publish the machine's identity (from long polls 54 and 1F)."""
        self.machine.info(
            {
                "address": str(address),
                "sas_version": sas_version,
                "serial_number": serial_number,
                "game_id": game_id,
                "denomination_cents": str(denomination_cents),
            }
        )

    def set_line_priority(self, asked: str, got: str) -> None:
        """Publish the line process's scheduling (set when it starts)."""
        self.line_priority.info({"asked": asked, "got": got})

    def serve(
        self, address: str = DEFAULT_METRICS_ADDRESS, port: int = DEFAULT_METRICS_PORT
    ) -> tuple[WSGIServer, threading.Thread]:
        """Serve ``/metrics`` over HTTP on a daemon thread.

        ``port=0`` binds a free port; the bound one is ``server.server_port``. Stop it with
        :func:`stop_server`. Raises ``OSError`` when the address cannot be bound.
        """
        from prometheus_client import start_http_server

        return start_http_server(port, addr=address, registry=self.registry)


def stop_server(server: WSGIServer, thread: threading.Thread, timeout: float = 5.0) -> None:
    """Stop a server started by :meth:`AgentMetrics.serve` and release its port."""
    server.shutdown()
    server.server_close()
    thread.join(timeout)
