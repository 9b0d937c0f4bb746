"""The worker host's metrics and health (``conductor-loop worker --metrics-addr``; docs/operations.md,
"Worker hosts"), served by :class:`conductor_loop.metricserver.MetricsServer`.

Counted on the worker's event loop only; prometheus-client's objects are thread-safe and :class:`WorkerHealth`
holds one plain lock for a few lines, as :mod:`conductor_loop.metrics` does.
"""

from __future__ import annotations

import threading
import time

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.exposition import choose_encoder

from conductor_loop.metrics import PROCESSING_BUCKETS

TASK_OUTCOMES: tuple[str, ...] = ("success", "failed", "rejected", "lost")
"""``conductor_worker_tasks_total`` outcomes: porch succeeded, porch failed, the task was refused (bad bytes,
bad message, a package that cannot be sent), the lease was lost (nothing published)."""


class WorkerMetrics:
    """The worker's Prometheus metrics, on their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        """Create every metric on ``registry`` (a fresh one when ``None``)."""
        r = self.registry = registry if registry is not None else CollectorRegistry()
        self.tasks_total = Counter(
            "conductor_worker_tasks_total",
            "Task deliveries finished by this worker, by outcome (success, failed, rejected, lost).",
            ["outcome"],
            registry=r,
        )
        for outcome in TASK_OUTCOMES:
            self.tasks_total.labels(outcome=outcome)
        self.slots = Gauge("conductor_worker_slots", "Slots of this worker (--slots).", registry=r)
        self.busy_slots = Gauge("conductor_worker_busy_slots", "Slots running a task now.", registry=r)
        self.leases_lost_total = Counter(
            "conductor_worker_leases_lost_total",
            "Tasks whose lease this worker lost (no heartbeat confirmed in time): porch killed, nothing published.",
            registry=r,
        )
        self.execution_seconds = Histogram(
            "conductor_worker_execution_seconds",
            "Time porch ran for one task on this worker, in seconds.",
            buckets=PROCESSING_BUCKETS,
            registry=r,
        )
        self.broker_up = Gauge("conductor_worker_broker_up", "1 while connected to the broker, else 0.", registry=r)
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=r)

    def encode(self, accept: str | None = None) -> tuple[bytes, str]:
        """The registry in the format the ``Accept`` header asks for, and its content type."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


class WorkerHealth:
    """``/healthz`` and ``/livez``: the event loop turns; ``/readyz``: connected, the fleet exists, not stopping."""

    def __init__(self, *, live_timeout: float = 30.0) -> None:
        """``live_timeout``: seconds without :meth:`tick` after which the worker is considered stuck."""
        self._lock = threading.Lock()
        self._live_timeout = live_timeout
        self._last_tick = time.monotonic()
        self._reason: str | None = "not connected to the broker yet"

    def tick(self) -> None:
        """Record that the event loop turned."""
        now = time.monotonic()
        with self._lock:
            self._last_tick = now

    def set_ready(self, reason: str | None) -> None:
        """``None``: ready; else why not (not connected, waiting for the fleet, stopping)."""
        with self._lock:
            self._reason = reason

    def livez(self) -> tuple[bool, str]:
        """False when the event loop has not turned for ``live_timeout`` seconds."""
        with self._lock:
            age = time.monotonic() - self._last_tick
        if age > self._live_timeout:
            return False, f"worker event loop has not turned for {age:.1f}s (limit {self._live_timeout:g}s)"
        return True, "ok"

    def healthz(self) -> tuple[bool, str]:
        """As :meth:`livez` (a worker has no watcher)."""
        return self.livez()

    def readyz(self) -> tuple[bool, str]:
        """True when connected to the broker, the fleet's consumer exists, and not stopping."""
        with self._lock:
            reason = self._reason
        return (True, "ok") if reason is None else (False, reason)
