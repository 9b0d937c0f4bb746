"""Executors: what runs porch for one intent (README, "What it does").

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

import os
import shutil
import stat
import time
from typing import Any

from conductor_loop.execapi import (
    MODES,
    RETRYABLE_ERRNOS,
    ExecRequest,
    ExecResult,
    Executor,
    failure,
    ms_since,
)
from conductor_loop.external import TAIL_BYTES, ExternalExecutor

__all__ = [
    "ENTRY_POINT_GROUP",
    "MODES",
    "RETRYABLE_ERRNOS",
    "TAIL_BYTES",
    "BuiltinExecutor",
    "ExecRequest",
    "ExecResult",
    "Executor",
    "ExternalExecutor",
    "check_porch_path",
    "load_executor",
    "registered_executors",
    "resolve_porch",
]

ENTRY_POINT_GROUP = "conductor_loop.executors"
"""The entry-point group third-party executors register in."""

_SHELL_METACHARACTERS = frozenset(";|&$`<>()*?[]{}!~'\"\\")


class BuiltinExecutor:
    """The in-process porch (:func:`conductor_loop.porch.generate_package`); no process is spawned."""

    name = "builtin"
    porch_path = "builtin"

    def __init__(self, mode: str = "direct") -> None:
        """``mode``: ``direct`` or ``structured`` (the request's ``structured`` flag decides the output)."""
        self.mode = mode

    def __reduce__(self) -> tuple[Any, ...]:
        return (BuiltinExecutor, (self.mode,))

    def recover(self, out_dir: str, older_than: float) -> int:
        """Start-up hook: remove temp package directories a killed generator left (older than ``older_than`` s)."""
        from conductor_loop.porch import remove_stale_temps

        return remove_stale_temps(out_dir, older_than=older_than)

    def execute(self, req: ExecRequest) -> ExecResult:
        """Generate the package; ``OSError`` from the environment becomes a retryable failure, an intent
        the built-in porch does not make packages for a final one."""
        from conductor_loop.porch import NotBuildable, generate_package

        start = time.monotonic()
        try:
            out = generate_package(req.intent, req.out_dir, structured=req.structured)
        except NotBuildable as exc:  # not a scaling intent, or no usable namespace/target: final
            return failure(str(exc), start, retryable=False)
        except OSError as exc:
            where = exc.filename or req.out_dir
            return failure(
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
            duration_ms=ms_since(start),
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
    from importlib.metadata import entry_points  # 25 ms at import: only a plugin name needs it

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
