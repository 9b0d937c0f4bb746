"""Staffing: how many workers the pool has, and who replaces whom.

Spawning, retiring (least loaded first), replacing a dead worker (the pool keeps its size; workers
that keep dying at start stop the loop), the SIGTTIN/SIGTTOU ceiling, rolling restarts after a
reload, and the once-a-second autoscaler sample (:mod:`conductor_loop.autoscale` decides).
"""

from __future__ import annotations

import os
from typing import Any

from conductor_loop.autoscale import Autoscaler, CpuIdle, LoadSample
from conductor_loop.config import RunConfig
from conductor_loop.pool import BootFailures, Death, Pool, WorkerHandle
from conductor_loop.records import FatalError
from conductor_loop.telemetry import PoolSized, Telemetry, WorkerEvent, WorkerExited


def worker_bounds(cfg: RunConfig) -> tuple[int, int]:
    """(min, max) workers of a configuration (``--workers`` fixes both)."""
    if cfg.workers:
        return cfg.workers, cfg.workers
    hi = cfg.max_workers or os.cpu_count() or 1
    return max(1, min(cfg.min_workers, hi)), max(1, hi)


class Staff:
    """Keeps the pool between its bounds and reports every change."""

    def __init__(self, pool: Pool, telemetry: Telemetry, bounds: tuple[int, int]) -> None:
        self.pool = pool
        self.telemetry = telemetry
        self.min_workers, self.max_workers = bounds
        self.autoscaler = Autoscaler(self.min_workers, self.max_workers)
        self.cpu_idle = CpuIdle()
        self.boot = BootFailures()
        self._scale_mark = (0.0, 0)

    @property
    def size(self) -> int:
        """Live workers not being retired."""
        return self.pool.size

    def spawn(self) -> WorkerHandle:
        """Start one worker."""
        w = self.pool.spawn()
        self.telemetry.emit(WorkerEvent("start", w.id, w.proc.pid))
        self.telemetry.emit(PoolSized(self.pool.size))
        return w

    def prepare(self, found: int, once: bool) -> None:
        """Before recovery, ``found`` files in the handoff: get the workers' start under way unless this is a
        once-run with nothing to do (a cron-driven once-run over an empty directory starts no process)."""
        if found or not once:
            self.pool.warm()

    def start(self, backlog: int, once: bool) -> None:
        """The first workers: as many as the backlog needs (within the bounds) in once mode or for a backlog;
        none for a once-run with nothing to do (:meth:`cover` starts one if an intent turns up after all)."""
        if once and not backlog:
            return
        initial = self.min_workers
        if once or backlog > self.min_workers:
            initial = max(self.min_workers, min(self.max_workers, backlog))
        for _ in range(max(1, initial)):
            self.spawn()

    def cover(self, ready: bool) -> None:
        """Intents are ready and no worker lives (a once-run that started with nothing to do): start one."""
        if ready and not self.pool.workers:
            self.spawn()

    def resize_to(self, target: int) -> None:
        """Spawn or retire workers until the pool has ``target``."""
        while self.pool.size < target:
            self.spawn()
        while self.pool.size > target:
            victim = max(self.pool.idle_workers(), key=lambda w: (not w.inflight, w.slot))
            self.pool.retire(victim)
            self.telemetry.emit(WorkerEvent("retire", victim.id))
        self.telemetry.emit(PoolSized(self.pool.size))

    def clamp(self) -> None:
        """Bring the pool within its (new) bounds."""
        self.resize_to(min(max(self.pool.size, self.min_workers), self.max_workers))

    def set_bounds(self, bounds: tuple[int, int]) -> None:
        """New floor and ceiling (reload)."""
        self.min_workers, self.max_workers = bounds
        self.autoscaler.set_bounds(self.min_workers, self.max_workers)

    def nudge_ceiling(self, delta: int) -> None:
        """SIGTTIN (+1) / SIGTTOU (-1): move the ceiling, never below the floor."""
        self.max_workers = max(self.min_workers, max(1, self.max_workers + delta))
        self.autoscaler.set_bounds(self.min_workers, self.max_workers)
        self.telemetry.emit(PoolSized(self.pool.size, max_workers=self.max_workers))
        self.clamp()

    def restart_all(self, settings: Any) -> None:
        """Rolling restart onto new worker settings."""
        self.pool.settings = settings
        for w in list(self.pool.workers.values()):
            self.pool.retire(w)
            self.spawn()

    def replace(self, death: Death, stopping: bool) -> None:
        """A worker died: count boot failures (raise :class:`FatalError`), start its successor."""
        w = death.worker
        self.telemetry.emit(WorkerExited(w.id, death.reason, len(death.lost)))
        if self.boot.exited(w):
            raise FatalError(f"workers die while starting ({death.reason}, {self.boot.count} times in a row)")
        if not stopping and not w.retiring:
            self.spawn()  # the pool keeps its size; the autoscaler decides about shrinking
            self.telemetry.emit(WorkerEvent("replaced", w.id))

    def autoscale(self, now: float, backlog: int) -> None:
        """Feed the autoscaler one sample and apply its decision."""
        s = self.telemetry.summary
        done = s.total + s.retried
        t0, n0 = self._scale_mark
        self._scale_mark = (now, done)
        rate = (done - n0) / (now - t0) / max(1, self.pool.size) if t0 else 0.0
        sample = LoadSample(
            now=now,
            queue=backlog,
            workers=self.pool.size,
            busy=self.pool.busy,
            cpu_idle=self.cpu_idle(),
            rate_per_worker=rate,
        )
        target = self.autoscaler.decide(sample)
        if target != self.pool.size:
            self.telemetry.emit(PoolSized(target, previous=self.pool.size, queue=sample.queue))
            self.resize_to(target)
