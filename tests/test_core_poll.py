"""conductor_loop._core.PollWatcher through Python, on real files of the local filesystem.

The poll watcher lists the directory every interval and settles a name once its (inode, size,
mtime) stayed the same for the debounce. Timeouts are generous; nothing asserts how fast it is.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import watchers
from conductor_loop import _core
from watchers import collect, readable

INTERVAL_MS = 50
DEBOUNCE_MS = 200


def wait_for(cond: Callable[[], object], seconds: float = 5.0) -> bool:
    """:func:`watchers.wait_for` with this file's default patience."""
    return watchers.wait_for(cond, seconds)


@pytest.fixture
def poller(handoff: Path) -> Iterator[_core.PollWatcher]:
    w = _core.PollWatcher(str(handoff), DEBOUNCE_MS, INTERVAL_MS)
    yield w
    w.close()


@pytest.mark.timeout(30)
def test_new_file_settles_after_debounce(handoff: Path, poller: _core.PollWatcher) -> None:
    p = handoff / "intent-a.json"
    p.write_text("{}")
    b = poller.next_batch(5000)
    assert b.paths == [str(p)]
    assert not b.rescan
    assert b.events >= 1
    assert poller.pending() == []
    assert collect(poller, 0.5) == ([], False)  # unchanged: emitted once


@pytest.mark.timeout(30)
def test_waits_for_the_debounce(handoff: Path) -> None:
    with _core.PollWatcher(handoff, 1500, INTERVAL_MS) as w:
        p = handoff / "intent-d.json"
        p.write_text("{}")
        assert wait_for(lambda: w.pending() == [str(p)])
        assert w.take_batch().paths == []  # seen, not settled yet
        assert w.next_batch(10_000).paths == [str(p)]


@pytest.mark.timeout(30)
def test_slow_writer_is_never_emitted_before_it_stops(handoff: Path) -> None:
    w = _core.PollWatcher(str(handoff), 700, INTERVAL_MS)
    p = handoff / "intent-slow.json"
    stopped: list[float] = []

    def write() -> None:
        with open(p, "a") as f:
            for _ in range(10):
                f.write("chunk")
                f.flush()
                time.sleep(0.1)
        stopped.append(time.monotonic())

    try:
        t = threading.Thread(target=write)
        t.start()
        early: list[str] = []
        while t.is_alive():
            early.extend(w.next_batch(50).paths)
        t.join()
        assert early == []  # growing all along: never handed out
        assert str(p) in w.pending()
        assert w.next_batch(10_000).paths == [str(p)]
    finally:
        w.close()


@pytest.mark.timeout(30)
def test_rewrite_after_settle_is_emitted_again(handoff: Path, poller: _core.PollWatcher) -> None:
    p = handoff / "intent-re.json"
    p.write_text("1")
    assert poller.next_batch(5000).paths == [str(p)]
    time.sleep(0.05)
    p.write_text("22")  # new size and mtime
    assert poller.next_batch(5000).paths == [str(p)]
    os.utime(p, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))  # same size, other mtime
    assert poller.next_batch(5000).paths == [str(p)]


@pytest.mark.timeout(30)
def test_rename_into_place(handoff: Path) -> None:
    with _core.PollWatcher(handoff, 1000, INTERVAL_MS) as w:  # a long debounce: the temp name never settles
        tmp = handoff / ".intent-r.json.tmp"
        tmp.write_text("{}")
        os.rename(tmp, handoff / "intent-r.json")
        paths, _ = collect(w, 2.5)
        assert paths == [str(handoff / "intent-r.json")]


@pytest.mark.timeout(30)
def test_replaced_by_rename_is_emitted(handoff: Path, poller: _core.PollWatcher) -> None:
    p = handoff / "intent-x.json"
    p.write_text("old")
    assert poller.next_batch(5000).paths == [str(p)]
    (handoff / ".new").write_text("new!")
    os.rename(handoff / ".new", p)  # a new inode under the same name
    paths, _ = collect(poller, 1.0)
    assert paths == [str(p)]


@pytest.mark.timeout(30)
def test_deleted_before_settling_not_emitted(handoff: Path) -> None:
    with _core.PollWatcher(handoff, 1500, INTERVAL_MS) as w:
        p = handoff / "intent-gone.json"
        p.write_text("x")
        assert wait_for(lambda: w.pending() == [str(p)])
        p.unlink()
        assert collect(w, 2.0) == ([], False)
        assert w.pending() == []


@pytest.mark.timeout(30)
def test_every_name_but_directories(handoff: Path, poller: _core.PollWatcher) -> None:
    names = [".hidden", "intent-a.json.tmp", "notes.txt", "dangling"]
    for n in names[:3]:
        (handoff / n).write_text("x")
    (handoff / "dangling").symlink_to(handoff / "nowhere")  # lstat: a link is a name like any other
    (handoff / "sub").mkdir()
    (handoff / "sub" / "deep.json").write_text("x")
    paths, _ = collect(poller, 1.0)
    assert sorted(paths) == sorted(str(handoff / n) for n in names)


@pytest.mark.timeout(30)
def test_existing_files_are_the_baseline(handoff: Path) -> None:
    (handoff / "intent-old.json").write_text("x")
    with _core.PollWatcher(str(handoff), 50, INTERVAL_MS) as w:
        assert collect(w, 0.5) == ([], False)
        (handoff / "intent-old.json").write_text("changed")
        assert w.next_batch(5000).paths == [str(handoff / "intent-old.json")]


@pytest.mark.timeout(30)
def test_directory_removed_and_recreated(handoff: Path, poller: _core.PollWatcher) -> None:
    (handoff / "intent-a.json").write_text("x")
    assert poller.next_batch(5000).paths == [str(handoff / "intent-a.json")]
    (handoff / "intent-a.json").unlink()
    handoff.rmdir()
    assert poller.next_batch(5000).rescan
    assert not poller.is_alive()
    err = poller.last_error()
    assert err is not None and str(handoff) in err
    handoff.mkdir()
    assert wait_for(poller.is_alive)
    assert poller.next_batch(5000).rescan
    (handoff / "intent-new.json").write_text("n")
    assert poller.next_batch(5000).paths == [str(handoff / "intent-new.json")]


@pytest.mark.timeout(30)
def test_directory_replaced_by_rename(handoff: Path, poller: _core.PollWatcher) -> None:
    os.rename(handoff, handoff.with_name("handoff.old"))
    handoff.mkdir()
    (handoff / "intent-in-new.json").write_text("x")  # part of the new baseline: found by the rescan
    paths, rescan = collect(poller, 1.0)
    assert rescan
    assert poller.is_alive()
    assert str(handoff.with_name("handoff.old") / "intent-in-new.json") not in paths
    (handoff / "intent-n.json").write_text("n")
    paths, _ = collect(poller, 1.0)
    assert str(handoff / "intent-n.json") in paths


@pytest.mark.timeout(30)
def test_fileno_becomes_readable(handoff: Path, poller: _core.PollWatcher) -> None:
    assert not readable(poller, 0.3)
    (handoff / "intent-f.json").write_text("f")
    assert readable(poller, 5.0)
    b = poller.take_batch()
    assert b.paths == [str(handoff / "intent-f.json")]
    assert not readable(poller)
    handoff.joinpath("intent-f.json").unlink()
    handoff.rmdir()
    assert readable(poller, 5.0)  # rescan and liveness change
    b = poller.take_batch()
    assert b.rescan and not poller.is_alive()
    assert not readable(poller)
    handoff.mkdir()
    assert readable(poller, 5.0)
    assert poller.is_alive()


@pytest.mark.timeout(30)
def test_api_like_watcher(handoff: Path) -> None:
    w = _core.PollWatcher(str(handoff), 100, INTERVAL_MS)
    assert isinstance(w, _core.BaseWatcher)
    assert isinstance(_core.Watcher(str(handoff), 10), _core.BaseWatcher)
    assert "PollWatcher(" in repr(w) and "alive=True" in repr(w)
    w.set_debounce(1500)
    (handoff / "intent-s.json").write_text("s")
    assert w.next_batch(600).paths == []
    w.set_debounce(0)
    assert w.next_batch(5000).paths == [str(handoff / "intent-s.json")]
    assert w.last_error() is None
    w.close()
    w.close()
    assert not w.is_alive()
    with pytest.raises(ValueError):
        w.next_batch(10)
    with pytest.raises(ValueError):
        w.take_batch()
    with pytest.raises(FileNotFoundError) as ei:
        _core.PollWatcher(str(handoff / "missing"), 10, 10)
    assert ei.value.filename == str(handoff / "missing")
    (handoff / "file").write_text("")
    with pytest.raises(NotADirectoryError):
        _core.PollWatcher(str(handoff / "file"), 10, 10)
    with pytest.raises(ValueError):
        _core.PollWatcher(str(handoff), 10, 0)


def test_fs_type(tmp_path: Path) -> None:
    assert _core.fs_type("/proc") == "proc"
    assert _core.is_network_fs("/proc") is False
    local = _core.fs_type(tmp_path)
    assert local and (local.isalnum() or local.startswith("0x"))
    assert _core.is_network_fs(tmp_path) is (local in {"nfs", "cifs", "smb2", "fuse"})
    with pytest.raises(FileNotFoundError) as ei:
        _core.fs_type(tmp_path / "missing")
    assert ei.value.filename == str(tmp_path / "missing")
    with pytest.raises(FileNotFoundError):
        _core.is_network_fs(tmp_path / "missing")
