"""What the loop counts into: the Prometheus metrics when they are served, else nothing (README, "Metrics").

:class:`Meters` is the surface :class:`~conductor_loop.telemetry.Telemetry` uses, which
:class:`conductor_loop.metrics.Metrics` has. Without ``--metrics-addr`` there is no endpoint, so no count
could ever be read: the loop then counts into :class:`Unserved`, which keeps nothing, and never imports
prometheus-client (about 40 ms of every start, and a counter, a histogram and gauges per filed intent).
The run summary, the log lines and the live figures (``conductor-loop status``) do not come from here.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Count", "Level", "Meters", "Unserved"]


class Count(Protocol):
    """A counter: only goes up."""

    def inc(self, amount: float = 1) -> None:
        """Add ``amount``."""


class Level(Protocol):
    """A gauge: set to the value it has now."""

    def set(self, value: float) -> None:
        """Set to ``value``."""


class Meters(Protocol):
    """The counts and gauges of the loop (``conductor_*``; docs/operations.md, "Metrics")."""

    # Read-only members (properties), so that prometheus-client's Counter and Gauge fit them.
    @property
    def retries_total(self) -> Count: ...
    @property
    def porch_timeouts_total(self) -> Count: ...
    @property
    def events_total(self) -> Count: ...
    @property
    def rescans_total(self) -> Count: ...
    @property
    def sweeps_total(self) -> Count: ...
    @property
    def workers(self) -> Level: ...
    @property
    def workers_busy(self) -> Level: ...
    @property
    def queue_depth(self) -> Level: ...
    @property
    def watcher_up(self) -> Level: ...
    @property
    def intake_paused(self) -> Level: ...
    @property
    def last_success_timestamp(self) -> Level: ...

    def observe_outcome(self, outcome: str, duration_s: float | None, *, timed_out: bool = False) -> None:
        """Count one filed intent (``outcome``: success, failed or skipped)."""


class _Nothing:
    """A counter and a gauge that keep nothing."""

    __slots__ = ()

    def inc(self, amount: float = 1) -> None:
        """Nothing to add to."""

    def set(self, value: float) -> None:
        """Nothing to set."""


class Unserved:
    """:class:`Meters` for a loop without a metrics endpoint: every count and gauge is dropped."""

    def __init__(self) -> None:
        nothing = _Nothing()
        self.retries_total = self.porch_timeouts_total = self.events_total = nothing
        self.rescans_total = self.sweeps_total = nothing
        self.workers = self.workers_busy = self.queue_depth = nothing
        self.watcher_up = self.intake_paused = self.last_success_timestamp = nothing

    def observe_outcome(self, outcome: str, duration_s: float | None, *, timed_out: bool = False) -> None:
        """Nothing is counted."""
