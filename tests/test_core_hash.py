"""conductor_loop._core hashing, through Python: equal to hashlib, refuses non-regular files."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from conductor_loop import _core


def _hashlib(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


@pytest.mark.parametrize("size", [0, 1, 1024 * 1024, 1024 * 1024 + 7])
def test_matches_hashlib(tmp_path: Path, size: int) -> None:
    p = tmp_path / "f.bin"
    p.write_bytes(os.urandom(size))
    digest, n = _core.sha256_file(str(p))
    assert (digest, n) == (_hashlib(p), size)
    rd, data = _core.sha256_read(str(p))
    assert rd == digest
    assert data == p.read_bytes()
    assert isinstance(data, bytes)


def test_accepts_pathlike(tmp_path: Path) -> None:
    p = tmp_path / "x"
    p.write_bytes(b"abc")
    assert _core.sha256_file(p)[0] == hashlib.sha256(b"abc").hexdigest()  # type: ignore[arg-type]


@pytest.mark.timeout(60)
def test_multi_gib_sparse(tmp_path: Path) -> None:
    size = 3 * 1024**3 + 5
    p = tmp_path / "sparse"
    with open(p, "wb") as f:
        f.truncate(size)
        f.seek(size - 5)
        f.write(b"tail!")
    h = hashlib.sha256()
    zeros = bytes(1024 * 1024)
    remaining = size - 5
    while remaining:
        n = min(remaining, len(zeros))
        h.update(zeros[:n])
        remaining -= n
    h.update(b"tail!")
    assert _core.sha256_file(str(p)) == (h.hexdigest(), size)


@pytest.mark.timeout(10)
def test_fifo_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "intent-fifo.json"
    os.mkfifo(fifo)
    for fn in (_core.sha256_file, _core.sha256_read):
        with pytest.raises(_core.NotRegularFile) as ei:
            fn(str(fifo))
        assert ei.value.filename == str(fifo)
        assert isinstance(ei.value, OSError)


@pytest.mark.timeout(10)
def test_symlink_dir_socket_refused(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"secret")
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(_core.NotRegularFile) as ei:
        _core.sha256_file(str(link))
    assert ei.value.errno == 40  # ELOOP
    assert str(link) in str(ei.value)
    with pytest.raises(_core.NotRegularFile):
        _core.sha256_read(str(link))
    with pytest.raises(_core.NotRegularFile) as ei2:
        _core.sha256_file(str(tmp_path))
    assert ei2.value.errno == 21  # EISDIR
    sock_path = tmp_path / "s.sock"
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(sock_path))
        with pytest.raises(_core.NotRegularFile):
            _core.sha256_file(str(sock_path))
    finally:
        s.close()


def test_file_too_large(tmp_path: Path) -> None:
    p = tmp_path / "big"
    p.write_bytes(b"x" * 100)
    with pytest.raises(_core.FileTooLarge) as ei:
        _core.sha256_file(str(p), max_size=99)
    assert ei.value.errno == 27  # EFBIG
    assert ei.value.filename == str(p)
    with pytest.raises(_core.FileTooLarge):
        _core.sha256_read(str(p), 10)
    assert _core.sha256_read(str(p), 100)[1] == b"x" * 100
    assert _core.sha256_file(str(p), max_size=100)[1] == 100


def test_missing_file_is_filenotfound(tmp_path: Path) -> None:
    p = tmp_path / "nope"
    with pytest.raises(FileNotFoundError) as ei:
        _core.sha256_file(str(p))
    assert ei.value.errno == 2
    assert ei.value.filename == str(p)
    assert str(p) in str(ei.value)


def test_sha256_files_mixed(tmp_path: Path) -> None:
    paths: list[str] = []
    expect: list[object] = []
    for i in range(300):
        p = tmp_path / f"f{i}"
        kind = i % 5
        if kind == 1:
            expect.append(FileNotFoundError)
        elif kind == 2:
            p.mkdir()
            expect.append(_core.NotRegularFile)
        elif kind == 3:
            p.symlink_to(tmp_path / "f0")
            expect.append(_core.NotRegularFile)
        else:
            data = f"content-{i}".encode() * i
            p.write_bytes(data)
            expect.append((hashlib.sha256(data).hexdigest(), len(data)))
        paths.append(str(p))
    for threads in (0, 1, 2, 7):
        got = _core.sha256_files(paths, threads=threads)
        assert len(got) == len(paths)
        for path, g, e in zip(paths, got, expect):
            if isinstance(e, type):
                assert isinstance(g, e), (path, g)
                assert isinstance(g, OSError) and g.filename == path
            else:
                assert g == e
    assert _core.sha256_files([]) == []


def test_releases_gil_in_threads(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(os.urandom(4 * 1024 * 1024))
    want = _hashlib(p)
    results: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        d, _ = _core.sha256_file(str(p))
        with lock:
            results.append(d)

    ts = [threading.Thread(target=work) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert results == [want] * 4


def test_version() -> None:
    assert isinstance(_core.__version__, str) and _core.__version__.count(".") == 2


def test_errors_pickle_across_processes(tmp_path: Path) -> None:
    """Workers send errors back to the supervisor: the classes must survive pickling."""
    import pickle

    big = tmp_path / "big"
    big.write_bytes(b"12345")
    errors: list[OSError] = []
    calls: list[Callable[[], object]] = [
        lambda: _core.sha256_file(str(tmp_path)),
        lambda: _core.sha256_file(str(big), 1),
        lambda: _core.sha256_file(str(tmp_path / "missing")),
    ]
    for call in calls:
        with pytest.raises(OSError) as ei:
            call()
        errors.append(ei.value)
    for e in errors:
        e2 = pickle.loads(pickle.dumps(e))
        assert type(e2) is type(e)
        assert (e2.errno, e2.filename, str(e2)) == (e.errno, e.filename, str(e))
    assert [type(e) for e in errors] == [_core.NotRegularFile, _core.FileTooLarge, FileNotFoundError]
