"""The loop: **open → recover → loop → close** for one handoff directory.

Data flows one way: events → settle → queue → worker → record → move::

    watch (Rust Watcher) ─┐
    sweep (scandir) ──────┴─► Intake ─► WorkQueue ─► Pool workers ─► results
                                            ▲                          │
                 Recorder thread ◄──────────┼──── groups of final ◄────┘
                 (status sync, SQLite,      │      results
                  no-clobber move)          │
                        └── answers (data) ─┴─► Telemetry (metrics, logs, health, live figures)

Each turn of the loop is a list of named steps (:meth:`Supervisor.loop`), shaped like gunicorn's
arbiter; signal handlers only queue the signal and the loop runs one ``handle_<signal>`` method
for it. The loop sleeps in ONE ``wait`` on the workers' pipes and sentinels, the recorder's answer
pipe, the watch source and the signal pipe.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from conductor_loop import leftovers
from conductor_loop.config import RunConfig
from conductor_loop.executor import Executor
from conductor_loop.executors import LoopPool, LoopStaff, executor_side, recover_out
from conductor_loop.faults import fatal_at_start
from conductor_loop.feed import Feed
from conductor_loop.handoff import HandoffHold
from conductor_loop.health import Health
from conductor_loop.intake import Intake, peek_priority
from conductor_loop.layout import Layout
from conductor_loop.lock import LockHeld
from conductor_loop.meters import Meters, Unserved
from conductor_loop.pool import Death
from conductor_loop.quarantine import Quarantine
from conductor_loop.recorder import Recorder
from conductor_loop.records import ABORT_SIGNAL, FatalError, Outcome, RetryPolicy, RunSummary, WorkerSettings
from conductor_loop.recovery import Recovery
from conductor_loop.results import Results
from conductor_loop.retention import Retention
from conductor_loop.signals import SignalInbox
from conductor_loop.staff import worker_bounds
from conductor_loop.state import StateStore
from conductor_loop.storage import StorageGuard
from conductor_loop.telemetry import Figures, HandoffChecked, Phase, StateOpened, Swept, Telemetry, WatchNews
from conductor_loop.waitset import WaitSet
from conductor_loop.warmup import private_tempdir
from conductor_loop.watch import WatchSource, choose_backend
from conductor_loop.workqueue import WorkQueue

__all__ = ["FatalError", "LockHeld", "RunSummary", "Supervisor"]

_LOOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU)


class Supervisor:
    """Runs the loop for one handoff directory. ``run()`` returns the run's summary."""

    def __init__(
        self,
        cfg: RunConfig,
        *,
        metrics: Meters | None = None,
        health: Health | None = None,
        reload: Callable[[], RunConfig] | None = None,
        on_outcome: Callable[[RunSummary, int], None] | None = None,
        start_method: str = "forkserver",
        executor: Executor | None = None,
    ) -> None:
        self.cfg = cfg
        self.layout = Layout(cfg.handoff, tuple(cfg.patterns))
        self.out = os.path.abspath(cfg.out)
        self.telemetry = Telemetry(metrics or Unserved(), health or Health(), on_outcome)
        self.reload_config = reload
        self.start_method = start_method
        self.executor = executor
        self.queue = WorkQueue(RetryPolicy(cfg.retries), priority=peek_priority)
        self.intake = Intake(cfg.debounce)
        self.retention = Retention(self.layout, cfg.cleanup_after)
        self.feed = Feed(self.layout, self.intake, self.queue, self.telemetry)
        self.results: Results | None = None
        self.signals = SignalInbox(_LOOP_SIGNALS)
        self._stopping = False
        self._force = False
        self.watch: WatchSource | None = None
        self.pool: LoopPool | None = None
        self.staff: LoopStaff | None = None
        self.recorder: Recorder | None = None
        self.hold = HandoffHold(self.layout, self.out)
        self.storage = StorageGuard((self.layout.state_dir, self.out), self.telemetry, self.layout.db)
        self._next_sweep = 0.0
        self._last_scale = 0.0
        self._waitset = WaitSet()

    @property
    def summary(self) -> RunSummary:
        """The counts of this run."""
        return self.telemetry.summary

    @property
    def state(self) -> StateStore | None:
        """The state connection of the main loop (the recorder has its own)."""
        return self.hold.state

    @property
    def health(self) -> Health:
        """The health flags behind ``/healthz``, ``/readyz`` and ``/livez``."""
        return self.telemetry.health

    def _status_basis(self) -> tuple[WorkerSettings, str]:
        return self._settings(), self.cfg.porch

    def _settings(self) -> WorkerSettings:
        c = self.cfg
        return WorkerSettings(
            self.layout.root, self.out, c.porch, c.mode, c.max_file_size, c.retries, c.timeout, c.intent_schema
        )

    # ------------------------------------------------------------------------ open → close --
    def run(self) -> RunSummary:
        """Run until the backlog is drained (once mode) or until stopped by a signal."""
        with fatal_at_start(self.layout.root, self.layout.db):
            self.hold.take()  # raises FatalError, LockHeld
        self.signals.install()
        try:
            with fatal_at_start(self.layout.root, self.layout.db):
                self.start()
            self.loop()
        finally:
            self.close()
            self.signals.restore()
        self.summary.finished = time.monotonic()
        self.telemetry.note("loop.stop", **self.summary.fields())
        return self.summary

    def start(self) -> None:
        """Open the state, start watching, recover, start the recorder and the workers."""
        for note in self.hold.open_state():
            self.telemetry.emit(note)
        assert self.state is not None
        self.telemetry.emit(StateOpened(self.state.last_success_at()))
        self.feed.state = self.state
        self.feed.quarantine = Quarantine(self.layout, self.telemetry, self._status_basis)
        self.telemetry.emit(Phase("reconciling"))
        backend, why = choose_backend(self.layout.root, self.cfg.watch)
        self.watch = self.feed.watch = WatchSource(self.layout, self._debounce_ms(), backend, self.cfg.poll_interval)
        self.telemetry.emit(WatchNews(alive=True, reason="watching"))
        private_tempdir(self.layout, clean=True)  # holding the lock: what else is there was left by a kill
        self.pool, self.staff = executor_side(self.cfg, self._settings(), self.layout, self.telemetry, self.queue,
                                              self.start_method)
        backlog = self.recover()
        self.recorder = Recorder(self.layout, self.out)
        self.recorder.start_and_wait()
        self.results = Results(self.queue, self.recorder, self.feed, self.telemetry, self._status_basis, self.storage)
        self.staff.start(backlog, self.cfg.once)
        self.telemetry.note("loop.start", handoff=self.layout.root, mode=self.cfg.mode, porch=self.cfg.porch,
                            workers=self.pool.size, backlog=backlog, once=self.cfg.once, watch=self.watch.backend,
                            watch_reason=why)
        self.telemetry.emit(Phase("running"))
        self.telemetry.emit(HandoffChecked(True))

    def recover(self) -> int:
        """Finish what a crash left (see :mod:`conductor_loop.recovery`), queue the backlog; its size."""
        assert self.state is not None and self.staff is not None
        reaped = leftovers.reap(self.layout)  # no worker of ours runs yet: any tagged process is a leftover
        if reaped:
            self.telemetry.note("porch.reaped", level=30, count=reaped, reason="left by an earlier run")
        recover_out(self.cfg, self.executor, self.out)
        recovery = Recovery(self.layout, self.state, self.cfg.max_file_size)
        candidates = self.feed.scan()
        self.staff.prepare(len(candidates), self.cfg.once)
        recovered = recovery.run(candidates)
        for note in recovery.notes:
            self.telemetry.emit(note)
        before = self.queue.ready
        self.feed.take_settled(candidates)  # the first sweep: what recovery filed is gone, the watch has the rest
        self.telemetry.note("loop.reconcile", recovered=recovered, queued=self.queue.ready - before)
        return self.queue.ready + len(self.intake.young)

    def close(self) -> None:
        """Stop the workers, file what they returned, stop watching, close the state, drop the lock."""
        if self.pool is not None:
            if self._force:
                for w in list(self.pool.workers.values()):
                    self.pool.kill(w, ABORT_SIGNAL)  # workers stop porch's process group first
            self.pool.stop(timeout=2.0 if self._force else self.cfg.timeout + 10.0)
        if self.recorder is not None and self.results is not None and self.recorder.is_alive():
            self.summary.groups, self.summary.grouped = self.results.finish()
        if self.pool is not None:
            self.summary.idle_queued_s = self.pool.idle_queued_s
        if self.watch is not None:
            self.watch.close()
        self.hold.release(self.telemetry.last_run())
        self.signals.close()
        self.telemetry.emit(Figures(0, 0, 0, 0, 0, 0))

    def _debounce_ms(self) -> int:
        return max(0, round(self.cfg.debounce * 1000))

    # ------------------------------------------------------------------------------ the loop --
    def loop(self) -> None:
        """Turn until finished: each turn is the steps below, in this order."""
        interval = min(30.0, max(0.05, self.cfg.debounce * 10))
        self._next_sweep = time.monotonic() + interval
        while True:
            self.health.tick()
            self.handle_signals()
            with self.storage.absorbing():  # a storage fault (EMFILE, ENOSPC…) in a step pauses intake
                self.take_watch()
                if self.finished():
                    return
                self.dispatch()
                self.publish()
                self.collect(self.wait())
                self.file_results()
                self.housekeep(interval)
                self.autoscale()

    def finished(self) -> bool:
        """Forced stop; graceful stop with nothing in flight; or once mode drained."""
        if self._force:
            return True
        if self._stopping and not self.queue.inflight:
            return True
        return self.cfg.once and self._once_done()

    def dispatch(self) -> None:
        """Hand ready intents to workers with room, in batches (retries whose time came first)."""
        assert self.pool is not None and self.staff is not None
        if not self._stopping and not self.storage.paused:
            self.queue.release_due()
            self.staff.cover(self.queue.has_ready())
            self.pool.dispatch(self.queue)
        if not self.queue.has_ready():
            self.pool.nothing_ready()
        self.telemetry.emit(self._figures())

    def wait(self) -> list[Any]:
        """THE wait: workers' pipes and sentinels, the recorder, the watch source, the signal pipe."""
        assert self.pool is not None and self.recorder is not None and self.watch is not None
        own = (self.signals.fileno(), self.recorder.fileno(), *self.watch.wait_objects())
        ready = self._waitset.wait([*self.pool.wait_objects(), *own], self._next_timeout())
        return [r for r in ready if r not in own]

    def collect(self, ready: list[Any]) -> None:
        """Results from workers that answered; requeue and replace workers that died."""
        assert self.pool is not None and self.results is not None
        results, deaths = self.pool.collect(ready)
        for _w, got in results:
            if not self._stopping and any(r.outcome is Outcome.RETURNED for r in got):
                self.hold.refuse_symlinks()  # a worker met a link in place of status/: stop (exit 1)
            self.queue.observe(r.attempt_ms / 1000.0 for r in got if r.attempt_log)
            self.results.add(got)
        for death in deaths:
            self._on_death(death)

    def file_results(self) -> None:
        """Read the recorder's answers; hand it the next group when one is due."""
        assert self.pool is not None and self.results is not None
        held = len(self.queue.held)
        self.results.take_recorded()
        if len(self.queue.held) > held:  # a move failed: a link in place of processed/ or failed/ stops the loop
            self.hold.refuse_symlinks()
        self.results.maybe_flush(self.pool.busy)

    def housekeep(self, interval: float) -> None:
        """Every sweep interval: kill stalled workers, check the handoff, sweep, clean up; else young files."""
        assert self.pool is not None
        now = time.monotonic()
        self.storage.check(self.state, sweep=now >= self._next_sweep)
        if now >= self._next_sweep:
            self._next_sweep = now + interval
            for death in self.pool.stalled(self.cfg.timeout + 10.0):
                self._on_death(death)
            self.telemetry.emit(self.hold.check())  # made again if deleted; a link in it stops the loop
            if not self._stopping:
                self.telemetry.emit(Swept())
                self.feed.sweep()
            self._cleanup()
        elif self.intake.young and not self._stopping:
            self.feed.look_again()

    def publish(self) -> None:
        """The live figures ``status`` shows (telemetry decides when: :meth:`Telemetry.publish_live`), written
        by the recorder with its next commit: this thread never waits on SQLite for them."""
        recorder = self.recorder
        assert recorder is not None
        self.telemetry.publish_live(self._figures(), lambda live: recorder.publish("live", live))

    def autoscale(self) -> None:
        """Once a second: let the autoscaler size the pool."""
        assert self.staff is not None
        now = time.monotonic()
        if now - self._last_scale >= 1.0 and not self._stopping:
            self._last_scale = now
            self.staff.autoscale(now, self.queue.backlog)

    def _next_timeout(self) -> float:
        assert self.results is not None
        t = self._next_sweep - time.monotonic()
        nexts = (self.results.flush_in(), self.queue.next_due(), self.intake.next_look(), self.storage.pause.next_in())
        for later in nexts:
            if later is not None:
                t = min(t, later)
        return max(0.0, min(t, 1.0))

    def _figures(self) -> Figures:
        assert self.pool is not None and self.staff is not None
        q = self.queue
        return Figures(q.ready, q.delayed, len(q.inflight), self.pool.size, self.pool.busy, self.staff.max_workers)

    def _working(self) -> bool:
        """Anything queued, running, waiting for a retry or being recorded."""
        return bool(self.queue.busy() or (self.results is not None and self.results.pending))

    def _idle(self) -> bool:
        return not (self._working() or self.intake.young)

    def _once_done(self) -> bool:
        """Once mode: drained, and nothing else settled meanwhile; young files waited for, not forever."""
        working = self._working()
        if self.intake.waited_out(working):
            self.telemetry.note("loop.left_unsettled", level=30, count=len(self.intake.young),
                                reason="still being written when the backlog was drained")
            return True
        if (self.intake.young and not working) or not self._idle():
            return False
        return self.feed.sweep() == 0 and self._idle()  # one last look for anything that settled meanwhile

    # --------------------------------------------------------------------------- signals --
    def request_stop(self, force: bool = False) -> None:
        """Ask the loop to stop (thread-safe; used by tests and embedding code)."""
        self.signals.post(signal.SIGINT if force and self._stopping else signal.SIGTERM)

    def handle_signals(self) -> None:
        """Run ``handle_<name>`` for each queued signal."""
        for sig in self.signals.take():
            getattr(self, f"handle_{signal.Signals(sig).name[3:].lower()}")()

    def handle_term(self) -> None:
        """SIGTERM: graceful stop."""
        self._begin_stop("SIGTERM")

    def handle_int(self) -> None:
        """SIGINT: graceful stop; a second one stops at once."""
        if self._stopping:
            self._force = True
            self.telemetry.note("loop.force_stop", level=30)
        else:
            self._begin_stop("SIGINT")

    def handle_hup(self) -> None:
        """SIGHUP: reload the configuration."""
        self._reload()

    def handle_ttin(self) -> None:
        """SIGTTIN: one more worker allowed."""
        assert self.staff is not None
        self.staff.nudge_ceiling(+1)

    def handle_ttou(self) -> None:
        """SIGTTOU: one worker fewer allowed."""
        assert self.staff is not None
        self.staff.nudge_ceiling(-1)

    def _begin_stop(self, name: str) -> None:
        if not self._stopping:
            self._stopping = True
            if self.pool is not None:
                self.pool.hand_back()  # only running intents finish: a stop takes <= --timeout + 5 s
            self.telemetry.emit(Phase("stopping"))
            self.telemetry.note("loop.stopping", signal=name, inflight=len(self.queue.inflight))

    def _reload(self) -> None:
        if self.reload_config is None:
            self.telemetry.note("config.reload", level=30, outcome="ignored", reason="no configuration source")
            return
        try:
            new = self.reload_config()
        except Exception as exc:  # noqa: BLE001 - a bad reload keeps the running config
            self.telemetry.note("config.reload", level=40, outcome="failed", reason=str(exc))
            return
        assert self.staff is not None
        old_settings = self._settings()
        self.cfg = new
        self.staff.set_bounds(worker_bounds(new))
        self.queue.policy = RetryPolicy(new.retries)
        self.intake.debounce = new.debounce
        self.retention.cleanup_after = new.cleanup_after
        if self.watch is not None:
            self.watch.set_debounce(self._debounce_ms())
        if self._settings() != old_settings:
            self.staff.restart_all(self._settings())
        self.staff.clamp()
        self.telemetry.note("config.reload", outcome="applied", min_workers=self.staff.min_workers,
                            max_workers=self.staff.max_workers)

    # -------------------------------------------------------------------------- the watch --
    def take_watch(self) -> None:
        """Offer what the watch settled; on a rescan make the handoff again if needed, and sweep."""
        if not self.feed.take_watch():
            return
        with contextlib.suppress(FatalError):
            self.hold.prepare()
            note = self.hold.adopt_recreated()
            if note is not None:
                self.telemetry.emit(note)
                self.feed.state = self.state
                if note.event == "loop.lock_lost":
                    self._stopping = True
                    self.telemetry.emit(Phase("stopping"))
        self.feed.sweep()

    # -------------------------------------------------------------------------- outcomes --
    def _on_death(self, death: Death) -> None:
        assert self.staff is not None and self.results is not None
        reaped = leftovers.reap(self.layout, death.worker.id)  # what its porch started, before a successor
        if reaped:
            self.telemetry.note("porch.reaped", level=30, count=reaped, worker=death.worker.id,
                                reason="its worker died")
        self.results.lost(death)
        self.staff.replace(death, self._stopping)

    def _cleanup(self) -> None:
        if self.state is not None and self.retention.due():
            removed = self.storage.guard(self.retention.clean, self.state)
            if removed is not None:
                self.telemetry.note("cleanup.removed", files=removed[0], rows=removed[1])
