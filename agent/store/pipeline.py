"""The pipeline: observations in, interpreted, committed to the outbox, read requests out.

One thread, so the line owner never waits for an fsync. It takes observations (and
already-built events: ``actionCompleted``, ``agentStarted`` / ``agentStopping``,
``outboxFault``) from one ordered queue, runs the pure interpreter, and stores the events
together with the new interpreter state in ONE outbox transaction per batch (group commit:
everything queued, up to ``max_batch`` items, then one commit and one fsync). Only after the
commit does it hand the interpreter's read requests to the line owner and tell listeners (the
uplink, metrics) about the stored events.

Why kill -9 is safe: the state the interpreter continues from is the one loaded from the
outbox at start, i.e. the one committed with the last stored events. Observations not yet
committed are lost with the process, but the machine's meters still hold the money they
counted, so the next read after a restart emits exactly the missing delta against that
baseline: nothing is counted twice, nothing is missed.

When the disk is full (``OutboxFullError``, nothing of the batch written) the batch stays in
memory, one ``outboxFault`` alert is added to it, and the commit is retried with a growing
delay; new observations keep being interpreted and join the same pending batch.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from agent.derive.interpreter import Interpreter
from agent.derive.state import AgentState
from agent.observations import Observation
from agent.ops.metrics import AgentMetrics
from agent.reads import ReadRequest
from agent.retry import doubling
from agent.store.outbox import Outbox, OutboxError, OutboxFullError
from api.events import Event, StoredEvent, utc_timestamp

log = logging.getLogger(__name__)

Listener = Callable[[list[StoredEvent]], None]
ReadsSink = Callable[[list[ReadRequest]], None]

_STOP = object()


class OutboxWriter(Protocol):
    """What the pipeline needs of :class:`agent.store.outbox.Outbox`."""

    def load_state(self) -> dict[str, Any] | None: ...

    def commit(self, events: Sequence[Event], state: Mapping[str, Any] | None, *,
               finished_actions: Mapping[str, Mapping[str, Any]] | None = None,
               ) -> list[StoredEvent]: ...


class Pipeline:
    """Interpreter + outbox writer on a thread of its own.

    ``reads_sink`` receives the read requests of each committed batch (``LineOwner.
    request_reads``); ``listeners`` receive the stored events of each commit, in order.
    """

    def __init__(
        self,
        outbox: Outbox | OutboxWriter,
        interpreter: Interpreter,
        *,
        reads_sink: ReadsSink | None = None,
        listeners: Sequence[Listener] = (),
        metrics: AgentMetrics | None = None,
        max_batch: int = 500,
        retry_initial_s: float = 0.05,
        retry_max_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self.outbox = outbox
        self.interpreter = interpreter
        self._reads_sink = reads_sink
        self._listeners: list[Listener] = list(listeners)
        self._metrics = metrics
        self._max_batch = max_batch
        self._retry_initial = retry_initial_s
        self._retry_max = retry_max_s
        self._clock = clock
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._state = self._load_state()
        self._pending_events: list[Event] = []
        self._pending_reads: list[ReadRequest] = []
        self._pending_actions: dict[str, Mapping[str, Any]] = {}
        self._dirty = False  # the state changed since the last commit
        self._in_commit = False
        self._full_alerted = False
        self._thread: threading.Thread | None = None
        self._abandon = threading.Event()
        self._stopping = threading.Event()
        self._idle = threading.Condition()
        self._queued = 0
        self.commits = 0
        self.committed_events = 0
        self.last_error: str | None = None

    # ------------------------------------------------------------------ state

    def _load_state(self) -> AgentState:
        raw = self.outbox.load_state()
        if raw is None:
            return self.interpreter.initial_state()
        try:
            return AgentState.from_json(raw)
        except (ValueError, KeyError, TypeError) as exc:
            # The meter baseline is unusable: start fresh. The first read baselines silently
            # (meterSnapshot), so nothing is double counted; play meanwhile is not emitted.
            log.error("outbox state unreadable (%s): starting from a fresh state", exc)
            return self.interpreter.initial_state()

    @property
    def state(self) -> AgentState:
        """The interpreter state as of the last processed item (pipeline thread's view)."""
        return self._state

    # ------------------------------------------------------------------ inputs (any thread)

    def put(self, observation: Observation) -> None:
        """Queue an observation (never blocks; the line owner's ``on_observation``)."""
        self._enqueue(("obs", observation))

    def emit(self, event: Event, *, finished_action: tuple[str, Mapping[str, Any]] | None = None
             ) -> None:
        """Queue an already-built event, in order with the observations. With
        ``finished_action`` (action id, result) the action's result is recorded in the same
        transaction as the event (``Outbox.commit(finished_actions=...)``)."""
        self._enqueue(("event", (event, finished_action)))

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def set_reads_sink(self, sink: ReadsSink) -> None:
        self._reads_sink = sink

    def _enqueue(self, item: Any) -> None:
        with self._idle:
            self._queued += 1
        self._queue.put(item)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until everything queued so far is committed (tests, orderly shutdown)."""
        with self._idle:
            return self._idle.wait_for(
                lambda: self._queued == 0 and not self._in_commit and not self._has_pending(),
                timeout)

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("pipeline already started")
        self._thread = threading.Thread(target=self._run, name="pipeline", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Drain and commit what is queued, then stop. False if it did not finish in time
        (the outbox stayed full): what is still pending is then lost with the process."""
        self._stopping.set()
        self._queue.put(_STOP)
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def abandon(self) -> None:
        """Stop at once without committing anything more (tests: what kill -9 does)."""
        self._abandon.set()
        self._queue.put(_STOP)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        backoff = doubling(self._retry_initial, self._retry_max)
        stop = False
        while not (stop and not self._has_pending()) and not self._abandon.is_set():
            if not self._has_pending():
                item = self._queue.get()
                stop = self._take(item) or stop
            # group commit: everything queued now, up to the bound
            taken = 0
            while taken < self._max_batch and not stop:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                stop = self._take(item) or stop
                taken += 1
            if self._abandon.is_set():
                return
            if not self._has_pending():
                continue
            if self._commit():
                backoff = doubling(self._retry_initial, self._retry_max)
                continue
            # disk full: keep everything, retry later (taking new items meanwhile)
            delay = next(backoff)
            if self._abandon.wait(delay):
                return
            if stop and self._stopping.is_set() and delay >= self._retry_max:
                log.error("pipeline stopping with %d events not committed (outbox full)",
                          len(self._pending_events))
                return

    def _has_pending(self) -> bool:
        return (self._dirty or bool(self._pending_events) or bool(self._pending_actions)
                or bool(self._pending_reads))

    def _take(self, item: Any) -> bool:
        """Interpret one queued item; True when it is the stop marker."""
        try:
            return self._interpret(item)
        finally:
            with self._idle:
                self._queued -= 1
                if self._queued == 0:
                    self._idle.notify_all()

    def _interpret(self, item: Any) -> bool:
        if item is _STOP:
            return True
        kind, payload = item
        if kind == "event":
            event, action = payload
            self._pending_events.append(event)
            if action is not None:
                self._pending_actions[action[0]] = action[1]
            return False
        try:
            outcome = self.interpreter.observe(self._state, payload)
        except Exception:  # a bug in a rule must not stop the agent; say it and go on
            log.exception("interpreter failed on %r; observation skipped", payload)
            return False
        self._pending_events.extend(outcome.events)
        self._pending_reads.extend(r for r in outcome.reads if r not in self._pending_reads)
        if outcome.state != self._state:
            self._state = outcome.state
            self._dirty = True
        return False

    def _commit(self) -> bool:
        with self._idle:
            self._in_commit = True
        try:
            return self._commit_pending()
        finally:
            with self._idle:
                self._in_commit = False
                self._idle.notify_all()

    def _commit_pending(self) -> bool:
        events = list(self._pending_events)
        if not events and not self._dirty and not self._pending_actions:
            self._hand_reads()  # nothing to store (e.g. a bill exception: only a read)
            return True
        try:
            stored = self.outbox.commit(events, self._state.to_json(),
                                        finished_actions=self._pending_actions or None)
        except OutboxFullError as exc:
            self.last_error = str(exc)
            if not self._full_alerted:
                self._full_alerted = True
                log.error("outbox full, %d events kept in memory: %s", len(events), exc)
                self._pending_events.append(Event("outboxFault", utc_timestamp(self._clock()), {
                    "reason": "full", "detail": str(exc), "pendingEvents": len(events)}))
            return False
        except OutboxError as exc:
            # not a full disk: a damaged batch would fail forever; log it, keep going
            self.last_error = str(exc)
            log.error("outbox commit failed, retrying: %s", exc)
            return False
        self._full_alerted = False
        self._dirty = False
        self._pending_events.clear()
        self._pending_actions = {}
        self.commits += 1
        self.committed_events += len(stored)
        self._hand_reads()
        for stored_event in stored:
            if self._metrics is not None:
                self._metrics.record_event(stored_event.event.name)
        for listener in self._listeners:
            try:
                listener(stored)
            except Exception:
                log.exception("pipeline listener failed")
        return True

    def _hand_reads(self) -> None:
        reads, self._pending_reads = self._pending_reads, []
        if reads and self._reads_sink is not None:
            try:
                self._reads_sink(reads)
            except Exception:
                log.exception("read requests could not be handed to the line owner")
