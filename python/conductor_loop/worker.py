"""What a worker does with one intent: read once, validate, dedupe, execute, write the status.

Workers never move files and never touch the state database: they return a
:class:`~conductor_loop.records.WorkResult` and the loop records and files it. The bytes that are
hashed are the bytes validated and handed to the executor (one read,
:func:`conductor_loop.validate.read_intent`). :func:`worker_main` is the body of a pool process.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from conductor_loop import _core
from conductor_loop.executor import ExecRequest, ExecResult, Executor, load_executor
from conductor_loop.faults import fault_of, space_fault
from conductor_loop.filing import error_log_text, result_status_doc, write_status
from conductor_loop.layout import Layout, duplicate_message
from conductor_loop.leftovers import porch_env
from conductor_loop.records import ABORT_SIGNAL, Outcome, WorkerSettings, WorkItem, WorkResult
from conductor_loop.validate import Intent, ValidationError, read_intent


@dataclass(slots=True)
class Prepared:
    """An intent read, hashed, validated and deduped: ``request`` for porch (with ``content``, the bytes
    hashed), or ``None`` when ``result`` is decided already."""

    result: WorkResult
    request: ExecRequest | None
    t0: float
    content: bytes = b""


class IntentProcessor:
    """Processes intents inside one worker process (or in-process, for tests)."""

    def __init__(self, settings: WorkerSettings, worker_id: int, executor: Executor | None = None) -> None:
        self.settings = settings
        self.worker_id = worker_id
        self.policy = settings.policy
        self.executor = executor if executor is not None else load_executor(settings.porch, settings.mode)
        self.porch_path = getattr(self.executor, "porch_path", settings.porch)
        self.layout = Layout(settings.handoff)
        self._porch_env = porch_env(self.layout, worker_id)

    def process(self, item: WorkItem) -> WorkResult:
        """Process one intent and write its status file (for final outcomes)."""
        prep = self.prepare(item)
        if prep.request is None:
            return prep.result
        self.executed(prep.result, item, self.executor.execute(prep.request))
        return self.finish(prep.result, prep.t0)

    def prepare(self, item: WorkItem) -> Prepared:
        """Read once, hash, validate, dedupe: the request for porch, or (``request`` None) a result decided
        already (vanished before it was read; invalid, or a duplicate, its status written)."""
        t0 = time.monotonic()
        path = item.path
        res = WorkResult(path=path, outcome=Outcome.VANISHED, message="", attempt=item.attempt, worker=self.worker_id,
                         first_started=item.first_started or t0, attempt_log=list(item.earlier or ()))
        try:
            sha, size, content, intent = self._read(res)
        except FileNotFoundError:
            res.message = "vanished before it was read"
            return Prepared(res, None, t0)
        except ValidationError as exc:
            res.sha256, res.size = exc.sha256, exc.size
            res.outcome, res.message = Outcome.FAILED, f"invalid intent: {exc.reason}"
            res.detail = res.message
            return Prepared(self.finish(res, t0), None, t0)
        res.sha256, res.size, res.correlation_id = sha, size, intent.correlation_id
        if item.prev_sha256 is not None and item.prev_sha256 == sha:  # the basis from layout.dedupe_basis
            res.outcome = Outcome.SKIPPED
            res.message = duplicate_message(sha, item.prev_when)
            return Prepared(self.finish(res, t0), None, t0)
        req = ExecRequest(
            intent_path=os.path.abspath(path),
            out_dir=self.settings.out,
            structured=self.settings.mode == "structured",
            intent=intent,
            sha256=sha,
            attempt=item.attempt,
            timeout=self.settings.timeout,
            env_extra=self._porch_env,
        )
        return Prepared(res, req, t0, content)

    def _read(self, res: WorkResult) -> tuple[str, int, bytes, Intent]:
        """Read, hash and validate once, after noting (inode, size, mtime) to compare before the move."""
        try:
            st = os.lstat(res.path)
        except FileNotFoundError:
            raise
        except OSError as exc:
            res.message = f"cannot stat: {exc.strerror}"
        else:
            res.stat_key = (st.st_ino, st.st_size, st.st_mtime_ns)
        return read_intent(res.path, self.settings.max_file_size, self.settings.intent_schema)

    def executed(self, res: WorkResult, item: WorkItem, out: ExecResult) -> None:
        """Fold porch's outcome into ``res``: success, a retry (environment failure with attempts left) or a failure."""
        res.exit_code, res.timed_out, res.output_dir = out.exit_code, out.timed_out, out.output_dir
        res.message = out.message
        if not out.ok:  # porch failing on a full or read-only --out is the environment's fault: retried
            res.fault = space_fault(self.settings.out)
        if out.ok:
            res.outcome = Outcome.SUCCESS
        elif (out.retryable or res.fault) and self.policy.may_retry(item.attempt):
            res.outcome = Outcome.RETRY
        else:
            res.outcome = Outcome.FAILED
            res.detail = error_log_text(
                intent_file=os.path.basename(res.path),
                message=out.message,
                exit_code=out.exit_code,
                stderr_tail=out.stderr_tail,
                stdout_tail=out.stdout_tail,
                ts=time.time(),
            )

    def finish(self, res: WorkResult, t0: float) -> WorkResult:
        """Log the attempt; for a final outcome, plan where it is filed and write its status file."""
        now = time.monotonic()
        res.attempt_log.append({"attempt": res.attempt, "duration_ms": round((now - t0) * 1000.0, 3),
                                "outcome": res.outcome.value, "exit_code": res.exit_code, "message": res.message})
        res.duration_ms = (now - (res.first_started or t0)) * 1000.0
        if res.outcome.final:
            res.planned = self.layout.planned(res.path, res.outcome)
            res.doc = self.status_for(res, res.planned)
            try:
                write_status(self.layout, res.doc)
            except _core.LinkInPath as exc:  # status/ swapped for a link: nothing written; the loop stops
                if exc.errno != errno.ELOOP:
                    raise  # a file in its place: an error like any other (not given back again and again)
                res.outcome, res.message, res.planned, res.doc = Outcome.RETURNED, str(exc), None, None
        return res

    def status_for(self, res: WorkResult, moved_to: str | None) -> dict[str, Any]:
        """The status document of a result, as filed at ``moved_to``."""
        return result_status_doc(res, self.settings, self.porch_path, moved_to)

    def process_safely(self, item: WorkItem) -> WorkResult:
        """:meth:`process`, with an unexpected exception reported as a result (a worker never dies of one)."""
        try:
            return self.process(item)
        except Exception as exc:  # noqa: BLE001 - a worker reports, never dies, on a bad intent
            return WorkResult(
                path=item.path,
                outcome=Outcome.RETRY if self.policy.may_retry(item.attempt) else Outcome.FAILED,
                message=f"internal error in worker: {type(exc).__name__}: {exc}",
                attempt=item.attempt,
                worker=self.worker_id,
                fault=fault_of(exc),
            )


def _ignore_loop_signals() -> None:
    # The loop decides when workers stop: Ctrl-C on a terminal, or a SIGTERM sent to the whole
    # process group or cgroup, must not cut a worker short; it finishes what it holds.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU):
        signal.signal(sig, signal.SIG_IGN)

    def _abort(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds through the executor, which kills porch's group

    signal.signal(ABORT_SIGNAL, _abort)


_GONE = select.POLLRDHUP | select.POLLHUP | select.POLLERR


def _abort_when_orphaned(fd: int) -> None:
    """Abort this worker when the supervisor's end of its pipe closes: the supervisor died.

    A worker's parent is the forkserver, which outlives the supervisor while any worker lives, so
    ``PR_SET_PDEATHSIG`` cannot tie a worker to the supervisor; its pipe can. Abort unwinds through the
    executor, which kills porch's whole process group (a worker that dies without unwinding has its porch
    killed by the supervisor: :mod:`conductor_loop.leftovers`).
    """

    def watch() -> None:
        poller = select.poll()
        poller.register(fd, select.POLLRDHUP)
        while not any(ev & _GONE for _fd, ev in poller.poll()):
            pass
        os.kill(os.getpid(), ABORT_SIGNAL)

    threading.Thread(target=watch, name="lifeline", daemon=True).start()


def _keep_descriptors_from_porch() -> None:
    """Mark every descriptor this worker inherited close-on-exec (the forkserver's and the resource
    tracker's pipes, the supervisor's socket, the heartbeat's file): porch gets stdin, stdout and stderr
    only. Descriptors Python opens later are close-on-exec already."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2:
            with contextlib.suppress(OSError):  # the listing's own descriptor is gone by now
                os.set_inheritable(fd, False)


def worker_main(slot: int, settings: WorkerSettings, conn: Connection, heartbeat: Any, stopping: Any) -> None:
    """Body of a worker process: process batches until told to stop or the pipe closes.

    Once ``stopping`` is set (a graceful stop, :meth:`~conductor_loop.pool.Pool.hand_back`) every
    intent not started yet is given back as ``returned``, untouched.
    """
    _ignore_loop_signals()
    _keep_descriptors_from_porch()
    _abort_when_orphaned(conn.fileno())
    processor = IntentProcessor(settings, slot + 1)
    while True:
        try:
            batch = conn.recv()
        except (EOFError, OSError):
            break
        if batch is None:
            break
        results: list[WorkResult] = []
        for item in batch:
            if stopping.value:
                results.append(WorkResult(item.path, Outcome.RETURNED, "the loop is stopping", item.attempt, slot + 1))
                continue
            heartbeat[slot] = time.monotonic()
            results.append(processor.process_safely(item))
        heartbeat[slot] = 0.0
        if results:
            results[-1].finished = time.monotonic()  # idle from now unless a batch waits in the pipe
        try:
            conn.send(results)
        except (BrokenPipeError, OSError):
            break
