"""Tasks out on the fleet: which are in flight, what is due, what may go out (plain state, a clock).

A *flight* is one published (or being published) task of one claimed intent. :class:`Flights` owns the
rules of the ingest side (docs/operations.md, "Fleet mode"):

- back-pressure: at most ``cap`` flights at once (``--fleet-inflight``), and none more once the tasks held
  reach ``bytes_cap`` bytes (``--fleet-inflight-bytes``: each is kept, its intent included, until its result is
  decided, for republishing; one task may cross the cap, so an intent larger than it still goes out, alone);
  the rest wait as files;
- a publish that failed (broker down, stream full) is tried again after a backoff (0.5 s doubling to
  10 s), the intent staying claimed in the handoff;
- the ingest-side deadline: a task without a result ``lease x (max_deliver + 1) + timeout`` after it
  went out is probed (is it still in the task stream?); one the broker lost is published again (the
  same task id, under a fresh ``Nats-Msg-Id``: the duplicate window would drop it otherwise), at most
  ``MAX_LOSSES`` times;
- only a result whose task is in flight counts (:meth:`Flights.take`); any other is a duplicate.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from enum import Enum

from conductor_loop import _core
from conductor_loop.clock import SYSTEM_CLOCK, Clock
from conductor_loop.records import WorkItem, WorkResult

#: Backoff of a failed publish: first delay, and the longest.
BACKOFF_FIRST = 0.5
BACKOFF_CAP = 10.0
#: A task the broker lost more often than this is not published again: its intent fails. A task every worker
#: refuses (``fleet.worker.bad_task``: one it cannot read) is terminated at each delivery, so it is lost each time.
MAX_LOSSES = 3


class Phase(str, Enum):
    """Where a flight is."""

    PUBLISHING = "publishing"  # handed to the bridge, no PubAck yet
    OUT = "out"  # stored in the task stream (or taken by a worker)
    BACKOFF = "backoff"  # the publish failed; published again at ``retry_at``


@dataclass(slots=True, eq=False)
class Flight:
    """One task of one claimed intent."""

    task_id: str
    item: WorkItem
    #: The intent as read, hashed and validated on the ingest (sha256, size, stat, correlation id).
    res: WorkResult
    t0: float
    body: bytes
    phase: Phase = Phase.PUBLISHING
    seq: int | None = None
    deadline: float = 0.0
    retry_at: float = 0.0
    failures: int = 0
    publishes: int = 0
    probing: bool = False
    went_out: float = 0.0
    #: Times the broker was found to have lost it (its republish then needs a fresh ``Nats-Msg-Id``).
    losses: int = 0
    adopted: bool = False
    #: The result cap (``max_result_bytes``) its body carries: 0 when it was encoded before the broker answered.
    result_cap: int = 0

    @property
    def path(self) -> str:
        """The intent's path in the handoff."""
        return self.item.path

    @property
    def lost_too_often(self) -> bool:
        """The broker lost it more than ``MAX_LOSSES`` times: not published again, its intent fails."""
        return self.losses > MAX_LOSSES

    @property
    def msg_id(self) -> str:
        """The ``Nats-Msg-Id`` to publish it with: the task id, so a repeat is a broker duplicate; after the
        broker lost it, ``<task id>.<n>`` (the duplicate window would drop the task id itself)."""
        return self.task_id if not self.losses else f"{self.task_id}.{self.losses}"


class Flights:
    """The table of flights, by task id and by task-stream sequence."""

    def __init__(self, cap: int, lease: float, max_deliver: int, timeout: float, clock: Clock = SYSTEM_CLOCK,
                 bytes_cap: int | None = None) -> None:
        self.cap = cap
        self.bytes_cap = bytes_cap
        #: Bytes of the encoded tasks held (``Flight.body``).
        self.bytes = 0
        self.clock = clock
        self.deadline_s = lease * (max_deliver + 1) + timeout
        self._by_id: dict[str, Flight] = {}
        self._by_seq: dict[int, str] = {}
        self.changed = False

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._by_id

    def room(self) -> int:
        """How many more tasks may go out now: none once the tasks held reach ``bytes_cap`` bytes (if given)."""
        if self.bytes_cap is not None and self.bytes >= self.bytes_cap:
            return 0
        return max(0, self.cap - len(self._by_id))

    def all(self) -> list[Flight]:
        """Every flight."""
        return list(self._by_id.values())

    def add(self, f: Flight) -> None:
        """A task about to be handed to the bridge."""
        old = self._by_id.get(f.task_id)
        self.bytes += len(f.body) - (len(old.body) if old is not None else 0)
        self._by_id[f.task_id] = f
        f.phase, f.publishes = Phase.PUBLISHING, f.publishes + 1
        self.changed = True

    def rebody(self, f: Flight, body: bytes, result_cap: int) -> None:
        """``f`` is published from now on as ``body``, which carries ``result_cap``."""
        self.bytes += len(body) - len(f.body)
        f.body, f.result_cap = body, result_cap

    def get(self, task_id: str) -> Flight | None:
        """The flight of ``task_id``, if it is in flight."""
        return self._by_id.get(task_id)

    def by_seq(self, seq: int) -> Flight | None:
        """The flight stored at ``seq`` in the task stream."""
        tid = self._by_seq.get(seq)
        return self._by_id.get(tid) if tid is not None else None

    def take(self, task_id: str) -> Flight | None:
        """Remove and return the flight of ``task_id`` (its result counts); ``None``: not in flight."""
        f = self._by_id.pop(task_id, None)
        if f is not None:
            self.bytes -= len(f.body)
            if f.seq is not None:
                self._by_seq.pop(f.seq, None)
            self.changed = True
        return f

    # -- the broker's answers --------------------------------------------------------------------
    def published(self, task_id: str, seq: int) -> Flight | None:
        """The PubAck came: the task is out; its deadline starts (not again for a republish)."""
        f = self._by_id.get(task_id)
        if f is None:
            return None
        now = self.clock.monotonic()
        if f.seq is not None and f.seq != seq:
            self._by_seq.pop(f.seq, None)
        f.phase, f.seq, f.failures, f.probing = Phase.OUT, seq, 0, False
        if not f.went_out:
            f.went_out = now
        f.deadline = now + self.deadline_s
        self._by_seq[seq] = task_id
        return f

    def failed(self, task_id: str) -> Flight | None:
        """The publish failed: try again after the backoff."""
        f = self._by_id.get(task_id)
        if f is None:
            return None
        f.failures += 1
        f.phase = Phase.BACKOFF
        f.retry_at = self.clock.monotonic() + min(BACKOFF_CAP, BACKOFF_FIRST * 2.0 ** (f.failures - 1))
        return f

    def due_publish(self) -> list[Flight]:
        """Flights whose backoff ended (marked publishing again)."""
        now = self.clock.monotonic()
        due = [f for f in self._by_id.values() if f.phase is Phase.BACKOFF and f.retry_at <= now]
        for f in due:
            f.phase, f.publishes = Phase.PUBLISHING, f.publishes + 1
        return due

    def due_probe(self) -> list[Flight]:
        """Flights out past their deadline, not being probed yet (marked probing)."""
        now = self.clock.monotonic()
        due = [f for f in self._by_id.values() if f.phase is Phase.OUT and not f.probing and f.deadline <= now]
        for f in due:
            f.probing = True
        return due

    def probed(self, task_id: str, present: bool) -> Flight | None:
        """The probe's answer: still stored (a new deadline) or lost (returned: to be published again)."""
        f = self._by_id.get(task_id)
        if f is None or not f.probing:
            return None
        f.probing = False
        if present:
            f.deadline = self.clock.monotonic() + self.deadline_s
            return None
        f.phase, f.publishes, f.losses = Phase.PUBLISHING, f.publishes + 1, f.losses + 1
        return f

    def next_in(self) -> float | None:
        """Seconds until the next backoff or deadline ends."""
        times = [f.retry_at if f.phase is Phase.BACKOFF else f.deadline
                 for f in self._by_id.values() if f.phase is Phase.BACKOFF or (f.phase is Phase.OUT and not f.probing)]
        return min(times) - self.clock.monotonic() if times else None


# -- what an earlier run left in flight (restart) -------------------------------------------------
def save(path: str, flights: Flights) -> None:
    """Write the table's task ids with (name, sha256, attempt), so a restart republishes the same tasks."""
    doc = {"v": 1, "tasks": {f.task_id: [os.path.basename(f.path), f.res.sha256, f.item.attempt]
                             for f in flights.all()}}
    _core.write_atomic(path, json.dumps(doc, separators=(",", ":")).encode(), False, 0o640)
    flights.changed = False


def load(path: str) -> dict[str, tuple[str, str, int]]:
    """The tasks an earlier run left in flight: intent name → (task id, sha256, attempt); {} if none."""
    try:
        with open(path, "rb") as fh:
            doc = json.loads(fh.read(8 * 1024 * 1024))
        tasks = doc["tasks"]
        return {str(v[0]): (str(tid), str(v[1]), int(v[2])) for tid, v in tasks.items()}
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
        return {}
