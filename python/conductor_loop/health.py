"""The health flags behind ``/healthz``, ``/readyz`` and ``/livez`` (README, "Metrics").

The supervisor sets them; the HTTP server (:mod:`conductor_loop.metricserver`) reads them from its own
threads. :class:`Health` holds one plain lock only for the few lines that read or write its fields, never
while calling anything else (the Go loop deadlocked taking one mutex twice).
"""

from __future__ import annotations

import threading
import time

__all__ = ["Health"]


class Health:
    """Thread-safe health state the supervisor updates and the HTTP server reads.

    Before the loop starts the state is *not ready* (watcher not started, handoff not checked) but
    healthy and live. In once mode there is no watcher: ``set_watcher(True, "once mode")``.
    """

    def __init__(self, *, live_timeout: float = 30.0) -> None:
        """``live_timeout``: seconds without :meth:`tick` after which ``/livez`` fails."""
        if live_timeout <= 0:
            raise ValueError("live_timeout must be positive")
        self._lock = threading.Lock()
        self._live_timeout = float(live_timeout)
        self._last_tick = time.monotonic()
        self._watcher: bool | None = None  # None: not started yet
        self._watcher_reason = "watcher not started"
        self._reconciling = False
        self._writable: bool | None = None  # None: not checked yet
        self._writable_reason = "handoff directory not checked yet"
        self._stopping = False
        self._storage_reason: str | None = None  # set while intake is paused for a storage fault
        self._broker_reason: str | None = None  # fleet mode: set while the broker is unreachable too long

    @property
    def live_timeout(self) -> float:
        """Seconds without a tick after which the loop is considered stuck."""
        return self._live_timeout

    def tick(self) -> None:
        """Record that the supervisor loop turned."""
        now = time.monotonic()
        with self._lock:
            self._last_tick = now

    def set_watcher(self, alive: bool, reason: str = "") -> None:
        """Record whether the watcher runs with all its watches in place (``reason`` when not)."""
        with self._lock:
            self._watcher = bool(alive)
            self._watcher_reason = reason or ("watcher running" if alive else "watcher lost")

    def set_reconciling(self, flag: bool) -> None:
        """Record whether the start-up reconcile (or a rescan that blocks intake) is running."""
        with self._lock:
            self._reconciling = bool(flag)

    def set_handoff_writable(self, ok: bool, reason: str = "") -> None:
        """Record whether the handoff directory (and its sub-directories) can be written."""
        with self._lock:
            self._writable = bool(ok)
            self._writable_reason = reason or ("handoff writable" if ok else "handoff directory not writable")

    def set_storage(self, ok: bool, reason: str = "") -> None:
        """Record whether intake is paused for a storage fault (``reason``: which path, which errno)."""
        with self._lock:
            self._storage_reason = None if ok else (reason or "storage fault")

    def set_broker(self, ok: bool, reason: str = "") -> None:
        """Fleet mode: record whether the broker is usable (not ready once it was unreachable for a lease)."""
        with self._lock:
            self._broker_reason = None if ok else (reason or "broker unreachable")

    def set_stopping(self, flag: bool) -> None:
        """Record that the loop is shutting down (no longer takes new intents)."""
        with self._lock:
            self._stopping = bool(flag)

    def healthz(self) -> tuple[bool, str]:
        """False when the watcher died or lost a watch it could not re-add, or the loop is stuck.

        "Stuck" is the :meth:`livez` condition; including it lets one liveness probe on ``/healthz``
        catch both classic failures. Not ready (reconciling, stopping, handoff not writable) is not
        unhealthy.
        """
        with self._lock:
            watcher, reason = self._watcher, self._watcher_reason
        if watcher is False:
            return False, reason
        return self.livez()

    def readyz(self) -> tuple[bool, str]:
        """True when watching, able to write the handoff, not reconciling and not stopping."""
        with self._lock:
            watcher, watcher_reason = self._watcher, self._watcher_reason
            writable, writable_reason = self._writable, self._writable_reason
            reconciling, stopping, storage = self._reconciling, self._stopping, self._storage_reason
            broker = self._broker_reason
        if stopping:
            return False, "stopping"
        if watcher is not True:
            return False, watcher_reason
        if reconciling:
            return False, "reconciling"
        if writable is not True:
            return False, writable_reason
        if storage is not None:
            return False, f"intake paused: {storage}"
        if broker is not None:
            return False, broker
        return True, "ok"

    def livez(self) -> tuple[bool, str]:
        """False when :meth:`tick` has not been called for ``live_timeout`` seconds."""
        with self._lock:
            last = self._last_tick
        age = time.monotonic() - last
        if age > self._live_timeout:
            return False, f"supervisor loop has not turned for {age:.1f}s (limit {self._live_timeout:g}s)"
        return True, "ok"
