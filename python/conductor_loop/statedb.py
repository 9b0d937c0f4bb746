"""The state database file: schema, SQL, opening (read-only or checked and migrated), moving a corrupt one aside.

WAL mode with ``synchronous=FULL`` (every commit survives power loss); a file that is not SQLite, or
fails ``PRAGMA quick_check``, is unusable and is moved aside by the store.

The integrity check reads every page, so it is not run on every open (README, "The state"): the first
read-write connection of a process marks the state open (meta ``shutdown``) and marks it ``clean`` when it
closes; an open finds the mark clean, or set by its own process, and skips the check. The check runs when
the mark says another process had it open and never closed it (a crash, a kill, a power loss), when there
is no mark (a database from before the mark existed), or when the file is shorter than its header says
(truncated). A new (empty) database is never checked.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

from conductor_loop.clock import compact_stamp
from conductor_loop.faults import FAULT_ERRNOS


class StateError(Exception):
    """The state database cannot be used (e.g. written by a newer conductor-loop)."""


GO_STATE_NAME = ".conductor-state.json"
SCHEMA_VERSION = 2
STATUSES = ("claimed", "success", "failed", "skipped")
FINISHED = ("success", "failed", "skipped")

# SQLite before 3.32 allows at most 999 bound parameters per statement.
_CHUNK = 900
_META_GO_IMPORT = "go_import"
_META_SHUTDOWN = "shutdown"
_CLEAN = "clean"
#: This process's mark in meta ``shutdown`` while it has the state open (its threads share it).
_SESSION = secrets.token_hex(8)
#: Rows per ``executemany`` of a streamed write (:func:`write_stream`).
_STREAM_BATCH = 5000
_SQLITE_MAGIC = b"SQLite format 3\x00"

_COLUMNS = (
    "path, sha256, size, status, attempts, first_seen, last_seen, processed_at, message, "
    "moved_to, filed_at, exit_code, duration_ms, correlation_id"
)


@dataclass(slots=True)
class IntentRow:
    """One row of the state: the latest known facts about one intent path (its fields in :data:`_COLUMNS`'s
    order: a row read is ``IntentRow(*values)``)."""

    path: str
    sha256: str | None
    size: int | None
    status: str  # 'claimed' | 'success' | 'failed' | 'skipped'
    attempts: int
    first_seen: float
    last_seen: float
    processed_at: float | None
    message: str
    moved_to: str | None
    filed_at: float | None
    exit_code: int | None
    duration_ms: float | None
    correlation_id: str | None


@dataclass(slots=True)
class Outcome:
    """One finished intent, recorded as part of a batch by :meth:`StateStore.record`."""

    path: str
    sha256: str | None
    size: int | None
    status: str
    message: str
    exit_code: int | None
    duration_ms: float | None
    correlation_id: str | None
    moved_to: str | None


# Schema migrations: entry i brings user_version i to i + 1.
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE intents (
        path           TEXT PRIMARY KEY NOT NULL,
        sha256         TEXT,
        size           INTEGER,
        status         TEXT NOT NULL CHECK (status IN ('claimed', 'success', 'failed', 'skipped')),
        attempts       INTEGER NOT NULL DEFAULT 0,
        first_seen     REAL NOT NULL,
        last_seen      REAL NOT NULL,
        processed_at   REAL,
        message        TEXT NOT NULL DEFAULT '',
        moved_to       TEXT,
        filed_at       REAL,
        exit_code      INTEGER,
        duration_ms    REAL,
        correlation_id TEXT
    ) WITHOUT ROWID;
    CREATE INDEX intents_status ON intents (status, processed_at);
    CREATE INDEX intents_age ON intents (COALESCE(filed_at, processed_at));
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY NOT NULL,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    # 1 → 2: the start-up and retention queries get an index each, so that neither scans the table
    # (docs/ARCHITECTURE.md, "Start-up on a large state").
    """
    CREATE INDEX intents_unfiled ON intents (processed_at, path) WHERE filed_at IS NULL;
    CREATE INDEX intents_filed ON intents (filed_at, path) WHERE filed_at IS NOT NULL;
    """,
)

_SQL_CLAIM = """
INSERT INTO intents (path, sha256, size, status, attempts, first_seen, last_seen)
VALUES (?1, ?2, ?3, 'claimed', 1, ?4, ?4)
ON CONFLICT (path) DO UPDATE SET
    status = 'claimed',
    attempts = CASE
        WHEN excluded.sha256 IS NOT NULL AND intents.sha256 IS NOT NULL
             AND excluded.sha256 <> intents.sha256 THEN 1
        ELSE intents.attempts + 1
    END,
    sha256 = COALESCE(excluded.sha256, intents.sha256),
    size = CASE WHEN excluded.sha256 IS NOT NULL OR excluded.size IS NOT NULL
                THEN excluded.size ELSE intents.size END,
    last_seen = excluded.last_seen
"""

_SQL_RECORD = """
INSERT INTO intents (path, sha256, size, status, attempts, first_seen, last_seen, processed_at, message,
                     moved_to, filed_at, exit_code, duration_ms, correlation_id)
VALUES (?1, ?2, ?3, ?4, 1, ?5, ?5, ?5, ?6, ?7, NULL, ?8, ?9, ?10)
ON CONFLICT (path) DO UPDATE SET
    sha256 = COALESCE(excluded.sha256, intents.sha256),
    size = COALESCE(excluded.size, intents.size),
    status = excluded.status,
    attempts = MAX(intents.attempts, 1),
    last_seen = excluded.last_seen,
    processed_at = excluded.processed_at,
    message = excluded.message,
    moved_to = excluded.moved_to,
    filed_at = NULL,
    exit_code = excluded.exit_code,
    duration_ms = excluded.duration_ms,
    correlation_id = excluded.correlation_id
"""

_SQL_IMPORT = """
INSERT INTO intents (path, sha256, size, status, attempts, first_seen, last_seen, processed_at, message,
                     filed_at)
VALUES (?1, ?2, ?3, ?4, 1, ?5, ?5, ?5, ?6, ?5)
ON CONFLICT (path) DO NOTHING
"""




def connect_readonly(path: str) -> sqlite3.Connection:
    """Open an existing database read-only (``mode=ro``, ``query_only``); a newer schema raises StateError."""
    uri = "file:" + uri_path(os.path.abspath(path)) + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, cached_statements=64)
    try:
        conn.execute("PRAGMA query_only = ON")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except BaseException:
        conn.close()
        raise
    if version > SCHEMA_VERSION:
        conn.close()
        raise StateError(
            f"{path}: schema version {version} is newer than this conductor-loop supports ({SCHEMA_VERSION})"
        )
    return conn


def _check_header(path: str) -> bool:
    """Raise when the file is not SQLite at all; True when it is shorter than its header says."""
    # A file that is not SQLite at all is recognised before opening it: SQLite would otherwise
    # delete a -wal file lying next to it on close, destroying what is left to inspect.
    try:
        with open(path, "rb") as fh:
            header = fh.read(100)
            size = os.fstat(fh.fileno()).st_size
    except FileNotFoundError:
        return False
    except OSError as exc:
        if exc.errno in FAULT_ERRNOS:  # no descriptor left, I/O error: not a corrupt file, never moved aside
            raise
        raise sqlite3.DatabaseError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if header and header[:16] != _SQLITE_MAGIC:
        raise sqlite3.DatabaseError("file is not a database (bad header)")
    if len(header) < 100:
        return bool(header)
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    valid = header[24:28] == header[92:96]  # the in-header size is valid (SQLite file format, 1.3.9)
    return valid and pages * page_size > size


class Opened:
    """What :func:`connect_checked` did besides opening: the check it ran (why, how long), its mark."""

    def __init__(self) -> None:
        self.check_reason: str | None = None
        self.check_seconds = 0.0
        self.marked = False


def connect_checked(path: str) -> tuple[sqlite3.Connection, Opened]:
    """Open read-write, verify integrity when needed (see the module docstring), set pragmas, migrate and
    mark the state open; ``DatabaseError`` means unusable."""
    truncated = _check_header(path)
    fresh = _size(path) == 0 and _size(path + "-wal") == 0
    conn = sqlite3.connect(path, isolation_level=None, cached_statements=64)
    opened = Opened()
    try:
        opened.check_reason = "file shorter than its header says" if truncated else _unclean(conn)
        if opened.check_reason is not None and not fresh:
            t0 = time.monotonic()
            check = conn.execute("PRAGMA quick_check").fetchone()
            opened.check_seconds = time.monotonic() - t0
            if check is None or check[0] != "ok":
                raise sqlite3.DatabaseError(f"quick_check failed: {check[0] if check else 'no result'}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.DatabaseError(f"cannot switch to WAL mode (got {mode})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 5000")
        migrate(conn, path)
        opened.marked = _mark_open(conn)
        if fresh:
            opened.check_reason = None  # nothing to check in a new database
    except (sqlite3.DatabaseError, StateError):
        conn.close()
        raise
    with contextlib.suppress(OSError):
        os.chmod(path, 0o600)
    return conn, opened


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def _shutdown_mark(conn: sqlite3.Connection) -> Any:
    if int(conn.execute("PRAGMA user_version").fetchone()[0]) == 0:
        return None  # a new database (or a file SQLite cannot read): no mark
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (_META_SHUTDOWN,)).fetchone()
    try:
        return json.loads(row[0]) if row is not None else None
    except ValueError:
        return None


def _unclean(conn: sqlite3.Connection) -> str | None:
    """Why the integrity check must run (see the module docstring), or ``None``."""
    mark = _shutdown_mark(conn)
    if mark == _CLEAN or (isinstance(mark, dict) and mark.get("session") == _SESSION):
        return None
    if isinstance(mark, dict):
        return f"unclean stop (pid {mark.get('pid')} did not close the state)"
    return "no clean-stop mark"


def _mark_open(conn: sqlite3.Connection) -> bool:
    """Mark the state open by this process unless one of its connections already did; True if marked."""
    mark = _shutdown_mark(conn)
    if isinstance(mark, dict) and mark.get("session") == _SESSION:
        return False
    _set_shutdown(conn, {"session": _SESSION, "pid": os.getpid(), "at": time.time()})
    return True


def _set_shutdown(conn: sqlite3.Connection, value: Any) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (_META_SHUTDOWN, json.dumps(value, sort_keys=True)),
    )


def mark_clean(conn: sqlite3.Connection) -> None:
    """Mark the state closed cleanly (the connection that marked it open calls this as it closes)."""
    _set_shutdown(conn, _CLEAN)


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``: any exception in the block (a malformed row source included) rolls
    the transaction back and propagates. The one transaction wrapper of the state's writes."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def write_stream(conn: sqlite3.Connection, sql: str, rows: Iterable[tuple[Any, ...]]) -> int:
    """``executemany`` of ``sql`` over ``rows`` in batches (memory bounded by one batch), in ONE
    transaction: an exception from ``rows`` (a malformed file) rolls everything back. Returns the row count.

    SQLite spills its page cache to the WAL as it goes, so the transaction's size is not held in memory.
    """
    it = iter(rows)
    count = 0
    with transaction(conn):
        while batch := list(islice(it, _STREAM_BATCH)):
            count += conn.executemany(sql, batch).rowcount
    return count


def migrate(conn: sqlite3.Connection, path: str) -> None:
    """Bring the schema to :data:`SCHEMA_VERSION` (refuses a newer one)."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise StateError(
            f"{path}: schema version {version} is newer than this conductor-loop supports "
            f"({SCHEMA_VERSION}); refusing to touch it"
        )
    while version < SCHEMA_VERSION:
        with transaction(conn):
            for stmt in _MIGRATIONS[version].split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            conn.execute(f"PRAGMA user_version = {version + 1}")
        version += 1


def move_aside(path: str) -> str:
    """Rename an unusable database (and its -wal, -shm, -journal) to ``<path>.corrupt-<stamp>``."""
    base = f"{path}.corrupt-{compact_stamp(digits=6)}"
    target = base
    n = 1
    while os.path.lexists(target):
        target = f"{base}.{n}"
        n += 1
    os.rename(path, target)
    for suffix in ("-wal", "-shm", "-journal"):
        src = path + suffix
        if os.path.lexists(src):
            os.rename(src, target + suffix)
    return target


def uri_path(path: str) -> str:
    """Percent-encode the characters that are special in an SQLite URI."""
    return path.replace("%", "%25").replace("?", "%3f").replace("#", "%23")
