"""What the loop dispatches to: local worker processes, or (``--executor fleet``) the fleet's workers.

Both have the same surface, :class:`LoopPool` and :class:`LoopStaff` (:class:`~conductor_loop.pool.Pool` and
:class:`~conductor_loop.staff.Staff`, or :class:`~conductor_loop.fleet.ingest.FleetPool` and its staff; mypy
holds both to it), so the loop's steps do not change; this module chooses, and says what each cleans in
``out/`` at start. The fleet is imported only when chosen.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from conductor_loop.config import RunConfig
from conductor_loop.executor import Executor, load_executor
from conductor_loop.layout import Layout
from conductor_loop.pool import Pool
from conductor_loop.records import WorkerSettings, WorkResult
from conductor_loop.staff import Staff, worker_bounds
from conductor_loop.telemetry import Telemetry
from conductor_loop.warmup import WORKER_PRELOAD
from conductor_loop.worker import worker_main
from conductor_loop.workqueue import WorkQueue


class LoopPool(Protocol):
    """What the loop's steps use of a pool (:class:`~conductor_loop.pool.Pool`, or the fleet's)."""

    workers: dict[int, Any]
    idle_queued_s: float

    @property
    def size(self) -> int:
        """Workers (or task slots) in the pool."""

    @property
    def busy(self) -> int:
        """Those with work."""

    def nothing_ready(self) -> None:
        """The queue is empty: nothing to hand out until it fills."""

    def dispatch(self, queue: WorkQueue) -> None:
        """Hand out ready work from ``queue``."""

    def wait_objects(self) -> list[Any]:
        """What the loop's one wait waits on for this pool."""

    def collect(self, ready: Sequence[Any]) -> tuple[list[tuple[Any, list[WorkResult]]], list[Any]]:
        """Results of the ``ready`` objects, and the workers found dead."""

    def hand_back(self) -> None:
        """A graceful stop: work not started is given back."""

    def stalled(self, limit: float) -> list[Any]:
        """Workers silent on one intent for longer than ``limit`` seconds."""

    def kill(self, w: Any, sig: int = ...) -> None:
        """Kill one worker (and its porch)."""

    def stop(self, timeout: float = ...) -> None:
        """Stop every worker, waiting up to ``timeout`` seconds."""


class LoopStaff(Protocol):
    """What the loop's steps use of the pool's staffing (:class:`~conductor_loop.staff.Staff`, or the fleet's)."""

    min_workers: int
    max_workers: int

    def prepare(self, found: int, once: bool) -> None:
        """Before recovery, ``found`` files in the handoff."""

    def start(self, backlog: int, once: bool) -> None:
        """The first workers."""

    def cover(self, ready: bool) -> None:
        """Intents are ready: make sure something will take them."""

    def autoscale(self, now: float, backlog: int) -> None:
        """Grow or shrink within the bounds."""

    def nudge_ceiling(self, delta: int) -> None:
        """SIGTTIN / SIGTTOU: the ceiling by ``delta``."""

    def set_bounds(self, bounds: tuple[int, int]) -> None:
        """New bounds (a reload)."""

    def restart_all(self, settings: Any) -> None:
        """New worker settings (a reload)."""

    def clamp(self) -> None:
        """Bring the pool within the bounds."""

    def replace(self, death: Any, stopping: bool) -> None:
        """A worker died: start another unless stopping."""


def executor_side(cfg: RunConfig, settings: WorkerSettings, layout: Layout, telemetry: Telemetry, queue: WorkQueue,
                  start_method: str) -> tuple[LoopPool, LoopStaff]:
    """The pool and its staff for ``cfg.executor``."""
    if cfg.executor == "fleet":
        from conductor_loop.fleet.ingest import fleet_side

        return fleet_side(cfg, settings, layout, telemetry, queue)
    pool = Pool(settings, worker_main, start_method=start_method, preload=WORKER_PRELOAD)
    return pool, Staff(pool, telemetry, worker_bounds(cfg))


def recover_out(cfg: RunConfig, executor: Executor | None, out: str) -> None:
    """At start: the executor's own clean-up of ``out/`` (fleet mode: what an interrupted accept left)."""
    if cfg.executor == "fleet":
        from conductor_loop.fleet.accept import remove_stale_temps

        remove_stale_temps(out)
        return
    executor = executor or load_executor(cfg.porch, cfg.mode)
    hook = getattr(executor, "recover", None)
    if callable(hook):
        hook(out, cfg.timeout + 60.0)
