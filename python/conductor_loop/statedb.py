"""The state database file: schema, SQL, opening (read-only or checked and migrated), moving a corrupt one aside.

WAL mode with ``synchronous=FULL`` (every commit survives power loss); a file that is not SQLite, or
fails ``PRAGMA quick_check``, is unusable and is moved aside by the store.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3

from conductor_loop.clock import compact_stamp
from conductor_loop.faults import FAULT_ERRNOS


class StateError(Exception):
    """The state database cannot be used (e.g. written by a newer conductor-loop)."""


GO_STATE_NAME = ".conductor-state.json"
SCHEMA_VERSION = 1
STATUSES = ("claimed", "success", "failed", "skipped")
FINISHED = ("success", "failed", "skipped")

# SQLite before 3.32 allows at most 999 bound parameters per statement.
_CHUNK = 900
_META_GO_IMPORT = "go_import"
_SQLITE_MAGIC = b"SQLite format 3\x00"

_COLUMNS = (
    "path, sha256, size, status, attempts, first_seen, last_seen, processed_at, message, "
    "moved_to, filed_at, exit_code, duration_ms, correlation_id"
)

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


def _check_header(path: str) -> None:
    # A file that is not SQLite at all is recognised before opening it: SQLite would otherwise
    # delete a -wal file lying next to it on close, destroying what is left to inspect.
    try:
        with open(path, "rb") as fh:
            header = fh.read(16)
    except FileNotFoundError:
        header = b""
    except OSError as exc:
        if exc.errno in FAULT_ERRNOS:  # no descriptor left, I/O error: not a corrupt file, never moved aside
            raise
        raise sqlite3.DatabaseError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if header and header != _SQLITE_MAGIC:
        raise sqlite3.DatabaseError("file is not a database (bad header)")


def connect_checked(path: str) -> sqlite3.Connection:
    """Open read-write, verify integrity, set pragmas and migrate; ``DatabaseError`` means unusable."""
    _check_header(path)
    conn = sqlite3.connect(path, isolation_level=None, cached_statements=64)
    try:
        check = conn.execute("PRAGMA quick_check").fetchone()
        if check is None or check[0] != "ok":
            raise sqlite3.DatabaseError(f"quick_check failed: {check[0] if check else 'no result'}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.DatabaseError(f"cannot switch to WAL mode (got {mode})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 5000")
        migrate(conn, path)
    except (sqlite3.DatabaseError, StateError):
        conn.close()
        raise
    with contextlib.suppress(OSError):
        os.chmod(path, 0o600)
    return conn


def migrate(conn: sqlite3.Connection, path: str) -> None:
    """Bring the schema to :data:`SCHEMA_VERSION` (refuses a newer one)."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise StateError(
            f"{path}: schema version {version} is newer than this conductor-loop supports "
            f"({SCHEMA_VERSION}); refusing to touch it"
        )
    while version < SCHEMA_VERSION:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for stmt in _MIGRATIONS[version].split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
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
