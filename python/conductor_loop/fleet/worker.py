"""The worker host (``conductor-loop worker``): pulls tasks from the fleet's task stream, one per free slot.

No prefetch: a pull (``fetch(1)``, expiring after :data:`FETCH_WAIT` s) is made only while a slot is free,
so no task waits at a busy worker while its lease runs out. Each delivery is :func:`delivery.handle`.
The pull subscription is rebuilt after a reconnect or an error (a server restart). SIGTERM/SIGINT: no new
pulls, the runs in flight finish (result published, task acked), then exit 0. Every lease/3 the worker puts
its heartbeat in the workers KV bucket (``fleet status``). One asyncio loop, no other threads but porch's
(docs/operations.md, "Worker hosts").
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from concurrent.futures import ThreadPoolExecutor

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import APIError
from nats.js.kv import KeyValue

from conductor_loop.clock import rfc3339
from conductor_loop.fleet import broker
from conductor_loop.fleet.delivery import Context, handle
from conductor_loop.fleet.protocol import TASK_CONSUMER, FleetNames, WorkerBeat, encode_beat
from conductor_loop.fleet.runner import TaskRunner, reap_leftovers
from conductor_loop.fleet.workerconfig import WorkerOptions
from conductor_loop.fleet.workermetrics import WorkerHealth, WorkerMetrics
from conductor_loop.logs import log_event

FETCH_WAIT = 1.0
"""Seconds one pull waits for a task before it expires (and a stop is noticed)."""
RETRY_S = 0.5


def default_worker_id() -> str:
    """``<hostname>:<pid>``."""
    return f"{socket.gethostname()}:{os.getpid()}"


class WorkerHost:
    """One worker process: its connection, its slots, its heartbeat."""

    def __init__(self, cfg: WorkerOptions, metrics: WorkerMetrics, health: WorkerHealth) -> None:
        """Checks nothing on the network yet; :meth:`run` connects."""
        self.cfg = cfg
        self.names = FleetNames(cfg.fleet)
        self.worker_id = cfg.worker_id or default_worker_id()
        self.metrics, self.health = metrics, health
        self.runner = TaskRunner(cfg.porch, self.worker_id, cfg.timeout, cfg.tmp_dir)
        self.lease = 30.0
        self.busy = 0
        self.started_at = rfc3339()
        self._sub: JetStreamContext.PullSubscription | None = None
        self._rebuild = False
        self._stop = asyncio.Event()
        self._up = False
        self._closing = False
        metrics.slots.set(cfg.slots)

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """Take no new tasks; the runs in flight finish."""
        if not self._stop.is_set():
            log_event(
                "fleet.worker.stopping", worker=self.worker_id, signal=signal.Signals(signum).name, inflight=self.busy
            )
            self.health.set_ready("stopping")
            self._stop.set()

    async def run(self) -> int:
        """Serve until stopped; the exit code (0)."""
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(self.cfg.slots + 1, thread_name_prefix="cl-slot"))
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop, signum)
        dirs, procs = await asyncio.to_thread(reap_leftovers, self.cfg.tmp_dir)
        if dirs or procs:
            log_event("fleet.worker.reaped", level=30, worker=self.worker_id, dirs=dirs, count=procs)
        nc = await self._connect()
        if nc is None:
            return self._stopped(0)
        try:
            if not await self._await_fleet(nc):
                return self._stopped(0)
            kv = await self._bucket(nc)
            beats = asyncio.ensure_future(self._beat_loop(nc, kv))
            try:
                await self._pull_loop(nc)
            finally:
                beats.cancel()
                if kv is not None:
                    await _ignore_errors(kv.delete(self.worker_id))
        finally:
            self._closing = True
            await _ignore_errors(nc.close())
        return self._stopped(0)

    def _stopped(self, code: int) -> int:
        log_event("fleet.worker.stop", worker=self.worker_id, code=code)
        return code

    async def _on_change(self, up: bool) -> None:
        if up == self._up or self._closing:
            return
        self._up = up
        self.metrics.broker_up.set(1 if up else 0)
        if up:
            self._rebuild = True  # the pull subscription is made again after a server restart (nats.py#504)
            log_event("fleet.worker.broker_up", worker=self.worker_id, broker=self.cfg.broker)
            if not self._stop.is_set():
                self.health.set_ready(None)
        else:
            log_event("fleet.worker.broker_down", level=30, worker=self.worker_id, broker=self.cfg.broker)
            if not self._stop.is_set():
                self.health.set_ready("broker unreachable")

    async def _connect(self) -> NATS | None:
        """Connect, retrying until the broker answers (logged once) or the worker is stopped."""
        told = False
        while not self._stop.is_set():
            try:
                nc = await broker.connect(
                    self.cfg.broker,
                    self.cfg.broker_creds,
                    name=self.worker_id,
                    on_change=self._on_change,
                    initial_timeout=2.0,
                )
            except (OSError, nats.errors.Error, asyncio.TimeoutError) as exc:
                if not told:
                    log_event(
                        "fleet.worker.broker_down",
                        level=30,
                        worker=self.worker_id,
                        broker=self.cfg.broker,
                        reason=str(exc) or type(exc).__name__,
                    )
                    told = True
                await self._sleep(RETRY_S)
                continue
            await self._on_change(True)
            return nc
        return None

    async def _await_fleet(self, nc: NATS) -> bool:
        """Wait for the task consumer (the ingest creates it) and read the lease from it."""

        def waiting() -> None:
            log_event(
                "fleet.worker.waiting",
                worker=self.worker_id,
                fleet=self.cfg.fleet,
                reason=f"no consumer {TASK_CONSUMER} on {self.names.task_stream} yet (start the ingest)",
            )
            self.health.set_ready("waiting for the fleet's task consumer")

        found = asyncio.ensure_future(broker.wait_for_fleet(nc.jetstream(), self.names, on_wait=waiting))
        stop = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait({found, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if not found.done():
            found.cancel()
            return False
        self.lease = found.result().lease
        self.health.set_ready(None)
        log_event(
            "fleet.worker.start",
            worker=self.worker_id,
            fleet=self.cfg.fleet,
            slots=self.cfg.slots,
            porch=self.cfg.porch,
            lease_s=self.lease,
        )
        return True

    async def _pull_loop(self, nc: NATS) -> None:
        """Pull one task per free slot until stopped, then wait for the runs in flight."""
        ctx = Context(nc, self.names, self.runner, self.metrics, self.worker_id, lambda: self.lease)
        slots = asyncio.Semaphore(self.cfg.slots)
        running: set[asyncio.Future[None]] = set()
        while not self._stop.is_set():
            self.health.tick()
            if not await self._acquire(slots):
                break
            msg = await self._pull(nc)
            if msg is None:
                slots.release()
                continue
            job = asyncio.ensure_future(self._run_slot(ctx, msg, slots))
            running.add(job)
            job.add_done_callback(running.discard)
        if running:
            await asyncio.wait(running)

    async def _acquire(self, slots: asyncio.Semaphore) -> bool:
        """Wait for a free slot; False when the worker was stopped first."""
        got = asyncio.ensure_future(slots.acquire())
        stop = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait({got, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if got.done() and not self._stop.is_set():
            return True
        if got.done():
            slots.release()
        else:
            got.cancel()
        return False

    async def _run_slot(self, ctx: Context, msg: Msg, slots: asyncio.Semaphore) -> None:
        self.busy += 1
        self.metrics.busy_slots.set(self.busy)
        try:
            await handle(ctx, msg)
        finally:
            self.busy -= 1
            self.metrics.busy_slots.set(self.busy)
            slots.release()

    async def _pull(self, nc: NATS) -> Msg | None:
        """One task, or None after :data:`FETCH_WAIT` s without one (or after an error: rebuilt next time)."""
        try:
            if self._rebuild:
                await self._drop_sub()
            if self._sub is None:
                self._sub = await nc.jetstream().pull_subscribe_bind(TASK_CONSUMER, stream=self.names.task_stream)
            return (await self._sub.fetch(1, timeout=FETCH_WAIT))[0]
        except (nats.errors.TimeoutError, asyncio.TimeoutError):
            return None
        except (APIError, nats.errors.Error, OSError):
            await self._drop_sub()
            await self._sleep(RETRY_S)
            return None

    async def _drop_sub(self) -> None:
        sub, self._sub, self._rebuild = self._sub, None, False
        if sub is not None:
            await _ignore_errors(sub.unsubscribe())

    async def _bucket(self, nc: NATS) -> KeyValue | None:
        """The workers bucket (the ingest makes it with the streams); None if it cannot be had now."""
        try:
            return await nc.jetstream().key_value(self.names.workers_bucket)
        except (APIError, nats.errors.Error, asyncio.TimeoutError):
            return None

    async def _beat_loop(self, nc: NATS, kv: KeyValue | None) -> None:
        """Put this worker's heartbeat every lease/3; re-read the lease (the ingest may have changed it)."""
        host = socket.gethostname()
        while True:
            self.health.tick()
            beat = WorkerBeat(self.worker_id, host, os.getpid(), self.cfg.slots, self.busy, self.started_at, rfc3339())
            kv = kv or await self._bucket(nc)
            if kv is not None:
                await _ignore_errors(kv.put(self.worker_id, encode_beat(beat)))
            try:
                info = await broker.fleet_info(nc.jetstream(), self.names)
            except (APIError, nats.errors.Error, asyncio.TimeoutError):
                info = None
            if info is not None:
                self.lease = info.lease
            await asyncio.sleep(max(0.1, self.lease / 3))

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            pass


async def _ignore_errors(aw: object) -> None:
    try:
        await aw  # type: ignore[misc]
    except (APIError, nats.errors.Error, OSError, asyncio.TimeoutError):
        pass


def run_worker(cfg: WorkerOptions, metrics: WorkerMetrics, health: WorkerHealth) -> int:
    """Run a worker host on a fresh event loop until SIGTERM/SIGINT; its exit code."""
    return asyncio.run(WorkerHost(cfg, metrics, health).run())
