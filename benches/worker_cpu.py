"""CPU per intent of one worker alone against the floor's whole per-intent path, each in this one process
(docs/ARCHITECTURE.md, "Where the time goes").

Run by hand (not part of ``make bench``)::

    .venv/bin/python benches/worker_cpu.py [--intents 5000] [--rounds 2]

The worker is ``IntentProcessor.process`` with the built-in porch, plus the pickling of its result. It reads,
hashes and validates the intent, writes the package and the status file, and does not move or record: the
loop's recorder does that. The floor is ``baselines.floor_in_process``: the whole path of
``baselines.contract_floor``, with no pool. That is the package, the status file, and per group of 64 one
``syncfs``, one SQLite commit and the renames into ``processed/``. Each side runs on a fresh aged backlog of
its own and alternates with the other. The CPU is ``os.times()`` of this process, user and kernel.
"""

from __future__ import annotations

import argparse
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import baselines  # benches/ is this script's directory, so it is on sys.path
from conductor_loop.executor import resolve_porch
from conductor_loop.records import WorkerSettings, WorkItem
from conductor_loop.worker import IntentProcessor


def worker_alone(handoff: Path, out: Path) -> None:
    """What one worker does per intent, over every intent in ``handoff``."""
    (handoff / "status").mkdir(exist_ok=True)
    settings = WorkerSettings(str(handoff), str(out), resolve_porch("builtin"), "direct", 10 << 20, 2, 30.0)
    processor = IntentProcessor(settings, 1)
    for path in sorted(str(p) for p in handoff.glob("intent-*.json")):
        pickle.dumps(processor.process(WorkItem(path=path, prev_sha256=None, prev_when=None)))


def cpu_per_intent(run: Callable[[Path, Path], None], n: int) -> tuple[float, float]:
    """(user, kernel) µs per intent of ``run`` over a fresh aged backlog of ``n`` intents."""
    root = baselines.scratch_dir("worker-cpu-")
    try:
        baselines.aged_backlog(root / "handoff", root / "out", n)
        t0 = os.times()
        run(root / "handoff", root / "out")
        t1 = os.times()
    finally:
        baselines.remove_tree(root)
    return 1e6 * (t1.user - t0.user) / n, 1e6 * (t1.system - t0.system) / n


def main() -> None:
    """Parse the options, alternate the two sides, print each round."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--intents", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    sides: dict[str, Callable[[Path, Path], None]] = {"worker alone": worker_alone,
                                                       "floor, whole path": baselines.floor_in_process}
    try:
        for k in range(args.rounds):
            for name, run in sides.items():
                user, kernel = cpu_per_intent(run, args.intents)
                print(f"round {k} {name}: {user + kernel:.0f} us/intent (user {user:.0f}, kernel {kernel:.0f})",
                      flush=True)
    finally:
        baselines.empty_trash()


if __name__ == "__main__":
    main()
