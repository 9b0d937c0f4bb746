"""Results: from what workers return to filed intents.

Final results are handed to the :class:`~conductor_loop.recorder.Recorder` in groups, one at a time: while
the recorder syncs and commits one group, whatever finishes meanwhile collects and is the next group (natural
group commit), handed over once the recorder is free and the group is ``FLUSH_AFTER`` old (or nothing else
runs). Under load a group is what finished during the previous sync; with little to do a result waits at
most ``FLUSH_AFTER`` (so that a quick sync does not make a sync per result). At most ``FLUSH_MAX`` at once.
Retries go back to the queue with their backoff; the recorder's answers are read back as data and become
counts, logs and requeues. Intents of a worker that died are requeued alone, or fail when out of attempts.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from conductor_loop.feed import Feed
from conductor_loop.filing import result_status_doc
from conductor_loop.pool import Death
from conductor_loop.recorder import Recorder
from conductor_loop.records import Filing, Outcome, WorkerSettings, WorkResult
from conductor_loop.storage import StorageGuard
from conductor_loop.telemetry import IntentFiled, IntentNotFiled, IntentRetried, Telemetry
from conductor_loop.workqueue import WorkQueue

#: The largest group handed to the recorder at once (one SQLite transaction); the rest is the next group.
FLUSH_MAX = 4096
#: A group goes to a free recorder once its first result is this old (or at once when nothing else runs).
FLUSH_AFTER = 0.02


class Results:
    """Collects results between the workers and the recorder."""

    def __init__(
        self,
        queue: WorkQueue,
        recorder: Recorder,
        feed: Feed,
        telemetry: Telemetry,
        status_basis: Callable[[], tuple[WorkerSettings, str]],
        storage: StorageGuard | None = None,
    ) -> None:
        self.queue = queue
        self.recorder = recorder
        self.feed = feed
        self.telemetry = telemetry
        self.status_basis = status_basis
        self.storage = storage
        self.done: list[WorkResult] = []
        self._first_done = 0.0

    def add(self, results: list[WorkResult]) -> None:
        """Results back from a worker."""
        if not self.done:
            self._first_done = time.monotonic()
        self.done.extend(results)

    def lost(self, death: Death) -> None:
        """A worker died: its intents go back alone; those out of attempts fail (none if it never started one)."""
        for item in self.queue.requeue_lost(death.lost, touched=death.touched):
            message = f"{death.reason} while processing this intent"
            r = WorkResult(item.path, Outcome.FAILED, message, item.attempt, death.worker.id,
                           first_started=item.first_started)
            this = {"attempt": item.attempt, "duration_ms": None, "outcome": r.outcome.value, "exit_code": None,
                    "message": message}
            r.attempt_log = [*(item.earlier or ()), this]
            if item.first_started is not None:
                r.duration_ms = (time.monotonic() - item.first_started) * 1000.0
            self.add([r])

    @property
    def pending(self) -> bool:
        """Results waiting to be filed or being recorded."""
        return bool(self.done or self.recorder.pending)

    def flush_in(self) -> float | None:
        """Seconds until the current group is due, when the recorder is free (else its answer wakes us)."""
        if self.done and not self.recorder.pending:
            return self._first_done + FLUSH_AFTER - time.monotonic()
        return None

    def maybe_flush(self, busy_workers: int) -> None:
        """Hand the free recorder what finished meanwhile, once it is ``FLUSH_AFTER`` old or nothing else runs."""
        if self.done and not self.recorder.pending and (
            busy_workers == 0 or time.monotonic() - self._first_done >= FLUSH_AFTER
        ):
            self.flush(FLUSH_MAX)

    def flush(self, limit: int | None = None) -> None:
        """Hand a group of final results (all, or the first ``limit``) to the recorder (record, then move);
        retries wait in the queue."""
        done, self.done = self.done[:limit], self.done[limit:] if limit is not None else []
        self._first_done = time.monotonic()  # what is left over is the next group, due FLUSH_AFTER from now
        final: list[WorkResult] = []
        for r in done:
            if r.outcome in (Outcome.VANISHED, Outcome.RETURNED):  # nothing written: stays in the handoff
                again = r.path in self.queue.changed  # written meanwhile: offered again now
                self.queue.done(r.path)
                if again:
                    self.feed.offer([r.path], settled=True)
            elif r.outcome is Outcome.RETRY:
                self._fault(r.fault)
                item, delay = self.queue.retry_later(r.path, r.attempt)
                item.first_started, item.earlier = r.first_started, r.attempt_log  # durations over every attempt
                self.telemetry.emit(IntentRetried(r, item.attempt, delay))
            else:
                if r.doc is None:  # made by the loop (a worker died on it): the recorder writes it
                    settings, porch = self.status_basis()
                    r.doc = result_status_doc(r, settings, porch, None)
                final.append(r)  # stays "in flight" until filed, so it is not taken twice
        if final:
            changed = [r.path for r in final if r.path in self.queue.changed]
            self.recorder.submit(final, changed, self.queue.last_runs(r.path for r in final))

    def finish(self) -> tuple[int, int]:
        """At the stop: hand the recorder what is left, stop it, take its last answers, close it; returns its
        ``(groups, intents grouped)``."""
        if self.done:
            self.flush()
        self.recorder.stop()
        self.take_recorded()
        self.recorder.close()
        return self.recorder.groups, self.recorder.grouped

    def _fault(self, reason: str | None) -> None:
        if reason is not None and self.storage is not None:
            self.storage.trip(reason)

    def take_recorded(self) -> None:
        """Finish, on the loop's thread, what the recorder filed: counts, logs, requeues."""
        for answer in self.recorder.answers():
            if answer.error is not None:
                self._fault(answer.fault)
                self.telemetry.note("record.failed", level=40, reason=answer.error, count=len(answer.group))
                for r in answer.group:  # not recorded: they stay in the handoff and are offered again
                    self.queue.inflight.pop(r.path, None)
                continue
            for f in answer.filed:
                self.queue.done(f.result.path, changed=f.kind is Filing.CHANGED)
                if f.kind is Filing.FILED and f.moved_to is not None:
                    self.telemetry.emit(IntentFiled(f.result, f.moved_to))
                    continue
                self.telemetry.emit(IntentNotFiled(f.result, f.kind, f.error))
                if f.kind is Filing.CHANGED:
                    self.feed.offer([f.result.path], settled=True)
                elif f.kind is Filing.UNMOVABLE:
                    self.queue.hold(f.result.path)
