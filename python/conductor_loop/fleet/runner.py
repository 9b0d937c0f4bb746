"""One task on a worker host, synchronously: check the bytes, run porch in a private temp dir, pack the package.

Runs on a thread of the worker host (:mod:`conductor_loop.fleet.worker`), never on its event loop. Porch is
the SAME executor as on a single host (``executor.load_executor``), given ``CONDUCTOR_INTENT_SHA256``,
``CONDUCTOR_ATTEMPT`` and ``CONDUCTOR_WORKER``, and tagged (``CONDUCTOR_LOOP``, as :mod:`conductor_loop.leftovers`
does) so a worker that lost its lease can kill it: :func:`kill_run`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, replace
from typing import Any

from conductor_loop.clock import rfc3339
from conductor_loop.executor import ExecRequest, ExecResult, Executor, load_executor
from conductor_loop.fleet.archive import PackRefused, pack
from conductor_loop.fleet.protocol import ArchiveInfo, Result, Task
from conductor_loop.intent import describe
from conductor_loop.leftovers import TAG_VAR, WORKER_VAR, tagged
from conductor_loop.validate import Intent, ValidationError, parse_intent

SHA_MISMATCH = "task bytes do not match their sha256"


class _AsTheIngestSaid:
    """An intent schema that keeps the safety rules (``parse_intent``) and trusts the ingest's schema verdict."""

    spec = "fleet-task"

    def __init__(self, scaling: bool | None) -> None:
        self.scaling = scaling

    def check(self, data: dict[str, Any]) -> Intent:
        """The :class:`Intent` of ``data``, with ``scaling`` as the ingest decided (or from its type)."""
        return describe(data, scaling=self.scaling)


def run_tag(task: Task, delivery: int) -> str:
    """The tag in the environment of porch (and its children) for one delivery of ``task`` on this host."""
    return f"fleet-{task.task_id}-{delivery}-{os.getpid()}"


TEMP_PREFIX = "cl-task-"
_TAG_PREFIX = f"{TAG_VAR}=fleet-".encode()


def _dead(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def reap_leftovers(tmp_dir: str | None) -> tuple[int, int]:
    """What a worker killed with SIGKILL left: its private task directories and its porch processes (tagged
    ``fleet-…-<pid>`` for a pid that is gone). Removes and kills them; returns (directories, processes)."""
    root = tmp_dir or tempfile.gettempdir()
    dirs = 0
    with contextlib.suppress(OSError), os.scandir(root) as it:
        for entry in it:
            owner = entry.name[len(TEMP_PREFIX) :].split("-", 1)[0]
            if entry.name.startswith(TEMP_PREFIX) and owner.isdigit() and _dead(int(owner)):
                shutil.rmtree(entry.path, ignore_errors=True)
                dirs += 1
    procs = 0
    for pid in _orphans():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
            procs += 1
    return dirs, procs


def _orphans() -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                env = fh.read().split(b"\0")
        except OSError:
            continue
        for var in env:
            owner = var.rsplit(b"-", 1)[-1]
            if var.startswith(_TAG_PREFIX) and owner.isdigit() and _dead(int(owner)):
                found.append(int(entry))
    return found


def kill_run(tag: str) -> int:
    """SIGKILL every process carrying ``tag`` (porch and what it started); how many were signalled."""
    n = 0
    for pid in tagged(tag):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
            n += 1
    return n


@dataclass(frozen=True, slots=True)
class Ran:
    """A delivery's result and its outcome for ``conductor_worker_tasks_total`` (success, failed, rejected)."""

    result: Result
    outcome: str


class TaskRunner:
    """Runs tasks with one ``--porch`` (an executor per mode, made on first use)."""

    def __init__(self, porch: str, worker_id: str, timeout: float, tmp_dir: str | None = None) -> None:
        """``timeout``: the worker's ``--timeout`` in seconds (a task's own smaller timeout wins)."""
        self.porch = porch
        self.worker_id = worker_id
        self.timeout = timeout
        self.tmp_dir = tmp_dir
        self._executors: dict[str, Executor] = {}

    def executor(self, mode: str) -> Executor:
        """The executor for ``mode`` (``load_executor``; ``ValueError`` for a bad ``--porch``)."""
        if mode not in self._executors:
            self._executors[mode] = load_executor(self.porch, mode)
        return self._executors[mode]

    def run(self, task: Task, delivery: int, tag: str) -> Ran:
        """The result of one delivery of ``task``; never raises for porch's or the task's own failures."""
        started, t0 = time.time(), time.monotonic()
        if hashlib.sha256(task.data).hexdigest() != task.sha256:
            return Ran(_refused(task, delivery, self.worker_id, SHA_MISMATCH, started, t0), "rejected")
        try:
            intent = parse_intent(task.data, _AsTheIngestSaid(task.scaling))
        except ValidationError as exc:
            message = f"invalid intent: {exc.reason}"
            return Ran(_refused(task, delivery, self.worker_id, message, started, t0), "rejected")
        try:
            with tempfile.TemporaryDirectory(prefix=f"{TEMP_PREFIX}{os.getpid()}-", dir=self.tmp_dir) as tmp:
                res, info, data, outcome = self._execute(task, intent, tmp, tag)
        except OSError as exc:  # the worker's own disk (full, read-only): an environment failure, retried
            where = exc.filename or self.tmp_dir or tempfile.gettempdir()
            message = f"worker {self.worker_id} could not prepare the task ({where}): {exc.strerror or exc}"
            refused = _refused(task, delivery, self.worker_id, message, started, t0)
            return Ran(replace(refused, retryable=True), "failed")
        return Ran(_result(task, delivery, self.worker_id, res, started, info, data), outcome)

    def _execute(
        self, task: Task, intent: Intent, tmp: str, tag: str
    ) -> tuple[ExecResult, ArchiveInfo | None, bytes, str]:
        intent_dir, out_dir = os.path.join(tmp, "intent"), os.path.join(tmp, "out")
        os.mkdir(intent_dir, 0o700)
        os.mkdir(out_dir, 0o700)
        intent_path = os.path.join(intent_dir, task.name)
        with open(os.open(intent_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), "wb") as f:
            f.write(task.data)
        req = ExecRequest(
            intent_path=intent_path,
            out_dir=out_dir,
            structured=task.mode == "structured",
            intent=intent,
            sha256=task.sha256,
            attempt=task.attempt,
            timeout=min((t for t in (self.timeout, task.timeout) if t > 0), default=0.0),
            env_extra={WORKER_VAR: self.worker_id, TAG_VAR: tag},
        )
        res = self.executor(task.mode).execute(req)
        res.message = res.message.replace(out_dir + "/", "").replace(out_dir, ".")  # paths relative to the package root
        if not res.ok:
            return res, None, b"", "failed"
        try:
            packed = pack(out_dir, task.max_result_bytes)
        except PackRefused as exc:
            res.ok, res.retryable, res.message = False, False, f"the package cannot be sent: {exc}"
            return res, None, b"", "rejected"
        return res, ArchiveInfo(bytes=len(packed.data), files=packed.files), packed.data, "success"


def _result(
    task: Task, delivery: int, worker: str, res: ExecResult, started: float, info: ArchiveInfo | None, data: bytes
) -> Result:
    return Result(
        task_id=task.task_id,
        sha256=task.sha256,
        attempt=task.attempt,
        delivery=delivery,
        worker=worker,
        ok=res.ok,
        message=res.message,
        exit_code=res.exit_code,
        signal=res.signal,
        timed_out=res.timed_out,
        retryable=res.retryable,
        stdout_tail=res.stdout_tail,
        stderr_tail=res.stderr_tail,
        duration_ms=res.duration_ms,
        started_at=rfc3339(started),
        finished_at=rfc3339(),
        archive_info=info,
        archive=data,
    )


def _refused(task: Task, delivery: int, worker: str, message: str, started: float, t0: float) -> Result:
    res = ExecResult(False, message, None, None, False, False, None, "", "", (time.monotonic() - t0) * 1000.0)
    return _result(task, delivery, worker, res, started, None, b"")
