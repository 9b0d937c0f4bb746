"""Self-fencing: when a worker still holds its lease on a task, and when it has lost it.

A worker heartbeats (an in-progress ack, confirmed by a flush) every ``lease / 3``. The broker restarts
its ack timer when it receives a heartbeat, which is after the worker *sent* it; so the lease is counted
from the send time of the last confirmed heartbeat (or from the delivery), and the worker gives it up at
:data:`LOST_AT` x lease, before the broker can have redelivered the task. A worker that has lost its lease
kills porch and publishes nothing (docs/operations.md, "Worker hosts"). Pure policy with an injected clock.
"""

from __future__ import annotations

from conductor_loop.clock import SYSTEM_CLOCK, Clock

LOST_AT = 0.9
"""The fraction of the lease after which a worker without a confirmed heartbeat considers it lost."""
BEATS_PER_LEASE = 3
"""Heartbeats sent per lease."""


class Lease:
    """The lease on one delivery of a task, from the worker's side."""

    def __init__(self, lease: float, clock: Clock = SYSTEM_CLOCK, received_at: float | None = None) -> None:
        """``lease``: the task consumer's ack wait in seconds; ``received_at``: when the delivery arrived."""
        if lease <= 0:
            raise ValueError("lease must be positive")
        self.lease = lease
        self.clock = clock
        start = clock.monotonic() if received_at is None else received_at
        self.held_from = start
        self.next_beat = start + self.interval
        self._lost = False

    @property
    def interval(self) -> float:
        """Seconds between heartbeats."""
        return self.lease / BEATS_PER_LEASE

    def due(self) -> bool:
        """True when the next heartbeat should be sent (and the lease is not lost)."""
        return not self.lost() and self.clock.monotonic() >= self.next_beat

    def sending(self) -> float:
        """Note that a heartbeat is being sent now; returns its send time for :meth:`confirmed`."""
        now = self.clock.monotonic()
        self.next_beat = now + self.interval
        return now

    def confirmed(self, sent_at: float) -> None:
        """A heartbeat sent at ``sent_at`` was confirmed by the broker: the lease runs from then.

        A confirmation arriving after the lease was already lost does not bring it back.
        """
        if not self.lost():
            self.held_from = max(self.held_from, sent_at)

    def lost(self) -> bool:
        """True once no heartbeat was confirmed for :data:`LOST_AT` x lease (final: it never comes back)."""
        if not self._lost and self.clock.monotonic() - self.held_from > LOST_AT * self.lease:
            self._lost = True
        return self._lost

    def remaining(self) -> float:
        """Seconds until the lease is lost, if no heartbeat is confirmed meanwhile (never negative)."""
        return max(0.0, self.held_from + LOST_AT * self.lease - self.clock.monotonic())

    def wait(self) -> float:
        """Seconds to sleep before the next check: until the next heartbeat or the loss, whichever is first."""
        now = self.clock.monotonic()
        return max(0.0, min(self.next_beat - now, self.remaining()))
