"""The workers' forkserver: where its files live, and its start before the loop's own imports.

The forkserver is an interpreter of its own that imports what a worker runs once, for every worker it forks
(its boot takes 0.12-0.18 s). Started by the command line as soon as the configuration is known, it boots while
the loop imports, opens the state and recovers, instead of after; the pool finds it running. A once-run over a
handoff that holds no intent starts no process (a cron-driven run over an empty directory): the handoff is listed
up to its first candidate (docs/ARCHITECTURE.md, "What was cut").

``multiprocessing`` makes a ``pymp-*`` directory (the forkserver's socket) in the temp dir and removes it at a
clean exit only, so every SIGKILL used to leak one in ``/tmp``. Its temp dir is pointed at a directory of the
handoff's own, ``<tmp>/cl-<uid>-<hash of the handoff>`` (:func:`private_tempdir`), before the forkserver starts;
once the loop holds the handoff's lock it is the only user of that directory, and every other ``pymp-*`` there
was left by a killed predecessor and is removed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile

from conductor_loop.layout import Layout

#: What the forkserver imports once for every worker: the worker and the pool it talks to;
#: ``conductor_loop.porch``, which the built-in executor imports at its first intent; the built-in schema compiled,
#: which the loop's own process never needs. Not the command line: the entry script every child re-runs imports
#: only :mod:`conductor_loop.entry`.
WORKER_PRELOAD = ("conductor_loop.worker", "conductor_loop.pool", "conductor_loop.porch",
                  "conductor_loop.intent_schema.compiled")

#: AF_UNIX paths are at most 107 bytes; multiprocessing adds ``/pymp-XXXXXXXX/listener-XXXXXXXX``.
_SOCKET_DIR_MAX = 107 - 32

#: The temp dir this process pointed multiprocessing at, by handoff root.
_pointed: dict[str, str] = {}


def private_tempdir(layout: Layout, *, clean: bool) -> str:
    """Point multiprocessing's temp files at the handoff's own directory; returns it. ``clean`` (only while
    holding the handoff's lock): remove the ``pymp-*`` directories there but this process's own.

    (Someone else's directory in its place gives a fresh one; a temp dir so long that the forkserver's socket
    path would not fit keeps multiprocessing's default.)
    """
    base = _pointed.get(layout.root)
    if base is None:
        key = hashlib.sha256(os.fsencode(layout.root)).hexdigest()[:12]
        base = os.path.join(tempfile.gettempdir(), f"cl-{os.getuid()}-{key}")
        if len(os.fsencode(base)) > _SOCKET_DIR_MAX:  # the forkserver's socket path would not fit
            return tempfile.gettempdir()
        base = _pointed[layout.root] = _own_dir(base)
    tempfile.tempdir = base  # read by multiprocessing.util.get_temp_dir() when the forkserver first starts
    if clean:
        from multiprocessing import util

        own = os.path.basename(util.get_temp_dir())  # this process's (made now if the forkserver is not up)
        for name in os.listdir(base):
            if name.startswith("pymp-") and name != own:
                shutil.rmtree(os.path.join(base, name), ignore_errors=True)
    return base


def _own_dir(base: str) -> str:
    try:
        os.mkdir(base, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(base)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():  # someone else's: do not use it
        return tempfile.mkdtemp(prefix="conductor-loop-")
    return base


def start_forkserver() -> None:
    """Start the forkserver, with :data:`WORKER_PRELOAD`, unless it runs already."""
    import multiprocessing as mp
    from multiprocessing import forkserver

    mp.get_context("forkserver").set_forkserver_preload(list(WORKER_PRELOAD))
    forkserver.ensure_running()


def warm_workers(handoff: str, patterns: tuple[str, ...], once: bool) -> bool:
    """Start the forkserver now (its files in the handoff's own temp dir) unless this is a once-run over a handoff
    without an intent; True if started."""
    layout = Layout(handoff, patterns)
    if once and not layout.has_candidate():
        return False
    try:
        private_tempdir(layout, clean=False)
        start_forkserver()
    except OSError:  # no temp dir, no process to be had: the loop starts it later, and says why if it cannot
        return False
    return True
