"""Print the figures of a pytest-benchmark JSON report as a table.

Usage: ``python benches/report.py bench-report.json [--strict]``. Each benchmark that recorded a
figure via the ``record_figure`` fixture (benches/conftest.py) becomes one row:
figure | value | baseline | ratio | target | met. With ``--strict`` the exit code is 1 when a
target is not met.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The figure rows of a pytest-benchmark report, in report order."""
    out: list[dict[str, Any]] = []
    for bench in report.get("benchmarks", []):
        info = bench.get("extra_info") or {}
        if "figure" not in info:
            continue
        value = float(info["value"])
        base = float(info["baseline_value"])
        hib = bool(info.get("higher_is_better", True))
        if hib:
            ratio = value / base if base else float("inf")
        else:
            ratio = base / value if value else float("inf")
        target = float(info.get("target_ratio", 1.0))
        out.append(
            {
                "figure": str(info["figure"]),
                "value": f"{value:.4g} {info.get('unit', '')}".strip(),
                "baseline": f"{base:.4g} ({info.get('baseline_name', 'baseline')})",
                "ratio": f"{ratio:.2f}x",
                "target": f">= {target:g}x" + ("" if hib else " (lower is better)"),
                "met": "yes" if ratio >= target else "NO",
            }
        )
    return out


def render(table: list[dict[str, Any]]) -> str:
    """A plain-text table with aligned columns."""
    cols = ["figure", "value", "baseline", "ratio", "target", "met"]
    widths = {c: max([len(c)] + [len(r[c]) for r in table]) for c in cols}
    line = " | ".join(c.ljust(widths[c]) for c in cols)
    sep = "-+-".join("-" * widths[c] for c in cols)
    body = [" | ".join(r[c].ljust(widths[c]) for c in cols) for r in table]
    return "\n".join([line, sep, *body])


def main(argv: list[str]) -> int:
    """Entry point; returns the exit code."""
    args = [a for a in argv if not a.startswith("--")]
    strict = "--strict" in argv
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    report = json.loads(Path(args[0]).read_text())
    table = rows(report)
    if not table:
        print("no figures recorded")
        return 0
    print(render(table))
    missed = [r["figure"] for r in table if r["met"] != "yes"]
    if missed:
        print(f"\ntargets not met: {', '.join(missed)}")
    return 1 if (strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
