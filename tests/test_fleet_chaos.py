"""Fleet mode under chaos (issue 11): 200 intents, a porch sleeping 300 ms, 4 workers x 2 slots, a 2 s lease.

During the run one worker is SIGKILLed, another SIGSTOPped for 4 s, the ingest host SIGKILLed and started
again, and nats-server restarted. At the end every intent is filed once with one status, the task stream
is empty, each package holds its target's latest intent, and porch ran an intent twice only when a run of
it was in flight on a disturbed worker or while the broker was away (counted from porch's own log).
Also: every intent is filed with N workers (the scaling check, functional only; speed is benches/).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from fleethand import HandWorker
from fleetrig import Worker, filed_count, porch_runs, scrape, sleepy_porch, start_workers, write_waves
from loopproc import LoopProcess, wait_for
from natsserver import NatsServer

LEASE = 2.0



def ingest(nats: NatsServer, handoff: Path, out: Path) -> LoopProcess:
    loop = LoopProcess(handoff, out, "--executor", "fleet", "--broker", nats.url, "--debounce", "50ms",
                       "--fleet-lease", f"{LEASE}s", "--fleet-inflight", "16", "--max-file-size", "64KiB")
    loop.ready()
    return loop


def until_filed(handoff: Path, n: int, timeout: float = 60.0) -> None:
    wait_for(lambda: filed_count(handoff) >= n, timeout, interval=0.05, what=f"{n} intents filed")


def check_filed_once(handoff: Path, names: list[str]) -> None:
    processed = sorted(e.name for e in os.scandir(handoff / "processed") if e.name.endswith(".json"))
    failed = sorted(e.name for e in os.scandir(handoff / "failed") if e.name.endswith(".json"))
    assert sorted(processed + failed) == sorted(names)  # each exactly once (no conflict copies)
    assert failed == [], [json.loads((handoff / "status" / f"{n}.status").read_text())["message"] for n in failed]
    statuses = sorted(e.name for e in os.scandir(handoff / "status") if e.name.endswith(".status"))
    assert statuses == sorted(f"{n}.status" for n in names)
    assert not [n for n in names if (handoff / n).exists()]


@pytest.mark.slow
def test_chaos_every_intent_filed_once_packages_latest_double_runs_only_when_disturbed(
        nats: NatsServer, tmp_path: Path) -> None:
    handoff, out = tmp_path / "handoff", tmp_path / "out"
    handoff.mkdir()
    out.mkdir()
    porch, runs_log = sleepy_porch(tmp_path / "porch", 0.3)
    workers = start_workers(nats.url, porch, tmp_path, 4, slots=2)
    disturbed: set[str] = set()
    broker_away: list[tuple[float, float]] = []
    loop = ingest(nats, handoff, out)
    try:
        latest = write_waves(handoff, targets=50, waves=4)
        names = [e.name for e in os.scandir(handoff) if e.name.endswith(".json")]
        assert len(names) == 200
        until_filed(handoff, 20)
        workers[0].signal(signal.SIGKILL)
        disturbed.add("w0")
        until_filed(handoff, 50)
        workers[1].signal(signal.SIGSTOP)
        disturbed.add("w1")
        time.sleep(4.0)
        workers[1].signal(signal.SIGCONT)
        until_filed(handoff, 90)
        loop.signal(signal.SIGKILL)
        loop.proc.wait(10)
        loop.close()
        loop = ingest(nats, handoff, out)
        until_filed(handoff, 130)
        t0 = time.time()
        nats.restart()
        broker_away.append((t0, time.time() + LEASE))
        until_filed(handoff, 200, timeout=90.0)
        check_filed_once(handoff, names)
        hand = HandWorker(nats.url)
        try:
            wait_for(lambda: hand.messages(hand.names.task_stream) == 0, 10, what="task stream empty")
        finally:
            hand.close()
        for target, replicas in latest.items():
            assert (out / "default" / f"{target}-scaling" / "Kptfile").read_text() == f"replicas: {replicas}\n"
        m = scrape(loop.get)  # the restarted ingest's figures, by a real scrape
        assert m["conductor_fleet_inflight"] == 0 and m["conductor_fleet_broker_up"] == 1
        accepted = sum(v for k, v in m.items() if k.startswith("conductor_fleet_results_total{")
                       and "malformed" not in k)
        assert m["conductor_fleet_roundtrip_seconds_count"] == accepted > 0
        assert m["conductor_fleet_results_total{outcome=refused}"] == 0
        runs = porch_runs(runs_log)
        twice = [n for n, c in Counter(r["intent"] for r in runs).items() if c > 1]
        for name in twice:
            mine = [r for r in runs if r["intent"] == name]
            explained = any(r["worker"] in disturbed or any(a <= r["end"] and r["start"] <= b for a, b in broker_away)
                            for r in mine)
            assert explained, (name, mine)
        assert {r["intent"] for r in runs} == set(names)
        print(f"\nchaos: {len(runs)} porch runs for 200 intents; {len(twice)} intents ran more than once; "
              f"after the ingest's restart: {m}")
    finally:
        loop.close()
        for w in workers:
            w.signal(signal.SIGCONT)
            w.kill()


@pytest.mark.parametrize("n", [1, 3])
def test_every_intent_is_filed_with_n_workers(nats: NatsServer, tmp_path: Path, n: int) -> None:
    handoff, out = tmp_path / "handoff", tmp_path / "out"
    handoff.mkdir()
    out.mkdir()
    porch, runs_log = sleepy_porch(tmp_path / "porch", 0.1)
    workers: list[Worker] = start_workers(nats.url, porch, tmp_path, n)
    loop = ingest(nats, handoff, out)
    try:
        write_waves(handoff, targets=10, waves=2, gap=0.0)
        names = [e.name for e in os.scandir(handoff) if e.name.endswith(".json")]
        until_filed(handoff, len(names))
        check_filed_once(handoff, names)
        assert len({r["worker"] for r in porch_runs(runs_log)}) <= n
        assert loop.stop() == 0
    finally:
        loop.close()
        for w in workers:
            w.kill()
