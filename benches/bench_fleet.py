"""Fleet mode scales out: throughput with N = 1, 2 and 4 workers (issue 11's scaling benchmark).

A real nats-server and ``run --executor fleet`` on loopback, N ``conductor-loop worker`` processes with one
slot each and a porch that sleeps 100 ms (a shell script, so an interpreter's start-up does not eat the two
cores the workers share; it writes a one-file package). Each measurement writes ``BATCH`` intents at
once into the watched handoff and times until the last is filed; rounds are interleaved (1, 2, 4, 1, 2, 4 …)
and the best of each N is kept. The figure for N is ``throughput(N) / N`` beside the baseline
``throughput(1)``, measured in the same run: the ratio is the scaling efficiency
``throughput(N) / (N x throughput(1))``, target 0.75.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fleetrig import filed_count, start_workers
from loopproc import LoopProcess, wait_for
from natsserver import NatsServer

NS = (1, 2, 4)
ROUNDS = 2
BATCH = 60


PORCH = """#!/bin/sh
while [ $# -gt 0 ]; do case "$1" in -intent) i=$2; shift;; -out) o=$2; shift;; esac; shift; done
sleep 0.1
d="$o/bench/$(basename "$i" .json)-scaling"
mkdir -p "$d" && cp "$i" "$d/intent.json"
"""


def shell_porch(directory: Path) -> Path:
    """The porch of this benchmark."""
    directory.mkdir(parents=True, exist_ok=True)
    porch = directory / "porch.sh"
    porch.write_text(PORCH)
    porch.chmod(0o755)
    return porch


class Rig:
    """One broker, one ingest; workers come and go per measurement."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.handoff, self.out = base / "handoff", base / "out"
        self.handoff.mkdir()
        self.out.mkdir()
        self.porch = shell_porch(base / "porch")
        self.nats = NatsServer(base / "nats").start()
        self.loop = LoopProcess(self.handoff, self.out, "--executor", "fleet", "--broker", self.nats.url,
                                "--debounce", "20ms", "--fleet-inflight", "32", "--max-file-size", "64KiB")
        self.loop.ready()
        self.seq = 0

    def write(self, n: int) -> None:
        for _ in range(n):
            self.seq += 1
            name = f"intent-{self.seq:06d}.json"
            doc = {"intent_type": "scaling", "target": f"t{self.seq}", "namespace": "bench", "replicas": 1}
            tmp = self.handoff / f".{name}.tmp"
            tmp.write_text(json.dumps(doc))
            os.rename(tmp, self.handoff / name)

    def throughput(self, n: int) -> float:
        """Intents per second with ``n`` one-slot workers (after a warm-up that reaches every worker)."""
        workers = start_workers(self.nats.url, self.porch, self.base, n, slots=1)
        try:
            self.write(2 * n)
            wait_for(lambda: filed_count(self.handoff) == self.seq, 60, 0.01, "warm-up filed")
            t0 = time.monotonic()
            self.write(BATCH)
            wait_for(lambda: filed_count(self.handoff) == self.seq, 120, 0.01, "batch filed")
            return BATCH / (time.monotonic() - t0)
        finally:
            for w in workers:
                w.kill()

    def close(self) -> None:
        self.loop.close()
        self.nats.kill()


@pytest.fixture(scope="module")
def scaling(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, float]]:
    rig = Rig(tmp_path_factory.mktemp("fleet"))
    best: dict[int, float] = dict.fromkeys(NS, 0.0)
    try:
        for _ in range(ROUNDS):
            for n in NS:
                best[n] = max(best[n], rig.throughput(n))
        print("\nfleet throughput (intents/s): " + ", ".join(f"N={n}: {best[n]:.1f}" for n in NS))
        yield best
    finally:
        rig.close()


@pytest.mark.parametrize("n", [2, 4])
def test_bench_fleet_scaling(benchmark: Any, record_figure: Any, scaling: dict[int, float], n: int) -> None:
    per_worker = benchmark.pedantic(lambda: scaling[n] / n, rounds=1, iterations=1)
    record_figure(benchmark, figure=f"fleet throughput per worker, N={n}", value=per_worker, unit="intents/s",
                  baseline_name="N=1", baseline_value=scaling[1], target_ratio=0.75)
