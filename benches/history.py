"""The benchmark history: one JSON line per ``make bench`` run, and the regression check against it.

Usage::

    python benches/history.py record bench-report.json [--history benches/history.jsonl]
    python benches/history.py check  bench-report.json [--history ...] [--tolerance 0.15] [--last 10]

``record`` appends one line for the run in ``bench-report.json`` (``make bench`` does this after printing
its table). A line holds the commit (and whether the tree had uncommitted changes besides the history
itself), the UTC date, the machine's facts (CPU model, cores, filesystem type of the bench directory,
kernel, Python) with the **machine kind** made of them, and every figure with its same-run baseline,
ratio, target and unit.

``check`` compares each figure's ratio (larger is always better, see ``figures.py``) with the best ratio
that figure had in the last ``--last`` runs of the same machine kind that hold it. A ratio more than
``--tolerance`` below that best is a regression: one line each, naming the commit that held the better
ratio, and exit code 1. A figure with no history on this machine kind is reported, never failed.
``check`` does not append. Ratios, not absolute values, are compared: on a shared machine the absolute
figures move several-fold between runs, the ratio to a baseline measured in the same run much less.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import baselines  # benches/ is on sys.path (run as a script from benches/, or imported by pytest from it)
from figures import Figure, figures

REPO = baselines.REPO
HISTORY = REPO / "benches" / "history.jsonl"
"""The history file kept in the repository."""

RECENT = 10
"""How many recent runs (of the same machine kind, holding the figure) the check looks back on."""

TOLERANCE = 0.15
"""Default largest drop of a ratio, as a fraction of the best recent ratio, that is not a regression."""


# -- the machine --------------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU model name from ``/proc/cpuinfo`` (``platform.processor()`` where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware", "cpu model") and value.strip():
            return " ".join(value.split())
    return platform.processor() or platform.machine() or "unknown"


def fs_type(path: Path) -> str:
    """The filesystem type (``ext4``, ``tmpfs``, …) of the mount holding ``path`` or its nearest parent."""
    path = path.resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    best, kind = "", "unknown"
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return kind
    for line in lines:
        fields = line.split()
        if "-" not in fields:
            continue
        mount = fields[4].replace("\\040", " ")
        inside = str(path) == mount or str(path).startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best):
            best, kind = mount, fields[fields.index("-") + 1]
    return kind


def machine_facts(bench_dir: Path = baselines.BENCH_TMP) -> dict[str, Any]:
    """What the figures depend on: CPU model, cores, filesystem of the bench directory, kernel, Python."""
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count() or 1,
        "fs_type": fs_type(bench_dir),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages now: how busy the machine was around a run (not part of the kind)."""
    return [round(x, 2) for x in os.getloadavg()]


def machine_kind(facts: dict[str, Any]) -> str:
    """The key runs are compared under: CPU model, core count and filesystem type (not kernel or Python)."""
    return f"{facts['cpu_model']} x{facts['cores']} on {facts['fs_type']}"


def git_commit(repo: Path = REPO) -> tuple[str, bool]:
    """``(commit, dirty)`` of the work tree; dirty ignores untracked files and the history file itself."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        rel = HISTORY.relative_to(repo).as_posix() if HISTORY.is_relative_to(repo) else ""
        exclude = [f":(exclude){rel}"] if rel else []
        dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", ".", *exclude).strip())
    except (OSError, subprocess.CalledProcessError):
        return "unknown", True
    return commit, dirty


# -- lines of the history -----------------------------------------------------------------------


def _num(x: float) -> float | str:
    """A float as JSON allows it: ``inf`` and ``nan`` become strings (``float()`` reads them back)."""
    return x if math.isfinite(x) else str(x)


def run_record(
    figs: Iterable[Figure], facts: dict[str, Any], commit: str, dirty: bool, date: dt.datetime,
    load: list[float] | None = None,
) -> dict[str, Any]:
    """One history line (as a dict) for a run's figures; ``load``: :func:`load_average` after the run."""
    return {
        "commit": commit,
        "dirty": dirty,
        "date": date.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "kind": machine_kind(facts),
        "machine": facts,
        "load": load,
        "figures": {
            f.name: {
                "ratio": _num(f.ratio),
                "value": _num(f.value),
                "unit": f.unit,
                "baseline": _num(f.baseline_value),
                "baseline_name": f.baseline_name,
                "target": _num(f.target_ratio),
                "higher_is_better": f.higher_is_better,
            }
            for f in figs
        },
    }


def append(path: Path, record: dict[str, Any]) -> None:
    """Append one run to the history file (created if missing)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, allow_nan=False, separators=(", ", ": ")) + "\n")


@dataclass(frozen=True)
class Run:
    """One run read back from the history."""

    commit: str
    dirty: bool
    date: str
    kind: str
    figures: dict[str, dict[str, Any]]

    @property
    def label(self) -> str:
        """How the run is named in messages: short commit, ``+dirty`` when the tree had changes."""
        return self.commit[:10] + ("+dirty" if self.dirty else "")

    def ratio(self, figure: str) -> float | None:
        """The ratio of ``figure`` in this run, or None when the run does not hold it."""
        entry = self.figures.get(figure)
        return None if entry is None else float(entry["ratio"])


def load(path: Path) -> list[Run]:
    """The runs of a history file, oldest first; a missing file is an empty history.

    A line that is not a run (e.g. left by a bad merge) is skipped with a warning on stderr.
    """
    if not path.exists():
        return []
    runs: list[Run] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            runs.append(Run(str(d["commit"]), bool(d.get("dirty", False)), str(d.get("date", "")),
                            str(d["kind"]), dict(d["figures"])))
        except (ValueError, KeyError, TypeError) as e:
            print(f"{path}:{n}: not a run, skipped ({e})", file=sys.stderr)
    return runs


# -- the comparison -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """One figure of the current run against its best recent ratio on the same machine kind."""

    figure: str
    ratio: float
    best: float | None  # None: no history for this figure on this machine kind
    best_run: Run | None
    change: float | None  # ratio / best - 1: negative is a drop
    regressed: bool


def best_recent(runs: list[Run], kind: str, figure: str, last: int = RECENT) -> tuple[float, Run] | None:
    """The best ratio of ``figure`` among the last ``last`` runs of ``kind`` that hold it (latest wins ties)."""
    held = [r for r in runs if r.kind == kind and r.ratio(figure) is not None][-last:]
    best: tuple[float, Run] | None = None
    for r in held:
        ratio = r.ratio(figure)
        assert ratio is not None
        if best is None or ratio >= best[0]:
            best = (ratio, r)
    return best


def change(ratio: float, best: float) -> float:
    """``ratio / best - 1`` (-0.3 is a 30 % drop), with infinite and zero ratios taken at their word."""
    if math.isinf(best):
        return 0.0 if math.isinf(ratio) else -1.0
    if math.isinf(ratio):
        return math.inf
    if best == 0:
        return 0.0 if ratio == 0 else math.inf
    return ratio / best - 1


def compare(figs: Iterable[Figure], runs: list[Run], kind: str,
            tolerance: float = TOLERANCE, last: int = RECENT) -> list[Verdict]:
    """A :class:`Verdict` for each figure: regressed when it dropped more than ``tolerance`` below its best."""
    out = []
    for f in figs:
        found = best_recent(runs, kind, f.name, last)
        if found is None:
            out.append(Verdict(f.name, f.ratio, None, None, None, False))
            continue
        c = change(f.ratio, found[0])
        out.append(Verdict(f.name, f.ratio, found[0], found[1], c, c < -tolerance))
    return out


def fmt_ratio(x: float) -> str:
    """A ratio as printed: ``0.89x``, ``inf`` for an infinite one (e.g. no intent lost)."""
    return f"{x:.2f}x" if math.isfinite(x) else "inf"


def fmt_pct(c: float) -> str:
    """A change as printed: ``+3%``, ``-30%``, ``+inf%``."""
    return "+inf%" if math.isinf(c) else f"{c * 100:+.0f}%"


def fmt_change(v: Verdict) -> str:
    """The change column of a verdict: ``new``, ``+3% vs <commit>``, ``-30% vs <commit>``."""
    if v.change is None or v.best_run is None:
        return "new"
    return f"{fmt_pct(v.change)} vs {v.best_run.label}"


def check_lines(verdicts: list[Verdict], tolerance: float) -> list[str]:
    """One line per figure: regressions first (``REGRESSED …``), then ``new …`` and ``ok …``."""
    lines = []
    for v in sorted(verdicts, key=lambda v: (not v.regressed, v.best is not None)):
        if v.best is None or v.best_run is None:
            lines.append(f"new        {v.figure}: {fmt_ratio(v.ratio)}, no history on this machine kind")
            continue
        head = "REGRESSED " if v.regressed else "ok        "
        lines.append(f"{head}{v.figure}: {fmt_ratio(v.ratio)}, best recent {fmt_ratio(v.best)} at "
                     f"{v.best_run.label} ({v.best_run.date}), {fmt_pct(v.change or 0.0)}"
                     + (f" (tolerance -{tolerance:.0%})" if v.regressed else ""))
    return lines


# -- command line -------------------------------------------------------------------------------


def _read_figures(report: Path) -> list[Figure]:
    return figures(json.loads(report.read_text(encoding="utf-8")))


def cmd_record(args: argparse.Namespace) -> int:
    """Append the report's run to the history."""
    figs = _read_figures(args.report)
    if not figs:
        print(f"{args.report}: no figures, nothing recorded", file=sys.stderr)
        return 2
    commit, dirty = git_commit()
    record = run_record(figs, machine_facts(), commit, dirty, dt.datetime.now(dt.timezone.utc), load_average())
    append(args.history, record)
    print(f"recorded {len(figs)} figures of {commit[:10]}{'+dirty' if dirty else ''} "
          f"({record['kind']}) in {args.history}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Compare the report's ratios with the history; 1 when one regressed."""
    figs = _read_figures(args.report)
    if not figs:
        print(f"{args.report}: no figures to check", file=sys.stderr)
        return 2
    kind = machine_kind(machine_facts())
    verdicts = compare(figs, load(args.history), kind, args.tolerance, args.last)
    print("\n".join(check_lines(verdicts, args.tolerance)))
    bad = [v for v in verdicts if v.regressed]
    busy = load_average()[1]
    what = f"the best of the last {args.last} runs on {kind} (5-minute load average now {busy:g})"
    if bad:
        print(f"bench-check: {len(bad)} figure(s) regressed by more than {args.tolerance:.0%} against {what}")
        return 1
    print(f"bench-check: no figure regressed by more than {args.tolerance:.0%} against {what}")
    return 0


def _tolerance(text: str) -> float:
    t = float(text)
    if not 0 <= t < 1:
        raise argparse.ArgumentTypeError(f"tolerance {text}: a fraction in [0, 1), e.g. 0.15")
    return t


def parser() -> argparse.ArgumentParser:
    """The command-line parser (``record`` and ``check``)."""
    p = argparse.ArgumentParser(prog="benches/history.py", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name, fn in (("record", cmd_record), ("check", cmd_check)):
        s = sub.add_parser(name, help=(fn.__doc__ or "").strip())
        s.add_argument("report", type=Path, help="pytest-benchmark JSON report (bench-report.json)")
        s.add_argument("--history", type=Path, default=HISTORY, help="history file (default: %(default)s)")
        s.set_defaults(fn=fn)
        if name == "check":
            s.add_argument("--tolerance", type=_tolerance,
                           default=_tolerance(os.environ.get("BENCH_TOLERANCE") or str(TOLERANCE)),
                           help="largest allowed drop, a fraction (default: $BENCH_TOLERANCE or 0.15)")
            s.add_argument("--last", type=int, default=RECENT, help="recent runs to compare with (default 10)")
    return p


def main(argv: list[str]) -> int:
    """Entry point; returns the exit code."""
    args = parser().parse_args(argv)
    rc: int = args.fn(args)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
