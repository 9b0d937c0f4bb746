"""Which errors are storage faults: a full disk, a read-only filesystem or state, no descriptors left.

The one rule, shared by the workers (a status write or porch failing on a full ``--out``), the recorder
and the loop (README, "Disk full"): :func:`fault_of` names the path and the errno in one line;
:func:`space_fault` looks at a directory's filesystem; :func:`fatal_at_start` turns a fault while the
loop starts into a :class:`~conductor_loop.records.FatalError` (one line, exit 1, no traceback).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
from collections.abc import Iterator

from conductor_loop.records import FatalError

#: errnos that mean the storage (or the process's descriptor table), not the intent, is at fault.
FAULT_ERRNOS = frozenset((errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EMFILE, errno.ENFILE, errno.EIO))
#: SQLite result codes that mean the same for the state database.
SQLITE_FAULTS = ("SQLITE_FULL", "SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_IOERR")
#: Their messages, for Python < 3.11 (no ``sqlite_errorname``).
SQLITE_FAULT_TEXTS = ("disk is full", "readonly database", "unable to open database file", "disk I/O error")
#: A filesystem with less room than this counts as full (and a probe writes this much).
LOW_SPACE = 64 * 1024


def _errno_text(code: int) -> str:
    return f"{errno.errorcode.get(code, str(code))} ({os.strerror(code)})"


def fault_of(exc: BaseException, where: str | None = None) -> str | None:
    """``"<path>: ENOSPC (No space left on device)"`` when ``exc`` is a storage fault, else ``None``.

    ``where``: the database, for SQLite's errors (they carry no path); an ``OSError`` names its own file.
    """
    if isinstance(exc, OSError) and exc.errno in FAULT_ERRNOS:
        path = exc.filename if isinstance(exc.filename, str) else None
        return f"{path}: {_errno_text(exc.errno)}" if path else _errno_text(exc.errno)
    if isinstance(exc, sqlite3.OperationalError):
        name = str(getattr(exc, "sqlite_errorname", "SQLITE_ERROR"))
        if name.startswith(SQLITE_FAULTS) or any(t in str(exc) for t in SQLITE_FAULT_TEXTS):
            return f"{where}: {name} ({exc})" if where else f"{name} ({exc})"
    return None


def space_fault(directory: str) -> str | None:
    """The reason when ``directory``'s filesystem is read-only or has less than :data:`LOW_SPACE` free."""
    try:
        st = os.statvfs(directory)
    except OSError as exc:
        return fault_of(exc, directory)
    if st.f_flag & os.ST_RDONLY:
        return f"{directory}: {_errno_text(errno.EROFS)}"
    if st.f_bavail * st.f_frsize < LOW_SPACE:
        return f"{directory}: {_errno_text(errno.ENOSPC)}"
    return None




@contextlib.contextmanager
def fatal_at_start(handoff: str, db: str) -> Iterator[None]:
    """Turn a storage fault while starting into a :class:`FatalError` of one line (``run`` exits 1)."""
    try:
        yield
    except (OSError, sqlite3.OperationalError) as exc:
        reason = fault_of(exc, db)
        if reason is None:
            raise
        raise FatalError(f"cannot start on {handoff}: {reason}") from None
