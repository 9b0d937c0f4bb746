"""The read-lease probe for files still open for writing (rust/lease.rs), as the sweep makes it: ``writing`` in
``_core.survey``'s facts. Links, FIFOs and gone files: tests/test_intake.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conductor_loop import _core


def writing(path: str | Path) -> bool | None:
    """The probe's answer for one file, through the survey."""
    mtime, answer, _priority = _core.survey([str(path)])[0]
    assert mtime is not None, f"{path} is gone"
    return answer


def test_a_writer_is_seen_until_it_closes(tmp_path: Path) -> None:
    p = tmp_path / "intent-a.json"
    with open(p, "wb") as w:
        w.write(b'{"half": ')
        w.flush()
        assert writing(str(p)) is True
    assert writing(str(p)) is False


def test_a_writer_in_another_process_is_seen(tmp_path: Path) -> None:
    p = tmp_path / "intent-a.json"
    p.write_text("{}")
    code = "import sys; f = open(sys.argv[1], 'ab'); print('open', flush=True); sys.stdin.readline()"
    child = subprocess.Popen([sys.executable, "-c", code, str(p)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline() == b"open\n"
        assert writing(p) is True
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(30)
    assert writing(p) is False


def test_readers_do_not_count(tmp_path: Path) -> None:
    p = tmp_path / "intent-a.json"
    p.write_text("{}")
    with open(p, "rb"), open(p, "rb"):
        assert writing(str(p)) is False


def test_unknown_when_leases_are_not_allowed() -> None:
    """Not the file's owner and no CAP_LEASE: ``None`` (the caller falls back to its mtime rule)."""
    if os.geteuid() != 0:
        assert writing("/etc/passwd") is None  # owned by root
        return
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child drops to nobody (root has CAP_LEASE) and reports what it got
        try:
            os.setgid(65534)
            os.setuid(65534)
            os.write(w, repr(writing("/etc/passwd")).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as fh:
        got = fh.read().decode()
    os.waitpid(pid, 0)
    assert got == "None"
