"""Once-mode throughput (issue 3): ``conductor-loop run --once`` on 5,000 intents beside its baselines.

Figures (intents/s, higher is better), each measured beside its baseline in the same test, on the same
filesystem (scratch directories under ``target/bench-tmp``), every round on a fresh directory of intents:

- built-in executor vs (a) the file-operation floor (a bare ``multiprocessing.Pool`` doing only the per-intent
  file work of the contract): target >= 0.85x;
- ``/bin/true`` as porch vs (b) the raw spawn rate (one bare process per CPU ``posix_spawn``-ing
  ``/bin/true`` and waiting): target >= 0.9x;
- ``/bin/true`` as porch vs (c) the shell pipeline a user would write
  (``ls | xargs -P<cpus> sh -c '/bin/true -intent "$1" -out out && mv "$1" processed/'``): target >= 2.5x.

The loop is timed as a user runs it: a subprocess, start-up included. The loop's own reported rate (from
its summary line, start-up excluded) is printed and kept in the report's ``extra_info``. Both sides take the
best of ``BENCH_ONCE_ROUNDS`` (default 2) rounds. ``BENCH_ONCE_INTENTS`` (default 5000) sets the corpus size.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import baselines  # benches/ is on sys.path (pytest prepends a test file's directory)

N = int(os.environ.get("BENCH_ONCE_INTENTS", "5000"))
ROUNDS = int(os.environ.get("BENCH_ONCE_ROUNDS", "2"))
LOOP = str(Path(sys.executable).with_name("conductor-loop"))
SUMMARY = re.compile(
    r"processed (\d+), skipped (\d+), failed (\d+) in ([\d.]+)s \(([\d.]+) intents/s\)"
)

Scratch = Callable[[], tuple[Path, Path]]


@pytest.fixture
def scratch() -> Iterator[Scratch]:
    """``scratch()`` → ``(handoff, out)``: a fresh directory of N intents; all removed at teardown.

    Each call first removes the previous one's directory (untimed) and flushes dirty pages with
    ``sync``, so that no round pays for the write-back of another.
    """
    made: list[Path] = []

    def make() -> tuple[Path, Path]:
        while made:
            baselines.remove_tree(made.pop())
        root = baselines.scratch_dir("once-")
        made.append(root)
        handoff, out = root / "handoff", root / "out"
        baselines.make_intents(handoff, N)
        out.mkdir()
        os.sync()
        return handoff, out

    yield make
    for root in made:
        baselines.remove_tree(root)


def run_loop(handoff: Path, out: Path, porch: str) -> subprocess.CompletedProcess[str]:
    """``conductor-loop run --once`` as a user runs it (a subprocess)."""
    return subprocess.run(
        [LOOP, "run", "--once", "--handoff", str(handoff), "--out", str(out), "--porch", porch,
         "--log-level", "warning"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=600,
        check=False,
    )


class LoopRounds:
    """Runs of the loop under ``benchmark.pedantic``: checks each, keeps the loop's reported rates."""

    def __init__(self, scratch: Scratch, porch: str) -> None:
        self.scratch, self.porch = scratch, porch
        self.reported: list[float] = []
        self.last: tuple[Path, Path] | None = None

    def setup(self) -> tuple[tuple[Path, Path], dict[str, Any]]:
        """pytest-benchmark ``setup``: a fresh directory of intents for the next round."""
        self.last = self.scratch()
        return self.last, {}

    def __call__(self, handoff: Path, out: Path) -> None:
        r = run_loop(handoff, out, self.porch)
        assert r.returncode == 0, f"loop exited {r.returncode}: {r.stdout[-2000:]} {r.stderr[-2000:]}"
        m = SUMMARY.search(r.stdout)
        assert m, f"no summary line in {r.stdout!r}"
        assert (int(m[1]), int(m[2]), int(m[3])) == (N, 0, 0), m[0]
        self.reported.append(float(m[5]))

    def check_filed(self) -> None:
        """Every intent of the last round was filed under processed/ with a status file."""
        assert self.last is not None
        handoff = self.last[0]
        assert len(os.listdir(handoff / "processed")) == N
        assert len(os.listdir(handoff / "status")) == N
        assert not [n for n in os.listdir(handoff) if n.startswith("intent-")]


def best_baseline(rounds: int, scratch: Scratch | None, fn: Callable[..., float]) -> float:
    """Fastest of ``rounds`` runs of a baseline (each on a fresh directory when ``scratch`` is given)."""
    best = float("inf")
    for _ in range(rounds):
        if scratch is None:
            os.sync()
            best = min(best, fn())
        else:
            handoff, out = scratch()
            best = min(best, fn(handoff, out))
            assert len(os.listdir(handoff / "processed")) == N, "baseline did not file every intent"
    return best


def _extra(benchmark: Any, loop: LoopRounds) -> None:
    best = max(loop.reported)
    benchmark.extra_info["loop_reported_intents_per_s"] = best
    benchmark.extra_info["intents"] = N
    benchmark.extra_info["cpus"] = baselines.CPUS
    print(f"\n[info] loop's own reported rate (start-up excluded): best {best:.0f} intents/s "
          f"of {[round(x) for x in loop.reported]}")


@pytest.mark.timeout(600)
def test_bench_once_builtin(benchmark: Any, record_figure: Any, scratch: Scratch) -> None:
    """Built-in executor vs (a) the file-operation floor."""
    floor_before = best_baseline(1, scratch, baselines.file_floor)
    loop = LoopRounds(scratch, "builtin")
    benchmark.pedantic(loop, setup=loop.setup, rounds=ROUNDS, iterations=1)
    loop.check_filed()
    floor = min(floor_before, best_baseline(max(1, ROUNDS - 1), scratch, baselines.file_floor))
    _extra(benchmark, loop)
    record_figure(
        benchmark,
        figure=f"once builtin {N} intents",
        value=N / benchmark.stats.stats.min,
        unit="intents/s",
        baseline_name="(a) file-operation floor",
        baseline_value=N / floor,
        target_ratio=0.85,
    )


@pytest.mark.timeout(600)
def test_bench_once_external_vs_spawn(benchmark: Any, record_figure: Any, scratch: Scratch) -> None:
    """``/bin/true`` as porch vs (b) the raw spawn rate."""
    spawn_before = best_baseline(1, None, lambda: baselines.spawn_rate(N))
    loop = LoopRounds(scratch, "/bin/true")
    benchmark.pedantic(loop, setup=loop.setup, rounds=ROUNDS, iterations=1)
    loop.check_filed()
    spawn = min(spawn_before, best_baseline(max(1, ROUNDS - 1), None, lambda: baselines.spawn_rate(N)))
    _extra(benchmark, loop)
    record_figure(
        benchmark,
        figure=f"once /bin/true {N} intents",
        value=N / benchmark.stats.stats.min,
        unit="intents/s",
        baseline_name="(b) raw posix_spawn rate",
        baseline_value=N / spawn,
        target_ratio=0.9,
    )


@pytest.mark.timeout(600)
def test_bench_once_external_vs_shell(benchmark: Any, record_figure: Any, scratch: Scratch) -> None:
    """``/bin/true`` as porch vs (c) the shell pipeline a user would write."""
    shell_before = best_baseline(1, scratch, baselines.shell_pipeline)
    loop = LoopRounds(scratch, "/bin/true")
    benchmark.pedantic(loop, setup=loop.setup, rounds=ROUNDS, iterations=1)
    loop.check_filed()
    shell = min(shell_before, best_baseline(max(1, ROUNDS - 1), scratch, baselines.shell_pipeline))
    _extra(benchmark, loop)
    record_figure(
        benchmark,
        figure=f"once /bin/true {N} intents (vs shell)",
        value=N / benchmark.stats.stats.min,
        unit="intents/s",
        baseline_name="(c) ls | xargs -P sh -c",
        baseline_value=N / shell,
        target_ratio=2.5,
    )

