"""Status files and error logs (README, "Files and directories").

A status file is JSON written atomically (temp file + rename) under ``status/``; an error log sits
beside a failed intent in ``failed/``. Neither is fsynced one by one: the supervisor makes a whole
batch durable with one ``syncfs`` before it commits the state (group commit).
"""

from __future__ import annotations

import json
import os
from typing import Any

from conductor_loop.clock import rfc3339
from conductor_loop.layout import Layout
from conductor_loop.records import WorkerSettings, WorkResult

PROCESSED_BY = "conductor-loop"
#: Status files and error logs are readable by the loop's group only, whatever the umask (docs/SECURITY.md).
FILE_MODE = 0o640


def status_doc(
    *,
    intent_file: str,
    status: str,
    message: str,
    mode: str,
    porch_path: str,
    sha256: str | None,
    size: int | None,
    duration_ms: float | None,
    exit_code: int | None,
    attempts: int,
    worker: int | None,
    moved_to: str | None,
    output_dir: str | None,
    correlation_id: str | None,
    ts: float | None = None,
    attempt_log: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Build the status document with every field the README lists.

    ``duration_ms`` is the total from the first attempt's start to the final outcome; ``attempt_log``
    lists each attempt (``attempt``, ``duration_ms``, ``outcome``, ``exit_code``, ``message``).
    """
    return {
        "intent_file": intent_file,
        "status": status,
        "message": message,
        "timestamp": rfc3339(ts),
        "processed_by": PROCESSED_BY,
        "mode": mode,
        "porch_path": porch_path,
        "sha256": sha256,
        "size": size,
        "duration_ms": None if duration_ms is None else round(duration_ms, 3),
        "exit_code": exit_code,
        "attempts": attempts,
        "attempt_log": list(attempt_log or []),
        "worker": worker,
        "moved_to": moved_to,
        "output_dir": output_dir,
        "correlation_id": correlation_id,
    }


def write_status(layout: Layout, doc: dict[str, Any], *, fsync: bool = False) -> str:
    """Write ``doc`` atomically as ``status/<intent_file>.status`` (one line of JSON); returns the path.

    Written through the handoff's anchor: ``LinkInPath`` (an ``OSError``) when ``status/`` is a link.
    One line, not indented: ``json.dumps`` with an indent falls back to the pure-Python encoder, which
    cost a worker about 20 µs per intent (docs/ARCHITECTURE.md, "Where the time goes").
    """
    path = layout.status_path(str(doc["intent_file"]))
    layout.anchor.write_atomic(path, json.dumps(doc).encode() + b"\n", fsync, FILE_MODE)
    return path


def write_error_log(layout: Layout, filed_name: str, text: str, *, fsync: bool = False) -> str:
    """Write the error log of a failed intent filed as ``failed/filed_name``; returns its path."""
    path = layout.error_log_path(filed_name)
    layout.anchor.write_atomic(path, text.encode("utf-8", "replace"), fsync, FILE_MODE)
    return path


def error_log_text(
    *, intent_file: str, message: str, exit_code: int | None, stderr_tail: str, stdout_tail: str, ts: float
) -> str:
    """The body of an error log: why it failed, porch's exit code and the tails of its output."""
    lines = [
        f"intent: {intent_file}",
        f"time: {rfc3339(ts)}",
        f"reason: {message}",
        f"exit_code: {exit_code if exit_code is not None else '-'}",
    ]
    if stderr_tail:
        lines += ["--- stderr (last 64 KiB) ---", stderr_tail.rstrip("\n")]
    if stdout_tail:
        lines += ["--- stdout (last 64 KiB) ---", stdout_tail.rstrip("\n")]
    return "\n".join(lines) + "\n"


def result_status_doc(
    res: WorkResult, settings: WorkerSettings, porch_path: str, moved_to: str | None
) -> dict[str, Any]:
    """The status document of a final result filed at ``moved_to``."""
    return status_doc(
        intent_file=os.path.basename(res.path),
        status=res.outcome.value,
        message=res.message,
        mode=settings.mode,
        porch_path=porch_path,
        sha256=res.sha256,
        size=res.size,
        duration_ms=res.duration_ms,
        exit_code=res.exit_code,
        attempts=res.attempt,
        attempt_log=res.attempt_log,
        worker=res.worker,
        moved_to=moved_to,
        output_dir=res.output_dir,
        correlation_id=res.correlation_id,
    )
