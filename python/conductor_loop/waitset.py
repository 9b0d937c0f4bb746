"""THE wait's poller: ``multiprocessing.connection.wait`` semantics on one ``poll`` object kept across turns.

``multiprocessing.connection.wait`` builds a selector and registers every object on every call (about
11 µs for the loop's eight or so objects, once per turn: over a thousand turns a second in watch mode).
A :class:`WaitSet` registers them once and again only when the list of objects changes (a worker
started or died), so a turn's wait is one ``poll`` system call (docs/ARCHITECTURE.md, "The one wait").
"""

from __future__ import annotations

import math
import select
from collections.abc import Sequence
from typing import Any

#: What makes an object ready: readable, or its other end gone (the caller's read then says which).
_READY = select.POLLIN | select.POLLHUP | select.POLLERR | select.POLLNVAL


def _fd(obj: Any) -> int:
    return obj if isinstance(obj, int) else int(obj.fileno())


def readable(obj: Any) -> bool:
    """``obj`` (a connection or a descriptor) can be read without blocking, or its other end is gone: what
    ``Connection.poll()`` answers, without the selector it builds per call."""
    poller = select.poll()
    poller.register(_fd(obj), select.POLLIN)
    return any(ev & _READY for _fd_, ev in poller.poll(0))


class WaitSet:
    """Waits on connections (anything with ``fileno()``) and plain descriptors, as
    ``multiprocessing.connection.wait`` does."""

    def __init__(self) -> None:
        self._poller = select.poll()
        self._objects: list[Any] = []
        self._fds: set[int] = set()

    def wait(self, objects: Sequence[Any], timeout: float | None) -> list[Any]:
        """Those of ``objects`` ready for reading (or closed at the other end) within ``timeout`` seconds
        (None: no limit), in the order given."""
        if list(objects) != self._objects:
            self._register(objects)
        ms = None if timeout is None else max(0, math.ceil(timeout * 1000.0))
        ready_fds = {fd for fd, ev in self._poller.poll(ms) if ev & _READY}
        return [obj for obj in self._objects if _fd(obj) in ready_fds]

    def _register(self, objects: Sequence[Any]) -> None:
        for fd in self._fds:
            self._poller.unregister(fd)
        self._objects = list(objects)
        self._fds = {_fd(obj) for obj in self._objects}
        for fd in self._fds:
            self._poller.register(fd, select.POLLIN)
