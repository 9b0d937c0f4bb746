"""The feed: candidate paths from the watch and from sweeps, through intake, into the queue.

Watcher batches carry settled paths (offered at once, and they release an intent whose move failed);
sweeps list the directory with the layout's name rule and offer what :class:`~conductor_loop.intake.Intake`
finds settled. A fresh intent is queued with its dedupe basis from the state (the layout's rule).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from conductor_loop.intake import Intake
from conductor_loop.layout import Layout, dedupe_basis
from conductor_loop.quarantine import Quarantine
from conductor_loop.records import WorkItem
from conductor_loop.state import StateStore
from conductor_loop.telemetry import HandoffChecked, Rescanned, Telemetry, WatchNews
from conductor_loop.watch import WatchSource
from conductor_loop.workqueue import WorkQueue


class Feed:
    """Offers candidates to the queue (once each, with their previous state)."""

    def __init__(self, layout: Layout, intake: Intake, queue: WorkQueue, telemetry: Telemetry) -> None:
        self.layout = layout
        self.intake = intake
        self.queue = queue
        self.telemetry = telemetry
        self.state: StateStore | None = None
        self.watch: WatchSource | None = None
        self.quarantine: Quarantine | None = None

    def take_watch(self) -> bool:
        """Offer what the watch settled; True when it asks for a rescan (the caller sweeps)."""
        if self.watch is None:
            return False
        news = self.watch.take()
        rescan = news.rescan
        for alive in news.transitions:
            self.telemetry.watcher_changed(alive)
            rescan = rescan or alive
        if news.error is not None:
            self.telemetry.emit(WatchNews(error=news.error))
        if news.events:
            self.telemetry.emit(WatchNews(events=news.events))
        if news.paths:
            self.offer(news.paths, settled=True)
        if rescan:
            self.telemetry.emit(Rescanned("watcher asked for a rescan"))
        return rescan

    def scan(self) -> list[str]:
        """Intent candidates directly in the handoff directory; hostile names found are quarantined."""
        try:
            intents, hostile = self.layout.scan_all()
        except OSError as exc:  # gone, replaced by a file, unreadable: health says so; retried later
            reason = f"cannot list {self.layout.root}: {exc.strerror}"
            self.telemetry.emit(HandoffChecked(False, reason))
            return []
        if hostile and self.quarantine is not None:
            self.quarantine.file(hostile)
        return intents

    def sweep(self) -> int:
        """Offer every candidate that is not being written and not already known; how many were queued."""
        return self.take_settled(self.scan())

    def take_settled(self, paths: Iterable[str]) -> int:
        """Offer those of ``paths`` that are settled; the others stay young."""
        pending = self.watch.pending() if self.watch is not None else set()
        settled = self.intake.settled(paths, pending=pending, known=self.queue.knows)
        unknown = self.intake.lease_unavailable()
        if unknown is not None:
            self.telemetry.note("scan.lease_unavailable", level=30, intent=os.path.basename(unknown),
                                reason="cannot take a read lease (not the file's owner without CAP_LEASE, or a "
                                "filesystem without leases); files found by a scan are taken once quiet for --debounce")
        return self.offer(settled, settled=False, priorities=settled)

    def look_again(self) -> None:
        """Young files whose quiet period ended."""
        due = self.intake.due()
        if due:
            self.take_settled(due)

    def offer(self, paths: Iterable[str], *, settled: bool, priorities: Mapping[str, int] | None = None) -> int:
        """Queue the fresh ones of ``paths`` with their dedupe basis (and their priority, when the sweep's
        survey found it already); returns how many were queued."""
        fresh = self.queue.admit(paths, settled=settled)
        for path in fresh:
            self.intake.forget(path)
        if not fresh or self.state is None:
            return 0
        rows = self.state.get_many(fresh)
        for path in fresh:
            basis = dedupe_basis(rows.get(path))
            prev_sha, prev_when = basis if basis is not None else (None, None)
            hint = priorities.get(path) if priorities is not None else None
            self.queue.push(WorkItem(path=path, prev_sha256=prev_sha, prev_when=prev_when), priority=hint)
        self.telemetry.total_hint += len(fresh)
        return len(fresh)

