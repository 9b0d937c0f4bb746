"""The loop's own state: one SQLite database per handoff directory (README, "The state").

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
A database that cannot be opened or fails ``PRAGMA quick_check`` (run at open only after an unclean stop,
see :mod:`conductor_loop.statedb`) is renamed to
``state.db.corrupt-<UTC timestamp>`` (its ``-wal`` and ``-shm`` files too) and a fresh database is
created; :attr:`StateStore.recovered_from` names the moved-aside file so the caller can warn.  Dedupe
history is lost that way, never an intent: intents live in the handoff directory, not in the database.

Paths
-----
Rows are keyed by the path string the caller passes.  The Go loop keyed its JSON state by the cleaned
absolute path, so callers should pass absolute, normalised paths for imports and exports to line up.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any

from conductor_loop.clock import parse_rfc3339, rfc3339
from conductor_loop.faults import fault_of
from conductor_loop.gostate import GoStateText, ProgressFn, iter_go_rows
from conductor_loop.layout import DB_NAME, STATE_DIR
from conductor_loop.statedb import (
    _CHUNK,
    _COLUMNS,
    _META_GO_IMPORT,
    _SQL_CLAIM,
    _SQL_IMPORT,
    _SQL_RECORD,
    FINISHED,
    GO_STATE_NAME,
    SCHEMA_VERSION,
    STATUSES,
    IntentRow,
    Opened,
    Outcome,
    StateError,
    connect_checked,
    connect_readonly,
    mark_clean,
    move_aside,
    transaction,
    write_stream,
)

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

# The statements below are built from constants only (no caller data): S608 does not apply.
_SQL_SELECT = "SELECT " + _COLUMNS + " FROM intents"  # noqa: S608
_SQL_GET = _SQL_SELECT + " WHERE path = ?"


_SQL_FILED = "UPDATE intents SET moved_to = ?, filed_at = ? WHERE path = ?"
_SQL_META = "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"


def _meta_rows(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(key, json.dumps(value, sort_keys=True)) for key, value in values.items()]


def _chunks(seq: Sequence[str], size: int = _CHUNK) -> Iterator[Sequence[str]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


def format_rfc3339(ts: float) -> str:
    """Render epoch seconds as RFC 3339 UTC with microseconds and a ``Z`` suffix (the Go export's form)."""
    return rfc3339(ts, digits=6)


class StateStore:
    """SQLite-backed intent state for one handoff directory (README, "The state").

    One instance, one connection, one thread.  Every write method is a single transaction.
    Use as a context manager or call :meth:`close`.

    Attributes set by the constructor:

    * ``path``: the database file.
    * ``recovered_from``: when the database was corrupt, the name it was moved aside to, else ``None``.
    * ``imported``: rows imported from ``<handoff>/.conductor-state.json`` by this open (0 if none).
    * ``import_error``: the reason a Go state file could not be imported, else ``None``.
    * ``opened``: whether the integrity check ran at open (and why, how long), whether this store marked
      the state open (it then marks it closed cleanly in :meth:`close`).
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
        self.opened = Opened()

        if readonly:
            if not os.path.exists(self.path):
                raise FileNotFoundError(f"no state database at {self.path}")
            self._conn = connect_readonly(self.path)
            return

        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        try:
            self._conn, self.opened = connect_checked(self.path)
        except sqlite3.DatabaseError as exc:
            if fault_of(exc) is not None:  # full or read-only, not corrupt: never moved aside
                raise
            self.recovered_from = move_aside(self.path)
            log.warning("state database %s is unusable (%s); moved aside to %s", self.path, exc, self.recovered_from)
            self._conn, self.opened = connect_checked(self.path)
        self._maybe_import_go()

    # ------------------------------------------------------------------ opening

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
        count = 0
        with transaction(self.conn) as conn:
            for sql, rows in writes:
                if rows:
                    count = conn.executemany(sql, rows).rowcount
        return count

    # ------------------------------------------------------------------ reads

    def get(self, path: str) -> IntentRow | None:
        """The row for ``path``, or ``None``."""
        r = self.conn.execute(_SQL_GET, (path,)).fetchone()
        return IntentRow(*r) if r is not None else None

    def get_many(self, paths: Sequence[str]) -> dict[str, IntentRow]:
        """Rows for those of ``paths`` that have one, keyed by path (chunked ``IN`` queries)."""
        out: dict[str, IntentRow] = {}
        unique = list(dict.fromkeys(paths))
        conn = self.conn
        for chunk in _chunks(unique):
            marks = ",".join("?" * len(chunk))
            sql = _SQL_SELECT + " WHERE path IN (" + marks + ")"  # only '?' placeholders
            for r in conn.execute(sql, tuple(chunk)):
                out[r[0]] = IntentRow(*r)
        return out

    def unfinished(self) -> list[IntentRow]:
        """Rows still ``claimed``: work that was started and not recorded (to run again after a crash)."""
        cur = self.conn.execute(_SQL_SELECT + " WHERE status = 'claimed' ORDER BY first_seen, path")
        return [IntentRow(*r) for r in cur]

    def unfiled(self) -> list[IntentRow]:
        """Finished rows whose file was not yet filed (recorded, then interrupted before the move)."""
        # Served by the partial index intents_unfiled (``status IN (...)`` would make SQLite pick the
        # status index and scan every finished row).
        cur = self.conn.execute(
            _SQL_SELECT + " WHERE filed_at IS NULL AND status <> 'claimed' ORDER BY processed_at, path"
        )
        return [IntentRow(*r) for r in cur]

    def recent_failures(self, limit: int = 10) -> list[IntentRow]:
        """The ``limit`` most recently processed failed rows, newest first."""
        cur = self.conn.execute(
            _SQL_SELECT + " WHERE status = 'failed' ORDER BY processed_at DESC, path LIMIT ?",
            (limit,),
        )
        return [IntentRow(*r) for r in cur]

    def last_success_at(self) -> float | None:
        """Epoch time of the newest ``success`` row (when it was recorded), or ``None`` without one."""
        row = self.conn.execute("SELECT MAX(processed_at) FROM intents WHERE status = 'success'").fetchone()
        return float(row[0]) if row is not None and row[0] is not None else None

    def counts(self) -> dict[str, int]:
        """Number of rows per status; every status in :data:`STATUSES` is present."""
        out = dict.fromkeys(STATUSES, 0)
        for status, n in self.conn.execute("SELECT status, COUNT(*) FROM intents GROUP BY status"):
            out[status] = n
        return out

    def filed_before(self, cutoff: float, limit: int = -1) -> list[IntentRow]:
        """The oldest ``limit`` (all: -1) finished rows filed before the epoch time ``cutoff`` (for cleaning up
        processed/failed files; served by the index intents_filed)."""
        cur = self.conn.execute(
            _SQL_SELECT + " WHERE filed_at IS NOT NULL AND filed_at < ? "
            "AND status <> 'claimed' ORDER BY filed_at, path LIMIT ?",
            (cutoff, limit),
        )
        return [IntentRow(*r) for r in cur]

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

    def record(
        self,
        outcomes: Sequence[Outcome],
        *,
        filed: Sequence[tuple[str, str]] = (),
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a batch of finished intents in one transaction; sets ``processed_at=now``.

        ``filed`` (``(path, moved_to)`` of an earlier batch whose moves are done) is marked filed in
        the same transaction, before the new rows are written: one commit per batch. ``meta``: values
        stored as :meth:`set_meta` stores them, in the same commit.

        ``filed_at`` is cleared (the file has not been moved yet: :meth:`mark_filed` does that);
        ``moved_to`` is the outcome's planned destination.  A path never claimed gets a row with
        ``attempts=1``.
        """
        if not outcomes and not meta:
            return
        for o in outcomes:
            if o.status not in FINISHED:
                raise ValueError(f"{o.path}: outcome status must be one of {FINISHED}, not {o.status!r}")
        now = time.time()
        self._write_many(
            [
                (_SQL_META, _meta_rows(meta or {})),
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
        self._write(_SQL_FILED, [(dest, now, path) for path, dest in items])

    def prune(self, older_than: float, *, now: float | None = None, paths: Sequence[str] | None = None) -> int:
        """Delete finished rows filed (or, if never filed, processed) more than ``older_than`` seconds ago
        (only those of ``paths`` when given). Claimed rows are never pruned. Returns the rows deleted."""
        cutoff = (time.time() if now is None else now) - older_than
        sql = "DELETE FROM intents WHERE status <> 'claimed' AND COALESCE(filed_at, processed_at) < ?"
        if paths is None:
            return self._write(sql, [(cutoff,)])
        return self._write(sql + " AND path = ?", [(cutoff, p) for p in paths])

    def delete(self, paths: Sequence[str]) -> None:
        """Delete the rows of ``paths`` (missing ones are ignored), in one transaction."""
        if not paths:
            return
        self._write("DELETE FROM intents WHERE path = ?", [(p,) for p in paths])

    def set_meta(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable ``value`` under ``key`` in the meta table."""
        self._write(_SQL_META, _meta_rows({key: value}))

    def get_meta(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key``, or ``default``."""
        r = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if r is None:
            return default
        return json.loads(r[0])

    # ------------------------------------------------------------------ Go format

    def import_go(self, json_path: str, progress: ProgressFn | None = None) -> int:
        """Import a Go ``.conductor-state.json`` (see :mod:`conductor_loop.gostate`); returns the rows added.

        The files are taken as already filed at their ``processed_at``; rows the database already has are
        kept (the SQLite state is authoritative). The file is streamed (memory does not grow with it) into
        one transaction: a file that is not a Go state file raises ``ValueError`` and imports nothing.
        ``progress(bytes_read)`` is called as the file is read.
        """
        return write_stream(self.conn, _SQL_IMPORT, iter_go_rows(json_path, time.time(), progress))

    def export_go(self) -> GoStateText:
        """The finished rows in the Go ``.conductor-state.json`` format (``claimed`` rows left out), as text
        in pieces read from the table as they are written: iterate it while the store is open."""
        cur = self.conn.execute(
            "SELECT path, sha256, size, processed_at, status FROM intents WHERE status <> 'claimed' ORDER BY path"
        )
        return GoStateText(cur, time.time())

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the connection (idempotent); marks the state closed cleanly if this store marked it open."""
        if self._conn is not None:
            if self.opened.marked:
                with contextlib.suppress(sqlite3.Error):  # full or read-only: the next open checks it
                    mark_clean(self._conn)
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
