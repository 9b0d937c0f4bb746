"""The ingest side of fleet mode: :class:`FleetPool`, what the loop dispatches to instead of local workers.

It has the surface the supervisor uses of :class:`~conductor_loop.pool.Pool` (dispatch, the objects for THE
wait, ``collect`` → results and deaths, ``hand_back``, sizes, ``stop``), so the loop's truth-owning path is
unchanged: the feed, intake and queue decide what runs; the results go to the recorder in groups; retries
follow :class:`~conductor_loop.records.RetryPolicy`. Per intent it runs the worker's own first steps on the
ingest (:meth:`~conductor_loop.worker.IntentProcessor.prepare`: read once, hash, validate, dedupe), publishes
the task through the :class:`~conductor_loop.fleet.bridge.Bridge`, and on a result applies the accept rules
(:mod:`.flights`, :mod:`.accept`) before the status is written and the result handed on.

What an earlier run left in flight is saved in ``.conductor/fleet-inflight.json`` (task id → name, sha256,
attempt); a restart takes those intents first, with their attempt, so their tasks keep their ids: a
republish is a broker duplicate, and their results are accepted.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from typing import Any

from conductor_loop.clock import SYSTEM_CLOCK, Clock
from conductor_loop.config import RunConfig
from conductor_loop.fleet import bridge as b
from conductor_loop.fleet import flights as fl
from conductor_loop.fleet.accept import Acceptor, RemoteExecutor, RemoteProcessor, failure
from conductor_loop.fleet.ingestmetrics import FleetMetrics
from conductor_loop.fleet.protocol import (
    FleetNames,
    ProtocolError,
    decode_result,
    encode_task,
    make_task,
    with_result_cap,
)
from conductor_loop.layout import Layout
from conductor_loop.metrics import Metrics
from conductor_loop.records import FatalError, Outcome, WorkerSettings, WorkItem, WorkResult
from conductor_loop.telemetry import Telemetry
from conductor_loop.workqueue import WorkQueue

#: The file that keeps the tasks in flight across a restart.
INFLIGHT_FILE = "fleet-inflight.json"
#: Seconds a graceful stop waits for in-flight results beyond ``--timeout``.
STOP_MARGIN = 5.0


class BrokerHealth:
    """Whether ``/readyz`` fails for the broker: unreachable for longer than the lease (plain state, a clock)."""

    def __init__(self, lease: float, clock: Clock = SYSTEM_CLOCK) -> None:
        self.lease = lease
        self.clock = clock
        self.up = False
        self.down_since: float | None = clock.monotonic()
        self.reason = "not connected to the broker yet"

    def changed(self, up: bool, reason: str) -> bool:
        """Record the broker's state; True when it changed."""
        was = self.up
        self.up, self.reason = up, reason
        if up:
            self.down_since = None
        elif self.down_since is None:
            self.down_since = self.clock.monotonic()
        return was != up

    def unready(self) -> str | None:
        """Why ``/readyz`` fails, or None."""
        if self.down_since is None or self.clock.monotonic() - self.down_since <= self.lease:
            return None
        return f"broker unreachable for {self.clock.monotonic() - self.down_since:.0f}s: {self.reason}"


class FleetPool:
    """Tasks out on the fleet, presented to the loop as a pool."""

    workers: dict[int, Any] = {}
    #: No local worker waits on the loop for work (the pool's idle-with-work-queued figure).
    idle_queued_s = 0.0

    def __init__(self, cfg: RunConfig, settings: WorkerSettings, layout: Layout, telemetry: Telemetry,
                 queue: WorkQueue, *, bridge_factory: Callable[[b.BridgeConfig], Any] = b.Bridge,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.cfg = cfg
        self.layout = layout
        self.telemetry = telemetry
        self.queue = queue
        self.clock = clock
        self.names = FleetNames(cfg.fleet)
        served = telemetry.metrics.registry if isinstance(telemetry.metrics, Metrics) else None
        self.metrics = FleetMetrics(served)  # unserved: a registry of its own, which nothing reads
        self.flights = fl.Flights(cfg.fleet_inflight, cfg.fleet_lease, cfg.fleet_max_deliver, cfg.timeout, clock,
                                  cfg.fleet_inflight_bytes)
        self.processor = RemoteProcessor(settings, 0, RemoteExecutor(cfg.mode, cfg.fleet))
        self.acceptor = Acceptor(self.processor, settings.out, cfg.max_file_size)
        self.health = BrokerHealth(cfg.fleet_lease, clock)
        self.bridge = bridge_factory(b.BridgeConfig(cfg.broker or "", cfg.broker_creds, self.names, cfg.fleet_lease,
                                                    cfg.fleet_max_deliver, cfg.max_file_size, cfg.fleet_inflight))
        self.result_cap = 0
        self._decided: list[WorkResult] = []
        self._stop_at: float | None = None
        self._file = os.path.join(layout.state_dir, INFLIGHT_FILE)
        self._adopt = fl.load(self._file)
        self._unsent: list[fl.Flight] = []

    # -- the Pool surface ------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Tasks that may be out at once (``--fleet-inflight``)."""
        return self.flights.cap

    @property
    def busy(self) -> int:
        """Tasks out now."""
        return len(self.flights)

    def start(self) -> None:
        """Connect (waiting briefly: the loop starts whether the broker answers or not), then take back what an
        earlier run left out, before any result is pulled (their results count). Connecting first gives the
        adopted tasks the broker's result cap; a task encoded without it is re-encoded before it goes out."""
        self.bridge.start_and_wait(2.0)
        self._events()
        self._unsent = self._adopt_left(self.queue) if self._adopt else []
        self._save()
        if not self.health.up:
            self.telemetry.note("fleet.broker_unreachable", level=30, broker=self.cfg.broker, reason=self.health.reason)
        self.bridge.consume()

    def nothing_ready(self) -> None:
        """Nothing is ready: a fleet has no local workers to mark idle."""

    def dispatch(self, queue: WorkQueue) -> None:
        """Publish ready intents while there is room (first those an earlier run left out)."""
        if self._stop_at is not None or not self.health.up:
            return
        out, self._unsent = self._unsent, []
        while queue.has_ready() and (room := self.flights.room()) > 0:
            batch = queue.take_batch(self.flights.cap)
            if len(batch) > room:  # never more than --fleet-inflight out
                queue.unsend(batch[room:])
                batch = batch[:room]
            for k, item in enumerate(batch):
                if self.flights.room() == 0:  # --fleet-inflight-bytes reached: the rest wait
                    queue.unsend(batch[k:])
                    break
                if f := self._launch(item):
                    out.append(f)
        self._save()  # saved before it goes out: a restart knows every task that may be out
        for f in out:
            self._send(f, again=False)

    def wait_objects(self) -> list[Any]:
        """The bridge's wake-up descriptor."""
        return [self.bridge.fileno()]

    def collect(self, ready: Sequence[Any]) -> tuple[list[tuple[None, list[WorkResult]]], list[Any]]:
        """What the broker answered, decided: results for the loop (no deaths: the fleet's are redeliveries)."""
        self._events()
        for f in self.flights.due_publish() if self._stop_at is None else ():  # stopping: nothing more goes out
            self._send(f, again=True)
        for f in self.flights.due_probe():
            if f.seq is not None:
                self.bridge.probe(f.task_id, f.seq)
        self._stop_due()
        self.telemetry.health.set_broker(*((False, why) if (why := self.health.unready()) else (True, "")))
        self.metrics.inflight.set(len(self.flights))
        self._save()
        done, self._decided = self._decided, []
        return ([(None, done)] if done else []), []

    def hand_back(self) -> None:
        """Graceful stop: publish nothing more; wait for results up to ``--timeout`` + a margin."""
        if self._stop_at is None:
            self._stop_at = self.clock.monotonic() + self.cfg.timeout + STOP_MARGIN

    def stalled(self, _limit: float) -> list[Any]:
        """Nothing stalls here: a worker's lost lease is the broker's redelivery."""
        return []

    def kill(self, *_args: Any) -> None:
        """Nothing to kill on the ingest."""

    def stop(self, timeout: float = 0.0) -> None:
        """Save what is in flight (the next start republishes it) and close the connection."""
        if self.flights.changed:
            self._save()
        self.bridge.stop()

    # -- publishing ------------------------------------------------------------------------------
    def _launch(self, item: WorkItem) -> fl.Flight | None:
        prep = self.processor.prepare(item)
        if prep.request is None:  # vanished, invalid or a duplicate: decided here
            self._decide(prep.result)
            return None
        res = prep.result
        assert res.sha256 is not None
        task = make_task(item.path, prep.content, sha256=res.sha256, attempt=item.attempt, mode=self.cfg.mode,
                         timeout=self.cfg.timeout, max_result_bytes=self.result_cap,
                         scaling=prep.request.intent.scaling)
        f = fl.Flight(task.task_id, item, res, prep.t0, encode_task(task), result_cap=self.result_cap)
        self.flights.add(f)
        return f

    def _send(self, f: fl.Flight, *, again: bool) -> None:
        if f.result_cap != self.result_cap and self.result_cap > 0:  # encoded before the broker answered
            self.flights.rebody(f, with_result_cap(f.body, self.result_cap), self.result_cap)
        if again:
            self.metrics.republishes.inc()
        self.bridge.publish(f.task_id, f.body, f.msg_id)

    def _adopt_left(self, queue: WorkQueue) -> list[fl.Flight]:
        """The intents an earlier run had out: taken first, with their attempt (so their task ids)."""
        left, self._adopt = self._adopt, {}
        paths = {os.path.join(self.layout.root, name): v for name, v in left.items()}
        items = queue.take_paths(list(paths))
        for item in items:
            item.attempt = paths[item.path][2]
        if items:
            self.telemetry.note("fleet.adopted", count=len(items), reason="in flight when an earlier run stopped")
        return [f for item in items if (f := self._launch(item))]

    def _save(self) -> None:
        if self.flights.changed:
            with contextlib.suppress(OSError):  # disk full: saved at the next change
                fl.save(self._file, self.flights)

    def _decide(self, r: WorkResult) -> None:
        self._decided.append(r)
        self.bridge.wake()

    # -- the broker's answers --------------------------------------------------------------------
    def _events(self) -> None:
        for ev in self.bridge.events():
            if isinstance(ev, b.ResultIn):
                self._result(ev)
            elif isinstance(ev, b.Published):
                self.flights.published(ev.task_id, ev.seq)
            elif isinstance(ev, b.PublishFailed):
                self._publish_failed(ev)
            elif isinstance(ev, b.MaxDelivered):
                self._max_delivered(ev)
            elif isinstance(ev, b.Probed):
                self._probed(ev)
            elif isinstance(ev, b.BrokerState):
                self._broker(ev)
            elif isinstance(ev, b.LimitsFailed):
                raise FatalError(ev.reason)

    def _broker(self, ev: b.BrokerState) -> None:
        if ev.up:
            self.result_cap = ev.result_cap
        if self.health.changed(ev.up, ev.reason):
            self.metrics.broker_up.set(1 if ev.up else 0)
            self.telemetry.note("fleet.broker", level=20 if ev.up else 30, up=ev.up, broker=self.cfg.broker,
                                reason=ev.reason)

    def _probed(self, ev: b.Probed) -> None:
        f = self.flights.probed(ev.task_id, ev.present)
        if f is None:
            return
        if f.lost_too_often:
            self.flights.take(f.task_id)
            out = failure(f"the broker lost its task {f.losses} times (ingest-side deadline); no worker ran it: a "
                          "worker refuses a task it cannot read (fleet.worker.bad_task in its log)")
            self._decide(self.acceptor.fold(f, out, worker="", delivery=0))
            return
        self.telemetry.note("fleet.republished", level=30, intent=os.path.basename(f.path), task=f.task_id,
                            reason="the broker lost the task (ingest-side deadline)")
        self._send(f, again=True)

    def _publish_failed(self, ev: b.PublishFailed) -> None:
        f = self.flights.failed(ev.task_id)
        if f is not None and f.failures == 1:
            self.telemetry.note("fleet.publish_failed", level=30, intent=os.path.basename(f.path), task=f.task_id,
                                reason=ev.reason)

    def _max_delivered(self, ev: b.MaxDelivered) -> None:
        self.bridge.delete_task(ev.stream_seq)  # a work-queue stream keeps it otherwise (nats-server#5564)
        f = self.flights.by_seq(ev.stream_seq)
        if f is None:
            return
        self.flights.take(f.task_id)
        self.metrics.max_deliveries.inc()
        n = ev.deliveries or self.cfg.fleet_max_deliver
        out = failure(f"porch did not finish on any worker after {n} deliveries")
        self._decide(self.acceptor.fold(f, out, worker="", delivery=n))

    def _result(self, ev: b.ResultIn) -> None:
        try:
            r = decode_result(ev.body)
        except ProtocolError as exc:
            self.metrics.results.labels(outcome="malformed").inc()
            self.telemetry.note("fleet.result_dropped", level=30, reason=f"not a result: {exc}")
            self.bridge.ack(ev.token)
            return
        f = self.flights.get(r.task_id)
        if f is None or r.sha256 != f.res.sha256:
            self.metrics.duplicates.inc()
            self.bridge.ack(ev.token)
            return
        self.flights.take(r.task_id)
        self.metrics.roundtrip.observe(max(0.0, self.clock.monotonic() - (f.went_out or f.t0)))
        self.metrics.redeliveries.inc(max(0, r.delivery - 1))
        now = self.acceptor.current_sha(f.path)
        if now is not None and now != f.res.sha256:  # changed since the claim: not accepted, runs again
            self.metrics.results.labels(outcome="stale").inc()
            self.queue.changed.add(f.path)
            self._decide(WorkResult(f.path, Outcome.RETURNED, "intent changed since its task was published",
                                    f.item.attempt, 0))
        else:
            res, label = self.acceptor.accept(f, r, self.result_cap)
            self.metrics.results.labels(outcome=label).inc()
            self._decide(res)
        self.bridge.ack(ev.token)

    def _stop_due(self) -> None:
        """At the end of a graceful stop's wait, the tasks still out are given back (republished next start)."""
        if self._stop_at is None or not len(self.flights):
            return
        out = [f for f in self.flights.all() if f.phase is not fl.Phase.BACKOFF]
        if out and self.clock.monotonic() < self._stop_at:
            return
        self._save()
        for f in self.flights.all():
            self.flights.take(f.task_id)
            self._decided.append(WorkResult(f.path, Outcome.RETURNED, "the loop is stopping", f.item.attempt, 0))
        self.flights.changed = False  # the file keeps them: the next start publishes them again


class FleetStaff:
    """The pool's size is ``--fleet-inflight``; the workers' count is the fleet's business (no autoscaling)."""

    def __init__(self, pool: FleetPool) -> None:
        self.pool = pool
        self.min_workers = self.max_workers = pool.size

    @property
    def size(self) -> int:
        """Tasks that may be out at once."""
        return self.pool.size

    def prepare(self, _found: int, _once: bool) -> None:
        """Nothing to get under way before recovery (the broker is reached at :meth:`start`)."""

    def start(self, _backlog: int, _once: bool) -> None:
        """Connect to the broker."""
        self.pool.start()

    def cover(self, _ready: bool) -> None:
        """The fleet's workers are not started by the ingest."""

    def autoscale(self, _now: float, _backlog: int) -> None:
        """Nothing to scale on the ingest."""

    def nudge_ceiling(self, _delta: int) -> None:
        """SIGTTIN/SIGTTOU do nothing in fleet mode."""

    def set_bounds(self, _bounds: tuple[int, int]) -> None:
        """Worker bounds do not apply in fleet mode."""

    def restart_all(self, settings: Any) -> None:
        """New settings (reload): the next intents are prepared with them."""
        self.pool.processor.settings = settings

    def clamp(self) -> None:
        """Nothing to clamp."""

    def replace(self, _death: Any, _stopping: bool) -> None:
        """No local workers die in fleet mode."""


def fleet_side(cfg: RunConfig, settings: WorkerSettings, layout: Layout, telemetry: Telemetry,
               queue: WorkQueue) -> tuple[FleetPool, FleetStaff]:
    """The pool and staff of ``run --executor fleet``."""
    pool = FleetPool(cfg, settings, layout, telemetry, queue)
    return pool, FleetStaff(pool)

