"""The executor interface: what a worker hands an executor, what it gets back, which failures are retried.

Implementations: :mod:`conductor_loop.executor` (built-in, registry) and :mod:`conductor_loop.external`
(an external porch binary); plug-ins are described in docs/executors.md.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from conductor_loop.validate import Intent

MODES = ("direct", "structured")

# Failures caused by the environment rather than by the intent: retried with backoff.
RETRYABLE_ERRNOS = frozenset(
    {
        errno.EACCES,
        errno.EPERM,
        errno.EROFS,
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EAGAIN,
        errno.ENOMEM,
        errno.EMFILE,
        errno.ENFILE,
        errno.EBUSY,
        errno.ENOENT,
        errno.ENOEXEC,
        errno.ETXTBSY,
        errno.EIO,
    }
)

@dataclass(slots=True)
class ExecRequest:
    """One execution of porch for one intent.

    ``timeout`` is in seconds (``<= 0``: no limit); ``env_extra`` is added to the child's environment
    (external executors) after the clean base environment.
    """

    intent_path: str
    out_dir: str
    structured: bool
    intent: Intent
    sha256: str
    attempt: int
    timeout: float
    env_extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class ExecResult:
    """The outcome of one :class:`ExecRequest`.

    ``ok`` is true only for a porch that exited 0 in time. ``retryable`` marks failures caused by the
    environment (porch could not start, timeout, output not writable, disk full); a non-zero exit or
    a death by signal is final.
    """

    ok: bool
    message: str
    exit_code: int | None
    signal: int | None
    timed_out: bool
    retryable: bool
    output_dir: str | None
    stdout_tail: str
    stderr_tail: str
    duration_ms: float


class Executor(Protocol):
    """Runs porch for one intent. ``mode`` is ``direct`` or ``structured``; ``porch_path`` is what the
    status file reports (``builtin``, an absolute path, or the plug-in's choice)."""

    name: str
    mode: str
    porch_path: str

    def execute(self, req: ExecRequest) -> ExecResult:
        """Run porch for ``req`` and report the outcome; never raises for porch's own failures."""
        ...


def ms_since(start: float) -> float:
    return (time.monotonic() - start) * 1000.0


def failure(message: str, start: float, *, retryable: bool, output_dir: str | None = None) -> ExecResult:
    return ExecResult(
        ok=False,
        message=message,
        exit_code=None,
        signal=None,
        timed_out=False,
        retryable=retryable,
        output_dir=output_dir,
        stdout_tail="",
        stderr_tail="",
        duration_ms=ms_since(start),
    )
