"""The external porch: ``[porch, "-intent", F, "-out", D] (+ ["-structured"])`` in its own process group.

A clean environment, stdin from ``/dev/null``, bounded output capture (the last :data:`TAIL_BYTES` of
each stream), and a timeout that kills the whole group (SIGTERM, then SIGKILL after :data:`KILL_GRACE`).
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from conductor_loop import _core
from conductor_loop.execapi import ExecRequest, ExecResult, failure, ms_since

TAIL_BYTES = 64 * 1024
"""How much of porch's stdout and stderr is kept (the last bytes of each)."""
#: Every signal porch may have a disposition for: all back to the default in porch (the loop ignores
#: SIGPIPE, SIGTTIN, SIGTTOU …, and an ignored signal stays ignored across exec).
_SIGDEF = sorted(int(s) for s in signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP})

KILL_GRACE = 5.0
"""Seconds between SIGTERM and SIGKILL of a timed-out process group."""

PIPE_GRACE = 0.5
"""Seconds to keep reading after porch exited while a leftover descendant still holds its pipes."""

_ENV_PASSTHROUGH = ("PATH", "HOME", "LANG")
_ENV_OWN = ("CONDUCTOR_INTENT_SHA256", "CONDUCTOR_ATTEMPT", "CONDUCTOR_CORRELATION_ID")


def _last_line(text: str) -> str:
    stripped = text.rstrip()
    line = stripped.rsplit("\n", 1)[-1].strip() if stripped else ""
    if len(line) > 400:
        line = line[:400] + "…"
    return line


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _decode(tail: bytes) -> str:
    return tail.decode("utf-8", "replace")


def _out_dir_problem(out_dir: str) -> str | None:
    """Why porch could not write to ``out_dir`` (it is created when missing), or None."""
    if os.access(out_dir, os.W_OK | os.X_OK):
        return None
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as exc:
        return f"out dir {out_dir} not usable: {exc.strerror or exc}"
    if not os.access(out_dir, os.W_OK | os.X_OK):
        return f"out dir {out_dir} is not writable"
    return None


class ExternalExecutor:
    """Runs an external porch binary: ``[porch, "-intent", F, "-out", D] (+ ["-structured"])``.

    The child (``posix_spawn``: vfork-fast, where a fork would copy the worker's page tables) gets its own
    session and process group, stdin from ``/dev/null``, stdout and stderr to pipes and no other descriptor
    (the worker marked what it inherited close-on-exec), every signal at its default disposition with none
    blocked, and a clean
    environment (``PATH``, ``HOME``, ``LANG``, ``CONDUCTOR_*``, plus ``CONDUCTOR_INTENT_SHA256``,
    ``CONDUCTOR_ATTEMPT`` and ``CONDUCTOR_CORRELATION_ID``). On timeout the whole group gets SIGTERM,
    then SIGKILL after :data:`KILL_GRACE` seconds. When the call returns, the child is reaped and every
    process left in its group has been sent SIGKILL.
    """

    name = "external"

    def __init__(self, porch_path: str, mode: str = "direct") -> None:
        """``porch_path`` should come from :func:`check_porch_path` (absolute, executable).

        The pass-through part of the environment is taken from ``os.environ`` now, once (each worker
        process creates its executor at start), not per call.
        """
        self.porch_path = porch_path
        self.mode = mode
        self._base_env = {
            key: value
            for key, value in os.environ.items()
            if (key in _ENV_PASSTHROUGH or key.startswith("CONDUCTOR_")) and key not in _ENV_OWN
        }

    def __reduce__(self) -> tuple[Any, ...]:
        return (ExternalExecutor, (self.porch_path, self.mode))

    def argv(self, req: ExecRequest) -> list[str]:
        """The exact argument vector for ``req``."""
        args = [self.porch_path, "-intent", req.intent_path, "-out", req.out_dir]
        if req.structured:
            args.append("-structured")
        return args

    def env(self, req: ExecRequest) -> dict[str, str]:
        """The child's clean environment for ``req``."""
        env = dict(self._base_env)
        env["CONDUCTOR_INTENT_SHA256"] = req.sha256
        env["CONDUCTOR_ATTEMPT"] = str(req.attempt)
        cid = req.intent.correlation_id
        if cid:
            env["CONDUCTOR_CORRELATION_ID"] = cid.replace("\x00", "")
        env.update(req.env_extra)
        return env

    def execute(self, req: ExecRequest) -> ExecResult:
        """Run porch for ``req``; see the class docstring for the process contract.

        Spawning, waiting and the timeout run in the Rust core (``_core.spawn_wait``) with the GIL
        released; a Python exception raised by a signal handler meanwhile (the worker's abort) kills
        porch's group and propagates.
        """
        start = time.monotonic()
        problem = _out_dir_problem(req.out_dir)
        if problem is not None:
            return failure(problem, start, retryable=True)
        env = [f"{key}={value}" for key, value in self.env(req).items()]
        try:
            status, timed_out, out, err = _core.spawn_wait(
                self.porch_path, self.argv(req), env, _SIGDEF, req.timeout, KILL_GRACE, PIPE_GRACE, TAIL_BYTES,
                pidfd=hasattr(os, "pidfd_open"),  # a Python (or kernel) without it: waitid polling
            )
        except (OSError, ValueError) as exc:
            retryable = isinstance(exc, OSError)
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            return failure(f"could not start porch {self.porch_path}: {detail}", start, retryable=retryable)
        return self._result(status, timed_out, req, start, _decode(out), _decode(err))

    def _result(
        self,
        status: int | None,
        timed_out: bool,
        req: ExecRequest,
        start: float,
        stdout_tail: str,
        stderr_tail: str,
    ) -> ExecResult:
        exit_code: int | None = None
        signum: int | None = None
        if status is not None:
            if os.WIFSIGNALED(status):
                signum = os.WTERMSIG(status)
            elif os.WIFEXITED(status):
                exit_code = os.WEXITSTATUS(status)
        ok = exit_code == 0 and not timed_out
        last = _last_line(stderr_tail)
        suffix = f": {last}" if last else " (stderr empty)"
        retryable = False
        if ok:
            message = "porch exited 0"
        elif timed_out:
            message = f"porch timed out after {req.timeout:g}s; process group killed{suffix}"
            retryable = True
        elif signum is not None:
            message = f"porch killed by signal {signum} ({_signal_name(signum)}){suffix}"
        elif exit_code is not None:
            message = f"porch exited with code {exit_code}{suffix}"
        else:
            message = "porch's exit status was lost (reaped elsewhere)"
            retryable = True
        return ExecResult(
            ok=ok,
            message=message,
            exit_code=exit_code,
            signal=signum,
            timed_out=timed_out,
            retryable=retryable,
            output_dir=req.out_dir,
            stdout_tail=stdout_tail,
            stderr_tail=stderr_tail,
            duration_ms=ms_since(start),
        )
