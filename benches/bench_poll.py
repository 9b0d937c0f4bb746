"""CPU per poll cycle of ``--watch poll`` with 10,000 and 100,000 files in the handoff.

Poll mode lists the directory once per ``--poll-interval``; its cost must stay bounded (linear in the
number of entries, with a small constant) as the handoff grows. The figure is the process CPU time per
cycle of the Rust ``PollWatcher`` idling over a directory of settled files (the main thread sleeps, so the
process CPU is the poller's), beside the baseline a Python poller would pay: one ``os.scandir`` pass with
an ``lstat`` of every entry, measured in the same run (best of several passes).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conductor_loop import _core

BestOf = Callable[[int, Callable[[], object]], float]


def _fill(directory: Path, n: int) -> None:
    directory.mkdir()
    for i in range(n):
        (directory / f"intent-{i:06d}.json").write_bytes(b"{}")
    old = time.time() - 3600
    for entry in os.scandir(directory):
        os.utime(entry.path, (old, old))


def _python_pass(directory: str) -> int:
    """What a Python poller does per cycle: list, and lstat every entry."""
    n = 0
    for entry in os.scandir(directory):
        entry.stat(follow_symlinks=False)
        n += 1
    return n


def _cpu_per_cycle(directory: str, interval_ms: int, cycles: int) -> float:
    """Process CPU seconds per poll cycle while a PollWatcher idles over ``directory``."""
    with _core.PollWatcher(directory, 100, interval_ms) as w:
        time.sleep(3 * interval_ms / 1000)  # the first listing learns every entry
        w.take_batch()
        t0, c0 = time.monotonic(), time.process_time()
        time.sleep(cycles * interval_ms / 1000)
        cpu, wall = time.process_time() - c0, time.monotonic() - t0
    return cpu / (wall / (interval_ms / 1000))


@pytest.mark.parametrize(("files", "interval_ms"), [(10_000, 100), (100_000, 1000)])
def test_bench_poll_cycle_cpu(benchmark: Any, record_figure: Any, best_of: BestOf, tmp_path: Path,
                              files: int, interval_ms: int) -> None:
    directory = tmp_path / "handoff"
    _fill(directory, files)
    os.sync()
    best = [float("inf")]

    def measure() -> None:
        best[0] = min(best[0], _cpu_per_cycle(str(directory), interval_ms, cycles=10))

    benchmark.pedantic(measure, rounds=2, iterations=1)
    base = best_of(3, lambda: _python_pass(str(directory)))
    record_figure(benchmark, figure=f"poll cycle CPU, {files:,} files", value=best[0] * 1000, unit="ms",
                  baseline_name="Python scandir+lstat pass", baseline_value=base * 1000, target_ratio=1.0,
                  higher_is_better=False)
