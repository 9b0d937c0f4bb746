"""Shared benchmark conventions for conductor-loop.

Every figure a benchmark reports goes through :func:`record_figure`, which stores it in
``benchmark.extra_info`` under fixed keys; ``benches/report.py bench-report.json`` turns those into
one table (figure | value | baseline | ratio | target | met | vs history)::

    def test_bench_x(benchmark, record_figure, best_of):
        benchmark.pedantic(fast_thing, rounds=3, iterations=1)
        base = best_of(3, slow_thing)                   # the baseline, measured in the same run
        record_figure(benchmark, figure="thing rate", value=N / benchmark.stats.stats.min,
                      unit="items/s", baseline_name="pure Python", baseline_value=N / base,
                      target_ratio=2.0)

For time-like figures (lower is better) pass ``higher_is_better=False``; the ratio is then
``baseline / value`` (``figures.py`` owns the ratio and reads the figures back). Bench files are named
``bench_*.py``; this conftest makes pytest collect them. Bench files use the fixtures only (no
``import conftest``: ``tests/`` has a conftest too).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import pytest

from baselines import empty_trash  # benches/ is on sys.path (pytest prepends a conftest's directory)
from figures import ratio_of

EXTRA_KEYS = (
    "figure",
    "value",
    "unit",
    "baseline_name",
    "baseline_value",
    "target_ratio",
    "higher_is_better",
)


class RecordFigure(Protocol):
    """Signature of the ``record_figure`` fixture."""

    def __call__(
        self,
        benchmark: Any,
        *,
        figure: str,
        value: float,
        unit: str,
        baseline_name: str,
        baseline_value: float,
        target_ratio: float,
        higher_is_better: bool = True,
    ) -> None: ...


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Module | None:
    """Collect ``bench_*.py`` files (pytest's default pattern only takes ``test_*.py``)."""
    if file_path.suffix == ".py" and file_path.name.startswith("bench_"):
        if parent.session.isinitpath(file_path):
            return None  # named on the command line: pytest collects it itself
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Delete the scratch directories the benchmarks set aside (``baselines.remove_tree``: never while
    figures are measured)."""
    empty_trash()


def _best_of(rounds: int, fn: Callable[[], object]) -> float:
    """Fastest wall time in seconds of ``rounds`` calls of ``fn`` (for baselines)."""
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _record(
    benchmark: Any,
    *,
    figure: str,
    value: float,
    unit: str,
    baseline_name: str,
    baseline_value: float,
    target_ratio: float,
    higher_is_better: bool = True,
) -> None:
    info: dict[str, Any] = {
        "figure": figure,
        "value": float(value),
        "unit": unit,
        "baseline_name": baseline_name,
        "baseline_value": float(baseline_value),
        "target_ratio": float(target_ratio),
        "higher_is_better": bool(higher_is_better),
    }
    benchmark.extra_info.update(info)
    r = ratio_of(info["value"], info["baseline_value"], higher_is_better)
    print(
        f"\n[figure] {figure}: {value:.4g} {unit} vs {baseline_name} {baseline_value:.4g} {unit}"
        f" -> {r:.2f}x (target {target_ratio:g}x)"
    )


@pytest.fixture
def record_figure() -> RecordFigure:
    """Record one figure of this benchmark (see the module docstring)."""
    return _record


@pytest.fixture
def best_of() -> Callable[[int, Callable[[], object]], float]:
    """``best_of(rounds, fn)``: the fastest wall time in seconds of ``rounds`` calls of ``fn``."""
    return _best_of
