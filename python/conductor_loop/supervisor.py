"""The supervisor: owns the handoff directory, the queue, the state and the moves.

One code path for once mode and watch mode: **events → settle → queue → worker → record → move**.
The Rust ``Watcher`` runs in both modes (in once mode it tells which files are still being written);
once mode simply stops when the backlog is drained.

Shaped like gunicorn's arbiter: signal handlers only append to a queue and poke a self-pipe; the main
loop multiplexes the workers' pipes and sentinels, the self-pipe and timers with one ``wait``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import heapq
import itertools
import json
import os
import re
import signal
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import wait as mp_wait
from typing import Any

from conductor_loop import _core
from conductor_loop.autoscale import Autoscaler, LoadSample, cpu_idle_fraction
from conductor_loop.config import RunConfig
from conductor_loop.logs import log_event
from conductor_loop.metrics import Health, Metrics
from conductor_loop.names import (
    FAILED,
    PROCESSED,
    STATE_DIR,
    STATUS,
    PatternMatcher,
    error_log_name,
    status_name,
)
from conductor_loop.pool import ABORT_SIGNAL, Death, Pool, WorkerHandle
from conductor_loop.porch import remove_stale_temps
from conductor_loop.recorder import CHANGED, FILED, UNMOVABLE, Filed, Recorder
from conductor_loop.state import IntentRow, Outcome, StateStore
from conductor_loop.worker import (
    FAILED_OUTCOME,
    RETRY,
    SKIPPED,
    SUCCESS,
    VANISHED,
    WorkerSettings,
    WorkItem,
    WorkResult,
    result_status_doc,
)

DEFAULT_PRIORITY = 5
#: A worker that dies this soon after its start without returning anything failed to boot; this many
#: boot failures in a row stop the loop (exit 1) instead of respawning forever.
BOOT_GRACE = 5.0
BOOT_FAILURES_FATAL = 5
#: Batches in flight per worker: one running, one ready behind it.
BATCHES_PER_WORKER = 2
#: Results are filed in groups: at most this many, or after this long, or when nothing else is in flight.
FLUSH_MAX = 256
FLUSH_AFTER = 0.02
#: First retry delay for environment failures; doubles per attempt, capped.
BACKOFF_BASE = 0.5
BACKOFF_MAX = 30.0
#: Leftover of an interrupted cross-filesystem move (see rust/fsops.rs).
_MOVE_TEMP = re.compile(r"^\.(?P<name>.+)\.cl-move-\d+-[0-9a-z]+\.tmp$")
_PRIORITY = re.compile(rb'"priority"\s*:\s*(\d{1,3})\b')


class FatalError(Exception):
    """The loop cannot run at all (exit code 1)."""


class LockHeld(Exception):
    """Another loop owns the handoff directory (exit code 2)."""


@dataclass(slots=True)
class RunSummary:
    """Counts of one run, for the closing summary line and ``status``."""

    processed: int = 0
    skipped: int = 0
    failed: int = 0
    retried: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def seconds(self) -> float:
        """Wall-clock seconds of the run so far."""
        return (self.finished or time.monotonic()) - self.started

    @property
    def total(self) -> int:
        """Intents with a final outcome."""
        return self.processed + self.skipped + self.failed

    def line(self) -> str:
        """The one-line summary printed at the end of ``--once``."""
        secs = self.seconds
        rate = self.total / secs if secs > 0 else 0.0
        return (
            f"processed {self.processed}, skipped {self.skipped}, failed {self.failed} "
            f"in {secs:.2f}s ({rate:.1f} intents/s)"
        )


def peek_priority(path: str) -> int:
    """Best-effort ``priority`` of an intent for queue ordering (never blocks, never follows links).

    A scheduling hint only: the worker's single read is what is validated and executed.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return DEFAULT_PRIORITY
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return DEFAULT_PRIORITY
        m = _PRIORITY.search(os.read(fd, 65536))
    except OSError:
        return DEFAULT_PRIORITY
    finally:
        os.close(fd)
    if m is None:
        return DEFAULT_PRIORITY
    value = int(m.group(1))
    return value if 0 <= value <= 10 else DEFAULT_PRIORITY


def acquire_lock(handoff: str) -> int:
    """Take the exclusive ``.conductor/lock`` of a handoff directory; returns the open fd.

    Raises :class:`LockHeld` naming the pid of the holder.
    """
    path = os.path.join(handoff, STATE_DIR, "lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise LockHeld(f"another conductor-loop (pid {holder}) holds {path}") from None
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


@dataclass(order=True, slots=True)
class _Queued:
    key: tuple[int, int, int]
    item: WorkItem = field(compare=False)
    lone: bool = field(default=False, compare=False)


class Supervisor:
    """Runs the loop for one handoff directory. ``run()`` returns the run's summary."""

    def __init__(
        self,
        cfg: RunConfig,
        *,
        metrics: Metrics | None = None,
        health: Health | None = None,
        reload: Callable[[], RunConfig] | None = None,
        on_outcome: Callable[[RunSummary, int], None] | None = None,
        start_method: str = "forkserver",
    ) -> None:
        self.cfg = cfg
        self.handoff = os.path.abspath(cfg.handoff)
        self.out = os.path.abspath(cfg.out)
        self.processed_dir = os.path.join(self.handoff, PROCESSED)
        self.failed_dir = os.path.join(self.handoff, FAILED)
        self.status_dir = os.path.join(self.handoff, STATUS)
        self.matcher = PatternMatcher(cfg.patterns)
        self.metrics = metrics or Metrics()
        self.health = health or Health()
        self.reload_config = reload
        self.on_outcome = on_outcome
        self.start_method = start_method
        self.summary = RunSummary()
        self.min_workers, self.max_workers = self._bounds(cfg)
        self.autoscaler = Autoscaler(self.min_workers, self.max_workers)

        self._heap: list[_Queued] = []
        self._queued: dict[str, _Queued] = {}
        self._delayed: list[tuple[float, int, WorkItem]] = []
        self._delayed_paths: set[str] = set()
        self._inflight: dict[str, WorkItem] = {}
        self._dirty: set[str] = set()
        self._done: list[WorkResult] = []
        self._records: deque[tuple[list[Filed] | BaseException, list[WorkResult]]] = deque()
        self._recording = 0
        self._boot_failures = 0
        self._young_since: float | None = None
        self.recorder: Recorder | None = None
        self._first_done = 0.0
        self._young: dict[str, float] = {}
        #: Intents whose move failed: not offered again until the watcher sees them change.
        self._unmovable: set[str] = set()
        self._seq = itertools.count()
        self._signals: deque[int] = deque()
        self._inbox: deque[Any] = deque()
        self._stopping = False
        self._force = False
        self._watch_stop = threading.Event()
        self._watch_thread: threading.Thread | None = None
        self.watcher: _core.Watcher | None = None
        self.pool: Pool | None = None
        self.state: StateStore | None = None
        self._lock_fd: int | None = None
        self._handoff_ino = 0
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._next_sweep = 0.0
        self._next_cleanup = 0.0
        self._last_scale = 0.0
        self._scale_mark = (0.0, 0)
        self.total_hint = 0
        self._started_at = time.time()

    # ------------------------------------------------------------------------------ setup --
    @staticmethod
    def _bounds(cfg: RunConfig) -> tuple[int, int]:
        if cfg.workers:
            return cfg.workers, cfg.workers
        hi = cfg.max_workers or os.cpu_count() or 1
        return max(1, min(cfg.min_workers, hi)), max(1, hi)

    def _settings(self) -> WorkerSettings:
        return WorkerSettings(
            handoff=self.handoff,
            out=self.out,
            porch=self.cfg.porch,
            mode=self.cfg.mode,
            max_file_size=self.cfg.max_file_size,
            retries=self.cfg.retries,
            timeout=self.cfg.timeout,
            intent_schema=self.cfg.intent_schema,
        )

    def prepare_dirs(self) -> None:
        """Create the handoff layout and the output dir; raise FatalError when not writable."""
        try:
            for d in (self.handoff, self.processed_dir, self.failed_dir, self.status_dir, self.out):
                os.makedirs(d, exist_ok=True)
            os.makedirs(os.path.join(self.handoff, STATE_DIR), mode=0o700, exist_ok=True)
        except OSError as exc:
            raise FatalError(f"cannot create directory {exc.filename}: {exc.strerror}") from exc
        for d in (self.handoff, self.processed_dir, self.failed_dir, self.status_dir):
            if not os.access(d, os.W_OK | os.X_OK):
                raise FatalError(f"directory {d} is not writable")

    # ------------------------------------------------------------------------------- run --
    def run(self) -> RunSummary:
        """Run until the backlog is drained (once mode) or until stopped by a signal."""
        self.prepare_dirs()
        self._lock_fd = acquire_lock(self.handoff)
        self._handoff_ino = os.stat(self.handoff).st_ino
        old_handlers = self._install_signals()
        try:
            self.state = StateStore(self.handoff)
            if self.state.recovered_from:
                log_event("state.recovered", level=30, moved_aside=self.state.recovered_from)
            if self.state.imported:
                log_event("state.imported", count=self.state.imported)
            self.health.set_reconciling(True)
            self.watcher = _core.Watcher(self.handoff, list(self.matcher.patterns), self._debounce_ms())
            self._start_watch_thread()
            self.health.set_watcher(True, "watching")
            self.metrics.watcher_up.set(1)
            self.pool = Pool(self._settings(), start_method=self.start_method)
            backlog = self._reconcile()
            self.recorder = Recorder(
                self.handoff,
                self.out,
                status_doc=self._status_doc,
                changed=self._dirty.__contains__,
                deliver=self._deliver,
            )
            self.recorder.start_and_wait()
            initial = self.min_workers
            if self.cfg.once or backlog > self.min_workers:
                initial = max(self.min_workers, min(self.max_workers, backlog))
            for _ in range(max(1, initial)):
                self._spawn()
            log_event(
                "loop.start",
                handoff=self.handoff,
                mode=self.cfg.mode,
                porch=self.cfg.porch,
                workers=self.pool.size,
                backlog=backlog,
                once=self.cfg.once,
            )
            self.health.set_reconciling(False)
            self.health.set_handoff_writable(True)
            self._loop()
        finally:
            self._shutdown()
            self._restore_signals(old_handlers)
        self.summary.finished = time.monotonic()
        log_event("loop.stop", **self._summary_fields())
        return self.summary

    def _summary_fields(self) -> dict[str, Any]:
        s = self.summary
        return {
            "processed": s.processed,
            "skipped": s.skipped,
            "failed": s.failed,
            "seconds": round(s.seconds, 3),
        }

    def _debounce_ms(self) -> int:
        return max(0, round(self.cfg.debounce * 1000))

    # ----------------------------------------------------------------------------- signals --
    def _install_signals(self) -> dict[int, Any]:
        old: dict[int, Any] = {}
        if threading.current_thread() is not threading.main_thread():
            return old
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU):
            old[sig] = signal.signal(sig, self._on_signal)
        old[-1] = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        return old

    def _restore_signals(self, old: dict[int, Any]) -> None:
        for sig, handler in old.items():
            if sig == -1:
                signal.set_wakeup_fd(handler)
            else:
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._signals.append(signum)

    def request_stop(self, force: bool = False) -> None:
        """Ask the loop to stop (thread-safe; used by tests and embedding code)."""
        self._signals.append(signal.SIGINT if force and self._stopping else signal.SIGTERM)
        self._poke()

    def _poke(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"!")

    def _handle_signals(self) -> None:
        while self._signals:
            sig = self._signals.popleft()
            if sig in (signal.SIGTERM, signal.SIGINT):
                if self._stopping and sig == signal.SIGINT:
                    self._force = True
                    log_event("loop.force_stop", level=30)
                elif not self._stopping:
                    self._stopping = True
                    self.health.set_stopping(True)
                    log_event("loop.stopping", signal=signal.Signals(sig).name, inflight=len(self._inflight))
            elif sig == signal.SIGHUP:
                self._reload()
            elif sig in (signal.SIGTTIN, signal.SIGTTOU):
                delta = 1 if sig == signal.SIGTTIN else -1
                self.max_workers = max(self.min_workers, max(1, self.max_workers + delta))
                self.autoscaler.set_bounds(self.min_workers, self.max_workers)
                log_event("pool.ceiling", max_workers=self.max_workers)
                self._resize_to(min(max(self._live(), self.min_workers), self.max_workers))

    def _reload(self) -> None:
        if self.reload_config is None:
            log_event("config.reload", level=30, outcome="ignored", reason="no configuration source")
            return
        try:
            new = self.reload_config()
        except Exception as exc:  # noqa: BLE001 - a bad reload keeps the running config
            log_event("config.reload", level=40, outcome="failed", reason=str(exc))
            return
        old_settings = self._settings()
        self.cfg = new
        self.min_workers, self.max_workers = self._bounds(new)
        self.autoscaler.set_bounds(self.min_workers, self.max_workers)
        if self.watcher is not None:
            self.watcher.set_debounce(self._debounce_ms())
        if self._settings() != old_settings and self.pool is not None:
            self.pool.settings = self._settings()
            for w in list(self.pool.workers.values()):  # rolling restart onto the new settings
                self.pool.retire(w)
                self._spawn()
        target = min(max(self._live(), self.min_workers), self.max_workers)
        self._resize_to(target)
        log_event("config.reload", outcome="applied", min_workers=self.min_workers, max_workers=self.max_workers)

    # ------------------------------------------------------------------------------ watcher --
    def _start_watch_thread(self) -> None:
        self._watch_thread = threading.Thread(target=self._watch_loop, name="conductor-watcher", daemon=True)
        self._watch_thread.start()

    def _watch_loop(self) -> None:
        w = self.watcher
        assert w is not None
        was_alive = True
        while not self._watch_stop.is_set():
            try:
                batch = w.next_batch(200)
            except Exception as exc:  # noqa: BLE001 - reported through health, never silently
                self.health.set_watcher(False, f"watcher failed: {exc}")
                self._inbox.append(("dead", str(exc)))
                self._poke()
                return
            alive = w.is_alive()
            if alive != was_alive:
                self._inbox.append(("alive", alive))
                was_alive = alive
                self._poke()
            if batch.paths or batch.rescan or batch.events:
                self._inbox.append(batch)
                self._poke()

    def _drain_inbox(self) -> None:
        rescan = False
        while self._inbox:
            msg = self._inbox.popleft()
            if isinstance(msg, tuple):
                kind, value = msg
                if kind == "alive":
                    self.health.set_watcher(bool(value), "" if value else "watch on the handoff directory lost")
                    self.metrics.watcher_up.set(1 if value else 0)
                    log_event("watcher.restored" if value else "watcher.lost", level=20 if value else 40)
                    rescan = rescan or bool(value)
                else:
                    self.metrics.watcher_up.set(0)
                    log_event("watcher.lost", level=40, reason=str(value))
                continue
            if msg.events:
                self.metrics.events_total.inc(msg.events)
            if msg.rescan:
                rescan = True
            if msg.paths:
                self._offer(msg.paths, settled=True)
        if rescan:
            self.metrics.rescans_total.inc()
            log_event("loop.rescan", reason="watcher asked for a rescan")
            with contextlib.suppress(FatalError):
                self.prepare_dirs()
                self._adopt_recreated_handoff()
            self._sweep()

    def _adopt_recreated_handoff(self) -> None:
        """The handoff directory was deleted and made again: take its lock and state anew."""
        try:
            ino = os.stat(self.handoff).st_ino
        except FileNotFoundError:
            return
        if ino == self._handoff_ino or self.state is None:
            return
        try:
            fd = acquire_lock(self.handoff)
        except (LockHeld, OSError) as exc:
            log_event("loop.lock_lost", level=40, reason=str(exc))
            self._stopping = True
            self.health.set_stopping(True)
            return
        if self._lock_fd is not None:
            os.close(self._lock_fd)
        self._lock_fd, self._handoff_ino = fd, ino
        self.state.close()
        self.state = StateStore(self.handoff)
        log_event("loop.handoff_recreated", handoff=self.handoff)

    # ------------------------------------------------------------------------- discovery --
    def _scan(self) -> list[str]:
        """Intent candidates directly in the handoff directory."""
        try:
            with os.scandir(self.handoff) as it:
                return [entry.path for entry in it if self.matcher.is_intent(entry.name)]
        except OSError as exc:  # gone, replaced by a file, unreadable: health says so; retried later
            self.health.set_handoff_writable(False, f"cannot list {self.handoff}: {exc.strerror}")
            return []

    def _sweep(self) -> int:
        """Offer every candidate that is not being written and not already known."""
        return self._take_settled(self._scan())

    def _take_settled(self, paths: Iterable[str]) -> int:
        """Offer those of ``paths`` that are settled; remember the others in ``_young`` to look again.

        A file is settled for a sweep when the watcher does not see it being written and its mtime is
        older than the debounce (SPEC §5).
        """
        now = time.time()
        debounce = self.cfg.debounce
        pending = set(self.watcher.pending()) if self.watcher is not None else set()
        ready: list[str] = []
        for path in paths:
            if path in self._queued or path in self._inflight or path in self._delayed_paths:
                self._young.pop(path, None)
                continue
            try:
                mtime = os.lstat(path).st_mtime
            except OSError:  # gone (or its directory is)
                self._young.pop(path, None)
                continue
            if path in pending or now - mtime < debounce:
                self._young[path] = max(now, mtime + debounce) + 0.001
                continue
            self._young.pop(path, None)
            ready.append(path)
        return self._offer(ready, settled=False)

    def _check_young(self) -> None:
        """Look again at candidates that were still being written at the last sweep."""
        now = time.time()
        due = [p for p, t in self._young.items() if t <= now]
        if due:
            self._take_settled(due)

    def _offer(self, paths: Iterable[str], *, settled: bool) -> int:
        """New candidates from the watcher or a scan: queue them (once), with their previous state.

        Returns how many were queued.
        """
        fresh = []
        for path in paths:
            if path in self._unmovable:
                if not settled:
                    continue
                self._unmovable.discard(path)
            if path in self._inflight:
                self._dirty.add(path)
                continue
            if path in self._queued or path in self._delayed_paths:
                continue
            self._young.pop(path, None)
            fresh.append(path)
        if not fresh or self.state is None:
            return 0
        rows = self.state.get_many(fresh)
        for path in fresh:
            row = rows.get(path)
            prev_sha = prev_when = None
            if row is not None and row.status in (SUCCESS, SKIPPED) and row.filed_at is not None:
                prev_sha, prev_when = row.sha256, row.processed_at
            self._enqueue(WorkItem(path=path, prev_sha256=prev_sha, prev_when=prev_when))
        self.total_hint += len(fresh)
        return len(fresh)

    def _enqueue(self, item: WorkItem, *, lone: bool = False) -> None:
        entry = _Queued(key=(-peek_priority(item.path), time.monotonic_ns(), next(self._seq)), item=item, lone=lone)
        heapq.heappush(self._heap, entry)
        self._queued[item.path] = entry

    # ------------------------------------------------------------------------- reconcile --
    def _reconcile(self) -> int:
        """Finish interrupted moves, file intents recorded before a crash, and queue the backlog.

        An intent counts as recorded when the state says so *or* its status file (written before the
        state commit) names a final outcome for exactly its current content: such an intent is only
        moved, never run again.
        """
        assert self.state is not None
        for d in (self.processed_dir, self.failed_dir):
            self._finish_interrupted_moves(d)
        self._remove_stale_temps(self.status_dir)
        if self.cfg.porch == "builtin":
            remove_stale_temps(self.out, older_than=self.cfg.timeout + 60.0)
        candidates = self._scan()
        rows = self.state.get_many(candidates)
        finished: list[tuple[str, str]] = []
        late: list[Outcome] = []
        for path in candidates:
            row = rows.get(path)
            recorded = self._recorded_outcome(path, row)
            if recorded is None:
                continue
            status, sha, message, from_status_file = recorded
            try:
                current, size = _core.sha256_file(path, self.cfg.max_file_size)
            except OSError:
                continue
            if current != sha:
                continue
            dest = self.failed_dir if status == FAILED_OUTCOME else self.processed_dir
            if from_status_file:
                late.append(Outcome(path, sha, size, status, message, None, None, None, None))
            final = self._own_copy(path, dest, sha) or _core.move_noclobber(path, dest)
            finished.append((path, final))
            log_event("intent.recovered", intent=os.path.basename(path), sha256=sha, moved_to=final)
        if late:
            self.state.record(late)
        if finished:
            _core.fsync_dir(self.handoff)
            self.state.mark_filed(finished)
        # Rows recorded but never marked filed whose file has left the handoff were moved before a crash.
        gone = [(r.path, r.moved_to or "") for r in self.state.unfiled() if not os.path.lexists(r.path)]
        if gone:
            self.state.mark_filed(gone)
        queued_before = len(self._queued)
        self._sweep()
        log_event("loop.reconcile", recovered=len(finished), queued=len(self._queued) - queued_before)
        return len(self._queued) + len(self._young)

    def _recorded_outcome(self, path: str, row: IntentRow | None) -> tuple[str, str, str, bool] | None:
        """(status, sha256, message, from status file) of a recorded but unfiled intent, if any."""
        final = (SUCCESS, SKIPPED, FAILED_OUTCOME)
        if row is not None and row.filed_at is None and row.status in final and row.sha256:
            return row.status, row.sha256, row.message, False
        try:
            with open(os.path.join(self.status_dir, status_name(os.path.basename(path))), "rb") as f:
                doc = json.loads(f.read(1 << 20))
        except (OSError, ValueError):
            return None
        if not isinstance(doc, dict) or doc.get("status") not in final or not isinstance(doc.get("sha256"), str):
            return None
        if row is not None and row.filed_at is not None and row.sha256 == doc["sha256"]:
            return None  # that status belongs to an earlier, filed run: this is a re-drop (dedupe)
        return str(doc["status"]), str(doc["sha256"]), str(doc.get("message", "")), True

    def _remove_stale_temps(self, directory: str) -> None:
        """Remove temp files of atomic writes that a crash left behind (never a final name)."""
        with contextlib.suppress(FileNotFoundError), os.scandir(directory) as it:
            for e in it:
                if e.name.startswith(".") and _core.ATOMIC_TEMP_MARKER in e.name and e.name.endswith(".tmp"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(e.path)

    def _own_copy(self, src: str, dest: str, sha: str) -> str | None:
        """A file in ``dest`` that is this intent's own earlier copy (interrupted cross-fs move)."""
        name = os.path.basename(src)
        stem, dot, ext = name.rpartition(".")
        if not dot:
            stem, ext = name, ""
        size = os.lstat(src).st_size
        try:
            with os.scandir(dest) as it:
                names = [e.name for e in it if e.name == name or e.name.startswith(stem + ".")]
        except FileNotFoundError:
            return None
        for n in names:
            cand = os.path.join(dest, n)
            if ext and not n.endswith("." + ext):
                continue
            try:
                if os.lstat(cand).st_size == size and _core.sha256_file(cand)[0] == sha:
                    os.unlink(src)
                    return cand
            except OSError:
                continue
        return None

    def _finish_interrupted_moves(self, dest: str) -> None:
        with os.scandir(dest) as it:
            leftovers = [(e.path, m.group("name")) for e in it if (m := _MOVE_TEMP.match(e.name))]
        for temp, name in leftovers:
            src = os.path.join(self.handoff, name)
            if os.path.lexists(src):
                os.unlink(temp)  # the source is whole: the move is simply redone later
            else:
                _core.move_noclobber(temp, dest, name)
            log_event("move.recovered", intent=name, temp=temp)

    # ------------------------------------------------------------------------------- pool --
    def _spawn(self) -> WorkerHandle:
        assert self.pool is not None
        w = self.pool.spawn()
        log_event("worker.start", worker=w.id, pid=w.proc.pid)
        self.metrics.workers.set(self.pool.size)
        return w

    def _live(self) -> int:
        return self.pool.size if self.pool is not None else 0

    def _resize_to(self, target: int) -> None:
        assert self.pool is not None
        while self.pool.size < target:
            self._spawn()
        while self.pool.size > target:
            victim = max(self.pool.idle_workers(), key=lambda w: (not w.inflight, w.slot))
            self.pool.retire(victim)
            log_event("worker.retire", worker=victim.id)
        self.metrics.workers.set(self.pool.size)

    def _dispatch(self) -> None:
        assert self.pool is not None
        if self._stopping:
            return
        now = time.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, item = heapq.heappop(self._delayed)
            self._delayed_paths.discard(item.path)
            self._enqueue(item)
        while self._heap:
            workers = [w for w in self.pool.idle_workers() if len(w.inflight) < BATCHES_PER_WORKER]
            if not workers:
                return
            w = workers[0]
            n = max(1, min(32, len(self._heap) // (2 * max(1, self.pool.size))))
            batch: list[WorkItem] = []
            while self._heap and len(batch) < n:
                entry = heapq.heappop(self._heap)
                if self._queued.get(entry.item.path) is not entry:
                    continue
                if entry.lone and batch:
                    heapq.heappush(self._heap, entry)
                    break
                del self._queued[entry.item.path]
                batch.append(entry.item)
                self._inflight[entry.item.path] = entry.item
                if entry.lone:
                    break
            if batch and not self.pool.send(w, batch):
                for item in batch:
                    del self._inflight[item.path]
                    self._enqueue(item)
                return
        self.metrics.queue_depth.set(len(self._queued))

    # ------------------------------------------------------------------------------- loop --
    def _working(self) -> bool:
        """Anything queued, running, waiting for a retry or being recorded."""
        return bool(self._heap or self._inflight or self._delayed or self._done or self._recording)

    def _idle(self) -> bool:
        return not (self._working() or self._young)

    def _once_done(self) -> bool:
        """Once mode: drained, and nothing else settled meanwhile (SPEC §4).

        Files still being written when all else is done are waited for, but not forever: after
        ``max(5 s, 10 x debounce)`` without one of them settling they are left for the next run.
        """
        if self._young and not self._working():
            now = time.monotonic()
            if self._young_since is None:
                self._young_since = now
            elif now - self._young_since >= max(5.0, 10 * self.cfg.debounce):
                log_event("loop.left_unsettled", level=30, count=len(self._young),
                          reason="still being written when the backlog was drained")
                return True
            return False
        self._young_since = None
        if not self._idle():
            return False
        return self._sweep() == 0 and self._idle()  # one last look for anything that settled meanwhile

    def _loop(self) -> None:
        assert self.pool is not None
        interval = min(30.0, max(0.05, self.cfg.debounce * 10))
        self._next_sweep = time.monotonic() + interval
        while True:
            self.health.tick()
            self._handle_signals()
            self._drain_inbox()
            if self._force:
                return
            if self._stopping and not self._inflight:
                return
            if self.cfg.once and self._once_done():
                return
            self._dispatch()
            self.metrics.workers_busy.set(self.pool.busy)
            timeout = self._next_timeout()
            ready = mp_wait([*self.pool.wait_objects(), self._wake_r], timeout)
            if self._wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._wake_r, 4096):
                        pass
            results, deaths = self.pool.collect([r for r in ready if r is not self._wake_r])
            for _w, got in results:
                if not self._done:
                    self._first_done = time.monotonic()
                self._done.extend(got)
            for death in deaths:
                self._on_death(death)
            self._take_records()
            if self._done and self._recording < 2 and (
                len(self._done) >= FLUSH_MAX
                or time.monotonic() - self._first_done >= FLUSH_AFTER
                or self.pool.busy == 0
            ):
                self._flush()
            now = time.monotonic()
            if now >= self._next_sweep:
                self._next_sweep = now + interval
                for death in self.pool.stalled(self.cfg.timeout + 10.0):
                    self._on_death(death)
                if not os.path.isdir(self.handoff):  # deleted (or replaced): make it again when we can
                    with contextlib.suppress(FatalError):
                        self.prepare_dirs()
                writable = os.access(self.handoff, os.W_OK | os.X_OK)
                self.health.set_handoff_writable(writable, "" if writable else f"{self.handoff} is not writable")
                if not self._stopping:
                    self._sweep()
                self._maybe_cleanup()
            elif self._young and not self._stopping:
                self._check_young()
            self._autoscale(now)

    def _next_timeout(self) -> float:
        now = time.monotonic()
        t = self._next_sweep - now
        if self._done and self._recording < 2:  # else the recorder's answer wakes us
            t = min(t, self._first_done + FLUSH_AFTER - now)
        if self._delayed:
            t = min(t, self._delayed[0][0] - now)
        if self._young:
            t = min(t, min(self._young.values()) - time.time() + 0.005)
        return max(0.0, min(t, 1.0))

    def _publish_live(self) -> None:
        """Publish queue and worker figures in the state, for ``conductor-loop status``."""
        assert self.pool is not None and self.state is not None
        self.state.set_meta(
            "live",
            {
                "pid": os.getpid(),
                "queue": len(self._queued) + len(self._delayed),
                "inflight": len(self._inflight),
                "workers": self.pool.size,
                "busy": self.pool.busy,
                "max_workers": self.max_workers,
                "updated_at": time.time(),
                "started_at": self._started_at,
                "processed": self.summary.processed,
                "skipped": self.summary.skipped,
                "failed": self.summary.failed,
            },
        )

    def _autoscale(self, now: float) -> None:
        assert self.pool is not None
        if now - self._last_scale < 1.0:
            return
        self._last_scale = now
        self._publish_live()
        if self._stopping:
            return
        done = self.summary.total + self.summary.retried
        t0, n0 = self._scale_mark
        self._scale_mark = (now, done)
        rate = (done - n0) / (now - t0) / max(1, self.pool.size) if t0 else 0.0
        sample = LoadSample(
            now=now,
            queue=len(self._heap) + len(self._inflight),
            workers=self.pool.size,
            busy=self.pool.busy,
            cpu_idle=cpu_idle_fraction(),
            rate_per_worker=rate,
        )
        target = self.autoscaler.decide(sample)
        if target != self.pool.size:
            log_event("pool.resize", workers=target, previous=self.pool.size, queue=sample.queue)
            self._resize_to(target)

    # ------------------------------------------------------------------------ outcomes --
    def _on_death(self, death: Death) -> None:
        log_event("worker.exit", level=30, worker=death.worker.id, reason=death.reason, lost=len(death.lost))
        alone = len(death.lost) == 1
        for item in death.lost:
            self._inflight.pop(item.path, None)
            if alone:
                item.attempt += 1
            if item.attempt > self.cfg.retries + 1:
                self._done.append(
                    WorkResult(
                        path=item.path,
                        outcome=FAILED_OUTCOME,
                        message=f"{death.reason} while processing this intent",
                        attempt=item.attempt - 1,
                        worker=death.worker.id,
                    )
                )
                self._first_done = self._first_done or time.monotonic()
            else:
                self._enqueue(item, lone=True)  # alone, so a poison intent is pinned down
        w = death.worker
        if w.retiring:
            pass  # asked to leave
        elif not w.served and time.monotonic() - w.started < BOOT_GRACE:
            self._boot_failures += 1
            if self._boot_failures >= BOOT_FAILURES_FATAL:
                raise FatalError(f"workers die while starting ({death.reason}, {self._boot_failures} times in a row)")
        else:
            self._boot_failures = 0
        if not self._stopping and self.pool is not None and not w.retiring:
            self._spawn()  # the pool keeps its size; the autoscaler decides about shrinking
            log_event("worker.replaced", worker=w.id)

    def _flush(self) -> None:
        """Hand a group of final results to the recorder (record, then move: SPEC §3.5)."""
        assert self.recorder is not None
        done, self._done = self._done, []
        final: list[WorkResult] = []
        for r in done:
            if r.outcome == VANISHED:
                self._inflight.pop(r.path, None)
                self._dirty.discard(r.path)
                continue
            if r.outcome == RETRY:
                item = self._inflight.pop(r.path, None)
                self._retry(item or WorkItem(path=r.path, attempt=r.attempt), r)
                continue
            final.append(r)  # stays "in flight" until filed, so it is not taken twice
        if final:
            self._recording += 1
            self.recorder.submit(final)

    def _deliver(self, answer: list[Filed] | BaseException, group: list[WorkResult]) -> None:
        """Called in the recorder thread: pass its answer to the main loop."""
        self._records.append((answer, group))
        self._poke()

    def _take_records(self) -> None:
        """Finish, in the main loop, what the recorder filed: counts, logs, requeues."""
        while self._records:
            answer, group = self._records.popleft()
            self._recording -= 1
            if isinstance(answer, BaseException):
                log_event("record.failed", level=40, reason=str(answer), count=len(group))
                for r in group:  # not recorded: they stay in the handoff and are offered again
                    self._inflight.pop(r.path, None)
                continue
            for f in answer:
                r = f.result
                self._inflight.pop(r.path, None)
                self._dirty.discard(r.path)
                name = os.path.basename(r.path)
                if f.kind == FILED and f.moved_to is not None:
                    self._count(r, name, f.moved_to)
                elif f.kind == CHANGED:
                    log_event("intent.changed", intent=name, sha256=r.sha256)
                    self._offer([r.path], settled=True)
                elif f.kind == UNMOVABLE:
                    self._unmovable.add(r.path)
                    log_event("intent.move_failed", level=40, intent=name, reason=f.error)
                else:
                    log_event("intent.vanished", level=30, intent=name, outcome=r.outcome)

    def _status_doc(self, r: WorkResult, moved_to: str | None) -> dict[str, Any]:
        return result_status_doc(r, self._settings(), self.cfg.porch, moved_to)

    def _count(self, r: WorkResult, name: str, moved: str) -> None:
        s = self.summary
        if r.outcome == SUCCESS:
            s.processed += 1
        elif r.outcome == SKIPPED:
            s.skipped += 1
        else:
            s.failed += 1
        self.metrics.observe_outcome(r.outcome, r.duration_ms / 1000.0, timed_out=r.timed_out)
        log_event(
            f"intent.{r.outcome}",
            level=30 if r.outcome == FAILED_OUTCOME else 20,
            intent=name,
            sha256=r.sha256,
            worker=r.worker,
            duration_ms=round(r.duration_ms, 3),
            outcome=r.outcome,
            correlation_id=r.correlation_id,
            moved_to=moved,
            message=r.message if r.outcome != SUCCESS else None,
        )
        if self.on_outcome is not None:
            self.on_outcome(s, self.total_hint)

    def _retry(self, item: WorkItem, r: WorkResult) -> None:
        self.summary.retried += 1
        self.metrics.retries_total.inc()
        if r.timed_out:
            self.metrics.porch_timeouts_total.inc()
        delay = min(BACKOFF_MAX, BACKOFF_BASE * (2 ** (item.attempt - 1)))
        item.attempt += 1
        log_event(
            "intent.retry",
            level=30,
            intent=os.path.basename(item.path),
            attempt=item.attempt,
            delay_s=delay,
            reason=r.message,
        )
        heapq.heappush(self._delayed, (time.monotonic() + delay, next(self._seq), item))
        self._delayed_paths.add(item.path)

    # ---------------------------------------------------------------------------- cleanup --
    def _maybe_cleanup(self) -> None:
        if not self.cfg.cleanup_after or self.state is None:
            return
        now = time.monotonic()
        if now < self._next_cleanup:
            return
        self._next_cleanup = now + min(3600.0, max(1.0, self.cfg.cleanup_after / 10))
        cutoff = time.time() - self.cfg.cleanup_after
        removed = 0
        rows = self.state.filed_before(cutoff)
        for row in rows:
            targets = [row.moved_to] if row.moved_to else []
            if row.moved_to and row.status == FAILED_OUTCOME:
                targets.append(os.path.join(self.failed_dir, error_log_name(os.path.basename(row.moved_to))))
            for t in targets:
                if t and os.path.dirname(t) in (self.processed_dir, self.failed_dir):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(t)
                        removed += 1
            status_path = os.path.join(self.status_dir, status_name(os.path.basename(row.path)))
            with contextlib.suppress(FileNotFoundError):
                if not os.path.lexists(row.path):
                    os.unlink(status_path)
                    removed += 1
        if rows:
            # By age in one statement: a row the recorder refreshed meanwhile is kept.
            pruned = self.state.prune(self.cfg.cleanup_after)
            log_event("cleanup.removed", files=removed, rows=pruned)

    # --------------------------------------------------------------------------- shutdown --
    def _shutdown(self) -> None:
        self._watch_stop.set()
        if self.pool is not None:
            if self._force:
                for w in list(self.pool.workers.values()):
                    self.pool.kill(w, ABORT_SIGNAL)  # workers stop porch's process group first
            self.pool.stop(timeout=2.0 if self._force else self.cfg.timeout + 10.0)
        if self.recorder is not None and self.recorder.is_alive():
            if self._done:
                self._flush()
            self.recorder.stop()
            self._take_records()
        if self._watch_thread is not None:
            self._watch_thread.join(timeout=2.0)
        if self.watcher is not None:
            self.watcher.close()
        if self.state is not None:
            self.state.set_meta("last_run", {**self._summary_fields(), "finished_at": time.time()})
            self.state.set_meta("live", None)
            self.state.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.metrics.workers.set(0)
        self.metrics.workers_busy.set(0)

