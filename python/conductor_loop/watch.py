"""The watch source: settled paths from the Rust ``Watcher``, filtered by the one name rule.

The Rust side reports every name that settled; this module keeps the intents (the layout's
:class:`~conductor_loop.layout.NameRule`, the same rule the directory scan applies), so a producer's
``intent-a.json.tmp`` is never taken, whatever ``--pattern`` says. The loop waits on
:meth:`WatchSource.fileno` together with the workers, the recorder and the signal pipe, then calls
:meth:`WatchSource.take`, which never blocks.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque
from dataclasses import dataclass, field

from conductor_loop import _core
from conductor_loop.layout import Layout


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

    def __init__(self, layout: Layout, debounce_ms: int) -> None:
        self.layout = layout
        self.watcher = _core.Watcher(layout.root, list(layout.rule.patterns), debounce_ms)
        self._news: deque[WatchTake] = deque()
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._thread = threading.Thread(target=self._pump, name="conductor-watcher", daemon=True)
        self._thread.start()

    def fileno(self) -> int:
        """Readable when :meth:`take` has something."""
        return self._wake_r

    def take(self) -> WatchTake:
        """Everything the watcher reported since the last call, intents only (never blocks)."""
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 4096):
                pass
        out = WatchTake()
        while self._news:
            n = self._news.popleft()
            out.paths += [p for p in n.paths if self.layout.intent_path(p)]
            out.rescan = out.rescan or n.rescan
            out.events += n.events
            out.transitions += n.transitions
            out.error = n.error or out.error
        return out

    def pending(self) -> set[str]:
        """Paths the watcher sees being written (or settled but not yet taken)."""
        return set(self.watcher.pending())

    def set_debounce(self, debounce_ms: int) -> None:
        """Change the quiet period (SIGHUP)."""
        self.watcher.set_debounce(debounce_ms)

    def close(self) -> None:
        """Stop watching; idempotent."""
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.watcher.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _post(self, news: WatchTake) -> None:
        self._news.append(news)
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"!")

    def _pump(self) -> None:
        was_alive = True
        while not self._stop.is_set():
            try:
                batch = self.watcher.next_batch(200)
            except Exception as exc:  # noqa: BLE001 - reported through the loop, never silently
                self._post(WatchTake(error=str(exc)))
                return
            alive = self.watcher.is_alive()
            if alive != was_alive:
                was_alive = alive
                self._post(WatchTake(transitions=[alive]))
            if batch.paths or batch.rescan or batch.events:
                self._post(WatchTake(paths=list(batch.paths), rescan=batch.rescan, events=batch.events))
