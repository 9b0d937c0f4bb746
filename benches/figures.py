"""The figures of a benchmark run: what ``record_figure`` (benches/conftest.py) stored, read back.

A figure is one measured value beside its baseline measured in the same run. Its **ratio** says how many
times better than the baseline the value is, whichever way "better" points: ``value / baseline`` for rates
(higher is better), ``baseline / value`` for times such as latencies (lower is better). So a larger ratio
is always better, and ratios of different runs compare the same way for every figure.

This module is the one owner of reading figures out of a pytest-benchmark JSON report (:func:`figures`)
and of the ratio (:func:`ratio_of`); ``report.py``, ``history.py`` and ``conftest.py`` call it.
Not a test module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


def ratio_of(value: float, baseline_value: float, higher_is_better: bool = True) -> float:
    """How many times better than the baseline ``value`` is (≥ 1 means at least as good).

    A zero denominator gives ``inf`` (e.g. "0 intents lost" against a baseline of 0).
    """
    if higher_is_better:
        return value / baseline_value if baseline_value else math.inf
    return baseline_value / value if value else math.inf


@dataclass(frozen=True)
class Figure:
    """One figure of a run, with its same-run baseline and ratio."""

    name: str
    value: float
    unit: str
    baseline_name: str
    baseline_value: float
    target_ratio: float
    higher_is_better: bool

    @property
    def ratio(self) -> float:
        """The figure's ratio to its baseline (larger is better, see the module docstring)."""
        return ratio_of(self.value, self.baseline_value, self.higher_is_better)

    @property
    def met(self) -> bool:
        """Whether the ratio reaches the figure's target."""
        return self.ratio >= self.target_ratio


def figure_from_info(info: dict[str, Any]) -> Figure:
    """A :class:`Figure` from the keys ``record_figure`` writes into ``extra_info``."""
    return Figure(
        name=str(info["figure"]),
        value=float(info["value"]),
        unit=str(info.get("unit", "")),
        baseline_name=str(info.get("baseline_name", "baseline")),
        baseline_value=float(info["baseline_value"]),
        target_ratio=float(info.get("target_ratio", 1.0)),
        higher_is_better=bool(info.get("higher_is_better", True)),
    )


def figures(report: dict[str, Any]) -> list[Figure]:
    """The figures of a pytest-benchmark JSON report, in report order (benchmarks without one are skipped)."""
    out: list[Figure] = []
    for bench in report.get("benchmarks", []):
        info = bench.get("extra_info") or {}
        if "figure" in info:
            out.append(figure_from_info(info))
    return out
