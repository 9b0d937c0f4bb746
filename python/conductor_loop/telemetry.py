"""Telemetry in one place: the loop says what happened; this module decides what each fact becomes.

The loop emits plain event records (:class:`IntentFiled`, :class:`IntentRetried`,
:class:`WorkerExited`, :class:`Rescanned`, …). :class:`Telemetry` turns each into its Prometheus
metric, its log line (see :data:`conductor_loop.logs.EVENTS`), the health flags, the progress-bar
callback and the run summary; :meth:`Telemetry.publish_live` writes the live figures ``status``
shows. The loop never names a metric or formats a log line itself.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from conductor_loop.health import Health
from conductor_loop.logs import log_event
from conductor_loop.meters import Meters
from conductor_loop.records import Filing, Outcome, RunSummary, WorkResult

WARNING, ERROR = 30, 40


@dataclass(frozen=True, slots=True)
class Note:
    """A lifecycle fact that is only a log line (``loop.start``, ``config.reload``, …)."""

    event: str
    fields: dict[str, Any] = field(default_factory=dict)
    level: int = 20


@dataclass(frozen=True, slots=True)
class IntentFiled:
    """A final result was recorded and its intent moved to ``moved_to``."""

    result: WorkResult
    moved_to: str


@dataclass(frozen=True, slots=True)
class IntentNotFiled:
    """A recorded result whose intent was not moved (changed meanwhile, gone, or the move failed)."""

    result: WorkResult
    kind: Filing
    error: str = ""


@dataclass(frozen=True, slots=True)
class IntentRetried:
    """An environment failure; attempt ``attempt`` runs after ``delay`` seconds."""

    result: WorkResult
    attempt: int
    delay: float


@dataclass(frozen=True, slots=True)
class WorkerEvent:
    """A worker ``start``ed, was ``replaced`` or ``retire``d."""

    what: str
    worker: int
    pid: int | None = None


@dataclass(frozen=True, slots=True)
class WorkerExited:
    """A worker exited or was killed, losing ``lost`` intents."""

    worker: int
    reason: str
    lost: int


@dataclass(frozen=True, slots=True)
class PoolSized:
    """The pool now has ``workers`` workers (``previous`` before; ``reason``: autoscale or ceiling)."""

    workers: int
    previous: int | None = None
    queue: int | None = None
    max_workers: int | None = None


@dataclass(frozen=True, slots=True)
class WatchNews:
    """Raw watcher events consumed, and whether the watch is up (None: unchanged)."""

    events: int = 0
    alive: bool | None = None
    reason: str = ""
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Rescanned:
    """A full rescan of the handoff directory."""

    reason: str


@dataclass(frozen=True, slots=True)
class Swept:
    """A periodic sweep of the handoff directory (not a rescan: no event was known to be lost)."""


@dataclass(frozen=True, slots=True)
class StateOpened:
    """The state was opened; ``last_success`` is when its newest success was recorded (None: none)."""

    last_success: float | None


@dataclass(frozen=True, slots=True)
class HandoffChecked:
    """Whether the handoff directory is writable."""

    writable: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class StorageChecked:
    """Intake paused for a storage fault (``ok`` False, with the reason), or resumed after ``paused_s``."""

    ok: bool
    reason: str = ""
    paused_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Phase:
    """The loop is ``reconciling``, ``running`` or ``stopping``."""

    name: str


@dataclass(frozen=True, slots=True)
class Figures:
    """The queue and pool figures of one loop turn."""

    ready: int
    delayed: int
    inflight: int
    workers: int
    busy: int
    max_workers: int


Event = (
    Note | IntentFiled | IntentNotFiled | IntentRetried | WorkerEvent | WorkerExited | PoolSized | WatchNews
    | Rescanned | Swept | StateOpened | HandoffChecked | StorageChecked | Phase | Figures
)

ProgressHook = Callable[[RunSummary, int], None]
#: The live figures are published this often, and when they changed at most this often (seconds).
LIVE_EVERY, LIVE_CHANGED_EVERY = 1.0, 0.25


class Telemetry:
    """Turns the loop's events into metrics, log lines, health, progress and the run summary."""

    def __init__(self, metrics: Meters, health: Health, on_outcome: ProgressHook | None = None) -> None:
        self.metrics = metrics
        self.health = health
        self.on_outcome = on_outcome
        self.summary = RunSummary()
        self.total_hint = 0
        self.started_at = time.time()
        self._live_at = 0.0
        self._live_figures: Figures | None = None
        self._gauged: Figures | None = None
        self._handlers: dict[type, Callable[[Any], None]] = {
            Note: self._note,
            IntentFiled: self._filed,
            IntentNotFiled: self._not_filed,
            IntentRetried: self._retried,
            WorkerEvent: self._worker,
            WorkerExited: self._worker_exited,
            PoolSized: self._pool_sized,
            WatchNews: self._watch,
            Rescanned: self._rescanned,
            Swept: self._swept,
            StateOpened: self._state_opened,
            HandoffChecked: self._handoff,
            StorageChecked: self._storage,
            Phase: self._phase,
            Figures: self._figures,
        }

    def emit(self, event: Event) -> None:
        """Record one fact."""
        self._handlers[type(event)](event)

    def note(self, event: str, level: int = 20, **fields: Any) -> None:
        """Shorthand for ``emit(Note(event, fields, level))``."""
        self.emit(Note(event, fields, level))

    # -- intents -------------------------------------------------------------------------------
    def _note(self, e: Note) -> None:
        log_event(e.event, level=e.level, **e.fields)

    def _filed(self, e: IntentFiled) -> None:
        r = e.result
        self.summary.count(r.outcome)
        self.metrics.observe_outcome(r.outcome.value, r.duration_ms / 1000.0, timed_out=r.timed_out)
        log_event(
            f"intent.{r.outcome.value}",
            level=WARNING if r.outcome is Outcome.FAILED else 20,
            intent=os.path.basename(r.path),
            sha256=r.sha256,
            worker=r.worker,
            duration_ms=round(r.duration_ms, 3),
            outcome=r.outcome.value,
            correlation_id=r.correlation_id,
            moved_to=e.moved_to,
            message=r.message if r.outcome is not Outcome.SUCCESS else None,
        )
        if self.on_outcome is not None:
            self.on_outcome(self.summary, self.total_hint)

    def _not_filed(self, e: IntentNotFiled) -> None:
        r, name = e.result, os.path.basename(e.result.path)
        if e.kind is Filing.CHANGED:
            log_event("intent.changed", intent=name, sha256=r.sha256)
        elif e.kind is Filing.UNMOVABLE:
            log_event("intent.move_failed", level=ERROR, intent=name, reason=e.error)
        else:  # the status says it failed (it vanished while porch ran): counted as a failure
            self.summary.count(r.outcome)
            self.metrics.observe_outcome(r.outcome.value, r.duration_ms / 1000.0, timed_out=r.timed_out)
            log_event("intent.vanished", level=WARNING, intent=name, outcome=r.outcome.value, message=r.message)

    def _retried(self, e: IntentRetried) -> None:
        self.summary.retried += 1
        self.metrics.retries_total.inc()
        if e.result.timed_out:
            self.metrics.porch_timeouts_total.inc()
        log_event(
            "intent.retry",
            level=WARNING,
            intent=os.path.basename(e.result.path),
            attempt=e.attempt,
            delay_s=e.delay,
            reason=e.result.message,
        )

    # -- workers -------------------------------------------------------------------------------
    def _worker(self, e: WorkerEvent) -> None:
        if e.what == "start":
            log_event("worker.start", worker=e.worker, pid=e.pid)
        else:
            log_event(f"worker.{e.what}", worker=e.worker)

    def _worker_exited(self, e: WorkerExited) -> None:
        log_event("worker.exit", level=WARNING, worker=e.worker, reason=e.reason, lost=e.lost)

    def _pool_sized(self, e: PoolSized) -> None:
        self.metrics.workers.set(e.workers)
        if e.max_workers is not None:
            log_event("pool.ceiling", max_workers=e.max_workers)
        elif e.previous is not None:
            log_event("pool.resize", workers=e.workers, previous=e.previous, queue=e.queue)

    # -- the watch and the handoff -------------------------------------------------------------
    def _watch(self, e: WatchNews) -> None:
        if e.events:
            self.metrics.events_total.inc(e.events)
        if e.error is not None:
            self.health.set_watcher(False, f"watcher failed: {e.error}")
            self.metrics.watcher_up.set(0)
            log_event("watcher.lost", level=ERROR, reason=e.error)
        elif e.alive is not None:
            self.health.set_watcher(e.alive, e.reason)
            self.metrics.watcher_up.set(1 if e.alive else 0)

    def watcher_changed(self, alive: bool) -> None:
        """The watch was lost or came back (logged; health and gauge via :class:`WatchNews`)."""
        self.emit(WatchNews(alive=alive, reason="" if alive else "watch on the handoff directory lost"))
        log_event("watcher.restored" if alive else "watcher.lost", level=20 if alive else ERROR)

    def _rescanned(self, e: Rescanned) -> None:
        self.metrics.rescans_total.inc()
        log_event("loop.rescan", reason=e.reason)

    def _swept(self, _e: Swept) -> None:
        self.metrics.sweeps_total.inc()

    def _state_opened(self, e: StateOpened) -> None:
        self.metrics.last_success_timestamp.set(e.last_success or 0.0)

    def _handoff(self, e: HandoffChecked) -> None:
        self.health.set_handoff_writable(e.writable, e.reason)

    def _storage(self, e: StorageChecked) -> None:
        self.health.set_storage(e.ok, e.reason)
        self.metrics.intake_paused.set(0 if e.ok else 1)
        if e.ok:
            log_event("intake.resumed", paused_s=round(e.paused_s, 3))
        else:
            log_event("intake.paused", level=ERROR, reason=e.reason)

    def _phase(self, e: Phase) -> None:
        self.health.set_reconciling(e.name == "reconciling")
        if e.name == "stopping":
            self.health.set_stopping(True)

    def _figures(self, e: Figures) -> None:
        # Every turn, so every scrape is true; the queue as ``status`` shows it (retries waiting included).
        if e == self._gauged:
            return  # unchanged since the last turn: the gauges say so already
        self._gauged = e
        self.metrics.queue_depth.set(e.ready + e.delayed)
        self.metrics.workers.set(e.workers)
        self.metrics.workers_busy.set(e.busy)

    # -- the live figures and the summary ------------------------------------------------------
    def publish_live(self, f: Figures, write: Callable[[dict[str, Any]], None]) -> bool:
        """Write the live figures once a second, and when they changed (at most every 0.25 s).

        The gauges get the same figures at the same moment, so a scrape and ``status`` agree.
        """
        now = time.monotonic()
        since = now - self._live_at
        if since < LIVE_CHANGED_EVERY or (since < LIVE_EVERY and f == self._live_figures):
            return False
        self._live_at, self._live_figures = now, f
        self.emit(f)
        write(self.live(f))
        return True

    def live(self, f: Figures) -> dict[str, Any]:
        """The figures ``conductor-loop status`` shows while the loop runs."""
        s = self.summary
        return {
            "pid": os.getpid(),
            "queue": f.ready + f.delayed,
            "inflight": f.inflight,
            "workers": f.workers,
            "busy": f.busy,
            "max_workers": f.max_workers,
            "updated_at": time.time(),
            "started_at": self.started_at,
            "processed": s.processed,
            "skipped": s.skipped,
            "failed": s.failed,
        }

    def last_run(self) -> dict[str, Any]:
        """The summary of the finished run, as stored for ``status``."""
        return {**self.summary.fields(), "finished_at": time.time()}
