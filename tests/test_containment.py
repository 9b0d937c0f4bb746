"""Porch is contained: nothing of the loop's leaks into it, and it never outlives its loop (docs/SECURITY.md)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from conftest import read_calls, run_cli, write_intent
from loopproc import LoopProcess, wait_for

pytestmark = pytest.mark.timeout(240)


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its reaper counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[1])


def test_porch_gets_stdio_only_and_default_signals(handoff: Path, out_dir: Path, fake_porch: Path,
                                                   porch_log: Path, tmp_path: Path) -> None:
    write_intent(handoff, "intent-a.json")
    r = run_cli("run", "--once", "--handoff", str(handoff), "--out", str(out_dir), "--porch", str(fake_porch),
                env={"CONDUCTOR_FAKEPORCH_LOG": str(porch_log)})
    assert r.returncode == 0, r.stderr
    [call] = read_calls(porch_log)
    # 0, 1, 2, and the descriptor the listing of /proc/self/fd itself opened.
    assert call["fds"][:3] == [0, 1, 2] and len(call["fds"]) <= 4, call["fds"]
    assert call["sid"] == call["pid"] == call["pgid"]
    # Signal dispositions as exec left them (the Python fake porch ignores SIGPIPE itself): a shell porch.
    probe = tmp_path / "signals.txt"
    porch = tmp_path / "bin" / "sigporch"
    porch.write_text("#!/bin/sh\nexec grep -E '^(SigIgn|SigBlk)' /proc/self/status > \"$CONDUCTOR_PROBE\"\n")
    porch.chmod(0o755)
    write_intent(handoff, "intent-b.json")
    r = run_cli("run", "--once", "--handoff", str(handoff), "--out", str(out_dir), "--porch", str(porch),
                env={"CONDUCTOR_PROBE": str(probe)})
    assert r.returncode == 0, r.stderr
    assert sorted(probe.read_text().splitlines()) == ["SigBlk:\t0000000000000000", "SigIgn:\t0000000000000000"]


@pytest.mark.parametrize("victim", ["supervisor", "worker"])
def test_porch_never_outlives_its_loop_or_worker(handoff: Path, out_dir: Path, fake_porch: Path,
                                                  porch_log: Path, victim: str) -> None:
    env = {"CONDUCTOR_FAKEPORCH_LOG": str(porch_log), "CONDUCTOR_FAKEPORCH_MODE": "hang"}
    loop = LoopProcess(handoff, out_dir, "--porch", str(fake_porch), "--workers", "1", "--timeout", "60s",
                       "--debounce", "100ms", env=env)
    try:
        loop.ready()
        write_intent(handoff, "intent-a.json")
        porch = wait_for(lambda: read_calls(porch_log), what="porch started")[0]["pid"]
        worker = _parent(porch)
        assert worker != loop.proc.pid  # porch runs under a worker process
        os.kill(loop.proc.pid if victim == "supervisor" else worker, signal.SIGKILL)
        wait_for(lambda: not _alive(porch), timeout=30, what=f"porch {porch} gone after its {victim} died")
        if victim == "supervisor":
            wait_for(lambda: not _alive(worker), timeout=30, what="worker gone after the supervisor died")
        else:  # the loop lives on: the intent runs again, never beside its first porch
            second = wait_for(lambda: read_calls(porch_log)[1:], timeout=60, what="a second run")[0]
            assert second["pid"] != porch and not _alive(porch)
    finally:
        loop.close()
        for call in read_calls(porch_log):
            if _alive(call["pid"]):
                os.kill(call["pid"], signal.SIGKILL)


def test_sighup_with_the_config_file_replaced_by_a_fifo(handoff: Path, out_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('debounce = "200ms"\n')
    with LoopProcess(handoff, out_dir, "--config", str(config)) as loop:
        loop.ready()
        config.unlink()
        os.mkfifo(config)
        loop.signal(signal.SIGHUP)
        [event] = loop.wait_event("config.reload", outcome="failed")
        assert "not a regular file" in event["reason"]
        write_intent(handoff, "intent-a.json")  # still working
        wait_for(lambda: (handoff / "processed" / "intent-a.json").exists(), what="filed after the reload")
        assert loop.stop(timeout=60) == 0  # SIGTERM still works: the reload never blocked


def test_config_file_must_be_regular(handoff: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "config.toml"
    os.mkfifo(fifo)
    r = run_cli("config", "show", "--config", str(fifo), timeout=60)
    assert r.returncode == 2 and "not a regular file" in r.stderr


def test_status_files_and_error_logs_are_0640_whatever_the_umask(handoff: Path, out_dir: Path) -> None:
    import subprocess
    import sys

    write_intent(handoff, "intent-ok.json")
    write_intent(handoff, "intent-bad.json", replicas=0)
    r = subprocess.run([sys.executable, "-m", "conductor_loop", "run", "--once", "--handoff", str(handoff),
                        "--out", str(out_dir)], capture_output=True, text=True, timeout=120,
                       preexec_fn=lambda: os.umask(0))
    assert r.returncode == 8, r.stderr
    for p in (handoff / "status" / "intent-ok.json.status", handoff / "status" / "intent-bad.json.status",
              handoff / "failed" / "intent-bad.json.error.log"):
        assert p.stat().st_mode & 0o777 == 0o640, p


def test_no_multiprocessing_temp_dirs_leak_on_sigkill(handoff: Path, out_dir: Path) -> None:
    import glob
    import shutil
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="t", dir="/tmp"))  # short: the forkserver's socket lives under it
    env = {"TMPDIR": str(tmp)}
    for _ in range(3):
        loop = LoopProcess(handoff, out_dir, "--debounce", "100ms", metrics=False, env=env)
        loop.wait_event("loop.start")
        os.killpg(loop.proc.pid, signal.SIGKILL)
        loop.close()
    assert glob.glob(str(tmp / "pymp-*")) == []  # never in the shared temp dir
    stale = glob.glob(str(tmp / "cl-*" / "pymp-*"))
    assert stale  # the last killed run's, in the handoff's own directory
    loop = LoopProcess(handoff, out_dir, "--debounce", "100ms", metrics=False, env=env)
    try:
        loop.wait_event("loop.start")
        assert [p for p in stale if os.path.exists(p)] == []  # removed at this start
    finally:
        loop.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def test_what_porch_started_is_reaped_when_its_worker_or_run_dies(handoff: Path, out_dir: Path, fake_porch: Path,
                                                                  porch_log: Path, tmp_path: Path) -> None:
    pidfile = tmp_path / "children"
    env = {"CONDUCTOR_FAKEPORCH_LOG": str(porch_log), "CONDUCTOR_FAKEPORCH_MODE": "family",
           "CONDUCTOR_FAKEPORCH_PIDFILE": str(pidfile)}
    args = ("--porch", str(fake_porch), "--workers", "1", "--timeout", "60s", "--debounce", "100ms")
    loop = LoopProcess(handoff, out_dir, *args, env=env)
    try:
        loop.ready()
        write_intent(handoff, "intent-a.json")
        child = int(wait_for(lambda: pidfile.exists() and pidfile.read_text().split(), what="porch's child")[0])
        os.kill(_parent(read_calls(porch_log)[0]["pid"]), signal.SIGKILL)  # its worker dies
        wait_for(lambda: not _alive(child), timeout=30, what="porch's child reaped with its worker")
        [event] = loop.wait_event("porch.reaped", reason="its worker died")
        assert event["count"] >= 1
        # The intent runs again; now the whole run dies at once (supervisor, workers: one SIGKILL each).
        second = int(wait_for(lambda: pidfile.read_text().split()[1:], timeout=60, what="a second child")[0])
        os.killpg(loop.proc.pid, signal.SIGKILL)
        loop.close()
        time.sleep(1.0)
        assert _alive(second)  # orphaned: porch died with its worker, its child did not
        loop = LoopProcess(handoff, out_dir, *args, env=env)
        wait_for(lambda: not _alive(second), timeout=30, what="the leftover reaped at start")
        loop.wait_event("porch.reaped", reason="left by an earlier run")
    finally:
        loop.close()
        for pid in (pidfile.read_text().split() if pidfile.exists() else []):
            if _alive(int(pid)):
                os.kill(int(pid), signal.SIGKILL)
        for call in read_calls(porch_log):
            if _alive(call["pid"]):
                os.kill(call["pid"], signal.SIGKILL)
