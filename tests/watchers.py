"""Helpers shared by the tests of the Rust watchers (``_core.Watcher`` and ``_core.PollWatcher``)."""

from __future__ import annotations

import select
import time
from collections.abc import Callable

from conductor_loop import _core


def collect(w: _core.BaseWatcher, seconds: float) -> tuple[list[str], bool]:
    """All paths (and whether any rescan) the watcher emits within ``seconds``."""
    paths: list[str] = []
    rescan = False
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        b = w.next_batch(int(left * 1000) + 1)
        paths.extend(b.paths)
        rescan |= b.rescan
    return paths, rescan


def readable(w: _core.BaseWatcher, seconds: float = 0.0) -> bool:
    """Whether ``w.fileno()`` is readable within ``seconds``."""
    r, _, _ = select.select([w.fileno()], [], [], seconds)
    return bool(r)


def wait_for(cond: Callable[[], object], seconds: float) -> bool:
    """Poll ``cond`` every 20 ms until it is truthy (True) or ``seconds`` pass (False)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False
