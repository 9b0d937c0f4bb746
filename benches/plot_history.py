"""Draw each figure's ratio across the runs of the benchmark history as one PNG (``make bench-plot``).

Usage: ``python benches/plot_history.py [--history benches/history.jsonl] [--out bench-history.png]``.

One subplot per figure: its ratio to the same-run baseline (larger is better, see ``figures.py``) for each
run of the history in order, one line per machine kind, the figure's target as a dashed line. The x axis
names each run's commit (``*`` when the tree had uncommitted changes). An infinite ratio (a value of 0 for a
lower-is-better figure, e.g. no intent lost) is drawn as a triangle at the top of its subplot.
Uses matplotlib's Agg backend: no display needed.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # the backend is chosen first
from matplotlib.axes import Axes

import history  # benches/ is on sys.path (run as a script from benches/)

OUT = history.REPO / "bench-history.png"
"""Default output file (gitignored)."""


def figure_names(runs: list[history.Run]) -> list[str]:
    """Every figure of the history, in the order each first appears."""
    names: dict[str, None] = {}
    for r in runs:
        names.update(dict.fromkeys(r.figures))
    return list(names)


def _draw(ax: Axes, runs: list[history.Run], name: str) -> None:
    """One figure's subplot: a line of ratios per machine kind, the target, infinite ratios on top."""
    held = [(i, r) for i, r in enumerate(runs) if name in r.figures]
    finite = [float(r.figures[name]["ratio"]) for _, r in held]
    finite = [x for x in finite if math.isfinite(x)]
    target = float(held[-1][1].figures[name].get("target", 1.0))
    top = max([target, *finite]) * 1.25 or 1.0
    for n, kind in enumerate(dict.fromkeys(r.kind for _, r in held)):
        points = [(i, float(r.figures[name]["ratio"])) for i, r in held if r.kind == kind]
        xs = [i for i, _ in points]
        ys = [y if math.isfinite(y) else top * 0.95 for _, y in points]
        color = f"C{n}"
        ax.plot(xs, ys, "-o", color=color, label=kind, markersize=5)
        inf_x = [i for i, y in points if not math.isfinite(y)]
        if inf_x:
            ax.plot(inf_x, [top * 0.95] * len(inf_x), "^", color=color, markersize=9, label="ratio ∞ (value 0)")
    ax.axhline(target, color="red", linestyle="--", linewidth=1, label=f"target {target:g}x")
    entry = held[-1][1].figures[name]
    unit = f"{entry.get('unit', '')}, " if entry.get("unit") else ""
    sense = "higher" if entry.get("higher_is_better", True) else "lower"
    ax.set_title(f"{name}\nratio to {entry.get('baseline_name', 'baseline')} ({unit}{sense} is better)",
                 fontsize=9)
    ax.set_ylim(0, top)
    ax.set_ylabel("ratio (x)")
    ax.grid(True, alpha=0.3)


def plot(runs: list[history.Run], out: Path) -> Path:
    """Write the PNG of ``runs`` to ``out``; returns ``out``. An empty history gives a page saying so."""
    names = figure_names(runs)
    cols = 2 if len(names) > 1 else 1
    rows = max(1, math.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(7 * cols, 3.4 * rows), squeeze=False)
    labels = [r.commit[:7] + ("*" if r.dirty else "") for r in runs]
    step = max(1, math.ceil(len(runs) / 20))  # at most ~20 commit labels per axis
    for k, ax in enumerate(axes.flat):
        if k >= len(names):
            ax.axis("off")
            continue
        _draw(ax, runs, names[k])
        ticks = list(range(0, len(runs), step))
        ax.set_xticks(ticks, [labels[t] for t in ticks], rotation=45, ha="right", fontsize=7)
        ax.set_xlim(-0.5, max(len(runs) - 0.5, 0.5))
        ax.legend(fontsize=7, loc="best")
    if not names:
        axes.flat[0].text(0.5, 0.5, "no runs in the history yet", ha="center", va="center")
    fig.suptitle("conductor-loop benchmark ratios across commits (make bench-plot)", fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main(argv: list[str]) -> int:
    """Entry point; returns the exit code."""
    p = argparse.ArgumentParser(prog="benches/plot_history.py", description=__doc__.split("\n")[0])
    p.add_argument("--history", type=Path, default=history.HISTORY, help="history file (default: %(default)s)")
    p.add_argument("--out", type=Path, default=OUT, help="PNG to write (default: %(default)s)")
    args = p.parse_args(argv)
    runs = history.load(args.history)
    print(f"{plot(runs, args.out)}: {len(runs)} runs, {len(figure_names(runs))} figures")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
