"""The work queue: ready, delayed, in-flight and changed-in-flight intents.

- *ready*: a heap ordered by priority (higher first), then age (older first);
- *delayed*: intents waiting for a retry after an environment failure (README, "Dedupe, retry and
  order": 0.5 s doubling to 30 s, from :class:`~conductor_loop.records.RetryPolicy`);
- *in flight*: handed to a worker or being recorded; a path seen changing meanwhile is *changed* and
  is never filed under the old result;
- *held*: intents whose move failed, not offered again until the watcher sees them change.

It also owns batch sizing (:class:`BatchPolicy`) and the requeue of a dead worker's intents, each
alone, so a poison intent is pinned down while its batch-mates are not charged an attempt. Plain
state with an injected clock and priority function: no processes.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from conductor_loop.clock import SYSTEM_CLOCK, Clock
from conductor_loop.records import RetryPolicy, WorkItem

DEFAULT_PRIORITY = 5
#: Largest batch handed to one worker at a time.
MAX_BATCH = 32
#: Seconds of work a batch is cut for.
BATCH_BUDGET_S = 0.05
#: Weight of the newest observation in the moving average of attempt durations.
_ALPHA = 0.2


class BatchPolicy:
    """How much work a worker holds at once: batch size and batches per worker.

    Batches amortise the pipe round trip per intent when porch is fast. They must not undo the queue
    order (README, "Dedupe, retry and order": higher ``priority`` first) or a graceful stop: an intent
    already cut into a batch waits for that whole batch. So a batch is sized to take about
    ``budget_s`` at the recent per-intent time, and a worker holds a second batch (one running, one
    ready behind it) only while intents are faster than that. With a slow porch every worker holds
    exactly one intent, and an urgent intent (or a retry) that becomes ready later runs as soon as a
    worker is free. Fed with observed attempt durations; no clock.
    """

    def __init__(self, budget_s: float = BATCH_BUDGET_S, max_batch: int = MAX_BATCH) -> None:
        if budget_s <= 0 or max_batch < 1:
            raise ValueError("budget_s must be positive and max_batch at least 1")
        self.budget_s = budget_s
        self.max_batch = max_batch
        #: Moving average of one attempt's duration in seconds; ``None`` before the first result.
        self.average_s: float | None = None

    def observe(self, durations_s: Iterable[float]) -> None:
        """Fold the durations (seconds) of finished attempts into the average."""
        for d in durations_s:
            d = max(0.0, d)
            self.average_s = d if self.average_s is None else self.average_s + _ALPHA * (d - self.average_s)

    def _fast(self) -> bool:
        return self.average_s is not None and self.average_s < self.budget_s

    def size(self, ready: int, workers: int) -> int:
        """Intents in the next batch with ``ready`` waiting and ``workers`` in the pool.

        A share of the queue (``ready / (2 x workers)``, 1..``max_batch``) capped by the time budget;
        one intent until the first result tells how long one takes.
        """
        if self.average_s is None or not self._fast():
            return 1
        share = max(1, min(self.max_batch, ready // (2 * max(1, workers))))
        return max(1, min(share, int(self.budget_s / max(self.average_s, 1e-6))))

    def per_worker(self) -> int:
        """Batches a worker may hold: two (one running, one ready) for fast intents, else one."""
        return 2 if self._fast() else 1


@dataclass(slots=True)
class _Entry:
    item: WorkItem
    lone: bool = False


#: A heap entry: ``(-priority, queued at, sequence, entry)``; the unique sequence means the entry itself is
#: never compared, so the heap orders plain tuples in C (a dataclass ``__lt__`` cost ~10 µs an intent).
_Slot = tuple[int, float, int, _Entry]


class WorkQueue:
    """Intents between intake and the recorder."""

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        clock: Clock = SYSTEM_CLOCK,
        priority: Callable[[str], int] = lambda _p: DEFAULT_PRIORITY,
        batching: BatchPolicy | None = None,
    ) -> None:
        self.policy = policy
        self.batching = batching or BatchPolicy()
        self.clock = clock
        self.priority = priority
        self._heap: list[_Slot] = []
        self._queued: dict[str, _Entry] = {}
        self._delayed: list[tuple[float, int, WorkItem]] = []
        self._delayed_paths: set[str] = set()
        self.inflight: dict[str, WorkItem] = {}
        self.changed: set[str] = set()
        self.held: set[str] = set()
        #: Runs of an intent whose content changed under porch, in a row (bounded by ``--retries``).
        self.reruns: dict[str, int] = {}
        self._seq = itertools.count()

    # -- views ---------------------------------------------------------------------------------
    @property
    def ready(self) -> int:
        """Intents queued and ready to go."""
        return len(self._queued)

    @property
    def delayed(self) -> int:
        """Intents waiting for a retry."""
        return len(self._delayed)

    @property
    def backlog(self) -> int:
        """Ready plus in flight (the autoscaler's queue figure)."""
        return len(self._heap) + len(self.inflight)

    def has_ready(self) -> bool:
        """Anything left in the ready heap."""
        return bool(self._heap)

    def busy(self) -> bool:
        """Anything ready, in flight or delayed."""
        return bool(self._heap or self.inflight or self._delayed)

    def knows(self, path: str) -> bool:
        """``path`` is ready, in flight or delayed."""
        return path in self._queued or path in self.inflight or path in self._delayed_paths

    def next_due(self) -> float | None:
        """Seconds until the next delayed intent is due, or None."""
        return self._delayed[0][0] - self.clock.monotonic() if self._delayed else None

    # -- intake --------------------------------------------------------------------------------
    def admit(self, paths: Iterable[str], *, settled: bool) -> list[str]:
        """The fresh ones of candidate ``paths``; marks those in flight as changed.

        ``settled``: the watcher saw the path written (a held intent is released); a sweep's
        candidates (``settled=False``) never release a held intent.
        """
        fresh = []
        for path in paths:
            if path in self.held:
                if not settled:
                    continue
                self.held.discard(path)
            if path in self.inflight:
                self.changed.add(path)
                continue
            if path in self._queued or path in self._delayed_paths:
                continue
            fresh.append(path)
        return fresh

    def push(self, item: WorkItem, *, lone: bool = False, priority: int | None = None) -> None:
        """Queue ``item`` as ready (``lone``: it goes to a worker in a batch of its own); ``priority``: its
        hint when the caller has it already (else the queue's ``priority`` function reads it)."""
        entry = _Entry(item, lone)
        rank = self.priority(item.path) if priority is None else priority
        heapq.heappush(self._heap, (-rank, self.clock.monotonic(), next(self._seq), entry))
        self._queued[item.path] = entry

    def release_due(self) -> None:
        """Move delayed intents whose time has come to the ready heap."""
        now = self.clock.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, item = heapq.heappop(self._delayed)
            self._delayed_paths.discard(item.path)
            self.push(item)

    # -- dispatch ------------------------------------------------------------------------------
    def batch_size(self, workers: int) -> int:
        """How many intents the next batch holds (see :class:`BatchPolicy`)."""
        return self.batching.size(len(self._queued), workers)

    def per_worker(self) -> int:
        """How many batches one worker may hold (see :class:`BatchPolicy`)."""
        return self.batching.per_worker()

    def observe(self, durations_s: Iterable[float]) -> None:
        """Attempts finished in these many seconds each (they size the next batches)."""
        self.batching.observe(durations_s)

    def take_batch(self, workers: int) -> list[WorkItem]:
        """The next batch for a worker (marked in flight); a lone intent always travels alone."""
        n = self.batch_size(workers)
        batch: list[WorkItem] = []
        while self._heap and len(batch) < n:
            slot = heapq.heappop(self._heap)
            entry = slot[3]
            if self._queued.get(entry.item.path) is not entry:
                continue
            if entry.lone and batch:
                heapq.heappush(self._heap, slot)
                break
            del self._queued[entry.item.path]
            batch.append(entry.item)
            self.inflight[entry.item.path] = entry.item
            if entry.lone:
                break
        return batch

    def take_paths(self, paths: Iterable[str]) -> list[WorkItem]:
        """Those of ``paths`` that are ready, taken out of order (marked in flight): fleet mode's restart."""
        taken = []
        for path in paths:
            entry = self._queued.pop(path, None)
            if entry is not None:  # its heap entry is skipped when popped (no longer the queued one)
                taken.append(entry.item)
                self.inflight[path] = entry.item
        return taken

    def unsend(self, batch: list[WorkItem]) -> None:
        """A batch could not be sent: back to the ready heap."""
        for item in batch:
            del self.inflight[item.path]
            self.push(item)

    # -- results -------------------------------------------------------------------------------
    def done(self, path: str, *, changed: bool = False) -> None:
        """``path`` left the loop (filed, gone, vanished or not recorded; ``changed``: to be run again)."""
        self.inflight.pop(path, None)
        self.changed.discard(path)
        if changed:
            self.reruns[path] = self.reruns.get(path, 0) + 1
        else:
            self.reruns.pop(path, None)

    def last_runs(self, paths: Iterable[str]) -> dict[str, int]:
        """Those of ``paths`` re-run for changes ``--retries`` times already, with the number of this run."""
        return {p: n + 1 for p in paths if (n := self.reruns.get(p, 0)) >= self.policy.retries}

    def hold(self, path: str) -> None:
        """The move of ``path`` failed: not offered again by sweeps until the watcher sees it change."""
        self.held.add(path)

    def retry_later(self, path: str, attempt: int) -> tuple[WorkItem, float]:
        """An environment failure of ``attempt``: queue the next attempt after the backoff."""
        item = self.inflight.pop(path, None) or WorkItem(path=path, attempt=attempt)
        delay = self.policy.delay(item.attempt)
        item.attempt += 1
        heapq.heappush(self._delayed, (self.clock.monotonic() + delay, next(self._seq), item))
        self._delayed_paths.add(item.path)
        return item, delay

    def requeue_lost(self, lost: list[WorkItem], *, touched: bool = True) -> list[WorkItem]:
        """Intents a dead worker held: each goes back alone; returns those out of attempts.

        Only an intent that was alone in the worker is charged an attempt: it is the one that killed it;
        none is when the worker died before it started on any (``touched=False``: it failed to boot).
        """
        alone = len(lost) == 1 and touched
        out_of_attempts = []
        for item in lost:
            self.inflight.pop(item.path, None)
            charged = item.attempt + 1 if alone else item.attempt
            if not self.policy.may_retry(charged - 1):
                item.attempt = charged - 1
                out_of_attempts.append(item)
            else:
                item.attempt = charged
                self.push(item, lone=True)
        return out_of_attempts
