"""What a worker does with one intent: read once, validate, dedupe, execute, write the status.

Workers never move files and never touch the state database: they return a :class:`WorkResult`
and the supervisor records and files it. The bytes that are hashed are the bytes validated and
handed to the executor (one read, :func:`conductor_loop.validate.read_intent`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from conductor_loop.executor import ExecRequest, Executor, load_executor
from conductor_loop.filing import error_log_text, rfc3339, status_doc, write_status
from conductor_loop.intent_schema import BUILTIN, IntentSchema
from conductor_loop.names import FAILED, PROCESSED, STATUS
from conductor_loop.validate import ValidationError, read_intent

#: Outcomes a worker reports. ``retry`` means an environment failure with attempts left; ``vanished``
#: means the file disappeared before it could be read (nothing is written for it).
SUCCESS, FAILED_OUTCOME, SKIPPED, RETRY, VANISHED = "success", "failed", "skipped", "retry", "vanished"


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """Everything a worker needs to process intents; picklable, sent once at worker start."""

    handoff: str
    out: str
    porch: str
    mode: str
    max_file_size: int
    retries: int
    timeout: float
    intent_schema: IntentSchema = BUILTIN


@dataclass(slots=True)
class WorkItem:
    """One intent to process. ``prev_sha256`` is the content last processed with success and filed."""

    path: str
    attempt: int = 1
    prev_sha256: str | None = None
    prev_when: float | None = None


@dataclass(slots=True)
class WorkResult:
    """What happened to one intent in a worker."""

    path: str
    outcome: str
    message: str
    attempt: int
    worker: int
    sha256: str | None = None
    size: int | None = None
    exit_code: int | None = None
    duration_ms: float = 0.0
    timed_out: bool = False
    output_dir: str | None = None
    correlation_id: str | None = None
    #: (inode, size, mtime_ns) seen before the read: the supervisor files the intent only if unchanged.
    stat_key: tuple[int, int, int] | None = None
    #: Where the status file says the intent goes; the supervisor rewrites the status if it differs.
    planned: str | None = None
    #: Error log body for failures.
    detail: str = ""
    doc: dict[str, Any] | None = field(default=None)


class IntentProcessor:
    """Processes intents inside one worker process (or in-process, for tests and ``--workers 0``)."""

    def __init__(self, settings: WorkerSettings, worker_id: int, executor: Executor | None = None) -> None:
        self.settings = settings
        self.worker_id = worker_id
        self.executor = executor if executor is not None else load_executor(settings.porch, settings.mode)
        self.porch_path = getattr(self.executor, "porch_path", settings.porch)
        self.status_dir = os.path.join(settings.handoff, STATUS)
        self.processed_dir = os.path.join(settings.handoff, PROCESSED)
        self.failed_dir = os.path.join(settings.handoff, FAILED)

    def process(self, item: WorkItem) -> WorkResult:
        """Process one intent and write its status file (for final outcomes)."""
        t0 = time.perf_counter()
        path = item.path
        res = WorkResult(path=path, outcome=VANISHED, message="", attempt=item.attempt, worker=self.worker_id)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            res.message = "vanished before it was read"
            return res
        except OSError as exc:
            st = None
            res.message = f"cannot stat: {exc.strerror}"
        if st is not None:
            res.stat_key = (st.st_ino, st.st_size, st.st_mtime_ns)
        try:
            sha, size, _content, intent = read_intent(path, self.settings.max_file_size, self.settings.intent_schema)
        except FileNotFoundError:
            res.message = "vanished before it was read"
            return res
        except ValidationError as exc:
            res.sha256, res.size = exc.sha256, exc.size
            res.outcome, res.message = FAILED_OUTCOME, f"invalid intent: {exc.reason}"
            res.detail = res.message
            return self._finish(res, t0)
        res.sha256, res.size, res.correlation_id = sha, size, intent.correlation_id
        if item.prev_sha256 is not None and item.prev_sha256 == sha:
            when = rfc3339(item.prev_when) if item.prev_when else "an earlier run"
            res.outcome = SKIPPED
            res.message = f"identical content (sha256 {sha[:12]}) already processed with success at {when}"
            return self._finish(res, t0)
        req = ExecRequest(
            intent_path=os.path.abspath(path),
            out_dir=self.settings.out,
            structured=self.settings.mode == "structured",
            intent=intent,
            sha256=sha,
            attempt=item.attempt,
            timeout=self.settings.timeout,
        )
        out = self.executor.execute(req)
        res.exit_code, res.timed_out, res.output_dir = out.exit_code, out.timed_out, out.output_dir
        res.message = out.message
        if out.ok:
            res.outcome = SUCCESS
        elif out.retryable and item.attempt <= self.settings.retries:
            res.outcome = RETRY
        else:
            res.outcome = FAILED_OUTCOME
            res.detail = error_log_text(
                intent_file=os.path.basename(path),
                message=out.message,
                exit_code=out.exit_code,
                stderr_tail=out.stderr_tail,
                stdout_tail=out.stdout_tail,
                ts=time.time(),
            )
        return self._finish(res, t0)

    def _finish(self, res: WorkResult, t0: float) -> WorkResult:
        res.duration_ms = (time.perf_counter() - t0) * 1000.0
        if res.outcome in (SUCCESS, SKIPPED, FAILED_OUTCOME):
            name = os.path.basename(res.path)
            dest = self.failed_dir if res.outcome == FAILED_OUTCOME else self.processed_dir
            res.planned = os.path.join(dest, name)
            res.doc = self.status_for(res, res.planned)
            write_status(self.status_dir, res.doc)
        return res

    def status_for(self, res: WorkResult, moved_to: str | None) -> dict[str, Any]:
        """The status document of a result, as filed at ``moved_to``."""
        return result_status_doc(res, self.settings, self.porch_path, moved_to)


def result_status_doc(
    res: WorkResult, settings: WorkerSettings, porch_path: str, moved_to: str | None
) -> dict[str, Any]:
    """The status document (SPEC §2) of a final result filed at ``moved_to``."""
    return status_doc(
        intent_file=os.path.basename(res.path),
        status=res.outcome,
        message=res.message,
        mode=settings.mode,
        porch_path=porch_path,
        sha256=res.sha256,
        size=res.size,
        duration_ms=res.duration_ms,
        exit_code=res.exit_code,
        attempts=res.attempt,
        worker=res.worker,
        moved_to=moved_to,
        output_dir=res.output_dir,
        correlation_id=res.correlation_id,
    )
