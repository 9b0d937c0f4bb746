"""Print the figures of a pytest-benchmark JSON report as a table, each against the benchmark history.

Usage: ``python benches/report.py bench-report.json [--strict] [--history benches/history.jsonl]``. Each
benchmark that recorded a figure via the ``record_figure`` fixture (benches/conftest.py) becomes one row:
figure | value | baseline | ratio | target | met | vs history. The last column is the change of the ratio
against the best ratio of the figure's last 10 runs on this machine kind in the history (``history.py``),
with the commit that held it, or ``new``. With ``--strict`` the exit code is 1 when a target is not met.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import history  # benches/ is on sys.path (run as a script from benches/)
from figures import Figure, figures

COLUMNS = ["figure", "value", "baseline", "ratio", "target", "met", "vs history"]


def row(f: Figure, verdict: history.Verdict | None = None) -> dict[str, str]:
    """One table row of a figure (``vs history`` empty without a verdict)."""
    return {
        "figure": f.name,
        "value": f"{f.value:.4g} {f.unit}".strip(),
        "baseline": f"{f.baseline_value:.4g} ({f.baseline_name})",
        "ratio": history.fmt_ratio(f.ratio),
        "target": f">= {f.target_ratio:g}x" + ("" if f.higher_is_better else " (lower is better)"),
        "met": "yes" if f.met else "NO",
        "vs history": history.fmt_change(verdict) if verdict is not None else "",
    }


def render(table: list[dict[str, str]]) -> str:
    """A plain-text table with aligned columns."""
    widths = {c: max([len(c)] + [len(r[c]) for r in table]) for c in COLUMNS}
    line = " | ".join(c.ljust(widths[c]) for c in COLUMNS)
    sep = "-+-".join("-" * widths[c] for c in COLUMNS)
    body = [" | ".join(r[c].ljust(widths[c]) for c in COLUMNS) for r in table]
    return "\n".join([line, sep, *body])


def main(argv: list[str]) -> int:
    """Entry point; returns the exit code."""
    p = argparse.ArgumentParser(prog="benches/report.py", description=__doc__.split("\n")[0])
    p.add_argument("report", type=Path)
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is not met")
    p.add_argument("--history", type=Path, default=history.HISTORY, help="history file (default: %(default)s)")
    args = p.parse_args(argv)
    figs = figures(json.loads(args.report.read_text(encoding="utf-8")))
    if not figs:
        print("no figures recorded")
        return 0
    kind = history.machine_kind(history.machine_facts())
    verdicts = history.compare(figs, history.load(args.history), kind)
    print(render([row(f, v) for f, v in zip(figs, verdicts)]))
    missed = [f.name for f in figs if not f.met]
    if missed:
        print(f"\ntargets not met: {', '.join(missed)}")
    return 1 if (args.strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
