"""Files whose names are not valid UTF-8: filed in ``failed/`` unread, with the reason (docs/SECURITY.md).

Linux names are bytes; Python carries the bytes that are not UTF-8 as surrogate escapes. Such a name can
be neither a key of the state (SQLite text is UTF-8) nor a plain JSON string, and one such file must
not stop the loop. It is never read, hashed or run: the layout's name rule tells it apart
(:meth:`~conductor_loop.layout.NameRule.is_hostile`), and this module moves it to ``failed/`` (no-clobber,
fsynced), writes its error log beside it and its status file under the name with the bad bytes shown as
``\\xff`` (:func:`~conductor_loop.logs.printable`), and reports it as a failed intent of this run. It has
no state row: it never was an intent.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable

from conductor_loop.filing import error_log_text, result_status_doc, write_error_log, write_status
from conductor_loop.layout import Layout
from conductor_loop.logs import printable
from conductor_loop.records import Filing, Outcome, WorkerSettings, WorkResult
from conductor_loop.telemetry import IntentFiled, IntentNotFiled, Telemetry

REASON = "the file name is not valid UTF-8; filed without being read (rename it to UTF-8 and retry it)"


class Quarantine:
    """Files hostile names in ``failed/`` (main thread; rare, so done at once, durably)."""

    def __init__(self, layout: Layout, telemetry: Telemetry, basis: Callable[[], tuple[WorkerSettings, str]]):
        self.layout = layout
        self.telemetry = telemetry
        self.basis = basis

    def file(self, paths: Iterable[str]) -> int:
        """Move each of ``paths`` to ``failed/`` with its error log and status; how many were filed."""
        n = 0
        for path in paths:
            res = WorkResult(path=printable(path), outcome=Outcome.FAILED, message=REASON, attempt=0, worker=0)
            try:
                moved = self.layout.anchor.move_noclobber(path, self.layout.failed)
            except FileNotFoundError:
                continue  # gone meanwhile
            except OSError as exc:
                self.telemetry.emit(IntentNotFiled(res, Filing.UNMOVABLE, printable(str(exc))))
                continue
            self._record(res, moved)
            n += 1
        return n

    def _record(self, res: WorkResult, moved: str) -> None:
        for d in (self.layout.failed, self.layout.root):
            self.layout.anchor.fsync_dir(d)
        settings, porch = self.basis()
        shown = printable(moved)
        text = error_log_text(intent_file=os.path.basename(res.path), message=REASON, exit_code=None,
                              stderr_tail="", stdout_tail="", ts=time.time())
        write_error_log(self.layout, os.path.basename(moved), text, fsync=True)
        write_status(self.layout, result_status_doc(res, settings, porch, shown), fsync=True)
        self.telemetry.emit(IntentFiled(res, shown))
