"""Crash matrix: SIGKILL the supervisor, its process group or one worker at random moments, restart, and check
that every intent ends in exactly one place, whole, with a status that matches, and that no porch outlived
its loop (README "Crash safety", docs/SECURITY.md).

Each case runs in once mode and in watch mode, on one filesystem and across two (``processed/`` and
``failed/`` on a tmpfs of their own: every filing is then a cross-filesystem copy → fsync → rename → unlink).
Mounting needs root; without it the cross-filesystem cases skip, except under ``CI=true`` (``.ci/run`` runs
as root), where they fail.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import intent_body, read_calls, run_cli, write_intent
from loopproc import LoopProcess, wait_for
from needs import missing

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

INTENTS = 36
INVALID = {"intent-bad-0.json", "intent-bad-1.json", "intent-bad-2.json"}
ROUNDS = 3


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, IndexError, ValueError):
        return None


@contextlib.contextmanager
def _tmpfs(*dirs: Path) -> Iterator[None]:
    mounted: list[Path] = []
    try:
        for d in dirs:
            d.mkdir(parents=True, exist_ok=True)
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(d)], capture_output=True,
                               text=True)
            if r.returncode != 0:
                missing(f"cannot mount a tmpfs for a second filesystem: {r.stderr.strip()}")
            mounted.append(d)
        yield
    finally:
        for d in reversed(mounted):
            subprocess.run(["umount", "-l", str(d)], check=False)


def _backlog(handoff: Path) -> dict[str, bytes]:
    bodies = {}
    for i in range(INTENTS):
        name = f"intent-{i:03d}.json"
        bodies[name] = write_intent(handoff, name, target=f"t{i}", replicas=1 + i % 9).read_bytes()
    for name in INVALID:
        bodies[name] = write_intent(handoff, name, body=intent_body(replicas=500)).read_bytes()
    return bodies


def _kill_round(handoff: Path, out: Path, porch: Path, log: Path, mode: str, rng: random.Random) -> str:
    """Start the loop, let porch run a few times, SIGKILL a random victim; returns what was killed."""
    env = {"CONDUCTOR_FAKEPORCH_LOG": str(log), "CONDUCTOR_FAKEPORCH_MODE": "sleep:0.03"}
    args = ["--porch", str(porch), "--debounce", "50ms", "--workers", "2"] + (["--once"] if mode == "once" else [])
    loop = LoopProcess(handoff, out, *args, env=env, metrics=False)
    victim = rng.choice(["supervisor", "group", "worker"])
    try:
        start = len(read_calls(log))
        want = start + rng.randint(2, 8)
        if not wait_for(lambda: len(read_calls(log)) >= want or loop.proc.poll() is not None, timeout=90,
                        what="porch calls"):
            return "none"
        time.sleep(rng.uniform(0, 0.05))
        if loop.proc.poll() is not None:
            return "none (finished first)"
        if victim == "worker":
            parent = _parent(read_calls(log)[-1]["pid"])
            if parent is not None and parent != loop.proc.pid:
                os.kill(parent, signal.SIGKILL)
            time.sleep(rng.uniform(0.05, 0.3))  # the loop replaces it and goes on; then it dies too
            os.kill(loop.proc.pid, signal.SIGKILL)
        elif victim == "group":
            os.killpg(loop.proc.pid, signal.SIGKILL)
        else:
            os.kill(loop.proc.pid, signal.SIGKILL)
        return victim
    finally:
        loop.close()


def _check_no_porch_outlived(log: Path) -> None:
    pids = [c["pid"] for c in read_calls(log)]
    wait_for(lambda: not any(_alive(p) for p in pids), timeout=30, what="every porch gone with its loop")


def _check_one_place(handoff: Path, bodies: dict[str, bytes]) -> None:
    assert not [p.name for p in handoff.glob("intent-*.json")], "intents left in the handoff"
    filed = {p.name: p for d in ("processed", "failed") for p in (handoff / d).iterdir()
             if not p.name.endswith(".error.log")}
    assert sorted(filed) == sorted(bodies), "every intent exactly once, under its own name"
    for name, body in bodies.items():
        assert filed[name].read_bytes() == body, f"{name} not whole"
        assert (filed[name].parent.name == "failed") == (name in INVALID), name
        doc = json.loads((handoff / "status" / f"{name}.status").read_text())
        assert doc["sha256"] == hashlib.sha256(body).hexdigest(), name
        assert doc["moved_to"] == str(filed[name]), name
        assert doc["status"] == ("failed" if name in INVALID else "success"), doc
    leftovers = [str(p) for p in handoff.rglob(".*.tmp")]
    assert not leftovers, leftovers


@pytest.mark.parametrize("fs", ["one-fs", "cross-fs"])
@pytest.mark.parametrize("mode", ["once", "watch"])
def test_crash_matrix(tmp_path: Path, fake_porch: Path, porch_log: Path, mode: str, fs: str) -> None:
    handoff, out = tmp_path / "handoff", tmp_path / "out"
    handoff.mkdir()
    bodies = _backlog(handoff)
    rng = random.Random(f"{mode}-{fs}")
    mounts = (handoff / "processed", handoff / "failed") if fs == "cross-fs" else ()
    with _tmpfs(*mounts):
        victims = [_kill_round(handoff, out, fake_porch, porch_log, mode, rng) for _ in range(ROUNDS)]
        _check_no_porch_outlived(porch_log)
        r = run_cli("run", "--once", "--handoff", str(handoff), "--out", str(out), "--porch", str(fake_porch),
                    "--debounce", "50ms", env={"CONDUCTOR_FAKEPORCH_LOG": str(porch_log)})
        assert r.returncode in (0, 8), r.stderr
        _check_one_place(handoff, bodies)
    assert any(v in ("supervisor", "group", "worker") for v in victims), victims
