"""The external porch: ``[porch, "-intent", F, "-out", D] (+ ["-structured"])`` in its own process group.

A clean environment, stdin from ``/dev/null``, bounded output capture (the last :data:`TAIL_BYTES` of
each stream), and a timeout that kills the whole group (SIGTERM, then SIGKILL after :data:`KILL_GRACE`).
"""

from __future__ import annotations

import os
import select
import signal
import time
from typing import Any

from conductor_loop.execapi import ExecRequest, ExecResult, failure, ms_since

TAIL_BYTES = 64 * 1024
#: Every signal porch may have a disposition for: all back to the default in porch (the loop ignores
#: SIGPIPE, SIGTTIN, SIGTTOU …, and an ignored signal stays ignored across exec).
_CATCHABLE = frozenset(signal.valid_signals()) - {signal.SIGKILL, signal.SIGSTOP}
"""How much of porch's stdout and stderr is kept (the last bytes of each)."""

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


def _killpg(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _exited(pid: int) -> bool:
    """True once ``pid`` has terminated; does not reap it (the zombie keeps its pid and group reserved)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None and info.si_pid == pid


_INF = float("inf")


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


class _Run:
    """One porch process being watched: its output pipes, its pidfd, the timeout and kill timers."""

    def __init__(self, pid: int, r_out: int, r_err: int, deadline: float) -> None:
        self.pid = pid
        self.fds = (r_out, r_err)
        self.bufs = {r_out: bytearray(), r_err: bytearray()}
        self.poller = select.poll()
        for fd in self.fds:
            self.poller.register(fd, select.POLLIN)
        self.open_fds = {r_out, r_err}
        try:
            self.pidfd = os.pidfd_open(pid)
            self.poller.register(self.pidfd, select.POLLIN)
        except (AttributeError, OSError):
            self.pidfd = -1
        self.deadline = deadline
        self.kill_at = _INF
        self.drain_until = _INF
        self.exited = False
        self.timed_out = False

    def _exit_seen(self, now: float) -> None:
        self.exited = True
        self.drain_until = now + PIPE_GRACE

    def done(self) -> bool:
        """Porch exited and its pipes are closed (or the drain grace is over)."""
        now = time.monotonic()
        if not self.exited and self.pidfd < 0 and _exited(self.pid):
            self._exit_seen(now)
        return self.exited and (not self.open_fds or now >= self.drain_until)

    def timers(self) -> None:
        """On timeout SIGTERM the group; KILL_GRACE later, SIGKILL it."""
        now = time.monotonic()
        if not self.timed_out and not self.exited and now >= self.deadline:
            self.timed_out = True
            _killpg(self.pid, signal.SIGTERM)
            self.kill_at = now + KILL_GRACE
        if now >= self.kill_at:
            _killpg(self.pid, signal.SIGKILL)
            self.kill_at = _INF

    def poll(self) -> None:
        """Wait for output, the exit or the next timer; keep the last bytes of each stream."""
        now = time.monotonic()
        wake = min(self.deadline if not self.timed_out else _INF, self.kill_at, self.drain_until)
        wait_ms = None if wake == _INF else max(0, int((wake - now) * 1000) + 1)
        if self.pidfd < 0:
            wait_ms = 10 if wait_ms is None else min(wait_ms, 10)
        for fd, _ in self.poller.poll(wait_ms):
            if fd == self.pidfd:
                self.poller.unregister(self.pidfd)
                self._exit_seen(time.monotonic())
                continue
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if data:
                buf = self.bufs[fd]
                buf += data
                if len(buf) > 2 * TAIL_BYTES:
                    del buf[:-TAIL_BYTES]
            else:
                self.poller.unregister(fd)
                self.open_fds.discard(fd)

    def reap(self) -> int | None:
        """Kill what is left of porch's group, close the pipes, reap porch; its wait status."""
        # The leader is a zombie (or about to be killed): its pid and process group id cannot be
        # reused yet, so this reaches only what is left of porch's own group.
        _killpg(self.pid, signal.SIGKILL)
        for fd in self.fds:
            os.close(fd)
        if self.pidfd >= 0:
            os.close(self.pidfd)
        try:
            return os.waitpid(self.pid, 0)[1]
        except ChildProcessError:
            return None

    def tail(self, fd: int) -> str:
        """The last :data:`TAIL_BYTES` of a stream, decoded."""
        return bytes(self.bufs[fd][-TAIL_BYTES:]).decode("utf-8", "replace")


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
        """Run porch for ``req``; see the class docstring for the process contract."""
        start = time.monotonic()
        problem = _out_dir_problem(req.out_dir)
        if problem is not None:
            return failure(problem, start, retryable=True)
        try:
            r_out, w_out = os.pipe()
        except OSError as exc:
            return failure(f"could not start porch: {exc.strerror or exc}", start, retryable=True)
        try:
            r_err, w_err = os.pipe()
        except OSError as exc:
            os.close(r_out)
            os.close(w_out)
            return failure(f"could not start porch: {exc.strerror or exc}", start, retryable=True)
        try:
            pid = os.posix_spawn(
                self.porch_path,
                self.argv(req),
                self.env(req),
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_DUP2, w_out, 1),
                    (os.POSIX_SPAWN_DUP2, w_err, 2),
                ],
                setsid=True,
                setsigmask=(),
                setsigdef=_CATCHABLE,
            )
        except (OSError, ValueError) as exc:
            for fd in (r_out, r_err):
                os.close(fd)
            retryable = isinstance(exc, OSError)
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            return failure(f"could not start porch {self.porch_path}: {detail}", start, retryable=retryable)
        finally:
            os.close(w_out)
            os.close(w_err)
        return self._supervise(pid, r_out, r_err, req, start)

    def _supervise(self, pid: int, r_out: int, r_err: int, req: ExecRequest, start: float) -> ExecResult:
        run = _Run(pid, r_out, r_err, start + req.timeout if req.timeout > 0 else _INF)
        try:
            while not run.done():
                run.timers()
                run.poll()
        finally:
            status = run.reap()
        return self._result(status, run.timed_out, req, start, run.tail(r_out), run.tail(r_err))

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
