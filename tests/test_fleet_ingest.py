"""`run --executor fleet` against a real nats-server, with a worker by hand (tests/fleethand.py).

The hand worker lets each test control the result exactly: hostile archives, late and duplicate
results, a file changed since its claim, tasks never acked (max-deliver); the broker going away checks
/readyz; the metrics are read by a real scrape.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conductor_loop.fleet.archive import pack
from conductor_loop.fleet.flights import MAX_LOSSES
from conductor_loop.fleet.protocol import task_id
from fleethand import HandWorker, tar_gz
from loopproc import LoopProcess, wait_for
from natsserver import NatsServer

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


def documented_fleet_metrics() -> set[str]:
    root = Path(__file__).resolve().parent.parent
    text = "".join((root / d).read_text() for d in ("README.md", "docs/operations.md", "docs/alerts.yml"))
    return set(re.findall(r"\bconductor_fleet_[a-z_]*[a-z]", text))


def served(loop: LoopProcess) -> set[str]:
    from prometheus_client.parser import text_string_to_metric_families

    names: set[str] = set()
    for fam in text_string_to_metric_families(loop.get("/metrics")[1]):
        names |= {fam.name, *(s.name for s in fam.samples)}
    return names



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
            assert documented_fleet_metrics() - served(loop) == set()
            assert counter(loop, "conductor_fleet_broker_up") == 1
            assert counter(loop, "conductor_fleet_inflight") == 0
            wait_for(lambda: hand.messages(hand.names.result_stream) == 0, what="results acked")
            assert hand.messages(hand.names.task_stream) == 0
        finally:
            hand.close()
        assert loop.stop() == 0


HOSTILE = {
    "intent-dotdot.json": ([("default/../../evil", "file", b"x")], "'..'"),
    "intent-abs.json": ([("/tmp/evil-abs", "file", b"x")], "absolute"),
    "intent-link.json": ([("default", "dir", b""), ("default/web-scaling", "symlink", b"/etc")], "link"),
}


def test_hostile_results_end_in_failed_with_a_reason_and_nothing_is_written_outside_out(
        nats: NatsServer, dirs: tuple[Path, Path], tmp_path: Path) -> None:
    handoff, out = dirs
    # over the result cap (the broker's max_payload less the result's overhead, 16 MiB here) once inflated
    bomb = tar_gz([("default/web-scaling/big", "file", b"\0" * (20 << 20))])
    cases = {**HOSTILE, "intent-big.json": ([], "cap")}
    with fleet_loop(nats, handoff, out, "--max-file-size", "64KiB") as loop:
        hand = HandWorker(nats.url)
        try:
            for name in cases:
                write_intent(handoff, name)
            for _ in cases:
                task, msg = hand.take()
                members, _why = cases[task.name]
                data = bomb if task.name == "intent-big.json" else tar_gz(members)
                hand.answer(task, msg, archive=data, files=1)
            wait_for(lambda: all(filed(handoff, n) for n in cases), what="all filed")
            for name, (_m, why) in cases.items():
                assert filed(handoff, name) == "failed", name
                doc = status(handoff, name)
                assert str(doc["message"]).startswith("result archive refused"), doc
                assert why in str(doc["message"]), (name, doc["message"])
                assert (handoff / "failed" / f"{name}.error.log").exists()
            assert counter(loop, "conductor_fleet_results_total", outcome="refused") == len(cases)
        finally:
            hand.close()
        assert loop.stop() == 0
    assert not (tmp_path / "evil").exists() and not os.path.lexists("/tmp/evil-abs")
    left = [str(p.relative_to(out)) for p in out.rglob("*")]
    assert left == [], left  # nothing installed, no temp dir left behind


def test_a_file_changed_since_its_claim_is_not_accepted_and_runs_again(nats: NatsServer, dirs: tuple[Path, Path],
                                                                     tmp_path: Path) -> None:
    handoff, out = dirs
    with fleet_loop(nats, handoff, out) as loop:
        hand = HandWorker(nats.url)
        try:
            p = write_intent(handoff, "intent-c.json", replicas=1)
            first, msg = hand.take()
            write_intent(handoff, "intent-c.json", replicas=2)  # new content while porch "runs"
            hand.answer(first, msg, archive=package_archive(tmp_path, 1)[0], files=1)
            again, msg2 = hand.take()
            assert again.task_id != first.task_id and again.data == p.read_bytes()
            hand.answer(again, msg2, archive=package_archive(tmp_path, 2)[0], files=1)
            wait_for(lambda: filed(handoff, "intent-c.json"), what="intent-c filed")
            assert status(handoff, "intent-c.json")["sha256"] == again.sha256
            assert (out / "default" / "web-scaling" / "Kptfile").read_text() == "replicas: 2\n"
            assert counter(loop, "conductor_fleet_results_total", outcome="stale") == 1
        finally:
            hand.close()
        assert loop.stop() == 0


def test_max_deliver_files_the_intent_in_failed_and_empties_the_task_stream(nats: NatsServer,
                                                                            dirs: tuple[Path, Path]) -> None:
    handoff, out = dirs
    with fleet_loop(nats, handoff, out, "--fleet-lease", "1s", "--fleet-max-deliver", "2") as loop:
        hand = HandWorker(nats.url)
        try:
            write_intent(handoff, "intent-m.json")
            for _ in range(2):  # taken, never acked nor answered: redelivered after the lease, twice
                _task, _msg = hand.take()
            with pytest.raises(Exception):
                hand.take(timeout=2.5)
            wait_for(lambda: filed(handoff, "intent-m.json"), what="intent-m filed")
            assert filed(handoff, "intent-m.json") == "failed"
            assert "after 2 deliveries" in str(status(handoff, "intent-m.json")["message"])
            wait_for(lambda: hand.messages(hand.names.task_stream) == 0, what="task stream emptied")
            assert counter(loop, "conductor_fleet_max_deliveries_total") == 1
        finally:
            hand.close()
        assert loop.stop() == 0


def test_readyz_fails_while_the_broker_is_away_longer_than_the_lease_then_recovers(
        nats: NatsServer, dirs: tuple[Path, Path], tmp_path: Path) -> None:
    handoff, out = dirs
    with fleet_loop(nats, handoff, out) as loop:
        nats.stop()
        _code, body = wait_for(lambda: (r := loop.get("/readyz"))[0] == 503 and r, what="/readyz 503")
        assert "broker" in body
        assert counter(loop, "conductor_fleet_broker_up") == 0
        write_intent(handoff, "intent-w.json")  # watching goes on; the file waits
        time.sleep(0.5)
        assert filed(handoff, "intent-w.json") is None
        nats.start()
        loop.ready()
        hand = HandWorker(nats.url)
        try:
            task, msg = hand.take()
            hand.answer(task, msg, archive=package_archive(tmp_path, 3)[0], files=1)
            wait_for(lambda: filed(handoff, "intent-w.json"), what="filed after the broker came back")
        finally:
            hand.close()
        assert loop.stop() == 0


def test_after_a_kill_the_restarted_ingest_republishes_the_same_task_and_accepts_its_result(
        nats: NatsServer, dirs: tuple[Path, Path], tmp_path: Path) -> None:
    handoff, out = dirs
    hand = HandWorker(nats.url)
    try:
        with fleet_loop(nats, handoff, out) as first:
            write_intent(handoff, "intent-k.json")
            task, msg = hand.take()
            write_intent(handoff, "intent-k2.json")
            task2, msg2 = hand.take()
            first.signal(signal.SIGKILL)
            first.proc.wait(10)
        hand.answer(task2, msg2, archive=package_archive(tmp_path, 2)[0], files=1)  # waits for the next run
        with fleet_loop(nats, handoff, out) as second:
            second.wait_event("fleet.adopted", count=1)
            hand.answer(task, msg, archive=package_archive(tmp_path, 3)[0], files=1)
            wait_for(lambda: filed(handoff, "intent-k.json") and filed(handoff, "intent-k2.json"),
                     what="both filed by the second run")
            assert status(handoff, "intent-k.json")["fleet_task"] == task.task_id
            assert status(handoff, "intent-k2.json")["fleet_task"] == task2.task_id
            assert counter(second, "conductor_fleet_duplicate_results_total") == 0
            assert hand.messages(hand.names.task_stream) == 0  # the republishes were broker duplicates
            assert second.stop() == 0
    finally:
        hand.close()


def left_in_flight(handoff: Path, name: str) -> str:
    """``name`` written and saved as in flight, as a run killed between saving a task and publishing it leaves
    it (``.conductor/fleet-inflight.json``, the ingest's own format); returns the task id."""
    sha = hashlib.sha256(write_intent(handoff, name).read_bytes()).hexdigest()
    tid = task_id(str(handoff / name), sha, 1)
    state = handoff / ".conductor"
    state.mkdir(mode=0o700, exist_ok=True)
    (state / "fleet-inflight.json").write_text(json.dumps({"v": 1, "tasks": {tid: [name, sha, 1]}}))
    return tid


@pytest.mark.parametrize("broker_at_start", [True, False], ids=["broker-up", "broker-down-at-start"])
def test_a_task_saved_but_never_published_goes_out_after_a_restart_with_the_brokers_result_cap(
        nats: NatsServer, dirs: tuple[Path, Path], tmp_path: Path, broker_at_start: bool) -> None:
    handoff, out = dirs
    tid = left_in_flight(handoff, "intent-s.json")
    if not broker_at_start:
        nats.stop()
    loop = LoopProcess(handoff, out, "--executor", "fleet", "--broker", nats.url, "--debounce", "50ms",
                       "--fleet-lease", "2s")
    with loop:
        loop.wait_event("fleet.adopted", count=1)
        if not broker_at_start:
            loop.wait_event("fleet.broker_unreachable")
            nats.start()
        loop.ready()
        hand = HandWorker(nats.url)
        try:
            task, msg = hand.take()  # a task without a result cap is no task: decode_task refuses it
            assert (task.task_id, task.max_result_bytes > 0) == (tid, True)
            hand.answer(task, msg, archive=package_archive(tmp_path, 3)[0], files=1)
            wait_for(lambda: filed(handoff, "intent-s.json"), what="the adopted intent filed")
        finally:
            hand.close()
        assert status(handoff, "intent-s.json")["fleet_task"] == tid
        assert loop.stop() == 0


def test_sigterm_waits_for_results_in_flight_then_leaves_the_rest_claimed_for_the_next_start(
        nats: NatsServer, dirs: tuple[Path, Path], tmp_path: Path) -> None:
    handoff, out = dirs
    hand = HandWorker(nats.url)
    try:
        with fleet_loop(nats, handoff, out, "--timeout", "1s") as loop:
            write_intent(handoff, "intent-t.json")
            task, msg = hand.take()
            loop.signal(signal.SIGTERM)
            assert loop.proc.wait(20) == 0  # waited --timeout + a margin for the result, then left
        assert filed(handoff, "intent-t.json") is None
        saved = json.loads((handoff / ".conductor" / "fleet-inflight.json").read_text())
        assert list(saved["tasks"]) == [task.task_id]
        hand.answer(task, msg, archive=package_archive(tmp_path, 3)[0], files=1)
        with fleet_loop(nats, handoff, out) as again:
            wait_for(lambda: filed(handoff, "intent-t.json"), what="filed by the next start")
            assert again.stop() == 0
    finally:
        hand.close()


def test_a_broker_unreachable_at_start_the_loop_starts_watches_and_waits(nats: NatsServer, dirs: tuple[Path, Path],
                                                                      tmp_path: Path) -> None:
    handoff, out = dirs
    nats.stop()  # its port is kept: started again below, the loop finds it there
    loop = LoopProcess(handoff, out, "--executor", "fleet", "--broker", nats.url, "--debounce", "50ms",
                       "--fleet-lease", "1s")
    with loop:
        loop.wait_event("fleet.broker_unreachable")
        wait_for(lambda: loop.get("/readyz")[0] == 503, what="/readyz 503 without a broker")
        write_intent(handoff, "intent-u.json")
        nats.start()
        loop.ready()
        hand = HandWorker(nats.url)
        try:
            task, msg = hand.take()
            hand.answer(task, msg, archive=package_archive(tmp_path, 3)[0], files=1)
            wait_for(lambda: filed(handoff, "intent-u.json"), what="filed once the broker answered")
        finally:
            hand.close()
        assert loop.stop() == 0


def test_a_max_payload_too_small_for_max_file_size_is_one_line_and_exit_2(tmp_path: Path,
                                                                        dirs: tuple[Path, Path]) -> None:
    handoff, out = dirs
    server = NatsServer(tmp_path / "small", max_payload=1024 * 1024).start()
    try:
        proc = subprocess.run([sys.executable, "-m", "conductor_loop", "run", "--handoff", str(handoff), "--out",
                               str(out), "--executor", "fleet", "--broker", server.url],
                              capture_output=True, text=True, timeout=60)
    finally:
        server.kill()
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "max_payload" in lines[0] and "--max-file-size" in lines[0], proc.stderr


def test_a_task_the_broker_lost_is_published_again_after_the_ingest_side_deadline(
        nats: NatsServer, dirs: tuple[Path, Path], tmp_path: Path) -> None:
    handoff, out = dirs
    with fleet_loop(nats, handoff, out, "--fleet-lease", "1s", "--fleet-max-deliver", "1", "--timeout", "1s") as loop:
        hand = HandWorker(nats.url)
        try:
            write_intent(handoff, "intent-l.json")
            wait_for(lambda: hand.messages(hand.names.task_stream) == 1, what="task published")
            hand.run(hand.js.purge_stream(hand.names.task_stream))  # the broker loses it
            task, msg = hand.take()  # published again after lease x (max-deliver + 1) + timeout = 3 s
            hand.answer(task, msg, archive=package_archive(tmp_path, 3)[0], files=1)
            wait_for(lambda: filed(handoff, "intent-l.json"), what="filed after the republish")
            loop.wait_event("fleet.republished")
            assert counter(loop, "conductor_fleet_republishes_total") == 1
        finally:
            hand.close()
        assert loop.stop() == 0


def test_a_task_every_worker_refuses_is_not_republished_for_ever_its_intent_fails_with_a_reason(
        nats: NatsServer, dirs: tuple[Path, Path]) -> None:
    handoff, out = dirs
    with fleet_loop(nats, handoff, out, "--fleet-lease", "1s", "--fleet-max-deliver", "1", "--timeout", "1s") as loop:
        hand = HandWorker(nats.url)
        try:
            write_intent(handoff, "intent-r.json")
            for _ in range(MAX_LOSSES + 1):  # as a worker does with a task it cannot read: terminated
                _task, msg = hand.take()
                hand.run(msg.term())
            wait_for(lambda: filed(handoff, "intent-r.json"), what="filed once the broker lost it too often")
        finally:
            hand.close()
        assert filed(handoff, "intent-r.json") == "failed"
        assert f"lost its task {MAX_LOSSES + 1} times" in str(status(handoff, "intent-r.json")["message"])
        assert len([e for e in loop.events() if e["event"] == "fleet.republished"]) == MAX_LOSSES
        assert loop.stop() == 0


def _stream_limit(hand: HandWorker, max_msgs: int) -> None:
    """Set the task stream's message limit (``discard=new``: a publish past it is refused), as an operator would."""
    info = hand.run(hand.js.stream_info(hand.names.task_stream))
    hand.run(hand.js.update_stream(info.config.evolve(max_msgs=max_msgs)))


def test_no_more_tasks_go_out_once_those_held_reach_fleet_inflight_bytes(nats: NatsServer,
                                                                        dirs: tuple[Path, Path]) -> None:
    handoff, out = dirs
    n = 12
    for i in range(n):  # a backlog present at start, larger than --fleet-inflight: by count 8 would go out at once
        write_intent(handoff, f"intent-{i:02d}.json", target=f"web{i}")
    with fleet_loop(nats, handoff, out, "--fleet-inflight", "8", "--fleet-inflight-bytes", "1") as loop:
        hand = HandWorker(nats.url)
        try:
            for k in range(n):  # one task at a time: the first crosses the 1-byte cap, the others wait as files
                wait_for(lambda: hand.messages(hand.names.task_stream) == 1, what=f"task {k} published")
                if k < 2:
                    time.sleep(0.5)  # several turns of the loop: still one out
                assert hand.messages(hand.names.task_stream) == 1
                task, msg = hand.take()
                hand.answer(task, msg)
                wait_for(lambda: filed(handoff, task.name) == "processed", what=f"{task.name} filed")
            assert all(status(handoff, f"intent-{i:02d}.json")["status"] == "success" for i in range(n))
            assert counter(loop, "conductor_fleet_inflight") == 0
        finally:
            hand.close()


def test_at_most_inflight_tasks_go_out_and_a_full_stream_backs_off_then_publishes(
        nats: NatsServer, dirs: tuple[Path, Path], tmp_path: Path) -> None:
    handoff, out = dirs
    with fleet_loop(nats, handoff, out, "--fleet-inflight", "2") as loop:
        hand = HandWorker(nats.url)
        try:
            wait_for(lambda: hand.messages(hand.names.task_stream) == 0, what="task stream made by the ingest")
            _stream_limit(hand, 1)  # the stream holds one task: the second publish is refused
            for i in range(4):
                write_intent(handoff, f"intent-{i}.json", target=f"web{i}")
            loop.wait_event("fleet.publish_failed")  # a refused publish is logged (once per task)
            time.sleep(1.0)  # several turns: still one task out, the rest waits as files in the handoff
            assert hand.messages(hand.names.task_stream) == 1
            assert all((handoff / f"intent-{i}.json").exists() for i in range(4))
            _stream_limit(hand, -1)  # room again: the ingest's backoff publishes, never past --fleet-inflight
            wait_for(lambda: hand.messages(hand.names.task_stream) == 2, what="second task published after backoff")
            time.sleep(1.0)
            assert hand.messages(hand.names.task_stream) == 2  # --fleet-inflight 2, four intents waiting
            for _ in range(4):
                task, msg = hand.take()
                hand.answer(task, msg)
            wait_for(lambda: all(filed(handoff, f"intent-{i}.json") == "processed" for i in range(4)),
                     what="all four filed")
            assert all(status(handoff, f"intent-{i}.json")["status"] == "success" for i in range(4))
            assert hand.messages(hand.names.task_stream) == 0
        finally:
            hand.close()
