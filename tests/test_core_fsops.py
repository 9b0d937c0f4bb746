"""conductor_loop._core file operations through Python: no-clobber moves, atomic writes, exchange."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from conductor_loop import _core
from needs import missing

SHM = Path("/dev/shm")


@pytest.fixture
def second_fs() -> None:
    """/dev/shm, a tmpfs: the second filesystem of the cross-filesystem moves (fails under CI=true)."""
    if not SHM.is_dir():
        missing("no /dev/shm tmpfs for a second filesystem")
STAMP = r"\.\d{8}T\d{6}\.\d{3}Z"


def test_move_same_fs(tmp_path: Path) -> None:
    src = tmp_path / "intent-a.json"
    src.write_text("A")
    dst = tmp_path / "processed"
    dst.mkdir()
    final = _core.move_noclobber(str(src), str(dst))
    assert isinstance(final, str)
    assert final == str(dst / "intent-a.json")
    assert not src.exists()
    assert Path(final).read_text() == "A"


def test_move_conflict_names(tmp_path: Path) -> None:
    dst = tmp_path / "processed"
    dst.mkdir()
    finals = []
    for i in range(5):
        src = tmp_path / "intent-a.json"
        src.write_text(f"v{i}")
        finals.append(_core.move_noclobber(str(src), str(dst)))
    names = [os.path.basename(f) for f in finals]
    assert names[0] == "intent-a.json"
    assert re.fullmatch(r"intent-a" + STAMP + r"\.json", names[1]), names[1]
    for n in names[2:]:
        # same millisecond: counter; a later millisecond: a fresh timestamp
        assert re.fullmatch(r"intent-a" + STAMP + r"(\.\d+)?\.json", n), n
    assert len(set(names)) == 5
    assert sorted(Path(f).read_text() for f in finals) == [f"v{i}" for i in range(5)]
    # explicit target name, name without extension
    src = tmp_path / "x"
    src.write_text("x")
    assert _core.move_noclobber(str(src), str(dst), "README") == str(dst / "README")
    src.write_text("y")
    n = os.path.basename(_core.move_noclobber(str(src), str(dst), "README"))
    assert re.fullmatch(r"README" + STAMP, n), n


def test_move_files_hostile_kinds_as_they_are(tmp_path: Path) -> None:
    """One filesystem: links, FIFOs and directories are renamed, never followed or opened."""
    dst = tmp_path / "failed"
    dst.mkdir()
    target = tmp_path / "t.json"
    target.write_text("t")
    link = tmp_path / "intent-l.json"
    link.symlink_to(target)
    fifo = tmp_path / "intent-f.json"
    os.mkfifo(fifo)
    folder = tmp_path / "intent-d.json"
    folder.mkdir()
    for p in (link, fifo, folder):
        moved = Path(_core.move_noclobber(str(p), str(dst)))
        assert moved.parent == dst and not os.path.lexists(p)
    assert (dst / "intent-l.json").is_symlink() and target.read_text() == "t"
    assert stat.S_ISFIFO(os.lstat(dst / "intent-f.json").st_mode)
    assert (dst / "intent-d.json").is_dir()


@pytest.mark.usefixtures("second_fs")
def test_move_across_filesystems_refuses_non_regular(tmp_path: Path) -> None:
    with tempfile.TemporaryDirectory(dir="/dev/shm") as shm:
        target = tmp_path / "t.json"
        target.write_text("t")
        link = Path(shm) / "intent-l.json"
        link.symlink_to(target)
        fifo = Path(shm) / "intent-f.json"
        os.mkfifo(fifo)
        for p in (link, fifo):
            with pytest.raises(_core.NotRegularFile) as ei:
                _core.move_noclobber(str(p), str(tmp_path), "moved")
            assert ei.value.filename == str(p)
        assert link.is_symlink() and fifo.exists()
        assert not (tmp_path / "moved").exists()


def test_move_errors(tmp_path: Path) -> None:
    src = tmp_path / "a.json"
    src.write_text("a")
    with pytest.raises(FileNotFoundError) as ei:
        _core.move_noclobber(str(tmp_path / "missing.json"), str(tmp_path))
    assert ei.value.filename == str(tmp_path / "missing.json")
    with pytest.raises(FileNotFoundError):
        _core.move_noclobber(str(src), str(tmp_path / "no-such-dir"))
    with pytest.raises(ValueError):
        _core.move_noclobber(str(src), str(tmp_path), "a/b")
    with pytest.raises(ValueError):
        _core.move_noclobber(str(src), str(tmp_path), "..")
    assert src.read_text() == "a"


@pytest.mark.usefixtures("second_fs")
def test_move_across_filesystems(tmp_path: Path) -> None:
    import tempfile

    with tempfile.TemporaryDirectory(dir=SHM) as shm:
        src = Path(shm) / "intent-x.json"
        data = os.urandom(300_000)
        src.write_bytes(data)
        os.chmod(src, 0o640)
        os.utime(src, ns=(1_600_000_000_000_000_005, 1_600_000_001_123_456_789))
        assert os.stat(src).st_dev != os.stat(tmp_path).st_dev
        final = _core.move_noclobber(str(src), str(tmp_path))
        assert final == str(tmp_path / "intent-x.json")
        assert not src.exists()
        st = os.stat(final)
        assert Path(final).read_bytes() == data
        assert stat.S_IMODE(st.st_mode) == 0o640
        assert st.st_mtime_ns == 1_600_000_001_123_456_789
        # a second one with the same name gets a conflict name, still across filesystems
        src.write_bytes(b"second")
        final2 = _core.move_noclobber(str(src), str(tmp_path))
        assert re.fullmatch(r"intent-x" + STAMP + r"\.json", os.path.basename(final2))
        assert Path(final2).read_bytes() == b"second"
        leftovers = [n for n in os.listdir(tmp_path) if _core.MOVE_TEMP_MARKER in n]
        assert leftovers == []
        assert sorted(os.listdir(tmp_path)) == sorted(["intent-x.json", os.path.basename(final2)])


@pytest.mark.usefixtures("second_fs")
def test_cross_fs_failure_leaves_no_temp(tmp_path: Path) -> None:
    import tempfile

    with tempfile.TemporaryDirectory(dir=SHM) as shm:
        src = Path(shm) / "intent-y.json"
        src.write_bytes(b"y")
        # a destination that is not a directory: the source stays where it was
        not_dir = tmp_path / "file"
        not_dir.write_text("")
        with pytest.raises(NotADirectoryError):
            _core.move_noclobber(str(src), str(not_dir))
        assert src.read_bytes() == b"y"
        assert os.listdir(tmp_path) == ["file"]


@pytest.mark.timeout(60)
def test_concurrent_moves_into_one_name(tmp_path: Path) -> None:
    dst = tmp_path / "processed"
    dst.mkdir()
    srcs = []
    for i in range(8):
        d = tmp_path / f"src{i}"
        d.mkdir()
        p = d / "intent-same.json"
        p.write_text(f"content {i}")
        srcs.append(p)
    barrier = threading.Barrier(8)
    results: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def mover(p: Path) -> None:
        barrier.wait()
        try:
            r = _core.move_noclobber(str(p), str(dst))
        except BaseException as e:
            with lock:
                errors.append(e)
            return
        with lock:
            results.append(r)

    threads = [threading.Thread(target=mover, args=(p,)) for p in srcs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(results)) == 8
    assert sorted(os.listdir(dst)) == sorted(os.path.basename(r) for r in results)
    assert sorted(Path(r).read_text() for r in results) == sorted(f"content {i}" for i in range(8))


def test_over_long_name_is_shortened(tmp_path: Path) -> None:
    dst = tmp_path / "out"
    dst.mkdir()
    long_name = "intent-" + "x" * 243 + ".json"  # 255 bytes: fits, but not with a suffix
    assert len(long_name.encode()) == 255
    finals = []
    for i in range(3):
        src = tmp_path / "src.json"
        src.write_text(str(i))
        finals.append(_core.move_noclobber(str(src), str(dst), long_name))
    names = [os.path.basename(f) for f in finals]
    assert names[0] == long_name
    assert len(set(names)) == 3
    for n in names:
        assert len(n.encode()) <= _core.NAME_MAX
        assert n.startswith("intent-xxx") and n.endswith(".json")
    assert re.search(r"~[0-9a-f]{16}" + STAMP, names[1]), names[1]
    # multibyte names are cut on a character boundary
    uni = "é" * 125 + ".json"
    assert len(uni.encode()) == 255
    (dst / uni).write_text("taken")
    src = tmp_path / "u.json"
    src.write_text("u")
    b = os.path.basename(_core.move_noclobber(str(src), str(dst), uni))
    assert b != uni and b.startswith("éé") and b.endswith(".json")
    assert len(b.encode()) <= 255  # and str: it decoded as UTF-8, so no character was cut in half


def test_write_atomic(tmp_path: Path) -> None:
    p = tmp_path / "status" / "intent-a.json.status"
    p.parent.mkdir()
    _core.write_atomic(str(p), b'{"a": 1}')
    assert p.read_bytes() == b'{"a": 1}'
    _core.write_atomic(str(p), b"second", fsync=False)
    assert p.read_bytes() == b"second"
    assert os.listdir(p.parent) == ["intent-a.json.status"]
    with pytest.raises(FileNotFoundError) as ei:
        _core.write_atomic(str(tmp_path / "missing" / "x"), b"")
    assert "missing" in str(ei.value)
    # rename over a non-empty directory fails: the temp file must be gone
    d = tmp_path / "adir"
    d.mkdir()
    (d / "keep").write_text("k")
    with pytest.raises(IsADirectoryError):
        _core.write_atomic(str(d), b"data")
    assert sorted(os.listdir(tmp_path)) == ["adir", "status"]


def test_atomic_file_in_pieces(tmp_path: Path) -> None:
    p = tmp_path / "export.json"
    p.write_bytes(b"old")
    with _core.AtomicFile(str(p), 0o600) as f:
        f.write(b'{"a": ')
        assert p.read_bytes() == b"old"  # nothing shows before the commit
        (temp,) = [n for n in os.listdir(tmp_path) if n != "export.json"]
        assert temp.startswith(".export.json" + _core.ATOMIC_TEMP_MARKER) and temp.endswith(_core.TEMP_SUFFIX)
        f.write(b"1}")
        f.commit()
        with pytest.raises(ValueError, match="committed or closed"):
            f.write(b"more")
    assert p.read_bytes() == b'{"a": 1}'
    assert stat.S_IMODE(p.stat().st_mode) == 0o600 & ~_umask()
    assert os.listdir(tmp_path) == ["export.json"]


def test_atomic_file_left_on_an_error_leaves_the_old_file(tmp_path: Path) -> None:
    p = tmp_path / "export.json"
    p.write_bytes(b"old")
    with pytest.raises(RuntimeError), _core.AtomicFile(str(p)) as f:
        f.write(b"half of it")
        raise RuntimeError("the reader failed half-way")
    assert p.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["export.json"]
    f = _core.AtomicFile(str(p))
    f.write(b"dropped")
    del f  # dropped without a commit: the temp file goes too
    assert os.listdir(tmp_path) == ["export.json"]
    with pytest.raises(FileNotFoundError, match="missing"):
        _core.AtomicFile(str(tmp_path / "missing" / "x"))
    d = tmp_path / "adir"
    d.mkdir()
    (d / "keep").write_text("k")
    f = _core.AtomicFile(str(d))
    f.write(b"x")
    with pytest.raises(IsADirectoryError) as ei:
        f.commit(fsync=False)
    assert ei.value.filename2 == str(d)
    assert sorted(os.listdir(tmp_path)) == ["adir", "export.json"]


KILLED_WRITER = """
import os, signal, sys
from conductor_loop import _core
f = _core.AtomicFile(sys.argv[1])
f.write(b"half of an export")
os.kill(os.getpid(), signal.SIGKILL)  # killed before the commit: nothing removes the temp file
"""


def test_what_a_killed_writer_left_is_removed(tmp_path: Path) -> None:
    for name in ("export.json", "e" * 250 + ".json"):  # a long name's temp name is shortened
        target = tmp_path / name
        r = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(target)], check=False)
        assert r.returncode == -signal.SIGKILL
        (left,) = [n for n in os.listdir(tmp_path) if _core.ATOMIC_TEMP_MARKER in n]
        with _core.AtomicFile(str(target)) as live:  # a live writer's temp is kept
            assert _core.remove_dead_temps(str(target)) == 1
            assert left not in os.listdir(tmp_path) and len(os.listdir(tmp_path)) == 1
            assert _core.remove_dead_temps(str(tmp_path / "other.json")) == 0
            live.write(b"{}")
            live.commit()
        assert os.listdir(tmp_path) == [name]
        target.unlink()
    with pytest.raises(FileNotFoundError):
        _core.remove_dead_temps(str(tmp_path / "missing" / "x"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_rename_exchange(tmp_path: Path) -> None:
    a = tmp_path / "pkg"
    b = tmp_path / ".pkg.new"
    a.mkdir()
    (a / "Kptfile").write_text("old")
    b.mkdir()
    (b / "Kptfile").write_text("new")
    _core.rename_exchange(str(b), str(a))
    assert (a / "Kptfile").read_text() == "new"
    assert (b / "Kptfile").read_text() == "old"
    with pytest.raises(FileNotFoundError) as ei:
        _core.rename_exchange(str(a), str(tmp_path / "missing"))
    assert ei.value.filename == str(a)
    assert ei.value.filename2 == str(tmp_path / "missing")


def test_syncfs_and_fsync_dir(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    _core.syncfs(str(tmp_path))
    _core.syncfs(str(tmp_path / "f"))
    _core.fsync_dir(str(tmp_path))
    with pytest.raises(FileNotFoundError):
        _core.syncfs(str(tmp_path / "missing"))
    with pytest.raises(NotADirectoryError):
        _core.fsync_dir(str(tmp_path / "f"))
