"""`run --executor fleet` against a real nats-server, with a worker by hand (tests/fleethand.py).

The hand worker lets each test control the result exactly: hostile archives, late and duplicate
results, a file changed since its claim, tasks never acked (max-deliver); the broker going away checks
/readyz; the metrics are read by a real scrape.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fleethand import HandWorker, tar_gz
from loopproc import LoopProcess, wait_for
from natsserver import NatsServer

from conductor_loop.fleet.archive import pack

SCALING = {"intent_type": "scaling", "target": "web", "namespace": "default", "replicas": 3}


def write_intent(handoff: Path, name: str, **fields: object) -> Path:
    p = handoff / name
    tmp = handoff / f".{name}.tmp"
    tmp.write_text(json.dumps({**SCALING, **fields}))
    os.rename(tmp, p)
    return p


def status(handoff: Path, name: str) -> dict[str, object]:
    return dict(json.loads((handoff / "status" / f"{name}.status").read_text()))


def filed(handoff: Path, name: str) -> str | None:
    for d in ("processed", "failed"):
        if (handoff / d / name).exists():
            return d
    return None


def counter(loop: LoopProcess, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    _, text = loop.get("/metrics")
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    raise AssertionError(f"{name}{labels} not scraped")


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats").start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    handoff, out = tmp_path / "handoff", tmp_path / "out"
    handoff.mkdir()
    out.mkdir()
    return handoff, out


def fleet_loop(nats: NatsServer, handoff: Path, out: Path, *extra: str) -> LoopProcess:
    loop = LoopProcess(handoff, out, "--executor", "fleet", "--broker", nats.url, "--debounce", "50ms",
                       "--fleet-lease", "2s", *extra)
    loop.ready()
    return loop


def package_archive(tmp_path: Path, replicas: int) -> tuple[bytes, int]:
    pkg = tmp_path / f"pkg-{replicas}-{time.monotonic_ns()}"
    (pkg / "default" / "web-scaling").mkdir(parents=True)
    (pkg / "default" / "web-scaling" / "Kptfile").write_text(f"replicas: {replicas}\n")
    packed = pack(str(pkg), 1 << 20)
    return packed.data, packed.files


def test_a_result_is_filed_with_its_package_and_a_late_duplicate_is_dropped(nats: NatsServer, dirs: tuple[Path, Path],
                                                                            tmp_path: Path) -> None:
    handoff, out = dirs
    with fleet_loop(nats, handoff, out) as loop:
        hand = HandWorker(nats.url)
        try:
            write_intent(handoff, "intent-a.json", replicas=4)
            task, msg = hand.take()
            assert task.name == "intent-a.json"
            data, files = package_archive(tmp_path, 4)
            body = hand.answer(task, msg, archive=data, files=files)
            wait_for(lambda: filed(handoff, "intent-a.json"), what="intent-a filed")
            assert filed(handoff, "intent-a.json") == "processed"
            doc = status(handoff, "intent-a.json")
            assert doc["status"] == "success" and doc["worker"] == "hand:1" and doc["fleet_task"] == task.task_id
            assert (out / "default" / "web-scaling" / "Kptfile").read_text() == "replicas: 4\n"
            hand.publish_result(body, "r.again")  # the same result once more: late, dropped, counted
            wait_for(lambda: counter(loop, "conductor_fleet_duplicate_results_total") == 1, what="duplicate counted")
            assert counter(loop, "conductor_fleet_results_total", outcome="ok") == 1
            assert counter(loop, "conductor_fleet_broker_up") == 1
            assert counter(loop, "conductor_fleet_inflight") == 0
            wait_for(lambda: hand.messages(hand.names.result_stream) == 0, what="results acked")
            assert hand.messages(hand.names.task_stream) == 0
        finally:
            hand.close()
        assert loop.stop() == 0
