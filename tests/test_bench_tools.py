"""The profiling tools run by hand (benches/thread_cpu.py, ab_once.py, worker_cpu.py), run small as a developer
runs them: each finishes (a loop that fails is the tool's failure) and prints its table."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOOP = str(Path(sys.executable).with_name("conductor-loop"))


def run_tool(*args: str) -> str:
    r = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=240, cwd=REPO, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_thread_cpu_names_the_loop_thread_the_workers_and_the_forkserver() -> None:
    out = run_tool("benches/thread_cpu.py", "--intents", "300", "--loop", LOOP)
    assert re.search(r"^300 intents, porch builtin: [\d.]+ s, \d+ intents/s, exit 0$", out, re.M), out
    for role in ("loop thread", "worker", "forkserver"):
        assert re.search(rf"^ *\d+ +\d+  {role} ", out, re.M), f"no {role} in\n{out}"
    assert re.search(r"^sampled threads in all: \d+ us/intent; the machine, this sampler left out: -?\d+ us/intent$",
                     out, re.M), out


def test_ab_once_runs_the_builds_in_turn_and_prints_the_best_of_each() -> None:
    out = run_tool("benches/ab_once.py", "--intents", "200", "--rounds", "2", f"A={LOOP}", f"B={LOOP}")
    rounds = re.findall(r"^round (\d) ([AB]): +\d+ intents/s, first filed at \d+ ms, \d+ us CPU/intent$", out, re.M)
    assert rounds == [("0", "A"), ("0", "B"), ("1", "A"), ("1", "B")], out
    assert re.search(r"^A: best \d+ intents/s, CPU/intent \[\d+, \d+\]$", out, re.M), out
    assert re.search(r"^B: best \d+ intents/s", out, re.M), out


def test_worker_cpu_alternates_the_worker_alone_and_the_floor() -> None:
    out = run_tool("benches/worker_cpu.py", "--intents", "200", "--rounds", "1")
    sides = re.findall(r"^round 0 (worker alone|floor, whole path): \d+ us/intent \(user \d+, kernel \d+\)$", out, re.M)
    assert sides == ["worker alone", "floor, whole path"], out
