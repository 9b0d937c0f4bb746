"""``_core.open_for_write``: the read-lease probe for files still open for writing (rust/lease.rs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conductor_loop import _core


def test_a_writer_is_seen_until_it_closes(tmp_path: Path) -> None:
    p = tmp_path / "intent-a.json"
    with open(p, "wb") as w:
        w.write(b'{"half": ')
        w.flush()
        assert _core.open_for_write(str(p)) is True
    assert _core.open_for_write(str(p)) is False


def test_a_writer_in_another_process_is_seen(tmp_path: Path) -> None:
    p = tmp_path / "intent-a.json"
    p.write_text("{}")
    code = "import sys; f = open(sys.argv[1], 'ab'); print('open', flush=True); sys.stdin.readline()"
    child = subprocess.Popen([sys.executable, "-c", code, str(p)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline() == b"open\n"
        assert _core.open_for_write(p) is True
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(30)
    assert _core.open_for_write(p) is False


def test_readers_do_not_count(tmp_path: Path) -> None:
    p = tmp_path / "intent-a.json"
    p.write_text("{}")
    with open(p, "rb"), open(p, "rb"):
        assert _core.open_for_write(str(p)) is False


def test_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as e:
        _core.open_for_write(str(tmp_path / "gone.json"))
    assert e.value.filename == str(tmp_path / "gone.json")
    (tmp_path / "t.json").write_text("{}")
    os.symlink(tmp_path / "t.json", tmp_path / "intent-link.json")
    with pytest.raises(_core.NotRegularFile):
        _core.open_for_write(str(tmp_path / "intent-link.json"))
    os.mkfifo(tmp_path / "intent-fifo.json")
    with pytest.raises(_core.NotRegularFile):  # never blocks on a FIFO
        _core.open_for_write(str(tmp_path / "intent-fifo.json"))


def test_unknown_when_leases_are_not_allowed() -> None:
    """Not the file's owner and no CAP_LEASE: ``None`` (the caller falls back to its mtime rule)."""
    if os.geteuid() != 0:
        assert _core.open_for_write("/etc/passwd") is None  # owned by root
        return
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child drops to nobody (root has CAP_LEASE) and reports what it got
        try:
            os.setgid(65534)
            os.setuid(65534)
            os.write(w, repr(_core.open_for_write("/etc/passwd")).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as fh:
        got = fh.read().decode()
    os.waitpid(pid, 0)
    assert got == "None"
