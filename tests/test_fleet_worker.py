"""The worker host end to end: a real nats-server on 127.0.0.1, real worker processes, tasks published by hand
as the ingest would (tests/fleetkit.py). Short leases keep it quick."""

from __future__ import annotations

import signal
import time
import urllib.request
from pathlib import Path

from conductor_loop.fleet.archive import unpack_checked
from conductor_loop.fleet.protocol import make_task
from conductor_loop.fleet.runner import SHA_MISMATCH
from fleetkit import (
    CAP,
    Worker,
    counts,
    ensure_fleet,
    fake_porch,
    intent_task,
    marks,
    publish,
    publish_raw,
    take_results,
)
from loopproc import wait_for
from natsserver import NatsServer


def _scrape(url: str) -> dict[str, float]:
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("conductor_worker_"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_builtin_porch_result_unpacks_to_the_package_and_the_task_is_acked(
    nats_server: NatsServer,
    tmp_path: Path,
) -> None:
    ensure_fleet(nats_server.url)
    worker = Worker(tmp_path, nats_server.url, "w1", "--metrics-addr", "127.0.0.1:0")
    try:
        task = intent_task(target="odu", namespace="ns", replicas=4)
        publish(nats_server.url, task, task)  # the second is a broker duplicate (same Nats-Msg-Id)
        (result,) = take_results(nats_server.url, 1)
        assert result.ok and result.task_id == task.task_id and result.delivery == 1 and result.worker == "w1"
        assert result.message == "package written to ns/odu-scaling"
        assert result.archive_info is not None and result.archive_info.files == 2
        assert unpack_checked(result.archive, str(tmp_path / "pkg"), CAP) == 2
        assert "replicas: 4" in (tmp_path / "pkg" / "ns" / "odu-scaling" / "scaling-patch.yaml").read_text()
        worker.wait_event("fleet.worker.task")
        wait_for(lambda: counts(nats_server.url)["tasks"] == 0, 10, what="task acked")
        assert counts(nats_server.url)["redelivered"] == 0
        m = _scrape(worker.metrics_url())
        assert m['conductor_worker_tasks_total{outcome="success"}'] == 1
        assert m["conductor_worker_busy_slots"] == 0 and m["conductor_worker_slots"] == 1
        assert m["conductor_worker_leases_lost_total"] == 0
        assert m["conductor_worker_execution_seconds_count"] == 1
        assert m["conductor_worker_broker_up"] == 1
        assert worker.stop() == 0
    finally:
        worker.kill()


def test_external_porch_gets_the_intent_argv_and_environment(
    nats_server: NatsServer,
    tmp_path: Path,
) -> None:
    ensure_fleet(nats_server.url)
    porch = fake_porch(tmp_path)
    worker = Worker(tmp_path, nats_server.url, "w-ext", "--porch", str(porch))
    try:
        good = intent_task("intent-s.json", attempt=2, mode="structured")
        bad = intent_task("intent-bad.json", bad_sha=True)
        publish(nats_server.url, good, bad)
        publish_raw(nats_server.url, b"not a task")
        results = {r.task_id: r for r in take_results(nats_server.url, 2)}
        ok, refused = results[good.task_id], results[bad.task_id]
        assert ok.ok and ok.attempt == 2 and ok.exit_code == 0
        unpack_checked(ok.archive, str(tmp_path / "out"), CAP)
        pkg = tmp_path / "out" / "pkg"
        assert (pkg / "intent.json").read_bytes() == good.data
        argv = (pkg / "argv").read_text().split()
        assert argv[0] == "-intent" and argv[1].endswith("/intent-s.json") and argv[4] == "-structured"
        env = (pkg / "env").read_text()
        assert f"CONDUCTOR_INTENT_SHA256={good.sha256}" in env and "CONDUCTOR_ATTEMPT=2" in env
        assert "CONDUCTOR_WORKER=w-ext" in env
        assert not refused.ok and not refused.retryable and refused.message == SHA_MISMATCH
        assert refused.archive == b"" and refused.archive_info is None
        wait_for(lambda: counts(nats_server.url)["tasks"] == 0, 10, what="both tasks acked, the junk terminated")
        assert "not a task" not in worker.log.read_text()  # message bodies are never logged
        assert worker.events("fleet.worker.bad_task")[0]["reason"].startswith("message has no metadata line")
    finally:
        worker.kill()


def test_porch_slower_than_the_lease_keeps_it_with_heartbeats(
    nats_server: NatsServer,
    tmp_path: Path,
) -> None:
    ensure_fleet(nats_server.url, lease=2.0)
    porch = fake_porch(tmp_path)
    worker = Worker(tmp_path, nats_server.url, "w-slow", "--porch", str(porch), env={"CONDUCTOR_TEST_SLEEP": "4.5"})
    try:
        publish(nats_server.url, intent_task())
        (result,) = take_results(nats_server.url, 1)
        assert result.ok and result.delivery == 1 and result.duration_ms >= 4500
        wait_for(lambda: counts(nats_server.url)["tasks"] == 0, 10, what="task acked")
        c = counts(nats_server.url)
        assert c["redelivered"] == 0 and c["delivered"] == 1 and c["results"] == 0
        assert worker.events("fleet.worker.lease_lost") == []
    finally:
        worker.kill()


def test_sigterm_finishes_the_run_in_flight_then_exits_0(
    nats_server: NatsServer,
    tmp_path: Path,
) -> None:
    ensure_fleet(nats_server.url)
    porch, log = fake_porch(tmp_path), tmp_path / "marks"
    env = {"CONDUCTOR_TEST_SLEEP": "1.5", "CONDUCTOR_TEST_MARKS": str(log)}
    worker = Worker(tmp_path, nats_server.url, "w-term", "--porch", str(porch), env=env)
    try:
        publish(nats_server.url, intent_task())
        wait_for(lambda: marks(log), 20, what="porch started")
        worker.signal(signal.SIGTERM)
        assert worker.proc.wait(timeout=20) == 0
        assert [m[0] for m in marks(log)] == ["start", "end"]
        (result,) = take_results(nats_server.url, 1, timeout=5)
        assert result.ok
        assert counts(nats_server.url)["tasks"] == 0
        assert worker.events("fleet.worker.stop")[0]["code"] == 0
    finally:
        worker.kill()


def test_a_worker_stopped_past_its_lease_fences_itself_and_another_worker_gets_the_task(
    nats_server: NatsServer,
    tmp_path: Path,
) -> None:
    ensure_fleet(nats_server.url, lease=1.0)
    porch, log = fake_porch(tmp_path), tmp_path / "marks"
    env = {"CONDUCTOR_TEST_MARKS": str(log)}
    gated = {**env, "CONDUCTOR_TEST_GATE": str(tmp_path / "never")}  # w-a's porch runs until it is killed
    a = Worker(tmp_path, nats_server.url, "w-a", "--porch", str(porch), "--metrics-addr", "127.0.0.1:0", env=gated)
    b = None
    try:
        task = intent_task()
        publish(nats_server.url, task)
        first = wait_for(lambda: marks(log), 20, what="porch started on w-a")[0]
        a.signal(signal.SIGSTOP)
        b = Worker(tmp_path, nats_server.url, "w-b", "--porch", str(porch), env=env)
        wait_for(lambda: len(marks(log)) >= 2, 20, what="the task redelivered to w-b")
        time.sleep(0.3)
        a.signal(signal.SIGCONT)
        lost = a.wait_event("fleet.worker.lease_lost")[0]
        assert lost["delivery"] == 1 and lost["outcome"] == "lost"
        results = take_results(nats_server.url, 1)
        assert [(r.worker, r.delivery) for r in results] == [("w-b", 2)]
        wait_for(lambda: counts(nats_server.url)["tasks"] == 0, 10, what="task acked by w-b")
        time.sleep(0.5)
        assert take_results(nats_server.url, 1, timeout=0.5) == []  # w-a published nothing
        ends = [m for m in marks(log) if m[0] == "end"]
        assert first[2] not in {m[2] for m in ends}  # w-a's porch was killed before it finished
        m = _scrape(a.metrics_url())
        assert m["conductor_worker_leases_lost_total"] == 1 and m['conductor_worker_tasks_total{outcome="lost"}'] == 1
    finally:
        a.kill()
        if b is not None:
            b.kill()


def test_worker_reconnects_after_a_server_restart_mid_run_and_goes_on_pulling(
    nats_server: NatsServer,
    tmp_path: Path,
) -> None:
    ensure_fleet(nats_server.url, lease=3.0)
    porch, log = fake_porch(tmp_path), tmp_path / "marks"
    env = {"CONDUCTOR_TEST_SLEEP": "1", "CONDUCTOR_TEST_MARKS": str(log)}
    worker = Worker(tmp_path, nats_server.url, "w-r", "--porch", str(porch), env=env)
    try:
        one, two = intent_task("intent-1.json"), intent_task("intent-2.json")
        publish(nats_server.url, one)
        wait_for(lambda: marks(log), 20, what="porch started")
        nats_server.restart()
        worker.wait_event("fleet.worker.broker_up", 2)
        (r1,) = take_results(nats_server.url, 1)
        publish(nats_server.url, two)
        (r2,) = take_results(nats_server.url, 1)
        assert (r1.task_id, r1.ok, r2.task_id, r2.ok) == (one.task_id, True, two.task_id, True)
        wait_for(lambda: counts(nats_server.url)["tasks"] == 0, 10, what="both acked")
    finally:
        worker.kill()


def test_slots_run_at_once_and_a_busy_worker_prefetches_nothing(
    nats_server: NatsServer,
    tmp_path: Path,
) -> None:
    ensure_fleet(nats_server.url, lease=2.0)
    porch, log, gate = fake_porch(tmp_path), tmp_path / "marks", tmp_path / "gate"
    env = {"CONDUCTOR_TEST_MARKS": str(log)}
    gated = {**env, "CONDUCTOR_TEST_GATE": str(gate)}  # w-2's runs last until the test opens the gate
    a = Worker(tmp_path, nats_server.url, "w-2", "--porch", str(porch), "--slots", "2", env=gated)
    b = None
    try:
        tasks = [intent_task(f"intent-{i}.json") for i in range(3)]
        publish(nats_server.url, tasks[0], tasks[1])
        wait_for(lambda: len(marks(log)) == 2, 20, what="two runs at once on w-2")
        publish(nats_server.url, tasks[2])  # w-2 is full: it must not take it
        b = Worker(tmp_path, nats_server.url, "w-1", "--porch", str(porch), env=env)
        (third,) = take_results(nats_server.url, 1)
        assert (third.task_id, third.worker) == (tasks[2].task_id, "w-1")
        gate.touch()
        by_task = {r.task_id: r.worker for r in take_results(nats_server.url, 2)}
        assert by_task == {tasks[0].task_id: "w-2", tasks[1].task_id: "w-2"}
        assert [m[0] for m in marks(log)[:2]] == ["start", "start"]
    finally:
        a.kill()
        if b is not None:
            b.kill()


def test_a_result_the_stream_refuses_becomes_a_small_failure_result(
    nats_server: NatsServer,
    tmp_path: Path,
) -> None:
    ensure_fleet(nats_server.url)  # the results stream takes CAP + overhead
    porch = fake_porch(tmp_path)
    worker = Worker(tmp_path, nats_server.url, "w-big", "--porch", str(porch), env={"CONDUCTOR_TEST_BIG": str(2 * CAP)})
    try:
        t = intent_task()
        big = make_task(
            "/handoff/intent-a.json",
            t.data,
            sha256=t.sha256,
            attempt=1,
            mode="direct",
            timeout=30,
            max_result_bytes=8 * CAP,
        )  # the task allows more than the stream does
        publish(nats_server.url, big)
        (result,) = take_results(nats_server.url, 1)
        assert not result.ok and not result.retryable and result.archive == b""
        assert result.message.startswith("the result could not be stored by the broker")
        assert worker.events("fleet.worker.publish_failed")
        wait_for(lambda: counts(nats_server.url)["tasks"] == 0, 10, what="task acked")
    finally:
        worker.kill()
