"""Once-mode throughput (issues 3 and 10): ``conductor-loop run --once`` on 5,000 intents beside its baselines.

Figures (intents/s, higher is better), each measured beside its baseline in the same test, on the same
filesystem (scratch directories under ``target/bench-tmp``), every round on a fresh directory of intents:

- built-in executor vs (a) its contract floor (``baselines.file_floor``: a bare pool of one process per CPU
  doing the least the contract allows, durably: read, SHA-256 and JSON parse, the 2 package files and the
  status file via temp + rename, a rename into ``processed/``, one ``syncfs`` and one SQLite commit per 64
  intents): target >= 0.85x;
- ``/bin/true`` as porch vs (b) its contract floor (``baselines.spawn_floor``: the same, with ``posix_spawn``
  of ``/bin/true`` in a new session + wait in place of the package files): target >= 0.85x;
- ``/bin/true`` as porch vs (c) the shell pipeline a user would write
  (``ls | xargs -P<cpus> sh -c '/bin/true -intent "$1" -out out && mv "$1" processed/'``): target >= 2.5x.

The loop is timed as a user runs it: a subprocess, start-up included. The loop's own reported rate (from
its summary line, start-up excluded), its mean group size (intents per ``syncfs`` + SQLite commit) and the
seconds its workers sat idle with intents ready (both from ``status --json``'s ``last_run``, read after the
timed run: until 2026-12-04 that command was timed with the run) are printed and kept in the report's
``extra_info``. Baseline and loop rounds alternate (each loop round right after a
baseline round, so a noisy neighbour hits both alike); each side counts its best of ``BENCH_ONCE_ROUNDS``
(default 2) rounds. Before each timed run the backlog's own writes (and the previous round's) are synced.
``BENCH_ONCE_INTENTS`` (default 5000) sets the corpus size.
"""

from __future__ import annotations

import json
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
#: The loop's command (``BENCH_ONCE_LOOP`` runs another build of it, e.g. an older commit, against the same floors).
LOOP = os.environ.get("BENCH_ONCE_LOOP") or str(Path(sys.executable).with_name("conductor-loop"))
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
        baselines.aged_backlog(handoff, out, N)
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


def last_run(handoff: Path) -> dict[str, Any]:
    """The loop's own account of its last run (``status --json``): counts, groups, idle seconds."""
    r = subprocess.run([LOOP, "status", "--handoff", str(handoff), "--json"], capture_output=True, text=True,
                       check=False, timeout=60)
    assert r.returncode == 0, r.stderr
    last: dict[str, Any] = json.loads(r.stdout)["last_run"]
    return last


class LoopRounds:
    """Rounds of the loop under ``benchmark.pedantic``, each right after one round of its baseline.

    ``setup`` (untimed by pytest-benchmark) first runs the baseline on a directory of its own and times it
    itself, then prepares a fresh directory for the loop: baseline and loop alternate, so that a noisy
    neighbour hits both sides alike, and both get the same number of rounds (the best one counts).
    """

    def __init__(self, scratch: Scratch, porch: str, baseline: Callable[[Path, Path], float]) -> None:
        self.scratch, self.porch, self.baseline = scratch, porch, baseline
        self.reported: list[float] = []
        #: Per round: the loop's ``last_run`` (groups, mean group size, workers idle with work queued).
        self.pipeline: list[dict[str, Any]] = []
        self.baseline_times: list[float] = []
        self.last: tuple[Path, Path] | None = None

    def setup(self) -> tuple[tuple[Path, Path], dict[str, Any]]:
        """pytest-benchmark ``setup``: one baseline round, then a fresh directory of intents for the loop."""
        handoff, out = self.scratch()
        self.baseline_times.append(self.baseline(handoff, out))
        assert len(os.listdir(handoff / "processed")) == N, "baseline did not file every intent"
        # The baseline never syncs; flush what it left dirty so that the loop's group commits
        # (syncfs, which flushes the whole filesystem) do not pay for the baseline's writeback.
        os.sync()
        self.last = self.scratch()
        return self.last, {}

    def __call__(self, handoff: Path, out: Path) -> None:
        r = run_loop(handoff, out, self.porch)
        assert r.returncode == 0, f"loop exited {r.returncode}: {r.stdout[-2000:]} {r.stderr[-2000:]}"
        m = SUMMARY.search(r.stdout)
        assert m, f"no summary line in {r.stdout!r}"
        assert (int(m[1]), int(m[2]), int(m[3])) == (N, 0, 0), m[0]
        self.reported.append(float(m[5]))

    def teardown(self, handoff: Path, _out: Path) -> None:
        """pytest-benchmark ``teardown`` (untimed): the loop's own account of the round just run."""
        self.pipeline.append(last_run(handoff))

    def check_filed(self) -> None:
        """Every intent of the last round was filed under processed/ with a status file."""
        assert self.last is not None
        handoff = self.last[0]
        assert len(os.listdir(handoff / "processed")) == N
        assert len(os.listdir(handoff / "status")) == N
        assert not [n for n in os.listdir(handoff) if n.startswith("intent-")]

    @property
    def best_baseline(self) -> float:
        """The baseline's fastest round, in seconds."""
        return min(self.baseline_times)


def _extra(benchmark: Any, loop: LoopRounds) -> None:
    best = max(loop.reported)
    benchmark.extra_info["loop_reported_intents_per_s"] = best
    benchmark.extra_info["loop_round_seconds"] = list(benchmark.stats.stats.data)
    benchmark.extra_info["baseline_round_seconds"] = loop.baseline_times
    benchmark.extra_info["loop_mean_group"] = [p.get("mean_group") for p in loop.pipeline]
    benchmark.extra_info["loop_idle_queued_s"] = [p.get("idle_queued_s") for p in loop.pipeline]
    benchmark.extra_info["intents"] = N
    benchmark.extra_info["cpus"] = baselines.CPUS
    benchmark.extra_info["load_average"] = list(os.getloadavg())
    print(f"\n[info] loop rounds {[round(N / t) for t in benchmark.stats.stats.data]} intents/s (wall, start-up "
          f"included), its own reported rate {[round(x) for x in loop.reported]}; baseline rounds "
          f"{[round(N / t) for t in loop.baseline_times]} intents/s")
    print(f"[info] loop groups per round {[p.get('groups') for p in loop.pipeline]}, mean group "
          f"{benchmark.extra_info['loop_mean_group']} intents, workers idle with work queued "
          f"{benchmark.extra_info['loop_idle_queued_s']} s; load average {os.getloadavg()[0]:.2f}")


CASES = {
    # id: (porch, baseline, figure suffix, baseline name, target ratio)
    "builtin-vs-floor": ("builtin", baselines.file_floor, " (vs durable floor)", "(a) durable contract floor", 0.85),
    "true-vs-floor": ("/bin/true", baselines.spawn_floor, " (vs durable floor)", "(b) durable spawn floor", 0.85),
    "true-vs-shell": ("/bin/true", baselines.shell_pipeline, " (vs shell)", "(c) ls | xargs -P sh -c", 2.5),
}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("case", list(CASES))
def test_bench_once(case: str, benchmark: Any, record_figure: Any, scratch: Scratch) -> None:
    """The loop's once-run beside its baseline: built-in vs floor (a), ``/bin/true`` vs floor (b) and (c)."""
    porch, baseline, suffix, baseline_name, target = CASES[case]
    loop = LoopRounds(scratch, porch, baseline)
    benchmark.pedantic(loop, setup=loop.setup, teardown=loop.teardown, rounds=ROUNDS, iterations=1)
    loop.check_filed()
    _extra(benchmark, loop)
    record_figure(
        benchmark,
        figure=f"once {porch} {N} intents{suffix}",
        value=N / benchmark.stats.stats.min,
        unit="intents/s",
        baseline_name=baseline_name,
        baseline_value=N / loop.best_baseline,
        target_ratio=target,
    )
