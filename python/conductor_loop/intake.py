"""Intake: which candidate paths are settled, and which are still being written.

The watcher reports paths that settled (closed after writing, then quiet for the debounce); a sweep
of the directory finds candidates an event missed. A swept file counts as settled when the watcher
does not see it being written, its mtime is older than the debounce and no process holds it open for
writing (a read lease tells: :func:`open_writer`); otherwise it is *young* and looked at again when
its quiet period ends. Where leases are unavailable the mtime alone decides, and the feed says so in
the log once (README, "Settle, then take"). Once mode gives young files up after
``max(5 s, 10 x debounce)`` with nothing else to do (README, ``run``).

Plain state with an injected clock: no processes, no threads.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Collection, Iterable

from conductor_loop import _core
from conductor_loop.clock import SYSTEM_CLOCK, Clock

#: A young file is looked at again this long after its quiet period ends.
LOOK_AGAIN_SLACK = 0.001
#: A quiet file still open for writing is looked at again after the debounce, at least this long.
OPEN_LOOK_AGAIN = 0.05
DEFAULT_PRIORITY = 5
_PRIORITY = re.compile(rb'"priority"\s*:\s*(\d{1,3})\b')


def peek_priority(path: str) -> int:
    """Best-effort ``priority`` of an intent for queue ordering (never blocks, never follows links).

    A scheduling hint only: the worker's single read is what is validated and executed.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return DEFAULT_PRIORITY
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return DEFAULT_PRIORITY
        m = _PRIORITY.search(os.read(fd, 65536))
    except OSError:
        return DEFAULT_PRIORITY
    finally:
        os.close(fd)
    if m is None:
        return DEFAULT_PRIORITY
    value = int(m.group(1))
    return value if 0 <= value <= 10 else DEFAULT_PRIORITY


def open_writer(path: str) -> bool | None:
    """Whether some process holds ``path`` open for writing (:func:`conductor_loop._core.open_for_write`).

    ``None`` when leases are unavailable for it; a file that is gone or not a regular file is "not
    open" (the worker's validation decides about it).
    """
    try:
        return _core.open_for_write(path)
    except OSError:
        return False


class Intake:
    """Tracks young files and decides which swept candidates are settled."""

    def __init__(
        self, debounce: float, clock: Clock = SYSTEM_CLOCK, writing: Callable[[str], bool | None] = open_writer
    ) -> None:
        self.debounce = debounce
        self.clock = clock
        self.writing = writing
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
        self,
        paths: Iterable[str],
        *,
        pending: Collection[str] = (),
        known: Callable[[str], bool] = lambda _p: False,
        mtime: Callable[[str], float] = lambda p: os.lstat(p).st_mtime,
    ) -> list[str]:
        """Those of swept ``paths`` that are settled; the others are remembered as young.

        ``pending``: paths the watcher sees being written; ``known``: paths already queued or running
        (skipped); ``mtime`` raises ``OSError`` for a path that is gone.
        """
        now = self.clock.time()
        ready: list[str] = []
        for path in paths:
            if known(path):
                self.young.pop(path, None)
                continue
            try:
                modified = mtime(path)
            except OSError:  # gone (or its directory is)
                self.young.pop(path, None)
                continue
            if path in pending or now - modified < self.debounce:
                self.young[path] = max(now, modified + self.debounce) + LOOK_AGAIN_SLACK
                continue
            if self._open_for_write(path):  # quiet, but its writer still holds it: look again later
                self.young[path] = now + max(self.debounce, OPEN_LOOK_AGAIN)
                continue
            self.young.pop(path, None)
            ready.append(path)
        return ready

    def _open_for_write(self, path: str) -> bool:
        answer = self.writing(path)
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
