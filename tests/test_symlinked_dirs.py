"""The loop never writes through a symbolic link in place of one of its own directories (docs/SECURITY.md)."""

from __future__ import annotations

import json
import os
import shutil
import sys
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


#: A porch that swaps one of the loop's directories for a link to ``elsewhere`` while it runs: the status
#: write (``status``) or the move (``processed``) that follows porch comes after the swap.
SWAPPING_PORCH = """
import os, shutil, sys
out = sys.argv[sys.argv.index("-out") + 1]
os.makedirs(out, exist_ok=True)
open(os.path.join(out, "package.yaml"), "w").close()
sub = os.environ["CONDUCTOR_TEST_SWAP"]
shutil.rmtree(sub)
os.symlink(os.environ["CONDUCTOR_TEST_TARGET"], sub)
"""


@pytest.mark.parametrize("sub", ["status", "processed"])
def test_swapped_while_porch_runs_writes_nothing_through_it(handoff: Path, out_dir: Path, tmp_path: Path,
                                                            fake_porch: Path, sub: str) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    porch = tmp_path / "swapping-porch"
    porch.write_text(f"#!{sys.executable} -S\n{SWAPPING_PORCH}")
    porch.chmod(0o755)
    write_intent(handoff, "intent-a.json")
    env = {"CONDUCTOR_TEST_SWAP": str(handoff / sub), "CONDUCTOR_TEST_TARGET": str(elsewhere)}
    r = run_cli("run", "--once", "--handoff", str(handoff), "--out", str(out_dir), "--porch", str(porch),
                "--debounce", "50ms", env=env)
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        f"conductor-loop: {handoff / sub} is a symbolic link: refusing to write through it (see docs/SECURITY.md)"
    )
    assert "Traceback" not in r.stderr
    assert list(elsewhere.iterdir()) == []
    assert (handoff / "intent-a.json").exists()
    # Once the link is gone the intent is filed: run again (status/ lost), or as recorded (processed/ lost).
    (handoff / sub).unlink()
    r = run_cli("run", "--once", "--handoff", str(handoff), "--out", str(out_dir), "--porch", str(fake_porch))
    assert r.returncode == 0, r.stderr
    assert (handoff / "processed" / "intent-a.json").exists() and not (handoff / "intent-a.json").exists()
    assert json.loads((handoff / "status" / "intent-a.json.status").read_text())["status"] == "success"
    assert list(elsewhere.iterdir()) == []
