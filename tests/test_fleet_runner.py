"""One task on a worker, in-process (fleet/runner.py): the sha256 check, the safety parse, porch's failure,
a package too large to send, the tag that lets a fenced worker kill porch; and the worker's option layering."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path

import pytest

from conductor_loop.config import ConfigError
from conductor_loop.fleet.archive import unpack_checked
from conductor_loop.fleet.protocol import make_task
from conductor_loop.fleet.runner import SHA_MISMATCH, TaskRunner, kill_run, reap_leftovers
from conductor_loop.fleet.workerconfig import resolve
from fleetkit import fake_porch, intent_task


def test_builtin_run_packs_the_package(tmp_path: Path) -> None:
    ran = TaskRunner("builtin", "w", 5.0, str(tmp_path)).run(intent_task(), 1, "tag-1")
    assert ran.outcome == "success" and ran.result.ok and ran.result.delivery == 1
    assert unpack_checked(ran.result.archive, str(tmp_path / "d"), 1 << 20) == 2
    assert os.listdir(tmp_path) == ["d"]  # the private temp dir is gone


def test_refusals_are_final_and_carry_no_package(tmp_path: Path) -> None:
    runner = TaskRunner("builtin", "w", 5.0, str(tmp_path))
    mismatch = runner.run(intent_task(bad_sha=True), 1, "t")
    assert (mismatch.outcome, mismatch.result.message, mismatch.result.retryable) == ("rejected", SHA_MISMATCH, False)
    data = b"[1, 2"
    junk = make_task(
        "/h/intent-j.json",
        data,
        sha256=hashlib.sha256(data).hexdigest(),
        attempt=1,
        mode="direct",
        timeout=1,
        max_result_bytes=1 << 20,
    )
    invalid = runner.run(junk, 1, "t")
    assert invalid.outcome == "rejected" and invalid.result.message.startswith("invalid intent: not JSON")
    small = intent_task()
    small = make_task(
        "/h/intent-a.json", small.data, sha256=small.sha256, attempt=1, mode="direct", timeout=1, max_result_bytes=100
    )
    too_big = runner.run(small, 1, "t")
    assert too_big.outcome == "rejected" and "cannot be sent" in too_big.result.message
    assert too_big.result.archive == b"" and not too_big.result.retryable


def test_a_worker_disk_problem_is_a_retryable_failure(tmp_path: Path) -> None:
    ran = TaskRunner("builtin", "w", 5.0, str(tmp_path / "missing")).run(intent_task(), 1, "t")
    assert ran.outcome == "failed" and ran.result.retryable and "could not prepare the task" in ran.result.message


def test_porch_failure_is_reported_with_its_exit_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDUCTOR_TEST_EXIT", "3")
    ran = TaskRunner(str(fake_porch(tmp_path)), "w", 5.0, str(tmp_path)).run(intent_task(), 2, "t")
    assert ran.outcome == "failed" and ran.result.exit_code == 3 and ran.result.archive_info is None


def test_kill_run_kills_the_tagged_processes() -> None:
    proc = subprocess.Popen(["sleep", "30"], env={"CONDUCTOR_LOOP": "fleet-test-tag", "PATH": os.environ["PATH"]})
    try:
        deadline = time.monotonic() + 5
        while kill_run("fleet-test-tag") == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.wait(timeout=5) == -9
    finally:
        proc.kill()


def test_worker_options_layer_flag_over_env_over_file(tmp_path: Path) -> None:
    conf = tmp_path / "worker.toml"
    conf.write_text('broker = "nats://127.0.0.1:4222"\nslots = 2\ntimeout = "5s"\nfleet = "f"\n')
    env = {"CONDUCTOR_SLOTS": "3", "CONDUCTOR_FLEET": "e"}
    opts = resolve({"fleet": "x", "slots": None}, env, str(conf))
    assert (opts.broker, opts.slots, opts.timeout, opts.fleet) == ("nats://127.0.0.1:4222", 3, 5.0, "x")
    assert opts.sources["slots"] == "env CONDUCTOR_SLOTS" and opts.sources["fleet"] == "flag"


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        ({}, "--broker is required"),
        ({"broker": "http://x"}, "nats://"),
        ({"broker": "nats://h:1", "slots": "0"}, "at least 1"),
        ({"broker": "nats://h:1", "fleet": "a.b"}, "--fleet"),
        ({"broker": "nats://h:1", "porch": "/nonexistent/porch"}, "no such file"),
        ({"broker": "nats://h:1", "timeout": "soon"}, "--timeout"),
        ({"broker": "nats://h:1", "metrics_addr": "nowhere"}, "missing port"),
    ],
)
def test_bad_worker_options_are_config_errors(flags: dict[str, str], reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        resolve(flags, {}, None)


def test_worker_command_exits_2_on_a_bad_option() -> None:
    import sys

    from conftest import REPO

    env = {**os.environ, "PYTHONPATH": str(REPO / "python")}
    env.pop("CONDUCTOR_BROKER", None)
    done = subprocess.run(
        [sys.executable, "-m", "conductor_loop", "worker", "--broker", "http://x"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "nats://" in done.stderr


def test_a_killed_workers_leftovers_are_reaped(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    (tmp_path / f"cl-task-{gone.pid}-abc" / "out").mkdir(parents=True)
    (tmp_path / f"cl-task-{os.getpid()}-mine").mkdir()  # a live worker's: kept
    (tmp_path / "cl-task-x").mkdir()  # not ours: kept
    env = {"PATH": os.environ["PATH"], "CONDUCTOR_LOOP": f"fleet-{'0' * 32}-1-{gone.pid}"}
    orphan = subprocess.Popen(["sleep", "30"], env=env)
    live = subprocess.Popen(["sleep", "30"], env={**env, "CONDUCTOR_LOOP": f"fleet-{'0' * 32}-1-{os.getpid()}"})
    try:
        time.sleep(0.1)  # exec'd, so /proc/PID/environ is sleep's
        dirs, procs = reap_leftovers(str(tmp_path))
        assert dirs == 1 and procs >= 1  # other tests' killed workers may have left porches too
        assert orphan.wait(timeout=5) == -9 and live.poll() is None
        assert sorted(p.name for p in tmp_path.iterdir()) == [f"cl-task-{os.getpid()}-mine", "cl-task-x"]
    finally:
        orphan.kill()
        live.kill()
