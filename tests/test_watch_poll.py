"""Poll mode (``--watch poll``), run on the local filesystem through the flag: what network filesystems get."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from conftest import intent_body, read_calls, run_cli, statuses, write_intent
from loopproc import LoopProcess, wait_for

pytestmark = pytest.mark.timeout(240)

POLL = ("--watch", "poll", "--poll-interval", "100ms")


def status_of(handoff: Path, name: str) -> dict | None:
    return statuses(handoff).get(name)


def test_new_files_rewrites_renames_and_deletes(handoff: Path, out_dir: Path, tmp_path: Path,
                                                fake_porch: Path, porch_log: Path) -> None:
    env = {"CONDUCTOR_FAKEPORCH_LOG": str(porch_log)}
    with LoopProcess(handoff, out_dir, *POLL, "--debounce", "300ms", "--porch", str(fake_porch), env=env) as loop:
        loop.ready()
        assert loop.metric("conductor_watcher_up") == 1
        write_intent(handoff, "intent-new.json", replicas=2)
        staged = tmp_path / "staged.json"
        staged.write_text(json.dumps(intent_body(replicas=3)))
        os.rename(staged, handoff / "intent-renamed.json")
        gone = handoff / "intent-gone.json"
        gone.write_text(json.dumps(intent_body()))
        gone.unlink()  # vanishes before it settles
        (handoff / "intent-a.json.tmp").write_text("{}")  # a producer's temp name: never touched
        wait_for(lambda: (handoff / "processed" / "intent-new.json").exists()
                 and (handoff / "processed" / "intent-renamed.json").exists(), what="both filed")
        # A rewrite of a filed name with new content is a new intent.
        new = hashlib.sha256(write_intent(handoff, "intent-new.json", replicas=5).read_bytes()).hexdigest()
        wait_for(lambda: status_of(handoff, "intent-new.json")["sha256"] == new, what="rewrite filed")
        time.sleep(0.8)
        assert loop.stop() == 0
    assert set(statuses(handoff)) == {"intent-new.json", "intent-renamed.json"}
    assert len(read_calls(porch_log)) == 3
    assert (handoff / "intent-a.json.tmp").exists()
    assert len(list((handoff / "processed").glob("intent-new*.json"))) == 2


def test_growing_file_is_never_taken_half_written(handoff: Path, out_dir: Path, fake_porch: Path,
                                                  porch_log: Path) -> None:
    """Poll mode cannot see opens: a file is settled once inode, size and mtime stay put for --debounce."""
    env = {"CONDUCTOR_FAKEPORCH_LOG": str(porch_log)}
    with LoopProcess(handoff, out_dir, *POLL, "--debounce", "1s", "--porch", str(fake_porch), env=env) as loop:
        loop.ready()
        body = json.dumps(intent_body(reason="r" * 300)).encode()
        with open(handoff / "intent-slow.json", "wb") as f:
            for i in range(0, len(body), 40):
                f.write(body[i:i + 40])
                f.flush()
                time.sleep(0.2)  # keeps growing for ~1.8 s, pausing less than the debounce
        wait_for(lambda: status_of(handoff, "intent-slow.json"), what="status")
        assert loop.stop() == 0
    assert len(read_calls(porch_log)) == 1
    assert status_of(handoff, "intent-slow.json")["status"] == "success"
    assert (handoff / "processed" / "intent-slow.json").read_bytes() == body


def test_recreated_directory_is_rescanned(handoff: Path, out_dir: Path) -> None:
    with LoopProcess(handoff, out_dir, *POLL, "--debounce", "200ms") as loop:
        loop.ready()
        write_intent(handoff, "intent-1.json")
        # Filed means moved: the status file appears a group commit before the move, and an rmtree racing
        # the move would find intent-1.json gone under it.
        wait_for(lambda: (handoff / "processed" / "intent-1.json").exists(), what="first filed")
        rescans = loop.metric("conductor_rescans_total") or 0
        shutil.rmtree(handoff)
        handoff.mkdir()
        write_intent(handoff, "intent-2.json")
        wait_for(lambda: status_of(handoff, "intent-2.json"), timeout=60, what="filed after recreation")
        wait_for(lambda: (loop.metric("conductor_rescans_total") or 0) > rescans, what="a rescan counted")
        wait_for(lambda: loop.metric("conductor_watcher_up") == 1, what="watcher up again")
        assert loop.stop() == 0


def test_once_mode_polls_too(handoff: Path, out_dir: Path) -> None:
    for i in range(5):
        write_intent(handoff, f"intent-{i}.json", replicas=i + 1)
    r = run_cli("run", "--once", "--handoff", str(handoff), "--out", str(out_dir), *POLL, "--debounce", "100ms",
                "--log-format", "json")
    assert r.returncode == 0, r.stderr
    assert "processed 5" in r.stdout
    starts = [json.loads(line) for line in r.stderr.splitlines() if '"loop.start"' in line]
    assert starts and starts[0]["watch"] == "poll"
