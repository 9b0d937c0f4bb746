"""The worker pool: pre-started worker processes the loop feeds with small batches.

Shaped like gunicorn's arbiter rather than ``concurrent.futures``: each worker is a
``multiprocessing`` process (``forkserver`` start method, so the supervisor never forks once the
Rust watcher's threads run) with its own duplex pipe, running a target it is given (the pool knows
nothing of intents: see :data:`WorkerTarget`). The pool knows exactly which batches
each worker holds, so a worker that dies is reaped, replaced, and its intents requeued; a worker
whose heartbeat stalls is killed. Workers can be added and retired one at a time (autoscaling,
SIGTTIN/SIGTTOU).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing import forkserver
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any

from conductor_loop.records import ABORT_SIGNAL, WorkItem, WorkResult
from conductor_loop.waitset import readable

if TYPE_CHECKING:
    from conductor_loop.workqueue import WorkQueue

#: Heartbeat slots (one per concurrently live worker).
MAX_SLOTS = 256

#: The body of a worker process: ``target(slot, settings, conn, heartbeat, stopping)``. It receives
#: lists of items on ``conn`` (``None`` means stop), sends back one list of results per list, and sets
#: ``heartbeat[slot]`` to ``time.monotonic()`` while it works on an item (0.0 when idle). Once
#: ``stopping.value`` is set (:meth:`Pool.hand_back`) it starts no further item and gives the rest back.
WorkerTarget = Callable[[int, Any, Connection, Any, Any], None]


@dataclass(eq=False)
class WorkerHandle:
    """The supervisor's view of one worker process."""

    slot: int
    proc: BaseProcess
    conn: Connection
    started: float
    inflight: deque[list[WorkItem]] = field(default_factory=deque)
    retiring: bool = False
    #: Batches this worker returned (0 for a worker that died while booting).
    served: int = 0
    #: When it ran out of work (``time.monotonic()``, from its last result), while intents may be ready.
    idle_from: float | None = None

    @property
    def id(self) -> int:
        """Worker number shown in logs and status files (1-based)."""
        return self.slot + 1

    @property
    def load(self) -> int:
        """Number of intents this worker holds."""
        return sum(len(b) for b in self.inflight)


@dataclass(slots=True)
class Death:
    """A worker that exited or was killed, with the intents it held."""

    worker: WorkerHandle
    exitcode: int | None
    lost: list[WorkItem]
    reason: str
    #: The worker had started on an item (its heartbeat was set): one of ``lost`` may have killed it.
    touched: bool = True


class Pool:
    """Worker processes plus the bookkeeping to feed, reap and resize them."""

    def __init__(
        self, settings: Any, target: WorkerTarget, *, start_method: str = "forkserver", preload: Sequence[str] = ()
    ) -> None:
        """``preload``: modules the forkserver imports besides the target's, once for every worker."""
        self.settings = settings
        self.target = target
        self.ctx = mp.get_context(start_method)
        if start_method == "forkserver":
            self.ctx.set_forkserver_preload(list(dict.fromkeys([target.__module__, __name__, *preload])))
        self.heartbeat: Any = self.ctx.Array("d", MAX_SLOTS, lock=False)
        #: Set once by :meth:`hand_back`; every worker reads it before it starts an item.
        self.stopping: Any = self.ctx.Value("b", 0, lock=False)
        self.workers: dict[int, WorkerHandle] = {}
        self._by_conn: dict[int, WorkerHandle] = {}
        self._by_sentinel: dict[int, WorkerHandle] = {}
        #: Seconds workers sat idle with intents ready for them (:meth:`send`, :meth:`nothing_ready`).
        self.idle_queued_s = 0.0

    # -- lifecycle ---------------------------------------------------------------------------
    def warm(self) -> None:
        """Start the forkserver now, not at the first spawn: its interpreter start and imports (~0.2 s) then
        overlap the loop's own start-up (recovery) instead of delaying the first worker. Nothing for the other
        start methods, and nothing when it runs already."""
        if self.ctx.get_start_method() == "forkserver":
            forkserver.ensure_running()

    def spawn(self) -> WorkerHandle:
        """Start one worker in the lowest free slot."""
        slot = next(s for s in range(MAX_SLOTS) if s not in self.workers)
        parent, child = self.ctx.Pipe(duplex=True)
        self.heartbeat[slot] = 0.0
        proc = self.ctx.Process(  # type: ignore[attr-defined]
            target=self.target,
            args=(slot, self.settings, child, self.heartbeat, self.stopping),
            name=f"conductor-worker-{slot + 1}",
            daemon=True,
        )
        proc.start()
        child.close()
        w = WorkerHandle(slot=slot, proc=proc, conn=parent, started=time.monotonic())
        self.workers[slot] = w
        self._by_conn[id(parent)] = w
        self._by_sentinel[proc.sentinel] = w
        return w

    def retire(self, w: WorkerHandle) -> None:
        """Ask a worker to exit once it has returned what it holds."""
        w.retiring = True
        if not w.inflight:
            with contextlib.suppress(OSError):
                w.conn.send(None)

    def hand_back(self) -> None:
        """Graceful stop: workers finish the item they are running and give back the rest unstarted."""
        self.stopping.value = 1

    def kill(self, w: WorkerHandle, sig: int = signal.SIGKILL) -> None:
        """Signal a worker (``ABORT_SIGNAL`` lets it stop porch's process group first)."""
        if w.proc.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(w.proc.pid, sig)

    def _forget(self, w: WorkerHandle) -> None:
        self.workers.pop(w.slot, None)
        self._by_conn.pop(id(w.conn), None)
        self._by_sentinel.pop(w.proc.sentinel, None)
        self.heartbeat[w.slot] = 0.0
        with contextlib.suppress(OSError):
            w.conn.close()

    # -- feeding -----------------------------------------------------------------------------
    def send(self, w: WorkerHandle, batch: list[WorkItem]) -> bool:
        """Hand a batch to a worker; False if its pipe is gone (it will be reaped)."""
        try:
            w.conn.send(batch)
        except (BrokenPipeError, OSError):
            return False
        if w.idle_from is not None:
            self.idle_queued_s += max(0.0, time.monotonic() - w.idle_from)
            w.idle_from = None
        w.inflight.append(batch)
        return True

    def nothing_ready(self) -> None:
        """No intent is ready: the workers idle now wait for lack of work, not for the loop."""
        for w in self.workers.values():
            w.idle_from = None

    def dispatch(self, queue: WorkQueue) -> None:
        """Hand ready intents to workers with room, in batches (the queue's :class:`BatchPolicy` sizes them)."""
        while queue.has_ready():
            workers = [w for w in self.idle_workers() if len(w.inflight) < queue.per_worker()]
            if not workers:
                break
            batch = queue.take_batch(self.size)
            if batch and not self.send(workers[0], batch):
                queue.unsend(batch)
                break

    def wait_objects(self) -> list[Any]:
        """Connections and sentinels to include in ``multiprocessing.connection.wait``."""
        objs: list[Any] = []
        for w in self.workers.values():
            objs.append(w.conn)
            objs.append(w.proc.sentinel)
        return objs

    def collect(self, ready: Sequence[Any]) -> tuple[list[tuple[WorkerHandle, list[WorkResult]]], list[Death]]:
        """Read results from ready connections and reap workers whose sentinel fired."""
        results: list[tuple[WorkerHandle, list[WorkResult]]] = []
        dead: list[WorkerHandle] = []
        for obj in ready:
            if isinstance(obj, int):
                w = self._by_sentinel.get(obj)
                if w is not None and w not in dead:
                    dead.append(w)
                continue
            w = self._by_conn.get(id(obj))
            if w is None:
                continue
            try:
                while readable(w.conn):
                    got: list[WorkResult] = w.conn.recv()
                    w.served += 1
                    if w.inflight:
                        w.inflight.popleft()
                    if not w.inflight:  # idle since its last result (or since now, when it does not say)
                        w.idle_from = (getattr(got[-1], "finished", None) if got else None) or time.monotonic()
                    results.append((w, got))
                    if w.retiring and not w.inflight:
                        with contextlib.suppress(OSError):
                            w.conn.send(None)
            except (EOFError, OSError):
                if w not in dead:
                    dead.append(w)
        deaths = [self._reap(w) for w in dead]
        return results, deaths

    def _reap(self, w: WorkerHandle, reason: str = "") -> Death:
        w.proc.join(timeout=5.0)
        code = w.proc.exitcode
        if code is None:  # pipe broke but the process lingers
            self.kill(w)
            w.proc.join(timeout=5.0)
            code = w.proc.exitcode
        lost = [item for batch in w.inflight for item in batch]
        touched = bool(self.heartbeat[w.slot])
        w.inflight.clear()
        self._forget(w)
        if not reason:
            if code is not None and code < 0:
                reason = f"worker {w.id} killed by signal {signal.Signals(-code).name}"
            else:
                reason = f"worker {w.id} exited with code {code}"
        return Death(worker=w, exitcode=code, lost=lost, reason=reason, touched=touched)

    def stalled(self, limit: float) -> list[Death]:
        """Kill and reap workers that hold work but have not heartbeaten for ``limit`` seconds."""
        now = time.monotonic()
        out = []
        for w in list(self.workers.values()):
            beat = self.heartbeat[w.slot]
            if w.inflight and beat and now - beat > limit:
                self.kill(w, ABORT_SIGNAL)
                w.proc.join(timeout=6.0)
                if w.proc.exitcode is None:
                    self.kill(w)
                out.append(self._reap(w, f"worker {w.id} stopped heartbeating for {now - beat:.0f}s; killed"))
        return out

    # -- views -------------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Live workers not being retired."""
        return sum(1 for w in self.workers.values() if not w.retiring)

    @property
    def busy(self) -> int:
        """Workers holding at least one batch."""
        return sum(1 for w in self.workers.values() if w.inflight)

    def idle_workers(self) -> list[WorkerHandle]:
        """Workers that are not retiring, least loaded first."""
        return sorted((w for w in self.workers.values() if not w.retiring), key=lambda w: w.load)

    def stop(self, timeout: float = 10.0) -> None:
        """Ask every worker to exit, wait up to ``timeout``, then SIGTERM and SIGKILL stragglers."""
        for w in list(self.workers.values()):
            with contextlib.suppress(OSError):
                w.conn.send(None)
        deadline = time.monotonic() + timeout
        for w in list(self.workers.values()):
            w.proc.join(timeout=max(0.0, deadline - time.monotonic()))
        for sig, grace in ((ABORT_SIGNAL, 6.0), (signal.SIGKILL, 5.0)):
            left = [w for w in self.workers.values() if w.proc.exitcode is None]
            if not left:
                break
            for w in left:
                self.kill(w, sig)
            for w in left:
                w.proc.join(timeout=grace)
        for w in list(self.workers.values()):
            self._forget(w)


class BootFailures:
    """Workers that die while starting, counted: this many in a row stop the loop instead of respawning.

    A worker that dies within ``grace`` seconds of its start without returning anything failed to boot.
    """

    def __init__(self, grace: float = 5.0, fatal: int = 5, clock: Callable[[], float] = time.monotonic) -> None:
        self.grace = grace
        self.fatal = fatal
        self.clock = clock
        self.count = 0

    def exited(self, w: WorkerHandle) -> bool:
        """Count one exit; True when the loop should stop."""
        if w.retiring:
            return False
        if not w.served and self.clock() - w.started < self.grace:
            self.count += 1
            return self.count >= self.fatal
        self.count = 0
        return False
