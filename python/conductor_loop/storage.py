"""Storage faults: a full disk, a read-only state, no file descriptors left (README, "Disk full").

Such a fault is the environment's, never the intent's: the loop pauses intake (no new work is handed
to workers; what is queued stays queued, nothing is filed in ``failed/`` for it), says so on
``/readyz``, in ``conductor_intake_paused`` and in the log (``intake.paused``), probes again after
0.5 s, 1 s, 2 s … (at most 30 s), and resumes when a probe passes (``intake.resumed``). At start, a
fault is one clear line naming the path and the errno (exit 1), never a traceback.

Which errors are faults is :mod:`conductor_loop.faults`' rule. Here:

- :func:`probe`: the check that ends a pause;
- :class:`IntakePause`: the pause and its backoff, a plain policy with an injected clock;
- :class:`StorageGuard`: the loop's side (trip, probe, resume, guarded writes of the main thread).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from conductor_loop.clock import SYSTEM_CLOCK, Clock
from conductor_loop.faults import LOW_SPACE, fault_of, space_fault
from conductor_loop.state import StateStore
from conductor_loop.telemetry import StorageChecked, Telemetry

T = TypeVar("T")
#: After a loop turn cut short by a fault (before its wait), pause this long.
SETTLE = 0.05


def probe(directories: tuple[str, ...], state: StateStore | None) -> str | None:
    """Write, fsync and remove :data:`LOW_SPACE` bytes in each directory, then write the state: the fault, or None."""
    for d in directories:
        reason = space_fault(d)
        if reason is not None:
            return reason
        path = os.path.join(d, f".conductor-probe-{os.getpid()}.tmp")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            try:
                os.write(fd, bytes(LOW_SPACE))
                os.fsync(fd)
            finally:
                os.close(fd)
                os.unlink(path)
        except OSError as exc:
            return fault_of(exc, path) or f"{path}: {exc}"
    if state is not None:
        try:
            state.set_meta("probe", None)
        except sqlite3.Error as exc:
            return fault_of(exc, state.path) or f"{state.path}: {exc}"
    return None


class IntakePause:
    """Whether intake is paused for a storage fault, and when to probe again (0.5 s doubling to 30 s)."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK, base: float = 0.5, cap: float = 30.0) -> None:
        self.clock = clock
        self.base, self.cap = base, cap
        self.reason: str | None = None
        self.since = 0.0
        self._tries = 0
        self._next = 0.0

    @property
    def paused(self) -> bool:
        """Intake is paused."""
        return self.reason is not None

    def trip(self, reason: str) -> bool:
        """A fault was seen; True when this starts a pause (the reason is kept up to date either way)."""
        started = self.reason is None
        if started:
            self.since, self._tries = self.clock.monotonic(), 0
            self._next = self.since + self.base
        self.reason = reason
        return started

    def due(self) -> bool:
        """Paused, and the time to probe again has come."""
        return self.reason is not None and self.clock.monotonic() >= self._next

    def next_in(self) -> float | None:
        """Seconds until the next probe, or None when not paused."""
        return None if self.reason is None else self._next - self.clock.monotonic()

    def failed(self, reason: str) -> None:
        """A probe failed: wait twice as long (at most ``cap``) before the next."""
        self._tries += 1
        self.reason = reason
        self._next = self.clock.monotonic() + min(self.cap, self.base * 2.0**self._tries)

    def clear(self) -> float:
        """A probe passed: intake resumes; returns how long it was paused (seconds)."""
        self.reason = None
        return self.clock.monotonic() - self.since


class StorageGuard:
    """The loop's side of storage faults: trip the pause, probe on its backoff, resume, guard writes."""

    def __init__(
        self, directories: tuple[str, ...], telemetry: Telemetry, db: str | None = None, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.directories = directories
        self.telemetry = telemetry
        self.db = db
        self.pause = IntakePause(clock)

    @property
    def paused(self) -> bool:
        """Intake is paused (nothing new goes to workers)."""
        return self.pause.paused

    def trip(self, reason: str | None) -> None:
        """A storage fault was seen (``None``: nothing to do)."""
        if reason is not None and self.pause.trip(reason):
            self.telemetry.emit(StorageChecked(False, reason))

    def check(self, state: StateStore | None, *, sweep: bool) -> None:
        """Each turn: probe when due; on a sweep, also look at the free space (pausing before writes fail)."""
        if self.pause.due():
            reason = probe(self.directories, state)
            if reason is None:
                self.telemetry.emit(StorageChecked(True, paused_s=self.pause.clear()))
            else:
                self.pause.failed(reason)
        elif sweep and not self.paused:
            for d in self.directories:
                self.trip(space_fault(d))

    def guard(self, write: Callable[..., T], *args: Any) -> T | None:
        """Run one of the main thread's writes; a storage fault pauses intake instead of stopping the loop."""
        with self.absorbing(settle=0.0):
            return write(*args)
        return None

    @contextlib.contextmanager
    def absorbing(self, settle: float = SETTLE) -> Iterator[None]:
        """A storage fault inside pauses intake; ``settle``: then wait this long (a cut-short turn never spins)."""
        try:
            yield
        except (OSError, sqlite3.OperationalError) as exc:
            reason = fault_of(exc, self.db)
            if reason is None:
                raise
            self.trip(reason)
            time.sleep(settle)
