"""Intake: which candidate paths are settled, and which are still being written.

The watcher reports paths that settled (closed after writing, then quiet for the debounce); a sweep
of the directory finds candidates an event missed. A swept file counts as settled when the watcher
does not see it being written, its mtime is older than the debounce and no process holds it open for
writing (a read lease tells: :func:`survey`); otherwise it is *young* and looked at again when
its quiet period ends. Where leases are unavailable the mtime alone decides, and the feed says so in
the log once (README, "Settle, then take"). Once mode gives young files up after
``max(5 s, 10 x debounce)`` with nothing else to do (README, ``run``).

Plain state with an injected clock: no processes, no threads.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from typing import NamedTuple

from conductor_loop import _core
from conductor_loop.clock import SYSTEM_CLOCK, Clock

#: A young file is looked at again this long after its quiet period ends.
LOOK_AGAIN_SLACK = 0.001
#: A quiet file still open for writing is looked at again after the debounce, at least this long.
OPEN_LOOK_AGAIN = 0.05
DEFAULT_PRIORITY = 5


class Facts(NamedTuple):
    """What a sweep learns of one candidate (:func:`survey`)."""

    #: Seconds since the epoch of its last change; None when it is gone (or its directory is).
    mtime: float | None
    #: Some process holds it open for writing; None when no read lease can be taken on it.
    writing: bool | None
    #: Its ``"priority"`` (0..10) as found in its first bytes, or :data:`DEFAULT_PRIORITY`.
    priority: int


def survey(paths: Sequence[str]) -> list[Facts]:
    """:class:`Facts` of each path, one open per file, GIL released (``_core.survey``, ``rust/survey.rs``).

    The priority is a scheduling hint only: the worker's single read is what is validated and executed.
    Never blocks, never follows links; a link, a FIFO or an unreadable file is reported by its ``lstat``.
    """
    return [Facts(m, w, DEFAULT_PRIORITY if p is None else p) for m, w, p in _core.survey(paths)]


def peek_priority(path: str) -> int:
    """Best-effort ``priority`` of one intent for queue ordering (the rule of :func:`survey`)."""
    return survey([path])[0].priority


class Intake:
    """Tracks young files and decides which swept candidates are settled."""

    def __init__(
        self, debounce: float, clock: Clock = SYSTEM_CLOCK, facts: Callable[[Sequence[str]], list[Facts]] = survey
    ) -> None:
        self.debounce = debounce
        self.clock = clock
        self.facts = facts
        #: Young paths and the wall-clock time to look at them again.
        self.young: dict[str, float] = {}
        self._waiting_since: float | None = None
        self._lease_unknown: str | None = None
        self._lease_reported = False

    @property
    def give_up_after(self) -> float:
        """How long once mode waits for young files when nothing else is left."""
        return max(5.0, 10 * self.debounce)

    def settled(
        self, paths: Iterable[str], *, pending: Collection[str] = (), known: Callable[[str], bool] = lambda _p: False
    ) -> dict[str, int]:
        """Those of swept ``paths`` that are settled, each with its priority; the others are remembered as young.

        ``pending``: paths the watcher sees being written; ``known``: paths already queued or running
        (skipped). The facts of the rest are gathered in one batch (:func:`survey`).
        """
        now = self.clock.time()
        fresh: list[str] = []
        for path in paths:
            if known(path):
                self.young.pop(path, None)
            else:
                fresh.append(path)
        ready: dict[str, int] = {}
        for path, facts in zip(fresh, self.facts(fresh) if fresh else (), strict=True):
            if facts.mtime is None:  # gone (or its directory is)
                self.young.pop(path, None)
            elif path in pending or now - facts.mtime < self.debounce:
                self.young[path] = max(now, facts.mtime + self.debounce) + LOOK_AGAIN_SLACK
            elif self._open_for_write(path, facts.writing):  # quiet, but its writer still holds it: look again
                self.young[path] = now + max(self.debounce, OPEN_LOOK_AGAIN)
            else:
                self.young.pop(path, None)
                ready[path] = facts.priority
        return ready

    def _open_for_write(self, path: str, answer: bool | None) -> bool:
        if answer is None and not self._lease_reported:
            self._lease_reported, self._lease_unknown = True, path
        return bool(answer)

    def lease_unavailable(self) -> str | None:
        """The first path no lease could be taken on, once (then None): the caller logs it."""
        path, self._lease_unknown = self._lease_unknown, None
        return path

    def due(self) -> list[str]:
        """Young paths whose quiet period has ended (to be passed to :meth:`settled` again)."""
        now = self.clock.time()
        return [p for p, t in self.young.items() if t <= now]

    def forget(self, path: str) -> None:
        """``path`` was taken (or is known): stop tracking it."""
        self.young.pop(path, None)

    def next_look(self) -> float | None:
        """Seconds until the next young path is due, or None."""
        if not self.young:
            return None
        return min(self.young.values()) - self.clock.time() + 0.005

    def waited_out(self, working: bool) -> bool:
        """Once mode: True when only young files are left and they were waited for long enough.

        ``working``: anything else is queued, running or being recorded (the wait starts afresh after).
        """
        if not self.young or working:
            self._waiting_since = None
            return False
        now = self.clock.monotonic()
        if self._waiting_since is None:
            self._waiting_since = now
            return False
        return now - self._waiting_since >= self.give_up_after
