"""The Prometheus metrics (README, "Metrics"; the HTTP server is :mod:`conductor_loop.metricserver`).

Only a loop with ``--metrics-addr`` makes them: without an endpoint nothing could read a count, and the loop
counts into :class:`conductor_loop.meters.Unserved` instead, without importing prometheus-client.

Who counts
----------
Every count is made in the *supervisor* process: workers return a ``WorkResult`` to the supervisor,
which records it, moves the file and then calls :meth:`Metrics.observe_outcome`. Workers never touch
these objects. An ordinary in-process :class:`prometheus_client.CollectorRegistry` is therefore exact
across worker processes, and the library's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, mmap
files, no process metrics) is neither needed nor used. The process metrics (``process_*``) describe
the supervisor process.

Locking
-------
The Go loop deadlocked after 10 s because its metrics code took the same mutex twice. Here the
metric objects are prometheus-client's own (thread-safe, each with its own short internal lock), and
nothing in this module takes a lock while holding another (:mod:`conductor_loop.health` neither).

"""

from __future__ import annotations

import logging
import time

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import choose_encoder

__all__ = [
    "OUTCOMES",
    "PROCESSING_BUCKETS",
    "Metrics",
]

#: The outcomes counted by ``conductor_intents_total``.
OUTCOMES: tuple[str, ...] = ("success", "failed", "skipped")

#: Histogram buckets (seconds) for ``conductor_processing_seconds``: 1 ms .. 60 s.
PROCESSING_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    float("inf"),
)

_log = logging.getLogger("conductor_loop.metrics")


class Metrics:
    """The loop's Prometheus metrics, on their own registry.

    Each instance has its own :class:`CollectorRegistry` unless one is given, so tests (and several
    loops in one process) do not collide. Process, platform and GC collectors are registered on it.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        """Create every metric on ``registry`` (a fresh registry when ``None``)."""
        self.registry: CollectorRegistry = registry if registry is not None else CollectorRegistry()
        self._intent_metrics(self.registry)
        self._loop_metrics(self.registry)
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            try:
                collector(registry=self.registry)
            except ValueError:
                # Already registered (the caller passed a registry that has them, e.g. the global one).
                pass

    def _intent_metrics(self, r: CollectorRegistry) -> None:
        self.intents_total = Counter(
            "conductor_intents_total",
            "Intents filed, by outcome (success, failed, skipped).",
            ["outcome"],
            registry=r,
        )
        self._outcome_counters = {outcome: self.intents_total.labels(outcome=outcome) for outcome in OUTCOMES}
        self.processing_seconds = Histogram(
            "conductor_processing_seconds",
            "Time from taking an intent to its final outcome (validate, run porch, record; all attempts), in seconds.",
            buckets=PROCESSING_BUCKETS,
            registry=r,
        )
        self.porch_timeouts_total = Counter(
            "conductor_porch_timeouts_total",
            "Porch runs killed because they exceeded --timeout.",
            registry=r,
        )
        self.retries_total = Counter(
            "conductor_retries_total",
            "Retries of intents after an environmental failure (spawn error, timeout, disk full).",
            registry=r,
        )
        self.last_success_timestamp = Gauge(
            "conductor_last_success_timestamp_seconds",
            "Unix time of the last intent filed with outcome success (at start: the newest success in the state).",
            registry=r,
        )

    def _loop_metrics(self, r: CollectorRegistry) -> None:
        self.queue_depth = Gauge(
            "conductor_queue_depth",
            "Settled intents waiting for a worker, retries waiting out their backoff included.",
            registry=r,
        )
        self.workers = Gauge("conductor_workers", "Worker processes currently in the pool.", registry=r)
        self.workers_busy = Gauge("conductor_workers_busy", "Workers currently processing an intent.", registry=r)
        self.events_total = Counter(
            "conductor_events_total",
            "Raw file-system events received from the watcher (before coalescing).",
            registry=r,
        )
        self.rescans_total = Counter(
            "conductor_rescans_total",
            "Full rescans of the handoff directory because events may have been lost "
            "(inotify queue overflow, lost watch, recreated directory).",
            registry=r,
        )
        self.sweeps_total = Counter(
            "conductor_sweeps_total",
            "Periodic sweeps of the handoff directory (every --debounce x 10, at most 30 s) for what no "
            "event reported.",
            registry=r,
        )
        self.watcher_up = Gauge(
            "conductor_watcher_up",
            "1 while the file watcher is running and all its watches are in place, else 0.",
            registry=r,
        )
        self.intake_paused = Gauge(
            "conductor_intake_paused",
            "1 while intake is paused for a storage fault (disk full, read-only state, no descriptors), else 0.",
            registry=r,
        )

    def observe_outcome(self, outcome: str, duration_s: float | None, *, timed_out: bool = False) -> None:
        """Count one filed intent.

        ``outcome`` is one of :data:`OUTCOMES`; ``duration_s`` (when known) goes into the processing
        histogram; ``timed_out`` also counts a porch timeout. A success sets the last-success time.
        """
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}: expected one of {', '.join(OUTCOMES)}")
        self._outcome_counters[outcome].inc()  # labels() once per outcome: it locks and builds a key each call
        if duration_s is not None:
            self.processing_seconds.observe(max(0.0, float(duration_s)))
        if timed_out:
            self.porch_timeouts_total.inc()
        if outcome == "success":
            self.last_success_timestamp.set(time.time())

    def render(self) -> bytes:
        """The registry in the Prometheus text format (0.0.4)."""
        return generate_latest(self.registry)

    def encode(self, accept: str | None = None) -> tuple[bytes, str]:
        """The registry in the format the ``Accept`` header asks for, and its content type."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type
