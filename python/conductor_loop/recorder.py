"""Record, then move (README, "Crash safety"), off the loop's dispatch path.

The loop hands groups of final results to one :class:`Recorder` thread, which makes them durable and
files them: one ``syncfs`` for the group (status files and packages the workers wrote), one SQLite
transaction (which also marks the previous group filed), the no-clobber moves, one fsync per touched
directory. The blocking calls release the GIL, so the loop keeps feeding workers meanwhile. The
thread owns its own SQLite connection; it is the only writer of intent rows while the loop runs.

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
from collections.abc import Collection

from conductor_loop import _core
from conductor_loop.filing import error_log_text, write_error_log, write_status
from conductor_loop.layout import Layout
from conductor_loop.records import Filed, Filing, GroupRecorded, Outcome, WorkResult
from conductor_loop.state import Outcome as Recorded
from conductor_loop.state import StateStore

#: A group's "filed" marks ride along with the next group's commit; without one this soon, alone.
IDLE_FILE_AFTER = 0.05


class Recorder(threading.Thread):
    """The thread that records groups of results and moves their intents."""

    def __init__(self, layout: Layout, out: str) -> None:
        super().__init__(name="conductor-recorder", daemon=True)
        self.layout = layout
        self.out = out
        self.out_dev_differs = os.stat(out).st_dev != os.stat(layout.root).st_dev
        self._inbox: queue.SimpleQueue[tuple[list[WorkResult], frozenset[str]] | None] = queue.SimpleQueue()
        self._answers: deque[GroupRecorded] = deque()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._unfiled: list[tuple[str, str]] = []
        self._ready = threading.Event()
        self._open_error: BaseException | None = None
        self.pending = 0

    # -- the loop's side ---------------------------------------------------------------------
    def submit(self, results: list[WorkResult], changed: Collection[str] = ()) -> None:
        """Queue a group of final results; ``changed``: paths seen written while they ran (not filed)."""
        self.pending += 1
        self._inbox.put((results, frozenset(changed)))

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
                state.mark_filed(self._unfiled)
                self._unfiled = []
                continue
            if got is None:
                break
            group, changed = got
            try:
                self._answer(GroupRecorded(group, self._record(state, group, changed)))
            except Exception as exc:  # noqa: BLE001 - reported to the loop, intents stay put
                self._answer(GroupRecorded(group, [], error=str(exc)))
        if self._unfiled:
            state.mark_filed(self._unfiled)

    def _record(self, state: StateStore, group: list[WorkResult], changed: frozenset[str]) -> list[Filed]:
        _core.syncfs(self.layout.root)  # group commit: status files and packages of the whole group
        if self.out_dev_differs:
            _core.syncfs(self.out)
        state.record([_row(r) for r in group], filed=self._unfiled)
        self._unfiled = []
        answers = [self._file(r, r.path in changed) for r in group]
        touched = {self.layout.root}
        for a in answers:
            if a.kind is Filing.FILED and a.moved_to is not None:
                touched.add(os.path.dirname(a.moved_to))
                self._unfiled.append((a.result.path, a.moved_to))
        for d in touched:
            _core.fsync_dir(d)
        return answers

    def _file(self, r: WorkResult, changed: bool) -> Filed:
        """Move one recorded intent to processed/ or failed/, then finish its status and error log."""
        try:
            st = os.lstat(r.path)
        except FileNotFoundError:
            return Filed(r, Filing.GONE)
        if changed or (r.stat_key is not None and r.stat_key != (st.st_ino, st.st_size, st.st_mtime_ns)):
            # New content arrived while porch ran on the old: never file it under the old result.
            return Filed(r, Filing.CHANGED)
        try:
            moved = _core.move_noclobber(r.path, self.layout.destination(r.outcome))
        except FileNotFoundError:
            return Filed(r, Filing.GONE)
        except OSError as exc:
            return Filed(r, Filing.UNMOVABLE, error=str(exc))
        if r.doc is not None and moved != r.planned:
            r.doc["moved_to"] = moved
            write_status(self.layout.status, r.doc, fsync=True)
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
            write_error_log(self.layout.failed, os.path.basename(moved), text)


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
