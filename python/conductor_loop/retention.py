"""Retention (``--cleanup-after``): filed intents, their error logs and status files, and state rows.

Works from the state: rows filed before the cutoff name the files to remove (only inside
``processed/`` and ``failed/``; a status file only when no intent of that name is in the handoff);
the rows are then pruned by age (a row refreshed meanwhile is kept). Runs at most every
``cleanup_after / 10`` (between 1 s and 1 h), a bounded batch of rows at a time.
"""

from __future__ import annotations

import contextlib
import os

from conductor_loop import _core
from conductor_loop.clock import SYSTEM_CLOCK, Clock
from conductor_loop.layout import Layout
from conductor_loop.state import StateStore

BATCH = 2000
"""Rows handled by one :meth:`Retention.clean`."""


class Retention:
    """Removes what is older than ``cleanup_after`` seconds (0 disables)."""

    def __init__(self, layout: Layout, cleanup_after: float, clock: Clock = SYSTEM_CLOCK) -> None:
        self.layout = layout
        self.cleanup_after = cleanup_after
        self.clock = clock
        self._next = 0.0

    def due(self) -> bool:
        """Whether a cleanup should run now (and, if so, schedules the next one)."""
        if not self.cleanup_after:
            return False
        now = self.clock.monotonic()
        if now < self._next:
            return False
        self._next = now + min(3600.0, max(1.0, self.cleanup_after / 10))
        return True

    def clean(self, state: StateStore) -> tuple[int, int] | None:
        """Remove old files and prune old rows; (files, rows) removed, or None when nothing was old.

        At most :data:`BATCH` rows a call (a state with a million old rows is not read at once): when a
        batch is full, only its rows are pruned and the next call is due at once.
        """
        now = self.clock.time()
        rows = state.filed_before(now - self.cleanup_after, BATCH)
        removed = 0
        for row in rows:
            removed += self._remove_files(row.path, row.moved_to, row.status)
        if not rows:
            return None
        if len(rows) < BATCH:
            return removed, state.prune(self.cleanup_after)
        self._next = 0.0
        return removed, state.prune(self.cleanup_after, now=now, paths=[r.path for r in rows])

    def _remove_files(self, path: str, moved_to: str | None, status: str) -> int:
        targets = [moved_to] if moved_to else []
        if moved_to and status == "failed":
            targets.append(self.layout.error_log_path(os.path.basename(moved_to)))
        removed = 0
        # A link in place of a directory (LinkInPath) removes nothing; the next sweep stops the loop.
        for t in targets:
            if t and os.path.dirname(t) in self.layout.filing_dirs:
                with contextlib.suppress(FileNotFoundError, _core.LinkInPath):
                    self.layout.anchor.unlink(t)
                    removed += 1
        with contextlib.suppress(FileNotFoundError, _core.LinkInPath):
            if not os.path.lexists(path):
                self.layout.anchor.unlink(self.layout.status_path(os.path.basename(path)))
                removed += 1
        return removed
