"""Which watcher sees the handoff: inotify on local filesystems, polling on network ones (README "Usage").

inotify sees only what this host writes, so on NFS, SMB/CIFS or FUSE a producer on another host would be
found by the periodic sweep alone. ``--watch auto`` (the default) therefore asks ``statfs(2)`` for the
filesystem type of the handoff directory and polls on a network filesystem; ``--watch inotify`` and
``--watch poll`` force a choice. Both watchers are the Rust core's and have the same interface.
"""

from __future__ import annotations

import os

from conductor_loop import _core

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


def open_watcher(
    handoff: str, backend: str, debounce_ms: int, poll_interval: float
) -> _core.Watcher | _core.PollWatcher:
    """Start the watcher ``backend`` (``inotify`` or ``poll``) on ``handoff``."""
    if backend == POLL:
        return _core.PollWatcher(handoff, debounce_ms, max(1, round(poll_interval * 1000)))
    return _core.Watcher(handoff, debounce_ms)
