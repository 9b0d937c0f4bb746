"""Interleaved once-runs of two or more builds of the loop over the same kind of backlog: is a change faster?

Run by hand (not part of ``make bench``)::

    .venv/bin/python benches/ab_once.py [--intents 5000] [--rounds 4] [--porch builtin] A=PATH B=PATH …

Each ``NAME=PATH`` is a ``conductor-loop`` executable, e.g. this tree's ``.venv/bin/conductor-loop`` as B and,
as A, an older commit built in a worktree (``git worktree add /tmp/wA REV``, then ``make install`` there with
``CARGO_TARGET_DIR`` set to a target directory of its own). Rounds take the builds in turn, each on a fresh
backlog older than the debounce, synced, after a second of quiet. The host's noise only slows a round, so
compare the best rounds. Printed per round: the rate (wall clock, start-up included), the time from exec to the
first filed intent, and the machine's CPU per intent (``/proc/stat``, idle and iowait excluded: it counts the
forkserver and the workers, which ``/usr/bin/time`` misses because they are reaped after the loop exits).
Scratch trees are set aside and removed after the last round (``baselines.remove_tree``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from datetime import datetime

import baselines  # benches/ is this script's directory, so it is on sys.path
from thread_cpu import machine_seconds


def first_filed(stderr: str, t0: float) -> float | None:
    """Seconds from ``t0`` (wall clock) to the first ``intent.*`` line of a JSON log."""
    for line in stderr.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if str(doc.get("event", "")).startswith("intent."):
            return datetime.fromisoformat(doc["ts"].replace("Z", "+00:00")).timestamp() - t0
    return None


def one_round(exe: str, n: int, porch: str) -> tuple[float, float | None, float]:
    """One once-run of ``exe``: (intents/s, seconds to the first filed intent, machine CPU µs per intent)."""
    root = baselines.scratch_dir("ab-once-")
    baselines.aged_backlog(root / "handoff", root / "out", n)
    time.sleep(1.0)
    c0, t0, w0 = machine_seconds(), time.perf_counter(), time.time()
    r = subprocess.run([exe, "run", "--once", "--handoff", str(root / "handoff"), "--out", str(root / "out"),
                        "--porch", porch, "--log-level", "info", "--log-format", "json"],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    wall, cpu = time.perf_counter() - t0, machine_seconds() - c0
    if r.returncode != 0:
        raise SystemExit(f"{exe} exited {r.returncode}: {r.stderr[-2000:]}")
    baselines.remove_tree(root)
    return n / wall, first_filed(r.stderr, w0), 1e6 * cpu / n


def main() -> None:
    """Parse the options, run the rounds, print each and the best of each build."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--intents", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--porch", default="builtin")
    ap.add_argument("builds", nargs="+", metavar="NAME=PATH")
    args = ap.parse_args()
    builds = dict(b.split("=", 1) for b in args.builds)
    got: dict[str, list[tuple[float, float | None, float]]] = {name: [] for name in builds}
    try:
        for k in range(args.rounds):
            for name, exe in builds.items():
                rate, first, cpu = one_round(exe, args.intents, args.porch)
                got[name].append((rate, first, cpu))
                shown = f"{first * 1000:.0f} ms" if first is not None else "-"
                print(f"round {k} {name}: {rate:6.0f} intents/s, first filed at {shown}, {cpu:.0f} us CPU/intent",
                      flush=True)
    finally:
        baselines.empty_trash()
    for name, rows in got.items():
        print(f"{name}: best {max(r[0] for r in rows):.0f} intents/s, CPU/intent {sorted(round(r[2]) for r in rows)}")


if __name__ == "__main__":
    main()
