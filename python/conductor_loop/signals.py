"""Signals as data: handlers only queue the signal number and wake the loop's one ``wait``.

:class:`SignalInbox` installs the handlers (on the main thread only), points Python's wake-up fd at
its pipe, and hands the loop the queued signals; :meth:`SignalInbox.post` lets embedding code and
tests ask for a stop from any thread.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any


class SignalInbox:
    """The loop's signals, queued, with a pipe that is readable when one arrived."""

    def __init__(self, signals: Sequence[int]) -> None:
        self.signals = tuple(signals)
        self._queue: deque[int] = deque()
        self._r, self._w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._old: dict[int, Any] = {}

    def install(self) -> None:
        """Install the handlers and the wake-up fd (no-op off the main thread)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in self.signals:
            self._old[sig] = signal.signal(sig, self._on_signal)
        self._old[-1] = signal.set_wakeup_fd(self._w, warn_on_full_buffer=False)

    def restore(self) -> None:
        """Put the previous handlers back."""
        for sig, handler in self._old.items():
            if sig == -1:
                signal.set_wakeup_fd(handler)
            else:
                signal.signal(sig, handler)
        self._old = {}

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._queue.append(signum)

    def post(self, signum: int) -> None:
        """Queue ``signum`` as if it had arrived (thread-safe)."""
        self._queue.append(signum)
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._w, b"!")

    def fileno(self) -> int:
        """Readable when a signal arrived (or :meth:`post` was called)."""
        return self._r

    def take(self) -> list[int]:
        """The signals queued so far, oldest first (drains the pipe)."""
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self._r, 4096):
                pass
        out = []
        while self._queue:
            out.append(self._queue.popleft())
        return out

    def close(self) -> None:
        """Close the pipe."""
        for fd in (self._r, self._w):
            with contextlib.suppress(OSError):
                os.close(fd)
