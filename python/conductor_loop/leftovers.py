"""Porch processes a dead worker or a dead run left behind: found by their tag and killed (docs/SECURITY.md).

Porch dies with its worker (``PR_SET_PDEATHSIG``) and a worker aborts, killing porch's whole process
group, when the supervisor dies. What can still be left is what porch itself started, when its worker was
SIGKILLed: porch went, its children stayed. Every external porch gets ``CONDUCTOR_LOOP`` (this handoff's
tag) and ``CONDUCTOR_WORKER`` in its environment, which its children inherit; the loop kills the
processes carrying its tag at start (before any worker of its own runs: the handoff's lock says no other
loop can own them) and those carrying a worker's id when that worker died. A child that rewrites its
environment or leaves the session is out of reach: contain it with the service manager's cgroup
(docs/SECURITY.md, "Out of scope").
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal

from conductor_loop.layout import Layout

TAG_VAR = "CONDUCTOR_LOOP"
WORKER_VAR = "CONDUCTOR_WORKER"


def loop_tag(layout: Layout) -> str:
    """The tag of this handoff's porch processes (a hash of the handoff's path)."""
    return hashlib.sha256(os.fsencode(layout.root)).hexdigest()[:16]


def porch_env(layout: Layout, worker: int) -> dict[str, str]:
    """The variables that tag a porch started by ``worker`` of this loop."""
    return {TAG_VAR: loop_tag(layout), WORKER_VAR: str(worker)}


def tagged(tag: str, worker: int | None = None) -> list[int]:
    """Pids of the processes whose environment carries ``tag`` (and ``worker``, when given)."""
    want = [f"{TAG_VAR}={tag}".encode()] + ([f"{WORKER_VAR}={worker}".encode()] if worker is not None else [])
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                env = fh.read().split(b"\0")
        except OSError:  # gone, or not ours to read
            continue
        if all(w in env for w in want):
            found.append(int(entry))
    return found


def reap(layout: Layout, worker: int | None = None) -> int:
    """SIGKILL the tagged processes (of ``worker``, when given); how many were signalled."""
    n = 0
    for pid in tagged(loop_tag(layout), worker):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
            n += 1
    return n
