"""Record, then move (SPEC §3.5), off the supervisor's dispatch path.

The supervisor hands groups of final results to one :class:`Recorder` thread, which makes them
durable and files them: one ``syncfs`` for the group (status files and packages the workers wrote),
one SQLite transaction (which also marks the previous group filed), the no-clobber moves, one fsync
per touched directory. The blocking calls release the GIL, so the supervisor keeps feeding workers
meanwhile. The thread owns its own SQLite connection; it is the only writer of intent rows while the
loop runs.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conductor_loop import _core
from conductor_loop.filing import error_log_text, write_error_log, write_status
from conductor_loop.state import Outcome, StateStore
from conductor_loop.worker import FAILED_OUTCOME, WorkResult

#: A group's "filed" marks ride along with the next group's commit; without one this soon, alone.
IDLE_FILE_AFTER = 0.05

#: What happened to one result in the recorder.
FILED, CHANGED, GONE, UNMOVABLE = "filed", "changed", "gone", "unmovable"


@dataclass(slots=True)
class Filed:
    """The recorder's answer for one result."""

    result: WorkResult
    kind: str
    moved_to: str | None = None
    error: str = ""


class Recorder(threading.Thread):
    """The thread that records groups of results and moves their intents."""

    def __init__(
        self,
        handoff: str,
        out: str,
        *,
        status_doc: Callable[[WorkResult, str | None], dict[str, Any]],
        changed: Callable[[str], bool],
        deliver: Callable[[list[Filed] | BaseException, list[WorkResult]], None],
    ) -> None:
        super().__init__(name="conductor-recorder", daemon=True)
        self.handoff = handoff
        self.out = out
        self.processed_dir = os.path.join(handoff, "processed")
        self.failed_dir = os.path.join(handoff, "failed")
        self.status_dir = os.path.join(handoff, "status")
        self.out_dev_differs = os.stat(out).st_dev != os.stat(handoff).st_dev
        self._status_doc = status_doc
        self._changed = changed
        self._deliver = deliver
        self._inbox: queue.SimpleQueue[list[WorkResult] | None] = queue.SimpleQueue()
        self._unfiled: list[tuple[str, str]] = []
        self._ready = threading.Event()
        self._open_error: BaseException | None = None

    def submit(self, results: list[WorkResult]) -> None:
        """Queue a group of final results."""
        self._inbox.put(results)

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

    def run(self) -> None:
        """Thread body."""
        try:
            state = StateStore(self.handoff)
        except BaseException as exc:  # noqa: BLE001 - handed to start_and_wait
            self._open_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                try:
                    group = self._inbox.get(timeout=IDLE_FILE_AFTER if self._unfiled else None)
                except queue.Empty:
                    # No further group to fold it into: mark the last one filed on its own.
                    state.mark_filed(self._unfiled)
                    self._unfiled = []
                    continue
                if group is None:
                    break
                try:
                    self._deliver(self._record(state, group), group)
                except Exception as exc:  # noqa: BLE001 - reported to the supervisor, intents stay put
                    self._deliver(exc, group)
            if self._unfiled:
                state.mark_filed(self._unfiled)
        finally:
            state.close()

    def _record(self, state: StateStore, group: list[WorkResult]) -> list[Filed]:
        _core.syncfs(self.handoff)  # group commit: status files and packages of the whole group
        if self.out_dev_differs:
            _core.syncfs(self.out)
        state.record(
            [
                Outcome(
                    path=r.path,
                    sha256=r.sha256,
                    size=r.size,
                    status=r.outcome,
                    message=r.message,
                    exit_code=r.exit_code,
                    duration_ms=r.duration_ms,
                    correlation_id=r.correlation_id,
                    moved_to=r.planned,
                )
                for r in group
            ],
            filed=self._unfiled,
        )
        self._unfiled = []
        answers = [self._file(r) for r in group]
        touched = {self.handoff}
        for a in answers:
            if a.kind == FILED and a.moved_to is not None:
                touched.add(os.path.dirname(a.moved_to))
                self._unfiled.append((a.result.path, a.moved_to))
        for d in touched:
            _core.fsync_dir(d)
        return answers

    def _file(self, r: WorkResult) -> Filed:
        """Move one recorded intent to processed/ or failed/, then finish its status and error log."""
        try:
            st = os.lstat(r.path)
        except FileNotFoundError:
            return Filed(r, GONE)
        if self._changed(r.path) or (
            r.stat_key is not None and r.stat_key != (st.st_ino, st.st_size, st.st_mtime_ns)
        ):
            # New content arrived while porch ran on the old: never file it under the old result.
            return Filed(r, CHANGED)
        dest = self.failed_dir if r.outcome == FAILED_OUTCOME else self.processed_dir
        try:
            moved = _core.move_noclobber(r.path, dest)
        except FileNotFoundError:
            return Filed(r, GONE)
        except OSError as exc:
            return Filed(r, UNMOVABLE, error=str(exc))
        if r.doc is None or moved != r.planned:
            doc = r.doc or self._status_doc(r, r.planned)
            doc["moved_to"] = moved
            write_status(self.status_dir, doc, fsync=True)
        if r.outcome == FAILED_OUTCOME:
            text = r.detail or error_log_text(
                intent_file=os.path.basename(r.path),
                message=r.message,
                exit_code=r.exit_code,
                stderr_tail="",
                stdout_tail="",
                ts=time.time(),
            )
            with contextlib.suppress(OSError):
                write_error_log(self.failed_dir, os.path.basename(moved), text)
        return Filed(r, FILED, moved)
