"""Adaptive worker count (README, "What it does": Scale): additive increase, multiplicative decrease, with hysteresis.

The policy is a pure function of :class:`LoadSample` inputs and its own timers, so it is tested with
a deterministic clock; the supervisor feeds it real samples once a second.

- Grow by one when the queue is deeper than the workers can drain in about ``drain_seconds`` and the
  host has CPU to spare (``cpu_idle >= min_cpu_idle``), at most once per ``grow_cooldown``.
- Shrink to half (never below the floor) after ``idle_after`` seconds with no queue and no busy worker;
  the idle timer restarts after every change, so the pool never flaps.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LoadSample:
    """One observation of the loop."""

    now: float
    queue: int  # intents queued or in flight
    workers: int
    busy: int
    cpu_idle: float  # 0.0 (saturated) .. 1.0 (idle)
    rate_per_worker: float = 0.0  # intents per second one worker finished recently (0 = unknown)


class Autoscaler:
    """Decides the worker count between a floor and a ceiling."""

    def __init__(
        self,
        min_workers: int,
        max_workers: int,
        *,
        idle_after: float = 30.0,
        drain_seconds: float = 1.0,
        min_cpu_idle: float = 0.2,
        grow_cooldown: float = 1.0,
    ) -> None:
        self.min_workers = min_workers
        self.max_workers = max_workers
        self.idle_after = idle_after
        self.drain_seconds = drain_seconds
        self.min_cpu_idle = min_cpu_idle
        self.grow_cooldown = grow_cooldown
        self._idle_since: float | None = None
        self._last_grow = float("-inf")

    def set_bounds(self, min_workers: int, max_workers: int) -> None:
        """Change floor and ceiling (SIGHUP, SIGTTIN/SIGTTOU)."""
        self.min_workers = min_workers
        self.max_workers = max(min_workers, max_workers)

    def decide(self, s: LoadSample) -> int:
        """The worker count the pool should have now."""
        target = min(max(s.workers, self.min_workers), self.max_workers)
        if target != s.workers:
            self._idle_since = None
            return target
        if s.queue == 0 and s.busy == 0:
            if self._idle_since is None:
                self._idle_since = s.now
            elif s.now - self._idle_since >= self.idle_after and s.workers > self.min_workers:
                self._idle_since = s.now
                return max(self.min_workers, s.workers // 2)
            return s.workers
        self._idle_since = None
        capacity = s.workers * max(s.rate_per_worker, 1.0) * self.drain_seconds
        if (
            s.queue > capacity
            and s.workers < self.max_workers
            and s.cpu_idle >= self.min_cpu_idle
            and s.now - self._last_grow >= self.grow_cooldown
        ):
            self._last_grow = s.now
            return s.workers + 1
        return s.workers


class CpuIdle:
    """The share of the host's CPU that was idle since the previous call: 0.0 (saturated) .. 1.0 (idle).

    Read from the first line of ``/proc/stat``: idle and iowait ticks over all ticks (guest time is counted
    in user time already, so it is not added again). The first call, with nothing to compare, says 1.0, and
    so does a file that cannot be read or a counter that did not move: the autoscaler then decides on the
    queue alone.
    """

    def __init__(self, path: str = "/proc/stat") -> None:
        self.path = path
        self._last: tuple[int, int] | None = None

    def __call__(self) -> float:
        now = self._ticks()
        last, self._last = self._last, now
        if now is None or last is None or now[0] <= last[0]:
            return 1.0
        return min(1.0, max(0.0, (now[1] - last[1]) / (now[0] - last[0])))

    def _ticks(self) -> tuple[int, int] | None:
        """(all ticks, idle + iowait ticks) of the host, or None."""
        try:
            with open(self.path, "rb") as f:
                fields = f.readline().split()
        except OSError:
            return None
        if len(fields) < 6 or fields[0] != b"cpu" or not all(x.isdigit() for x in fields[1:]):
            return None
        ticks = [int(x) for x in fields[1:9]]  # user nice system idle iowait irq softirq steal
        return sum(ticks), ticks[3] + ticks[4]
