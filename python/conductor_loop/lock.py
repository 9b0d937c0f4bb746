"""The handoff lock: ``.conductor/lock``, an ``flock`` holding the running loop's pid.

``run`` holds it exclusively for its whole life; ``state import``/``prune`` hold it while they write;
``status`` probes it for an instant with a shared lock. One module, so the commands need not import
the loop to take it.
"""

from __future__ import annotations

import errno
import fcntl
import os
from dataclasses import dataclass


class LockHeld(Exception):
    """Another loop owns the handoff directory (``run`` exits 2)."""


@dataclass(frozen=True, slots=True)
class LockProbe:
    """Whether a loop holds the lock, and the pid it wrote there."""

    running: bool
    pid: int | None


def _holder(fd: int) -> str:
    return os.pread(fd, 64, 0).decode("ascii", "replace").strip()


def acquire(path: str) -> int:
    """Take the lock at ``path`` exclusively and write our pid in it; returns the open fd.

    Raises :class:`LockHeld` naming the pid of the holder.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = _holder(fd) or "unknown"
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise LockHeld(f"another conductor-loop (pid {holder}) holds {path}") from None
        raise
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError as exc:  # a full or read-only filesystem: say which file
        os.close(fd)
        raise OSError(exc.errno, exc.strerror, path) from None
    return fd


def release(fd: int) -> None:
    """Give the lock up (closing the fd releases the flock)."""
    os.close(fd)


def probe(path: str) -> LockProbe:
    """Check, without keeping it, whether a loop holds the lock at ``path``.

    Takes a non-blocking shared ``flock`` for an instant: when that fails, a loop is running and its pid
    is read from the file. A missing lock file means no loop ever ran here (nothing is created).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return LockProbe(False, None)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            text = _holder(fd)
            return LockProbe(True, int(text) if text.isdigit() else None)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return LockProbe(False, None)
    finally:
        os.close(fd)
