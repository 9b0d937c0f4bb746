"""The watch source: settled paths from the Rust watcher, filtered by the one name rule.

Which watcher (README, ``--watch``): inotify on local filesystems; polling (``PollWatcher``: the directory
listed every ``--poll-interval``, a file settled once its inode, size and mtime stayed put for
``--debounce``) on network filesystems, where inotify does not see what other hosts write. ``auto`` asks
``statfs(2)`` for the handoff's filesystem type (:func:`choose_backend`). Both have the same interface.

The Rust side is dumb about names: it reports every name that settled (the watchfiles way). This
module keeps the intents with the layout's :class:`~conductor_loop.layout.NameRule`, the same rule
the directory scan applies, so a producer's ``intent-a.json.tmp`` is never taken, whatever
``--pattern`` says. The loop waits on :meth:`WatchSource.fileno` (the watcher's own eventfd) in its
one ``wait``, beside the workers, the recorder and the signal pipe, then calls
:meth:`WatchSource.take`, which never blocks. No thread of ours sits in between.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from conductor_loop import _core
from conductor_loop.layout import Layout

INOTIFY = "inotify"
POLL = "poll"


def _existing(path: str) -> str:
    """``path`` or its nearest existing ancestor (the handoff may not exist yet)."""
    path = os.path.abspath(path)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def choose_backend(handoff: str, requested: str) -> tuple[str, str]:
    """``(backend, reason)`` for ``--watch requested`` on ``handoff``: ``auto`` decides by filesystem type."""
    if requested != "auto":
        return requested, "set by --watch"
    where = _existing(handoff)
    try:
        fs = _core.fs_type(where)
        network = _core.is_network_fs(where)
    except OSError as exc:
        return INOTIFY, f"filesystem type unknown ({exc.strerror or exc})"
    return (POLL, f"{fs} is a network filesystem") if network else (INOTIFY, f"{fs} is local")


@dataclass(slots=True)
class WatchTake:
    """What the watcher said since the last :meth:`WatchSource.take`."""

    paths: list[str] = field(default_factory=list)
    rescan: bool = False
    events: int = 0
    #: The watch was lost (False) or came back (True), in order.
    transitions: list[bool] = field(default_factory=list)
    #: The watcher failed for good.
    error: str | None = None


class WatchSource:
    """One handoff directory's watcher, as a readable file descriptor and a non-blocking take."""

    def __init__(self, layout: Layout, debounce_ms: int, backend: str = INOTIFY, poll_interval: float = 1.0) -> None:
        self.layout = layout
        self.backend = backend
        self.watcher: _core.BaseWatcher
        if backend == POLL:
            self.watcher = _core.PollWatcher(layout.root, debounce_ms, max(1, round(poll_interval * 1000)))
        else:
            self.watcher = _core.Watcher(layout.root, debounce_ms)
        self._alive = True
        self._failed = False

    def wait_objects(self) -> list[int]:
        """The watcher's descriptor, readable while a batch is ready (none once the watcher failed)."""
        return [] if self._failed else [self.watcher.fileno()]

    def take(self) -> WatchTake:
        """Everything the watcher reported since the last call, intents only (never blocks)."""
        if self._failed:
            return WatchTake()
        try:
            batch = self.watcher.take_batch()
            alive = self.watcher.is_alive()
        except Exception as exc:  # noqa: BLE001 - reported through the loop, never silently
            self._failed = True
            return WatchTake(error=str(exc))
        out = WatchTake(
            paths=[p for p in batch.paths if self.layout.intent_path(p)],
            rescan=batch.rescan,
            events=batch.events,
        )
        if alive != self._alive:
            self._alive = alive
            out.transitions.append(alive)
        return out

    def pending(self) -> set[str]:
        """Paths the watcher sees being written (or settled but not yet taken)."""
        return set(self.watcher.pending())

    def set_debounce(self, debounce_ms: int) -> None:
        """Change the quiet period (SIGHUP)."""
        self.watcher.set_debounce(debounce_ms)

    def close(self) -> None:
        """Stop watching; idempotent."""
        self.watcher.close()
