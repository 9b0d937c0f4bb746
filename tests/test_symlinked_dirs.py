"""The loop never writes through a symbolic link in place of one of its own directories (docs/SECURITY.md)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from conftest import run_cli, write_intent
from loopproc import LoopProcess, wait_for

pytestmark = pytest.mark.timeout(240)


@pytest.mark.parametrize("sub", ["processed", "failed", "status", ".conductor", ".conductor/state.db"])
def test_refuses_to_start(handoff: Path, out_dir: Path, tmp_path: Path, sub: str) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if sub == ".conductor/state.db":
        (handoff / ".conductor").mkdir()
        target = elsewhere / "state.db"
        target.write_bytes(b"")
    else:
        target = elsewhere
    os.symlink(target, handoff / sub)
    write_intent(handoff, "intent-a.json", replicas=0)
    r = run_cli("run", "--once", "--handoff", str(handoff), "--out", str(out_dir))
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        f"conductor-loop: {handoff / sub} is a symbolic link: refusing to write through it (see docs/SECURITY.md)"
    )
    assert [p.name for p in elsewhere.iterdir()] == (["state.db"] if sub == ".conductor/state.db" else [])
    assert (handoff / "intent-a.json").exists()


def test_swapped_while_running_stops_the_loop(handoff: Path, out_dir: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with LoopProcess(handoff, out_dir, "--debounce", "100ms") as loop:
        loop.ready()
        shutil.rmtree(handoff / "failed")
        os.symlink(elsewhere, handoff / "failed")
        assert loop.proc.wait(60) == 1
        wait_for(lambda: "is a symbolic link" in loop.log_path.read_text(), what="the reason")
        write_intent(handoff, "intent-bad.json", replicas=0)
    assert list(elsewhere.iterdir()) == []
