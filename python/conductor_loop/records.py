"""The vocabulary: the records passed between the loop's parts, and the retry policy.

Data flows one way, **events → settle → queue → worker → record → move**, and each hop carries one
of these records: a :class:`WorkItem` goes to a worker, a :class:`WorkResult` comes back, its
:class:`Outcome` says where it is filed (:class:`Destination`), the :class:`RetryPolicy` says whether
an attempt may be retried, and the :class:`RunSummary` counts what one run did.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from conductor_loop.intent_schema import BUILTIN, IntentSchema


class FatalError(Exception):
    """The loop cannot run at all (``run`` exits 1)."""


#: Sent to a worker to make it stop now (it kills porch's process group on the way out).
ABORT_SIGNAL = signal.SIGUSR1


class Destination(str, Enum):
    """The sub-directory of the handoff a finished intent is filed in."""

    PROCESSED = "processed"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


class Outcome(str, Enum):
    """What happened to one intent in a worker.

    ``retry`` is an environment failure with attempts left; ``vanished`` means the file disappeared
    before it could be read (nothing is written for it); ``returned`` means a worker gave it back
    unstarted because the loop is stopping (nothing is written for it: it stays in the handoff for
    the next start, README "Signals"). The others are final and filed.
    """

    SUCCESS = "success"
    FAILED = "failed"
    SKIPPED = "skipped"
    RETRY = "retry"
    VANISHED = "vanished"
    RETURNED = "returned"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def final(self) -> bool:
        """True for outcomes that are recorded and filed."""
        return self in (Outcome.SUCCESS, Outcome.FAILED, Outcome.SKIPPED)

    @property
    def destination(self) -> Destination:
        """Where a final outcome is filed: ``failed/`` for failures, else ``processed/``."""
        return Destination.FAILED if self is Outcome.FAILED else Destination.PROCESSED


#: Status values of a finished intent, as the state and the status files spell them.
FINAL_STATUSES: tuple[str, ...] = (Outcome.SUCCESS.value, Outcome.SKIPPED.value, Outcome.FAILED.value)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The one rule for environment failures: attempt ``n`` (1-based) may be retried while ``n <= retries``.

    Retries wait 0.5 s, 1 s, 2 s … (doubling, at most 30 s) after attempts 1, 2, 3 …
    """

    retries: int
    base: float = 0.5
    cap: float = 30.0

    def may_retry(self, attempt: int) -> bool:
        """Whether a failure of attempt ``attempt`` may be tried again."""
        return attempt <= self.retries

    def delay(self, attempt: int) -> float:
        """Seconds to wait before the attempt after ``attempt``."""
        return float(min(self.cap, self.base * 2.0 ** (attempt - 1)))


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """Everything a worker needs to process intents; picklable, sent once at worker start."""

    handoff: str
    out: str
    porch: str
    mode: str
    max_file_size: int
    retries: int
    timeout: float
    intent_schema: IntentSchema = BUILTIN

    @property
    def policy(self) -> RetryPolicy:
        """The retry policy of these settings."""
        return RetryPolicy(self.retries)


@dataclass(slots=True)
class WorkItem:
    """One intent to process. ``prev_sha256`` is the content last processed with success and filed.

    For a retry, ``first_started`` (``time.monotonic()``, one clock for every process of the host) is
    when its first attempt began and ``earlier`` the log of the attempts before this one.
    """

    path: str
    attempt: int = 1
    prev_sha256: str | None = None
    prev_when: float | None = None
    first_started: float | None = None
    earlier: list[dict[str, Any]] | None = None


@dataclass(slots=True)
class WorkResult:
    """What happened to one intent in a worker."""

    path: str
    outcome: Outcome
    message: str
    attempt: int
    worker: int
    sha256: str | None = None
    size: int | None = None
    exit_code: int | None = None
    duration_ms: float = 0.0
    timed_out: bool = False
    output_dir: str | None = None
    correlation_id: str | None = None
    #: (inode, size, mtime_ns) seen before the read: the intent is filed only if unchanged.
    stat_key: tuple[int, int, int] | None = None
    #: Where the status file says the intent goes; the status is rewritten if the move differs.
    planned: str | None = None
    #: Error log body for failures.
    detail: str = ""
    #: A storage fault behind this result (disk full, read-only): the loop pauses intake (conductor_loop.faults).
    fault: str | None = None
    doc: dict[str, Any] | None = field(default=None)
    #: When the first attempt began (``time.monotonic()``) and every attempt so far, this one last:
    #: ``{"attempt", "duration_ms", "outcome", "exit_code", "message"}``. ``duration_ms`` above is the
    #: total from the first attempt's start to this outcome, backoffs included (README, status fields).
    first_started: float | None = None
    attempt_log: list[dict[str, Any]] = field(default_factory=list)
    #: When the worker finished it (``time.monotonic()``): a worker with nothing left is idle from then.
    finished: float | None = None

    @property
    def attempt_ms(self) -> float:
        """Milliseconds of the last attempt alone (0 when none was made)."""
        last = self.attempt_log[-1].get("duration_ms") if self.attempt_log else None
        return float(last) if last is not None else 0.0


@dataclass(slots=True)
class RunSummary:
    """Counts of one run, for the closing summary line and ``status``."""

    processed: int = 0
    skipped: int = 0
    failed: int = 0
    retried: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    #: Group commits (one ``syncfs`` and one SQLite commit each) and the intents they recorded.
    groups: int = 0
    grouped: int = 0
    #: Seconds workers sat idle while intents were ready for them (summed over workers).
    idle_queued_s: float = 0.0

    @property
    def seconds(self) -> float:
        """Wall-clock seconds of the run so far."""
        return (self.finished or time.monotonic()) - self.started

    @property
    def total(self) -> int:
        """Intents with a final outcome."""
        return self.processed + self.skipped + self.failed

    def count(self, outcome: Outcome) -> None:
        """Count one filed intent."""
        if outcome is Outcome.SUCCESS:
            self.processed += 1
        elif outcome is Outcome.SKIPPED:
            self.skipped += 1
        else:
            self.failed += 1

    def fields(self) -> dict[str, Any]:
        """The counts as log and ``last_run`` fields."""
        return {
            "processed": self.processed,
            "skipped": self.skipped,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
            "groups": self.groups,
            "mean_group": round(self.grouped / self.groups, 1) if self.groups else 0.0,
            "idle_queued_s": round(self.idle_queued_s, 3),
        }

    def line(self) -> str:
        """The one-line summary printed at the end of ``--once``."""
        secs = self.seconds
        rate = self.total / secs if secs > 0 else 0.0
        return (
            f"processed {self.processed}, skipped {self.skipped}, failed {self.failed} "
            f"in {secs:.2f}s ({rate:.1f} intents/s)"
        )


class Filing(str, Enum):
    """What the recorder did with one final result."""

    FILED = "filed"  # recorded and moved
    CHANGED = "changed"  # new content arrived while porch ran: not filed, to be taken again
    GONE = "gone"  # the file left the handoff before it could be moved
    UNMOVABLE = "unmovable"  # recorded, but the move failed

    def __str__(self) -> str:
        return self.value


@dataclass(slots=True)
class Filed:
    """The recorder's answer for one result."""

    result: WorkResult
    kind: Filing
    moved_to: str | None = None
    error: str = ""


@dataclass(slots=True)
class GroupRecorded:
    """The recorder's answer for one group: each result's :class:`Filed`, or why none was recorded."""

    group: list[WorkResult]
    filed: list[Filed]
    error: str | None = None
    #: The error is a storage fault (conductor_loop.faults): intake pauses until a probe passes.
    fault: str | None = None
