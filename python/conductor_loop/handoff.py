"""The handoff directory as the loop holds it: its layout made and writable, its lock, its state.

Also the one unusual event in its life: deleted and made again while the loop runs, it is adopted
(its new lock taken, a fresh state opened) or, when another process holds the new lock, given up.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from typing import Any

from conductor_loop import lock
from conductor_loop.layout import Layout
from conductor_loop.lock import LockHeld
from conductor_loop.records import FatalError
from conductor_loop.state import StateStore
from conductor_loop.telemetry import HandoffChecked, Note


class HandoffHold:
    """Owns the lock fd and the state connection of the main loop."""

    def __init__(self, layout: Layout, out: str) -> None:
        self.layout = layout
        self.out = out
        self.state: StateStore | None = None
        self._lock_fd: int | None = None
        self._ino = 0

    def prepare(self) -> None:
        """Create the layout and the output dir; raise :class:`FatalError` when not writable or when one
        of the loop's directories is a symbolic link."""
        self.refuse_symlinks()
        try:
            self.layout.make_dirs(self.out)
        except OSError as exc:
            raise FatalError(f"cannot create directory {exc.filename}: {exc.strerror}") from exc
        bad = self.layout.unwritable()
        if bad is not None:
            raise FatalError(f"directory {bad} is not writable")

    def refuse_symlinks(self) -> None:
        """Raise :class:`FatalError` when one of the loop's directories is (now) a symbolic link."""
        link = self.layout.symlinked()
        if link is not None:
            raise FatalError(f"{link} is a symbolic link: refusing to write through it (see docs/SECURITY.md)")

    def check(self) -> HandoffChecked:
        """The sweep's look at the handoff: made again if it was deleted (when it can be), refused (raises
        :class:`FatalError`) when one of its directories is now a link, and whether it is writable."""
        if not os.path.isdir(self.layout.root):
            with contextlib.suppress(FatalError):
                self.prepare()
        self.refuse_symlinks()  # a sub-directory swapped for a link: stop (exit 1), write nothing
        writable = os.access(self.layout.root, os.W_OK | os.X_OK)
        return HandoffChecked(writable, "" if writable else f"{self.layout.root} is not writable")

    def take(self) -> None:
        """Prepare the directory and take its lock (raises :class:`FatalError`, :class:`LockHeld`)."""
        self.prepare()
        self._lock_fd = lock.acquire(self.layout.lock)
        self._ino = os.stat(self.layout.root).st_ino

    def open_state(self) -> list[Note]:
        """Open the state; notes say whether it was moved aside (corrupt) or imported from the Go loop."""
        self.state = StateStore(self.layout.root)
        self.state.set_meta("live", None)  # a read-only or full state fails here, at start, not mid-run
        notes = []
        opened = self.state.opened
        if opened.check_reason is not None:
            took = round(opened.check_seconds, 3)
            notes.append(Note("state.checked", {"reason": opened.check_reason, "seconds": took}))
        if self.state.recovered_from:
            notes.append(Note("state.recovered", {"moved_aside": self.state.recovered_from}, 30))
        if self.state.imported:
            notes.append(Note("state.imported", {"count": self.state.imported}))
        return notes

    def adopt_recreated(self) -> Note | None:
        """If the directory was made again: take its lock and a fresh state. ``loop.lock_lost`` means stop."""
        try:
            ino = os.stat(self.layout.root).st_ino
        except FileNotFoundError:
            return None
        if ino == self._ino or self.state is None:
            return None
        try:
            fd = lock.acquire(self.layout.lock)
        except (LockHeld, OSError) as exc:
            return Note("loop.lock_lost", {"reason": str(exc)}, 40)
        if self._lock_fd is not None:
            lock.release(self._lock_fd)
        self._lock_fd, self._ino = fd, ino
        with contextlib.suppress(OSError):  # else the anchor opens it again itself when it finds it deleted
            self.layout.anchor.reopen()
        self.state.close()
        self.state = StateStore(self.layout.root)
        return Note("loop.handoff_recreated", {"handoff": self.layout.root})

    def release(self, last_run: dict[str, Any]) -> None:
        """Store the run's summary, close the state, drop the lock."""
        if self.state is not None:
            with contextlib.suppress(sqlite3.Error):  # disk full or read-only: the run's summary is not kept
                self.state.set_meta("last_run", last_run)
                self.state.set_meta("live", None)
            self.state.close()
        if self._lock_fd is not None:
            lock.release(self._lock_fd)
            self._lock_fd = None
