"""Executors: what runs porch for one intent (SPEC §3.4).

One small interface, :class:`Executor`, with three kinds of implementation:

- :class:`BuiltinExecutor` (``--porch builtin``): the in-process kpt generator of :mod:`conductor_loop.porch`;
- :class:`ExternalExecutor` (``--porch PATH``): runs ``porch -intent F -out D [-structured]`` in its own
  session and process group, with a clean environment, a timeout that kills the whole group, and
  bounded output capture;
- third-party executors registered in the ``conductor_loop.executors`` entry-point group
  (see ``docs/executors.md``).

Executors are created in each worker process by :func:`load_executor` from two strings
``(porch, mode)``, so nothing here needs to be pickled.
"""

from __future__ import annotations

import errno
import os
import select
import shutil
import signal
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Protocol

from conductor_loop import _core
from conductor_loop.validate import Intent

ENTRY_POINT_GROUP = "conductor_loop.executors"
"""The entry-point group third-party executors register in."""

TAIL_BYTES = 64 * 1024
"""How much of porch's stdout and stderr is kept (the last bytes of each)."""

KILL_GRACE = 5.0
"""Seconds between SIGTERM and SIGKILL of a timed-out process group."""

PIPE_GRACE = 0.5
"""Seconds to keep reading after porch exited while a leftover descendant still holds its pipes."""

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

_SHELL_METACHARACTERS = frozenset(";|&$`<>()*?[]{}!~'\"\\")
_ENV_PASSTHROUGH = ("PATH", "HOME", "LANG")
_ENV_OWN = ("CONDUCTOR_INTENT_SHA256", "CONDUCTOR_ATTEMPT", "CONDUCTOR_CORRELATION_ID")


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


def _ms_since(start: float) -> float:
    return (time.monotonic() - start) * 1000.0


def _failure(message: str, start: float, *, retryable: bool, output_dir: str | None = None) -> ExecResult:
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
        duration_ms=_ms_since(start),
    )


class BuiltinExecutor:
    """The in-process porch (:func:`conductor_loop.porch.generate_package`); no process is spawned."""

    name = "builtin"
    porch_path = "builtin"

    def __init__(self, mode: str = "direct") -> None:
        """``mode``: ``direct`` or ``structured`` (the request's ``structured`` flag decides the output)."""
        self.mode = mode

    def __reduce__(self) -> tuple[Any, ...]:
        return (BuiltinExecutor, (self.mode,))

    def execute(self, req: ExecRequest) -> ExecResult:
        """Generate the package; ``OSError`` from the environment becomes a retryable failure, an intent
        the built-in porch does not make packages for a final one."""
        from conductor_loop.porch import NotBuildable, generate_package

        start = time.monotonic()
        try:
            out = generate_package(req.intent, req.out_dir, structured=req.structured)
        except NotBuildable as exc:  # not a scaling intent, or no usable namespace/target: final
            return _failure(str(exc), start, retryable=False)
        except OSError as exc:
            where = exc.filename or req.out_dir
            return _failure(
                f"built-in porch could not write the package ({where}): {exc.strerror or exc}",
                start,
                retryable=exc.errno in RETRYABLE_ERRNOS,
            )
        return ExecResult(
            ok=True,
            message=f"package written to {out}",
            exit_code=0,
            signal=None,
            timed_out=False,
            retryable=False,
            output_dir=out,
            stdout_tail="",
            stderr_tail="",
            duration_ms=_ms_since(start),
        )


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


class ExternalExecutor:
    """Runs an external porch binary: ``[porch, "-intent", F, "-out", D] (+ ["-structured"])``.

    The child (started by the Rust core, :func:`conductor_loop._core.spawn_porch`) gets its own session
    and process group, stdin from ``/dev/null``, stdout and stderr to pipes and no other descriptor,
    default signal dispositions, ``PR_SET_PDEATHSIG`` = SIGKILL (it dies with its worker), and a clean
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
        if not os.access(req.out_dir, os.W_OK | os.X_OK):
            try:
                os.makedirs(req.out_dir, exist_ok=True)
            except OSError as exc:
                message = f"out dir {req.out_dir} not usable: {exc.strerror or exc}"
                return _failure(message, start, retryable=True)
            if not os.access(req.out_dir, os.W_OK | os.X_OK):
                return _failure(f"out dir {req.out_dir} is not writable", start, retryable=True)
        try:
            r_out, w_out = os.pipe()
        except OSError as exc:
            return _failure(f"could not start porch: {exc.strerror or exc}", start, retryable=True)
        try:
            r_err, w_err = os.pipe()
        except OSError as exc:
            os.close(r_out)
            os.close(w_out)
            return _failure(f"could not start porch: {exc.strerror or exc}", start, retryable=True)
        try:
            pid = _core.spawn_porch(self.porch_path, self.argv(req), self.env(req), w_out, w_err)
        except (OSError, ValueError) as exc:
            for fd in (r_out, r_err):
                os.close(fd)
            retryable = isinstance(exc, OSError)
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            return _failure(f"could not start porch {self.porch_path}: {detail}", start, retryable=retryable)
        finally:
            os.close(w_out)
            os.close(w_err)
        return self._supervise(pid, r_out, r_err, req, start)

    def _supervise(self, pid: int, r_out: int, r_err: int, req: ExecRequest, start: float) -> ExecResult:
        bufs = {r_out: bytearray(), r_err: bytearray()}
        poller = select.poll()
        for fd in (r_out, r_err):
            poller.register(fd, select.POLLIN)
        open_fds = {r_out, r_err}
        pidfd = -1
        try:
            pidfd = os.pidfd_open(pid)
            poller.register(pidfd, select.POLLIN)
        except (AttributeError, OSError):
            pidfd = -1
        inf = float("inf")
        deadline = start + req.timeout if req.timeout > 0 else inf
        kill_at = inf
        drain_until = inf
        exited = False
        timed_out = False
        try:
            while True:
                now = time.monotonic()
                if not exited and pidfd < 0 and _exited(pid):
                    exited = True
                    drain_until = now + PIPE_GRACE
                if exited and (not open_fds or now >= drain_until):
                    break
                if not timed_out and not exited and now >= deadline:
                    timed_out = True
                    _killpg(pid, signal.SIGTERM)
                    kill_at = now + KILL_GRACE
                if now >= kill_at:
                    _killpg(pid, signal.SIGKILL)
                    kill_at = inf
                wake = min(deadline if not timed_out else inf, kill_at, drain_until)
                wait_ms = None if wake == inf else max(0, int((wake - now) * 1000) + 1)
                if pidfd < 0:
                    wait_ms = 10 if wait_ms is None else min(wait_ms, 10)
                for fd, _ in poller.poll(wait_ms):
                    if fd == pidfd:
                        poller.unregister(pidfd)
                        exited = True
                        drain_until = time.monotonic() + PIPE_GRACE
                        continue
                    try:
                        data = os.read(fd, 65536)
                    except BlockingIOError:
                        continue
                    if data:
                        buf = bufs[fd]
                        buf += data
                        if len(buf) > 2 * TAIL_BYTES:
                            del buf[:-TAIL_BYTES]
                    else:
                        poller.unregister(fd)
                        open_fds.discard(fd)
        finally:
            # The leader is a zombie (or about to be killed): its pid and process group id cannot be
            # reused yet, so this reaches only what is left of porch's own group.
            _killpg(pid, signal.SIGKILL)
            for fd in (r_out, r_err):
                os.close(fd)
            if pidfd >= 0:
                os.close(pidfd)
            status: int | None
            try:
                status = os.waitpid(pid, 0)[1]
            except ChildProcessError:
                status = None
        stdout_tail = bytes(bufs[r_out][-TAIL_BYTES:]).decode("utf-8", "replace")
        stderr_tail = bytes(bufs[r_err][-TAIL_BYTES:]).decode("utf-8", "replace")
        return self._result(status, timed_out, req, start, stdout_tail, stderr_tail)

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
            duration_ms=_ms_since(start),
        )


def check_porch_path(value: str) -> str:
    """Check a ``--porch`` value; return ``"builtin"`` or the absolute path of the executable.

    Raises ``ValueError`` (one line naming the value) for shell metacharacters or whitespace, a missing
    file, a directory or other non-regular file, or a file that is not executable.
    """
    if value == "builtin":
        return value
    if not value:
        raise ValueError("--porch: empty value (use 'builtin' or a path to an executable)")
    bad = sorted({c for c in value if c in _SHELL_METACHARACTERS or c.isspace()})
    if bad:
        shown = " ".join(repr(c) for c in bad)
        raise ValueError(f"--porch {value!r}: contains shell metacharacters or whitespace ({shown})")
    if "/" in value:
        path = os.path.abspath(value)
    else:
        found = shutil.which(value)
        if found is None:
            raise ValueError(f"--porch {value!r}: not found in PATH (or not executable)")
        path = os.path.abspath(found)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ValueError(f"--porch {value!r}: no such file") from None
    except OSError as exc:
        raise ValueError(f"--porch {value!r}: cannot be checked: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ValueError(f"--porch {value!r}: is a directory, not an executable file")
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"--porch {value!r}: not a regular file")
    if not os.access(path, os.X_OK):
        raise ValueError(f"--porch {value!r}: not executable")
    return path


def registered_executors() -> dict[str, Any]:
    """The entry points of the ``conductor_loop.executors`` group, by name."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def resolve_porch(porch: str) -> str:
    """Check a ``--porch`` value up front: ``builtin``, a registered executor name, or an executable.

    Returns the value to run with (an executable is made absolute). Raises ``ValueError`` with one
    clear line otherwise.
    """
    if porch == "builtin" or ("/" not in porch and porch in registered_executors()):
        return porch
    return check_porch_path(porch)


def load_executor(porch: str, mode: str) -> Executor:
    """The executor for a ``--porch`` value and a ``--mode``.

    ``builtin`` → :class:`BuiltinExecutor`; a name registered in the ``conductor_loop.executors``
    entry-point group → ``factory(mode=mode)``; anything else is checked with
    :func:`check_porch_path` → :class:`ExternalExecutor`. Raises ``ValueError`` for a bad value.
    """
    if mode not in MODES:
        raise ValueError(f"--mode {mode!r}: must be one of {', '.join(MODES)}")
    if porch == "builtin":
        return BuiltinExecutor(mode)
    if "/" not in porch:
        ep = registered_executors().get(porch)
        if ep is not None:
            factory = ep.load()
            executor: Executor = factory(mode=mode)
            return executor
    return ExternalExecutor(check_porch_path(porch), mode)
