"""A porch that touches, rewrites, changes or deletes its own intent (README, "Changed while porch ran").

Same content (``touch``, a rewrite with the same bytes) is filed as it is, once; content that changes
under every run ends in ``failed/`` after ``--retries`` re-runs, with the reason; an intent deleted while
porch ran is recorded as a failure saying so, never as a success with a ``moved_to`` that does not exist.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from conftest import read_calls, run_cli, statuses, write_intent
from loopproc import LoopProcess, wait_for

pytestmark = pytest.mark.timeout(180)


def once(handoff: Path, out: Path, porch: Path, mode: str, log: Path, *extra: str):
    env = {"CONDUCTOR_FAKEPORCH_LOG": str(log), "CONDUCTOR_FAKEPORCH_MODE": mode}
    return run_cli("run", "--once", "--handoff", str(handoff), "--out", str(out), "--debounce", "50ms",
                   "--porch", str(porch), *extra, env=env, timeout=120)


@pytest.mark.parametrize("mode", ["touch", "rewrite"])
def test_same_content_is_filed_once(handoff: Path, out_dir: Path, fake_porch: Path, porch_log: Path,
                                    mode: str) -> None:
    write_intent(handoff, "intent-a.json")
    r = once(handoff, out_dir, fake_porch, mode, porch_log)
    assert r.returncode == 0, r.stderr
    assert len(read_calls(porch_log)) == 1
    assert (handoff / "processed" / "intent-a.json").is_file()
    doc = statuses(handoff)["intent-a.json"]
    assert doc["status"] == "success" and doc["moved_to"] == str(handoff / "processed" / "intent-a.json")


def test_content_changing_under_every_run_fails_after_retries(handoff: Path, out_dir: Path, fake_porch: Path,
                                                             porch_log: Path) -> None:
    write_intent(handoff, "intent-a.json")
    r = once(handoff, out_dir, fake_porch, "mutate", porch_log, "--retries", "2")
    assert r.returncode == 8, r.stderr
    assert len(read_calls(porch_log)) == 3  # the first run and --retries re-runs
    filed = handoff / "failed" / "intent-a.json"
    assert filed.is_file() and not (handoff / "intent-a.json").exists()
    doc = statuses(handoff)["intent-a.json"]
    assert doc["status"] == "failed" and doc["moved_to"] == str(filed)
    assert "changed while porch ran" in doc["message"] and "3 runs" in doc["message"]
    import hashlib

    assert doc["sha256"] == hashlib.sha256(filed.read_bytes()).hexdigest()  # the content that was filed
    assert "changed while porch ran" in (handoff / "failed" / "intent-a.json.error.log").read_text()


def test_intent_deleted_by_porch_is_recorded_as_vanished(handoff: Path, out_dir: Path, fake_porch: Path,
                                                         porch_log: Path) -> None:
    write_intent(handoff, "intent-a.json")
    r = once(handoff, out_dir, fake_porch, "delete", porch_log)
    assert r.returncode == 8, r.stderr
    assert len(read_calls(porch_log)) == 1
    doc = statuses(handoff)["intent-a.json"]
    assert doc["status"] == "failed" and doc["moved_to"] is None and doc["exit_code"] == 0
    assert doc["message"].startswith("intent vanished while porch ran; porch exited 0")
    assert not any((handoff / d / "intent-a.json").exists() for d in ("processed", "failed", "."))
    with sqlite3.connect(handoff / ".conductor" / "state.db") as db:
        status, moved_to = db.execute("SELECT status, moved_to FROM intents").fetchone()
    assert (status, moved_to) == ("failed", None)
    assert "failed 1" in r.stdout


@pytest.mark.parametrize("mode", ["touch", "rewrite"])
def test_watch_mode_runs_a_self_touching_porch_once(handoff: Path, out_dir: Path, fake_porch: Path,
                                                   porch_log: Path, mode: str) -> None:
    env = {"CONDUCTOR_FAKEPORCH_LOG": str(porch_log), "CONDUCTOR_FAKEPORCH_MODE": mode}
    with LoopProcess(handoff, out_dir, "--porch", str(fake_porch), "--debounce", "50ms", env=env) as loop:
        loop.ready()
        write_intent(handoff, "intent-a.json")
        loop.wait_event("intent.success", intent="intent-a.json")
        time.sleep(1.5)  # a re-run would come within a few debounce periods
        assert len(read_calls(porch_log)) == 1
        assert loop.stop() == 0
    assert (handoff / "processed" / "intent-a.json").is_file()


def test_watch_mode_bounds_a_porch_that_keeps_changing_its_intent(handoff: Path, out_dir: Path,
                                                                 fake_porch: Path, porch_log: Path) -> None:
    env = {"CONDUCTOR_FAKEPORCH_LOG": str(porch_log), "CONDUCTOR_FAKEPORCH_MODE": "mutate"}
    with LoopProcess(handoff, out_dir, "--porch", str(fake_porch), "--debounce", "50ms", "--retries", "1",
                     env=env) as loop:
        loop.ready()
        write_intent(handoff, "intent-a.json")
        loop.wait_event("intent.failed", intent="intent-a.json")
        wait_for(lambda: (handoff / "failed" / "intent-a.json").is_file(), what="filed in failed/")
        time.sleep(1.0)
        assert len(read_calls(porch_log)) == 2
        assert loop.stop() == 0
    assert "changed while porch ran" in statuses(handoff)["intent-a.json"]["message"]


def test_queue_counts_reruns_in_a_row_and_forgets_them_when_filed() -> None:
    from conductor_loop.records import RetryPolicy
    from conductor_loop.workqueue import WorkQueue

    q = WorkQueue(RetryPolicy(2))
    assert q.last_runs(["a", "b"]) == {}
    q.done("a", changed=True)
    q.done("a", changed=True)
    assert q.last_runs(["a", "b"]) == {"a": 3}  # the third run is the last
    q.done("a")  # filed: a later change starts from zero
    assert q.last_runs(["a"]) == {}
    assert WorkQueue(RetryPolicy(0)).last_runs(["a"]) == {"a": 1}  # --retries 0: no re-run for a change
