"""CPU per intent, thread by thread, of one ``conductor-loop run --once`` (docs/ARCHITECTURE.md, "Where the time goes").

Run by hand (not part of ``make bench``)::

    .venv/bin/python benches/thread_cpu.py [--intents 5000] [--porch builtin] [--loop PATH]

Writes the intents into a scratch handoff with an mtime older than the debounce, syncs, then runs the loop
at warning, as the benches do. While it runs, ``/proc/<pid>/task/*/stat`` of the loop and of every process
below it is sampled every 5 ms. A thread's last sample is its CPU, so a thread that lives less than one
sample is missed, and so is porch's own CPU (children that short are never sampled). The machine's CPU over
the run (``/proc/stat``, everything but idle and iowait) is printed beside it. Each figure is divided by the
number of intents; the sampler's own CPU is left out of the machine's. The scratch tree is removed at the end,
after the measurement.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import baselines  # benches/ is this script's directory, so it is on sys.path

TICK = os.sysconf("SC_CLK_TCK")


@dataclass(slots=True)
class Sample:
    """The last sample of one thread: its name, whose it is, and its CPU ticks (user, kernel)."""

    comm: str
    role: str
    user: int
    system: int


Samples = dict[tuple[int, int], Sample]
"""The last sample of each thread, by (pid, tid)."""


def stat_fields(path: str) -> tuple[str, list[str]]:
    """``comm`` and the fields after it of a ``/proc/…/stat`` file."""
    with open(path) as f:
        text = f.read()
    end = text.rfind(")")
    return text[text.find("(") + 1 : end], text[end + 2 :].split()


def machine_seconds() -> float:
    """CPU seconds the machine spent so far, idle and iowait excluded."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / TICK


def role_of(pid: int, ppid: int, loop: int, forkservers: set[int]) -> str:
    """What a process below the loop is, from its command line and its parent."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
    except OSError:
        return "gone"
    if b"resource_tracker" in cmdline:
        return "resource tracker"
    if b"forkserver" in cmdline and ppid == loop:
        forkservers.add(pid)
        return "forkserver"
    return "worker" if ppid in forkservers else "child"


def sample(loop: int, seen: Samples, roles: dict[int, str], forkservers: set[int]) -> None:
    """One sample of every thread of the loop and of the processes below it."""
    below = {loop}
    for name in sorted(os.listdir("/proc"), key=lambda n: int(n) if n.isdigit() else 0):
        if name.isdigit():
            try:
                ppid = int(stat_fields(f"/proc/{name}/stat")[1][1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid in below:
                below.add(int(name))
                roles.setdefault(int(name), role_of(int(name), ppid, loop, forkservers))
    for pid in below:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                comm, f = stat_fields(f"/proc/{pid}/task/{tid}/stat")
            except OSError:
                continue
            if pid == loop:
                role = "loop thread" if int(tid) == pid else "loop, other thread"
            else:
                role = roles.get(pid, "child")
            seen[(pid, int(tid))] = Sample(comm, role, int(f[11]), int(f[12]))


def run_sampled(loop: str, handoff: Path, out: Path, porch: str) -> tuple[int, Samples, float, float]:
    """Run the loop once over ``handoff``, sampling its threads: (exit code, samples, wall seconds, machine CPU
    seconds with this sampler's own left out)."""
    seen: Samples = {}
    roles: dict[int, str] = {}
    forkservers: set[int] = set()
    c0, t0, own0 = machine_seconds(), time.perf_counter(), time.process_time()
    proc = subprocess.Popen([loop, "run", "--once", "--handoff", str(handoff), "--out", str(out), "--porch", porch,
                             "--log-level", "warning"], stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    while proc.poll() is None:
        sample(proc.pid, seen, roles, forkservers)
        time.sleep(0.005)
    wall, own = time.perf_counter() - t0, time.process_time() - own0
    return proc.returncode, seen, wall, machine_seconds() - c0 - own


def print_table(seen: Samples, n: int, machine: float) -> None:
    """One line per thread that used CPU, per intent of the run; then the totals."""
    print(f"{'pid':>7} {'tid':>7}  {'role':20} {'comm':16} {'us/intent':>9} {'user':>6} {'kernel':>6}")
    total, us = 0, 1e6 / TICK / n
    for (pid, tid), s in sorted(seen.items()):
        ticks = s.user + s.system
        total += ticks
        if ticks:
            cpu = f"{ticks * us:9.0f} {s.user * us:6.0f} {s.system * us:6.0f}"
            print(f"{pid:7d} {tid:7d}  {s.role:20} {s.comm:16} {cpu}")
    print(f"sampled threads in all: {total * us:.0f} us/intent; the machine, this sampler left out: "
          f"{1e6 * machine / n:.0f} us/intent")


def main() -> None:
    """Parse the options, run the loop once while sampling, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--intents", type=int, default=5000)
    ap.add_argument("--porch", default="builtin")
    ap.add_argument("--loop", default=str(Path(sys.executable).with_name("conductor-loop")))
    args = ap.parse_args()
    root = baselines.scratch_dir("thread-cpu-")
    try:
        baselines.aged_backlog(root / "handoff", root / "out", args.intents)
        code, seen, wall, machine = run_sampled(args.loop, root / "handoff", root / "out", args.porch)
        n = args.intents
        print(f"{n} intents, porch {args.porch}: {wall:.2f} s, {n / wall:.0f} intents/s, exit {code}")
        if code != 0:
            raise SystemExit(f"the loop exited {code}: its figures are not those of a clean run")
        print_table(seen, n, machine)
    finally:
        baselines.remove_tree(root)
        baselines.empty_trash()


if __name__ == "__main__":
    main()
