"""What the loop dispatches to: local worker processes, or (``--executor fleet``) the fleet's workers.

Both have the same surface (:class:`~conductor_loop.pool.Pool` and :class:`~conductor_loop.staff.Staff`, or
:class:`~conductor_loop.fleet.ingest.FleetPool` and its staff), so the loop's steps do not change; this
module chooses, and says what each cleans in ``out/`` at start. The fleet is imported only when chosen.
"""

from __future__ import annotations

from typing import Any

from conductor_loop.config import RunConfig
from conductor_loop.executor import Executor, load_executor
from conductor_loop.layout import Layout
from conductor_loop.pool import Pool
from conductor_loop.records import WorkerSettings
from conductor_loop.staff import Staff, worker_bounds
from conductor_loop.telemetry import Telemetry
from conductor_loop.worker import worker_main
from conductor_loop.workqueue import WorkQueue

#: Imported once in the forkserver rather than in every worker (besides the worker's own module, which the
#: pool preloads): ``conductor_loop.porch``, which the built-in executor imports at its first intent. Not the
#: command line: the entry script every child re-runs imports only :mod:`conductor_loop.entry`.
WORKER_PRELOAD = ("conductor_loop.porch",)


def executor_side(cfg: RunConfig, settings: WorkerSettings, layout: Layout, telemetry: Telemetry, queue: WorkQueue,
                  start_method: str) -> tuple[Any, Any]:
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
