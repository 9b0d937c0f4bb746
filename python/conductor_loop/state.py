"""The loop's own state: one SQLite database per handoff directory (SPEC §7).

``<handoff>/.conductor/state.db`` holds one row per intent path with the SHA-256 and size of the
content last seen, its status (``claimed`` while being worked on, then ``success``, ``failed`` or
``skipped``), attempts, timestamps and where the file was filed.  The supervisor process is the only
writer; readers such as ``conductor-loop status`` open the database read-only.

Durability
----------
The database runs in WAL mode with ``synchronous=FULL``.  In WAL mode ``NORMAL`` only syncs the WAL at
checkpoints, so the last transactions before a power loss can vanish even though ``COMMIT`` returned;
``FULL`` syncs the WAL on every commit.  The loop groups work: each batch of finished intents is one
transaction (one ``fsync`` of the WAL per batch, not per intent), preceded by the loop's own ``syncfs``
of the status files and packages it wrote, so whatever the database says is done survives power loss.
A SIGKILL of the process at any instant leaves every committed transaction whole and none half-applied
(SQLite's atomic commit); this is tested.

Corruption
----------
A database that cannot be opened or fails ``PRAGMA quick_check`` is renamed to
``state.db.corrupt-<UTC timestamp>`` (its ``-wal`` and ``-shm`` files too) and a fresh database is
created; :attr:`StateStore.recovered_from` names the moved-aside file so the caller can warn.  Dedupe
history is lost that way, never an intent: intents live in the handoff directory, not in the database.

Paths
-----
Rows are keyed by the path string the caller passes.  The Go loop keyed its JSON state by the cleaned
absolute path, so callers should pass absolute, normalised paths for imports and exports to line up.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import Any

from conductor_loop.clock import compact_stamp, rfc3339
from conductor_loop.layout import DB_NAME, STATE_DIR

__all__ = [
    "DB_NAME",
    "GO_STATE_NAME",
    "SCHEMA_VERSION",
    "STATE_DIR",
    "STATUSES",
    "IntentRow",
    "Outcome",
    "StateError",
    "StateStore",
    "format_rfc3339",
    "parse_rfc3339",
]

log = logging.getLogger(__name__)

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

# The statements below are built from constants only (no caller data): S608 does not apply.
_SQL_SELECT = "SELECT " + _COLUMNS + " FROM intents"  # noqa: S608
_SQL_GET = _SQL_SELECT + " WHERE path = ?"

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


class StateError(Exception):
    """The state database cannot be used (e.g. written by a newer conductor-loop)."""


@dataclass(slots=True)
class IntentRow:
    """One row of the state: the latest known facts about one intent path."""

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


_SQL_FILED = "UPDATE intents SET moved_to = ?, filed_at = ? WHERE path = ?"


def _row(values: tuple[Any, ...]) -> IntentRow:
    return IntentRow(*values)


def _chunks(seq: Sequence[str], size: int = _CHUNK) -> Iterator[Sequence[str]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)


def parse_rfc3339(text: str) -> float:
    """Parse an RFC 3339 timestamp (as Go's ``time.Time`` marshals it, nanoseconds allowed) to epoch seconds.

    Raises ``ValueError`` for anything else.
    """
    m = _RFC3339.match(text.strip())
    if m is None:
        raise ValueError(f"invalid RFC 3339 timestamp {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    frac = m.group(7) or ""
    micro = int((frac + "000000")[:6])
    if m.group(8):
        tz = timezone.utc
    else:
        sign = -1 if m.group(9) == "-" else 1
        tz = timezone(sign * timedelta(hours=int(m.group(10)), minutes=int(m.group(11))))
    second = min(second, 59)  # a leap second is folded into the one before
    dt = datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    return dt.timestamp()


def format_rfc3339(ts: float) -> str:
    """Render epoch seconds as RFC 3339 UTC with microseconds and a ``Z`` suffix (the Go export's form)."""
    return rfc3339(ts, digits=6)


class StateStore:
    """SQLite-backed intent state for one handoff directory (SPEC §7).

    One instance, one connection, one thread.  Every write method is a single transaction.
    Use as a context manager or call :meth:`close`.

    Attributes set by the constructor:

    * ``path``: the database file.
    * ``recovered_from``: when the database was corrupt, the name it was moved aside to, else ``None``.
    * ``imported``: rows imported from ``<handoff>/.conductor-state.json`` by this open (0 if none).
    * ``import_error``: the reason a Go state file could not be imported, else ``None``.
    """

    def __init__(self, handoff: str, *, readonly: bool = False) -> None:
        """Open (creating if needed) the state database of ``handoff``.

        Creates ``.conductor/`` (mode 0700) and the database if needed; a corrupt database is moved aside
        (see :attr:`recovered_from`).  The first time a database is opened read-write and
        ``<handoff>/.conductor-state.json`` exists, it is imported (see :meth:`import_go`) and that is
        recorded in the meta table, so it happens once per database; a Go file that cannot be imported
        sets :attr:`import_error` instead of failing.

        ``readonly=True`` opens an existing database with ``mode=ro`` and never creates, migrates, repairs
        or imports anything; a missing database raises ``FileNotFoundError`` and a corrupt one
        ``sqlite3.DatabaseError``.
        """
        self.handoff = handoff
        self.readonly = readonly
        self.state_dir = os.path.join(handoff, STATE_DIR)
        self.path = os.path.join(self.state_dir, DB_NAME)
        self.recovered_from: str | None = None
        self.imported = 0
        self.import_error: str | None = None
        self._conn: sqlite3.Connection | None = None

        if readonly:
            if not os.path.exists(self.path):
                raise FileNotFoundError(f"no state database at {self.path}")
            self._conn = self._connect_readonly()
            return

        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        try:
            self._conn = self._connect_checked()
        except sqlite3.DatabaseError as exc:
            self.recovered_from = self._move_aside()
            log.warning("state database %s is unusable (%s); moved aside to %s", self.path, exc, self.recovered_from)
            self._conn = self._connect_checked()
        self._maybe_import_go()

    # ------------------------------------------------------------------ opening

    def _connect_readonly(self) -> sqlite3.Connection:
        uri = "file:" + _uri_path(os.path.abspath(self.path)) + "?mode=ro"
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
                f"{self.path}: schema version {version} is newer than this conductor-loop supports ({SCHEMA_VERSION})"
            )
        return conn

    def _connect_checked(self) -> sqlite3.Connection:
        """Open read-write, verify integrity, set pragmas and migrate; DatabaseError means unusable."""
        # A file that is not SQLite at all is recognised before opening it: SQLite would otherwise
        # delete a -wal file lying next to it on close, destroying what is left to inspect.
        try:
            with open(self.path, "rb") as fh:
                header = fh.read(16)
        except FileNotFoundError:
            header = b""
        except OSError as exc:
            raise sqlite3.DatabaseError(f"cannot read {self.path}: {exc.strerror or exc}") from exc
        if header and header != _SQLITE_MAGIC:
            raise sqlite3.DatabaseError("file is not a database (bad header)")
        conn = sqlite3.connect(self.path, isolation_level=None, cached_statements=64)
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
            self._migrate(conn)
        except sqlite3.DatabaseError:
            conn.close()
            raise
        except StateError:
            conn.close()
            raise
        try:
            os.chmod(self.path, 0o600)
        except OSError:
            pass
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StateError(
                f"{self.path}: schema version {version} is newer than this conductor-loop supports "
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

    def _move_aside(self) -> str:
        base = f"{self.path}.corrupt-{compact_stamp(digits=6)}"
        target = base
        n = 1
        while os.path.lexists(target):
            target = f"{base}.{n}"
            n += 1
        os.rename(self.path, target)
        for suffix in ("-wal", "-shm", "-journal"):
            src = self.path + suffix
            if os.path.lexists(src):
                os.rename(src, target + suffix)
        return target

    def _maybe_import_go(self) -> None:
        go_path = os.path.join(self.handoff, GO_STATE_NAME)
        if self.get_meta(_META_GO_IMPORT) is not None or not os.path.isfile(go_path):
            return
        try:
            self.imported = self.import_go(go_path)
            self.set_meta(_META_GO_IMPORT, {"path": go_path, "at": time.time(), "rows": self.imported})
        except (ValueError, OSError) as exc:
            self.import_error = str(exc)
            log.warning("not importing Go state %s: %s", go_path, exc)
            self.set_meta(_META_GO_IMPORT, {"path": go_path, "at": time.time(), "error": str(exc)})

    @property
    def conn(self) -> sqlite3.Connection:
        """The open connection (raises if closed)."""
        if self._conn is None:
            raise StateError("state store is closed")
        return self._conn

    # ------------------------------------------------------------------ transactions

    def _write(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> int:
        return self._write_many([(sql, rows)])

    def _write_many(self, writes: Sequence[tuple[str, Sequence[tuple[Any, ...]]]]) -> int:
        """Run several ``executemany`` statements in one transaction; returns the last row count."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        count = 0
        try:
            for sql, rows in writes:
                if rows:
                    count = conn.executemany(sql, rows).rowcount
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return count

    # ------------------------------------------------------------------ reads

    def get(self, path: str) -> IntentRow | None:
        """The row for ``path``, or ``None``."""
        r = self.conn.execute(_SQL_GET, (path,)).fetchone()
        return _row(r) if r is not None else None

    def get_many(self, paths: Sequence[str]) -> dict[str, IntentRow]:
        """Rows for those of ``paths`` that have one, keyed by path (chunked ``IN`` queries)."""
        out: dict[str, IntentRow] = {}
        unique = list(dict.fromkeys(paths))
        conn = self.conn
        for chunk in _chunks(unique):
            marks = ",".join("?" * len(chunk))
            sql = _SQL_SELECT + " WHERE path IN (" + marks + ")"  # only '?' placeholders
            for r in conn.execute(sql, tuple(chunk)):
                out[r[0]] = _row(r)
        return out

    def unfinished(self) -> list[IntentRow]:
        """Rows still ``claimed``: work that was started and not recorded (to run again after a crash)."""
        cur = self.conn.execute(_SQL_SELECT + " WHERE status = 'claimed' ORDER BY first_seen, path")
        return [_row(r) for r in cur]

    def unfiled(self) -> list[IntentRow]:
        """Finished rows whose file was not yet filed (recorded, then interrupted before the move)."""
        cur = self.conn.execute(
            _SQL_SELECT + " WHERE status IN ('success', 'failed', 'skipped') "
            "AND filed_at IS NULL ORDER BY processed_at, path"
        )
        return [_row(r) for r in cur]

    def recent_failures(self, limit: int = 10) -> list[IntentRow]:
        """The ``limit`` most recently processed failed rows, newest first."""
        cur = self.conn.execute(
            _SQL_SELECT + " WHERE status = 'failed' ORDER BY processed_at DESC, path LIMIT ?",
            (limit,),
        )
        return [_row(r) for r in cur]

    def counts(self) -> dict[str, int]:
        """Number of rows per status; every status in :data:`STATUSES` is present."""
        out = dict.fromkeys(STATUSES, 0)
        for status, n in self.conn.execute("SELECT status, COUNT(*) FROM intents GROUP BY status"):
            out[status] = n
        return out

    def filed_before(self, cutoff: float) -> list[IntentRow]:
        """Finished rows filed before the epoch time ``cutoff`` (for cleaning up processed/failed files)."""
        cur = self.conn.execute(
            _SQL_SELECT + " WHERE filed_at IS NOT NULL AND filed_at < ? "
            "AND status <> 'claimed' ORDER BY filed_at, path",
            (cutoff,),
        )
        return [_row(r) for r in cur]

    # ------------------------------------------------------------------ writes

    def claim(self, items: Sequence[tuple[str, str | None, int | None]]) -> None:
        """Mark ``(path, sha256, size)`` items as being worked on, in one transaction.

        Upserts ``status='claimed'``, ``last_seen=now`` and ``attempts+1``; attempts restart at 1 when
        both the given and the stored sha256 are known and differ (new content).  A ``None`` sha256 keeps
        the stored hash.  ``first_seen`` and the previous outcome's fields (processed_at, message,
        moved_to, filed_at…) are kept until :meth:`record` replaces them.
        """
        if not items:
            return
        now = time.time()
        self._write(_SQL_CLAIM, [(p, h, s, now) for p, h, s in items])

    def record(self, outcomes: Sequence[Outcome], *, filed: Sequence[tuple[str, str]] = ()) -> None:
        """Record a batch of finished intents in one transaction; sets ``processed_at=now``.

        ``filed`` (``(path, moved_to)`` of an earlier batch whose moves are done) is marked filed in
        the same transaction, before the new rows are written: one commit per batch.

        ``filed_at`` is cleared (the file has not been moved yet: :meth:`mark_filed` does that);
        ``moved_to`` is the outcome's planned destination.  A path never claimed gets a row with
        ``attempts=1``.
        """
        if not outcomes:
            return
        for o in outcomes:
            if o.status not in FINISHED:
                raise ValueError(f"{o.path}: outcome status must be one of {FINISHED}, not {o.status!r}")
        now = time.time()
        self._write_many(
            [
                (_SQL_FILED, [(dest, now, path) for path, dest in filed]),
                (
                    _SQL_RECORD,
                    [
                        (
                            o.path,
                            o.sha256,
                            o.size,
                            o.status,
                            now,
                            o.message,
                            o.moved_to,
                            o.exit_code,
                            o.duration_ms,
                            o.correlation_id,
                        )
                        for o in outcomes
                    ],
                ),
            ]
        )

    def mark_filed(self, items: Sequence[tuple[str, str]]) -> None:
        """Record ``(path, moved_to)`` after the moves of a batch: sets ``moved_to`` and ``filed_at=now``."""
        if not items:
            return
        now = time.time()
        self._write(
            _SQL_FILED,
            [(dest, now, path) for path, dest in items],
        )

    def prune(self, older_than: float, *, now: float | None = None) -> int:
        """Delete finished rows filed (or, if never filed, processed) more than ``older_than`` seconds ago.

        Claimed rows are never pruned.  Returns the number of rows deleted.
        """
        cutoff = (time.time() if now is None else now) - older_than
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            cur = conn.execute(
                "DELETE FROM intents WHERE status <> 'claimed' AND COALESCE(filed_at, processed_at) < ?",
                (cutoff,),
            )
            n = cur.rowcount
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return n

    def delete(self, paths: Sequence[str]) -> None:
        """Delete the rows of ``paths`` (missing ones are ignored), in one transaction."""
        if not paths:
            return
        self._write("DELETE FROM intents WHERE path = ?", [(p,) for p in paths])

    def set_meta(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable ``value`` under ``key`` in the meta table."""
        self._write(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [(key, json.dumps(value, sort_keys=True))],
        )

    def get_meta(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key``, or ``default``."""
        r = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if r is None:
            return default
        return json.loads(r[0])

    # ------------------------------------------------------------------ Go format

    def import_go(self, json_path: str) -> int:
        """Import a Go ``.conductor-state.json``; returns the number of rows added.

        Go status ``processed`` becomes ``success`` and ``failed`` stays ``failed``; the files are taken as
        already filed at their ``processed_at``.  Rows the database already has are kept (the SQLite state
        is authoritative).  Malformed entries are skipped with a warning; a file that is not a Go state
        file at all raises ``ValueError`` with the reason.
        """
        try:
            with open(json_path, "rb") as fh:
                raw = fh.read()
        except OSError as exc:
            raise ValueError(f"{json_path}: cannot read: {exc.strerror or exc}") from exc
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise ValueError(f"{json_path}: not a Go state file: not valid JSON ({exc})") from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("states"), dict):
            raise ValueError(f"{json_path}: not a Go state file: no 'states' object")
        now = time.time()
        rows: list[tuple[Any, ...]] = []
        skipped = 0
        message = f"imported from Go state {json_path}"
        for key, entry in doc["states"].items():
            try:
                rows.append(_go_entry_to_row(key, entry, now, message))
            except (ValueError, TypeError, OverflowError) as exc:
                skipped += 1
                log.warning("%s: skipping state entry %r: %s", json_path, key, exc)
        if not rows:
            return 0
        n = self._write(_SQL_IMPORT, rows)
        if skipped:
            log.warning("%s: %d malformed entries skipped", json_path, skipped)
        return n

    def export_go(self) -> dict[str, Any]:
        """The finished rows in the Go ``.conductor-state.json`` format.

        ``success`` and ``skipped`` rows are exported as ``processed``, ``failed`` as ``failed``;
        ``claimed`` rows (not finished) are left out.
        """
        states: dict[str, Any] = {}
        cur = self.conn.execute(
            "SELECT path, sha256, size, processed_at, status FROM intents WHERE status <> 'claimed' ORDER BY path"
        )
        for path, sha, size, processed_at, status in cur:
            states[path] = {
                "file_path": path,
                "sha256": sha or "",
                "size": size if size is not None else 0,
                "processed_at": format_rfc3339(processed_at if processed_at is not None else 0.0),
                "status": "failed" if status == "failed" else "processed",
            }
        return {"version": "1.0", "saved_at": format_rfc3339(time.time()), "states": states}

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> StateStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _uri_path(path: str) -> str:
    """Percent-encode the characters that are special in an SQLite URI."""
    return path.replace("%", "%25").replace("?", "%3f").replace("#", "%23")


_SHA_RE = re.compile(r"^[0-9a-fA-F]{64}$")


def _go_entry_to_row(key: Any, entry: Any, now: float, message: str) -> tuple[Any, ...]:
    if not isinstance(key, str) or not key:
        raise ValueError("key is not a path")
    if not isinstance(entry, dict):
        raise ValueError("entry is not an object")
    path = entry.get("file_path") or key
    if not isinstance(path, str):
        raise ValueError("file_path is not a string")
    path = os.path.normpath(path)
    sha = entry.get("sha256")
    if sha in (None, ""):
        sha = None
    elif not isinstance(sha, str) or not _SHA_RE.match(sha):
        raise ValueError("sha256 is not a hex SHA-256")
    else:
        sha = sha.lower()
    size = entry.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise ValueError("size is not a non-negative integer")
    go_status = entry.get("status")
    if go_status == "processed":
        status = "success"
    elif go_status == "failed":
        status = "failed"
    else:
        raise ValueError(f"unknown status {go_status!r}")
    when = entry.get("processed_at")
    ts = now
    if isinstance(when, str) and when:
        ts = parse_rfc3339(when)
        if ts <= 0:  # Go's zero time
            ts = now
    return (path, sha, size, status, ts, message)
