"""Storage faults: a full handoff or ``--out``, a read-only state, too few file descriptors (README, "Disk full").

Real faults on real mounts: a 1 MiB tmpfs filled to the last page, a read-only bind mount or remount,
``RLIMIT_NOFILE`` lowered. While running the loop pauses intake (``/readyz`` 503 with the reason,
``conductor_intake_paused`` 1, ``intake.paused``), probes with backoff and resumes when the fault is
gone, losing nothing; at start it exits 1 with one line naming the path and the errno.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conductor_loop.faults import fault_of, space_fault
from conductor_loop.health import Health
from conductor_loop.storage import IntakePause
from conftest import read_calls, run_cli, statuses, write_intent
from fakeclock import FakeClock
from loopproc import LoopProcess, wait_for
from needs import missing

pytestmark = pytest.mark.timeout(240)


# -- the rule and the policy, without processes -------------------------------------------------------
def test_fault_of_names_the_path_and_the_errno() -> None:
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/h/status/x.status")
    assert fault_of(full) == "/h/status/x.status: ENOSPC (No space left on device)"
    assert fault_of(OSError(errno.EMFILE, "Too many open files"), "/db") == "EMFILE (Too many open files)"
    assert fault_of(OSError(errno.ENOENT, "No such file", "/x")) is None
    assert fault_of(ValueError("no")) is None
    db_full = sqlite3.OperationalError("database or disk is full")
    assert (fault_of(db_full, "/h/.conductor/state.db") or "").startswith("/h/.conductor/state.db: SQLITE_")
    assert fault_of(sqlite3.OperationalError("no such table: x")) is None


def test_intake_pause_backs_off_and_clears() -> None:
    clock = FakeClock()
    pause = IntakePause(clock)
    assert not pause.paused and not pause.due() and pause.next_in() is None
    assert pause.trip("disk full") and not pause.trip("still full")
    assert pause.paused and pause.reason == "still full" and not pause.due()
    waits = []
    for _ in range(8):
        wait = pause.next_in()
        assert wait is not None
        waits.append(wait)
        clock.advance(wait)
        assert pause.due()
        pause.failed("still full")
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert pause.clear() == pytest.approx(sum(waits)) and not pause.paused


def test_readyz_names_the_storage_fault() -> None:
    health = Health()
    health.set_watcher(True)
    health.set_handoff_writable(True)
    assert health.readyz() == (True, "ok")
    health.set_storage(False, "/h/status: ENOSPC (No space left on device)")
    assert health.readyz() == (False, "intake paused: /h/status: ENOSPC (No space left on device)")
    assert health.healthz()[0]  # paused is not unhealthy: a restart would not help
    health.set_storage(True)
    assert health.readyz() == (True, "ok")


# -- real mounts --------------------------------------------------------------------------------------
def _mount(*args: str) -> None:
    if os.geteuid() != 0:
        missing("mounting a tmpfs or a bind mount needs root")
    got = subprocess.run(["mount", *args], capture_output=True, text=True)
    if got.returncode != 0:
        missing(f"cannot mount ({' '.join(args)}): {got.stderr.strip()}")


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "1m") -> Iterator[Path]:
    """A small tmpfs mounted at ``path`` for the test."""
    path.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path))
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> Path:
    """Fill the filesystem of ``directory`` to the last page; returns the filler to delete."""
    filler = directory / ".filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, bytes(4096))
    finally:
        os.close(fd)
    assert space_fault(str(directory)) is not None
    return filler


def no_traceback(loop: LoopProcess) -> None:
    text = loop.log_path.read_text()
    assert "Traceback" not in text, text[-3000:]


def one_line_exit_1(r: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_full_handoff_at_start_is_one_line(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "h") as handoff:
        fill(handoff)
        r = run_cli("run", "--once", "--handoff", str(handoff), "--out", str(tmp_path / "out"))
        one_line_exit_1(r, "cannot start on", str(handoff / ".conductor"), "ENOSPC")


def test_read_only_state_at_start_is_one_line_and_never_moved_aside(tmp_path: Path, out_dir: Path) -> None:
    handoff = tmp_path / "h"
    handoff.mkdir()
    assert run_cli("run", "--once", "--handoff", str(handoff), "--out", str(out_dir)).returncode == 0
    write_intent(handoff, "intent-a.json")
    db = handoff / ".conductor" / "state.db"
    _mount("--bind", str(db), str(db))
    try:
        _mount("-o", "remount,bind,ro", str(db))
        r = run_cli("run", "--once", "--handoff", str(handoff), "--out", str(out_dir))
        one_line_exit_1(r, "cannot start on", str(db), "SQLITE_READONLY")
    finally:
        subprocess.run(["umount", str(db)], check=False)
    assert not list(db.parent.glob("state.db.corrupt-*")) and (handoff / "intent-a.json").exists()
    state_dir = handoff / ".conductor"
    _mount("--bind", str(state_dir), str(state_dir))
    try:
        _mount("-o", "remount,bind,ro", str(state_dir))
        r = run_cli("run", "--once", "--handoff", str(handoff), "--out", str(out_dir))
        one_line_exit_1(r, "cannot start on", str(state_dir), "EROFS")
    finally:
        subprocess.run(["umount", str(state_dir)], check=False)
    assert run_cli("run", "--once", "--handoff", str(handoff), "--out", str(out_dir)).returncode == 0
    assert (handoff / "processed" / "intent-a.json").exists()


def _paused_then_resumed(loop: LoopProcess, free: object) -> None:
    """The loop pauses (event, /readyz, metric), stays up; ``free()`` ends the fault; it resumes."""
    paused = loop.wait_event("intake.paused", timeout=60)
    assert paused[0]["level"] == "error" and paused[0]["reason"]
    status, body = loop.get("/readyz")
    assert status == 503 and body.startswith("intake paused: "), body
    assert loop.metric("conductor_intake_paused") == 1
    assert loop.proc.poll() is None
    free()  # type: ignore[operator]
    loop.wait_event("intake.resumed", timeout=90)
    wait_for(lambda: loop.get("/readyz")[0] == 200, 30, what="/readyz 200 again")
    assert loop.metric("conductor_intake_paused") == 0


def _all_filed(handoff: Path, names: list[str]) -> None:
    wait_for(lambda: all((handoff / "processed" / n).exists() for n in names), 90, what="all filed")
    st = statuses(handoff)
    assert all(st[n]["status"] == "success" for n in names), st


@pytest.mark.parametrize("where", ["handoff", "out"])
def test_disk_full_while_running_pauses_intake_and_resumes(tmp_path: Path, fake_porch: Path, porch_log: Path,
                                                           where: str) -> None:
    names = [f"intent-{i}.json" for i in range(3)]
    with tmpfs(tmp_path / "fs") as fs:
        handoff = fs if where == "handoff" else tmp_path / "handoff"
        out = tmp_path / "out" if where == "handoff" else fs
        handoff.mkdir(exist_ok=True)
        env = {"CONDUCTOR_FAKEPORCH_LOG": str(porch_log)}
        with LoopProcess(handoff, out, "--porch", str(fake_porch), "--debounce", "300ms", env=env) as loop:
            loop.ready()
            for n in names:
                write_intent(handoff, n)
            filler = fill(fs)
            _paused_then_resumed(loop, filler.unlink)
            _all_filed(handoff, names)
            no_traceback(loop)
            assert loop.stop() == 0
    assert {Path(c["argv"][2]).name for c in read_calls(porch_log)} == set(names)


def _chattr(flag: str, paths: list[Path]) -> None:
    got = subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True, text=True)
    if got.returncode != 0:
        missing(f"chattr {flag} failed (root on ext4/xfs/btrfs needed): {got.stderr.strip()}")


def test_read_only_state_while_running_pauses_intake_and_resumes(handoff: Path, fake_porch: Path,
                                                                 out_dir: Path) -> None:
    # As root, a mode of 0444 does not stop a write, and a read-only remount is refused while the state is
    # open for writing: the immutable flag stops writes through open descriptors too.
    if shutil.which("chattr") is None:
        missing("chattr not installed (e2fsprogs)")
    state = handoff / ".conductor"
    with LoopProcess(handoff, out_dir, "--porch", str(fake_porch), "--debounce", "300ms") as loop:
        loop.ready()
        frozen = [state / n for n in ("state.db", "state.db-wal")] + [state]
        _chattr("+i", frozen)
        try:
            write_intent(handoff, "intent-a.json")
            _paused_then_resumed(loop, lambda: _chattr("-i", frozen))
        finally:
            subprocess.run(["chattr", "-i", *map(str, frozen)], check=False)
        _all_filed(handoff, ["intent-a.json"])
        no_traceback(loop)
        assert loop.stop() == 0


def _nofile(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


def test_too_few_file_descriptors_at_start_is_one_line(handoff: Path, out_dir: Path) -> None:
    write_intent(handoff, "intent-a.json")
    r = subprocess.run(
        [sys.executable, "-m", "conductor_loop", "run", "--once", "--handoff", str(handoff), "--out", str(out_dir)],
        capture_output=True, text=True, timeout=120, preexec_fn=lambda: _nofile(16), stdin=subprocess.DEVNULL,
    )
    lines = [ln for ln in r.stderr.splitlines() if " INFO " not in ln]  # log lines before the fault
    assert r.returncode == 1 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith(f"conductor-loop: cannot start on {handoff}") and "EMFILE" in lines[0]
    assert (handoff / "intent-a.json").exists()


def test_running_out_of_file_descriptors_pauses_and_recovers(handoff: Path, out_dir: Path, fake_porch: Path) -> None:
    """Idle HTTP clients take the supervisor's last descriptors (the server drops them after 5 s)."""
    names = [f"intent-{i}.json" for i in range(5)]
    loop = LoopProcess(handoff, out_dir, "--porch", str(fake_porch), "--debounce", "300ms", "--workers", "1")
    loop.proc.kill()
    loop.proc.wait()
    loop.close()
    argv = [sys.executable, "-m", "conductor_loop", "run", "--handoff", str(handoff), "--out", str(out_dir),
            "--log-format", "json", "--porch", str(fake_porch), "--debounce", "300ms", "--workers", "1",
            "--metrics-addr", f"127.0.0.1:{loop.port}"]
    loop._log = open(loop.log_path, "wb")
    loop.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=loop._log, stdin=subprocess.DEVNULL,
                                 start_new_session=True, preexec_fn=lambda: _nofile(NOFILE_LIMIT))
    with loop, contextlib.ExitStack() as held:
        loop.ready()
        for _ in range(NOFILE_LIMIT):
            with contextlib.suppress(OSError):
                held.enter_context(socket.create_connection(("127.0.0.1", loop.port), timeout=2))
        time.sleep(0.5)  # the server accepts until its table is full
        for n in names:
            write_intent(handoff, n)
        paused = loop.wait_event("intake.paused", timeout=60)
        assert "EMFILE" in paused[0]["reason"]
        held.close()
        loop.wait_event("intake.resumed", timeout=90)
        _all_filed(handoff, names)
        no_traceback(loop)
        assert loop.stop() == 0


#: The supervisor's descriptors: enough to start (about 31 with one worker), few enough to run out.
NOFILE_LIMIT = 64
