"""Record, then move (README, "Crash safety"), off the loop's dispatch path.

The loop hands groups of final results to one :class:`Recorder` thread, which makes them durable and
files them: one ``syncfs`` for the group (status files and packages the workers wrote), one SQLite
transaction (which also marks the previous group filed), the no-clobber moves, one fsync per touched
directory. The blocking calls release the GIL, so the loop keeps feeding workers meanwhile. The
thread owns its own SQLite connection; it is the only writer of intent rows while the loop runs, and it
writes the live figures the loop publishes (:meth:`Recorder.publish`) with its next commit.

Data flows one way: a group goes in with the facts it needs (the paths seen changing while they
ran); a :class:`~conductor_loop.records.GroupRecorded` comes back as data the loop reads when
:meth:`Recorder.fileno` is readable. The thread never calls into the loop.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Collection, Mapping
from typing import Any

from conductor_loop import _core
from conductor_loop.faults import fault_of
from conductor_loop.filing import error_log_text, write_error_log, write_status
from conductor_loop.layout import Layout
from conductor_loop.records import Filed, Filing, GroupRecorded, Outcome, WorkResult
from conductor_loop.state import Outcome as Recorded
from conductor_loop.state import StateStore

#: A group of results, the paths seen written while they ran, and the paths on their last run.
_Group = tuple[list[WorkResult], frozenset[str], dict[str, int]]
#: In the inbox: meta values are waiting and no group may come soon to carry them.
_META = "meta"

#: A group's "filed" marks ride along with the next group's commit; without one this soon, alone.
IDLE_FILE_AFTER = 0.05


class Recorder(threading.Thread):
    """The thread that records groups of results and moves their intents."""

    def __init__(self, layout: Layout, out: str) -> None:
        super().__init__(name="conductor-recorder", daemon=True)
        self.layout = layout
        self.out = out
        self.out_dev_differs = os.stat(out).st_dev != os.stat(layout.root).st_dev
        self._inbox: queue.SimpleQueue[_Group | str | None] = queue.SimpleQueue()
        self._meta: dict[str, Any] = {}
        self._meta_lock = threading.Lock()
        self._answers: deque[GroupRecorded] = deque()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._unfiled: list[tuple[str, str]] = []
        self._ready = threading.Event()
        self._open_error: BaseException | None = None
        self.pending = 0
        #: Groups committed and the results they held (read once the thread has stopped).
        self.groups = 0
        self.grouped = 0

    # -- the loop's side ---------------------------------------------------------------------
    def submit(
        self, results: list[WorkResult], changed: Collection[str] = (), last_runs: Mapping[str, int] | None = None
    ) -> None:
        """Queue a group of final results.

        ``changed``: paths seen written while they ran (filed only if their content is the same);
        ``last_runs``: paths re-run for changes ``--retries`` times already, with their run count: a
        further change files them in ``failed/`` (README, "Changed while porch ran").
        """
        self.pending += 1
        self._inbox.put((results, frozenset(changed), dict(last_runs or {})))

    def publish(self, key: str, value: Any) -> None:
        """Have ``value`` stored under ``key`` in the state's meta table (the live figures): with the next
        group's commit, or at once when no group is in hand. The loop's thread never waits on SQLite."""
        with self._meta_lock:
            self._meta[key] = value
        if not self.pending:
            self._inbox.put(_META)

    def fileno(self) -> int:
        """Readable when answers are waiting (for ``multiprocessing.connection.wait``)."""
        return self._wake_r

    def answers(self) -> list[GroupRecorded]:
        """The answers ready so far (never blocks)."""
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 4096):
                pass
        out: list[GroupRecorded] = []
        while self._answers:
            out.append(self._answers.popleft())
        self.pending -= len(out)
        return out

    def start_and_wait(self) -> None:
        """Start the thread and wait until its state connection is open (raises its error)."""
        self.start()
        self._ready.wait()
        if self._open_error is not None:
            raise self._open_error

    def stop(self) -> None:
        """Finish what is queued, mark the last group filed, close; joins the thread."""
        self._inbox.put(None)
        self.join()

    def close(self) -> None:
        """Close the wake-up pipe (after :meth:`stop`)."""
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- the thread --------------------------------------------------------------------------
    def _answer(self, answer: GroupRecorded) -> None:
        self._answers.append(answer)
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"!")

    def run(self) -> None:
        """Thread body."""
        try:
            state = StateStore(self.layout.root)
        except BaseException as exc:  # noqa: BLE001 - handed to start_and_wait
            self._open_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            self._serve(state)
        finally:
            state.close()

    def _serve(self, state: StateStore) -> None:
        while True:
            try:
                got = self._inbox.get(timeout=IDLE_FILE_AFTER if self._unfiled else None)
            except queue.Empty:
                # No further group to fold it into: mark the last one filed on its own.
                with contextlib.suppress(Exception):  # disk full, read-only: retried with the next group
                    state.mark_filed(self._unfiled)
                    self._unfiled = []
                continue
            if got is None:
                break
            if not isinstance(got, str):
                self._group(state, *got)
            if self._meta:  # published after this group's commit began, or with none in hand: on its own
                with contextlib.suppress(Exception):  # best effort: published again within a second
                    state.record([], meta=self._take_meta())
        if self._unfiled:
            with contextlib.suppress(Exception):  # marked on the next start (recovery) when this fails
                state.mark_filed(self._unfiled)

    def _group(self, state: StateStore, group: list[WorkResult], changed: frozenset[str],
               last_runs: dict[str, int]) -> None:
        try:
            filed = self._record(state, group, changed, last_runs)
            self.groups, self.grouped = self.groups + 1, self.grouped + len(group)
            self._answer(GroupRecorded(group, filed))
        except Exception as exc:  # noqa: BLE001 - reported to the loop, intents stay put
            self._answer(GroupRecorded(group, [], error=str(exc), fault=fault_of(exc, state.path)))

    def _record(
        self, state: StateStore, group: list[WorkResult], changed: frozenset[str], last_runs: dict[str, int]
    ) -> list[Filed]:
        checked = [(r, self._check(r, r.path in changed, last_runs.get(r.path))) for r in group]
        _core.syncfs(self.layout.root)  # group commit: status files and packages of the whole group
        if self.out_dev_differs:
            _core.syncfs(self.out)
        state.record([_row(r) for r in group], filed=self._unfiled, meta=self._take_meta())
        self._unfiled = []
        answers = [self._file(r, kind) for r, kind in checked]
        late = [a.result for a, (_r, k) in zip(answers, checked, strict=True) if a.kind is Filing.GONE and k is None]
        for r in late:  # left between the check and the move: the status and the state say so
            self._vanished(r)
        if late:
            state.record([_row(r) for r in late])
        touched = {self.layout.root}
        for a in answers:
            if a.kind is Filing.FILED and a.moved_to is not None:
                touched.add(os.path.dirname(a.moved_to))
                self._unfiled.append((a.result.path, a.moved_to))
        for d in touched:
            self.layout.anchor.fsync_dir(d)
        return answers

    def _take_meta(self) -> dict[str, Any]:
        with self._meta_lock:
            meta, self._meta = self._meta, {}
        return meta

    def _check(self, r: WorkResult, seen_written: bool, last_run: int | None) -> Filing | None:
        """Before the commit: is the intent still there, with the content porch ran on?

        Gone: the result is rewritten as a failure saying so (``GONE``). Changed content: ``CHANGED`` (run
        again), or on its last run a failure saying so, filed in ``failed/``. The same bytes (porch touched
        or rewrote its intent) are filed as they are. ``None``: file it.
        """
        try:
            st = os.lstat(r.path)
        except FileNotFoundError:
            self._vanished(r)
            return Filing.GONE
        if not seen_written and (r.stat_key is None or r.stat_key == (st.st_ino, st.st_size, st.st_mtime_ns)):
            return None
        try:
            sha, size = _core.sha256_file(r.path)
        except FileNotFoundError:
            self._vanished(r)
            return Filing.GONE
        except OSError:
            sha, size = "", st.st_size
        if sha == r.sha256:
            return None
        if last_run is None:
            return Filing.CHANGED
        r.sha256, r.size = sha or None, size  # the content that is filed
        if r.doc is not None:
            r.doc.update(sha256=r.sha256, size=size)
        message = f"intent changed while porch ran, on {last_run} runs in a row; not run again"
        self._rewrite(r, Outcome.FAILED, message, self.layout.planned(r.path, Outcome.FAILED))
        return None

    def _vanished(self, r: WorkResult) -> None:
        """The intent left the handoff while porch ran on it: a failure, filed nowhere (README, "Status files")."""
        ran = f"porch exited {r.exit_code}" if r.exit_code is not None else f"it was {r.outcome}"
        self._rewrite(r, Outcome.FAILED, f"intent vanished while porch ran; {ran}: {r.message}", None)

    def _rewrite(self, r: WorkResult, outcome: Outcome, message: str, planned: str | None) -> None:
        r.outcome, r.message, r.planned, r.detail = outcome, message, planned, ""
        if r.doc is not None:
            r.doc.update(status=outcome.value, message=message, moved_to=planned)
            write_status(self.layout, r.doc)

    def _file(self, r: WorkResult, kind: Filing | None) -> Filed:
        """Move one recorded intent to processed/ or failed/, then finish its status and error log."""
        if kind is not None:
            return Filed(r, kind)
        try:
            moved = self.layout.anchor.move_noclobber(r.path, self.layout.destination(r.outcome))
        except FileNotFoundError:
            return Filed(r, Filing.GONE)
        except OSError as exc:
            return Filed(r, Filing.UNMOVABLE, error=str(exc))
        if r.doc is not None and moved != r.planned:
            r.doc["moved_to"] = moved
            write_status(self.layout, r.doc, fsync=True)
        if r.outcome is Outcome.FAILED:
            self._error_log(r, moved)
        return Filed(r, Filing.FILED, moved)

    def _error_log(self, r: WorkResult, moved: str) -> None:
        text = r.detail or error_log_text(
            intent_file=os.path.basename(r.path),
            message=r.message,
            exit_code=r.exit_code,
            stderr_tail="",
            stdout_tail="",
            ts=time.time(),
        )
        with contextlib.suppress(OSError):
            write_error_log(self.layout, os.path.basename(moved), text)


def _row(r: WorkResult) -> Recorded:
    return Recorded(
        path=r.path,
        sha256=r.sha256,
        size=r.size,
        status=r.outcome.value,
        message=r.message,
        exit_code=r.exit_code,
        duration_ms=r.duration_ms,
        correlation_id=r.correlation_id,
        moved_to=r.planned,
    )
