"""The workers' forkserver, started before the loop's own imports (docs/ARCHITECTURE.md, "What was cut").

The forkserver is an interpreter of its own that imports what a worker runs once, for every worker it forks
(its boot takes about 0.14 s). Started by the command line as soon as the configuration is known, it boots while
the loop imports, opens the state and recovers, instead of after; the pool finds it running. A once-run over a
handoff that holds no intent starts no process (a cron-driven run over an empty directory): the handoff is listed
up to its first candidate.
"""

from __future__ import annotations

from conductor_loop.layout import Layout

#: What the forkserver imports once for every worker: the worker and the pool it talks to;
#: ``conductor_loop.porch``, which the built-in executor imports at its first intent; the built-in schema compiled,
#: which the loop's own process never needs. Not the command line: the entry script every child re-runs imports
#: only :mod:`conductor_loop.entry`.
WORKER_PRELOAD = ("conductor_loop.worker", "conductor_loop.pool", "conductor_loop.porch",
                  "conductor_loop.intent_schema.compiled")


def start_forkserver() -> None:
    """Start the forkserver, with :data:`WORKER_PRELOAD`, unless it runs already."""
    import multiprocessing as mp
    from multiprocessing import forkserver

    mp.get_context("forkserver").set_forkserver_preload(list(WORKER_PRELOAD))
    forkserver.ensure_running()


def warm_workers(handoff: str, patterns: tuple[str, ...], once: bool) -> bool:
    """Start the forkserver now unless this is a once-run over a handoff without an intent; True if started."""
    if once and not Layout(handoff, patterns).has_candidate():
        return False
    start_forkserver()
    return True
