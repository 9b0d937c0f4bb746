"""``conductor-loop fleet status`` against a real nats-server and a real busy worker: streams, consumers,
pending and in-flight counts, the workers with their last heartbeat; an unreachable broker exits 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO
from fleetkit import FLEET, NAMES, Worker, ensure_fleet, fake_porch, intent_task, marks, publish
from loopproc import wait_for
from natsserver import NatsServer


def _status(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "python")}
    argv = [sys.executable, "-m", "conductor_loop", "fleet", "status", "--fleet", FLEET, *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30)


def test_status_shows_streams_consumers_counts_and_workers(nats_server: NatsServer, tmp_path: Path) -> None:
    before = _status("--broker", nats_server.url, "--json")
    assert before.returncode == 0 and "not created yet" in json.loads(before.stdout)["problem"]
    ensure_fleet(nats_server.url, lease=2.0, max_deliver=4)
    porch, log = fake_porch(tmp_path), tmp_path / "marks"
    env = {"CONDUCTOR_TEST_GATE": str(tmp_path / "never"), "CONDUCTOR_TEST_MARKS": str(log)}  # busy until killed
    worker = Worker(tmp_path, nats_server.url, "w-st", "--porch", str(porch), "--slots", "2", env=env)
    try:
        publish(nats_server.url, *(intent_task(f"intent-{i}.json") for i in range(3)))
        wait_for(lambda: len(marks(log)) == 2, 20, what="two runs")
        done = _status("--broker", nats_server.url, "--json")
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert [s["name"] for s in report["streams"]] == [NAMES.task_stream, NAMES.result_stream]
        assert report["streams"][0]["messages"] == 3
        tasks = report["consumers"][0]
        assert (tasks["name"], tasks["ack_wait_s"], tasks["max_deliver"]) == ("workers", 2.0, 4)
        assert report["tasks"] == {"pending": 1, "in_flight": 2}
        assert report["results"] == {"pending": 0, "in_flight": 0}
        (w,) = report["workers"]
        assert (w["worker"], w["slots"], w["pid"]) == ("w-st", 2, worker.proc.pid)
        assert w["heartbeat_at"].endswith("Z") and 0 <= w["age_s"] < 10
        text = _status("--broker", nats_server.url)
        assert text.returncode == 0
        assert "CL_t_TASKS" in text.stdout and "workers (1):" in text.stdout and "w-st" in text.stdout
        assert "in flight 2" in text.stdout
    finally:
        worker.kill()


def test_status_exits_1_when_the_broker_cannot_be_reached() -> None:
    done = _status("--broker", "nats://127.0.0.1:1")
    assert done.returncode == 1 and "cannot be reached" in done.stderr
    assert _status().returncode == 2  # no --broker anywhere
