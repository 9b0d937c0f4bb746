"""conductor_loop._core.Watcher through Python: settle, coalesce, drop, rescan, signals, threads, fileno.

The watcher is dumb about names (every name but a sub-directory is emitted); the caller filters.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import pytest

import watchers
from conductor_loop import _core
from needs import missing
from watchers import collect, readable

QUEUE_KNOB = Path("/proc/sys/fs/inotify/max_queued_events")


def wait_for(cond: Callable[[], object], seconds: float = 3.0) -> bool:
    """:func:`watchers.wait_for` with this file's default patience."""
    return watchers.wait_for(cond, seconds)


@pytest.fixture
def watcher(handoff: Path) -> Iterator[_core.Watcher]:
    w = _core.Watcher(str(handoff), 100)
    yield w
    w.close()


@pytest.mark.timeout(20)
def test_burst_of_writes_emits_once(handoff: Path, watcher: _core.Watcher) -> None:
    p = handoff / "intent-a.json"
    for i in range(50):
        with open(p, "w") as f:
            f.write(f"{i}")
    b = watcher.next_batch(5000)
    assert b.paths == [str(p)]
    assert not b.rescan
    assert b.events >= 50  # at least one close-write per write (the kernel merges repeats)
    assert len(b) == 1
    assert collect(watcher, 0.5) == ([], False)


@pytest.mark.timeout(20)
def test_deleted_before_settling_not_emitted(handoff: Path, watcher: _core.Watcher) -> None:
    p = handoff / "intent-gone.json"
    p.write_text("x")
    p.unlink()
    q = handoff / "intent-away.json"
    q.write_text("y")
    (handoff / "parked").mkdir()
    q.rename(handoff / "parked" / "intent-away.json")
    assert collect(watcher, 0.6) == ([], False)
    assert watcher.pending() == []


@pytest.mark.timeout(20)
def test_rename_into_place(handoff: Path, watcher: _core.Watcher) -> None:
    tmp = handoff / ".intent-r.json.tmp"
    tmp.write_text("{}")
    os.rename(tmp, handoff / "intent-r.json")
    b = watcher.next_batch(5000)
    assert b.paths == [str(handoff / "intent-r.json")]


@pytest.mark.timeout(20)
def test_every_name_emitted_caller_filters(handoff: Path, watcher: _core.Watcher) -> None:
    names = [".intent-a.json", "intent-a.json.tmp", "intent-a.json.partial", "intent-a.json~",
             "notes.txt", "xintent-a.json", "intent-ok.json", "sp ace\u00e9.json"]
    for name in names:
        (handoff / name).write_text("x")
        time.sleep(0.01)
    (handoff / "intent-dir.json").mkdir()  # sub-directories are never tracked
    paths, rescan = collect(watcher, 0.8)
    assert paths == [str(handoff / n) for n in names]
    assert not rescan


@pytest.mark.timeout(20)
def test_open_writer_with_pauses_waits_for_close(handoff: Path, watcher: _core.Watcher) -> None:
    p = handoff / "intent-slow.json"
    with open(p, "w") as f:
        for _ in range(4):
            f.write("chunk")
            f.flush()
            b = watcher.next_batch(250)  # longer than the 100 ms debounce
            assert b.paths == []
            assert watcher.pending() == [str(p)]
    b = watcher.next_batch(3000)
    assert b.paths == [str(p)]
    assert watcher.pending() == []


@pytest.mark.timeout(20)
def test_rewrite_after_close_rearms(handoff: Path, watcher: _core.Watcher) -> None:
    p = handoff / "intent-re.json"
    p.write_text("1")
    with open(p, "a") as f:  # reopened and written before it settled: must wait again
        f.write("2")
        f.flush()
        time.sleep(0.3)
        assert watcher.next_batch(0).paths == []
    assert watcher.next_batch(3000).paths == [str(p)]


@pytest.mark.timeout(20)
def test_oldest_ready_first(handoff: Path, watcher: _core.Watcher) -> None:
    names = [f"intent-{i}.json" for i in range(5)]
    for n in names:
        (handoff / n).write_text(n)
        time.sleep(0.01)
    paths, _ = collect(watcher, 0.8)
    assert paths == [str(handoff / n) for n in names]


@pytest.mark.timeout(30)
def test_overflow_sets_rescan(handoff: Path) -> None:
    old: str | None = None
    if os.access(QUEUE_KNOB, os.W_OK):
        old = QUEUE_KNOB.read_text()
        try:
            QUEUE_KNOB.write_text("1\n")
            w = _core.Watcher(str(handoff), 100)
        finally:
            QUEUE_KNOB.write_text(old)
        count = 300
    else:
        w = _core.Watcher(str(handoff), 100)
        count = 20000
    try:
        for i in range(count):
            (handoff / f"intent-{i}.json").write_bytes(b"x")
        _, rescan = collect(w, 1.5)
        if not rescan and old is None:
            missing("could not force an inotify overflow without lowering max_queued_events (run as root)")
        assert rescan
    finally:
        w.close()


@pytest.mark.timeout(30)
def test_directory_removed_and_recreated(handoff: Path, watcher: _core.Watcher) -> None:
    (handoff / "intent-old.json").write_text("x")
    assert watcher.next_batch(3000).paths == [str(handoff / "intent-old.json")]
    (handoff / "intent-old.json").unlink()
    handoff.rmdir()
    assert watcher.next_batch(3000).rescan
    assert wait_for(lambda: not watcher.is_alive())
    assert watcher.last_error() is not None
    handoff.mkdir()
    assert wait_for(watcher.is_alive)
    assert watcher.next_batch(3000).rescan
    (handoff / "intent-new.json").write_text("n")
    assert watcher.next_batch(3000).paths == [str(handoff / "intent-new.json")]


@pytest.mark.timeout(30)
def test_directory_replaced_by_rename(handoff: Path, watcher: _core.Watcher) -> None:
    os.rename(handoff, handoff.with_name("handoff.old"))
    handoff.mkdir()
    assert watcher.next_batch(3000).rescan
    # the watch is re-added on the new directory at once, or within 100 ms if the thread saw the
    # move before the mkdir (then is_alive() is briefly False and another rescan follows)
    assert wait_for(watcher.is_alive)
    collect(watcher, 0.3)
    (handoff.with_name("handoff.old") / "intent-o.json").write_text("old dir")
    (handoff / "intent-n.json").write_text("new dir")
    paths, _ = collect(watcher, 0.8)
    assert paths == [str(handoff / "intent-n.json")]


class _Alarm(Exception):
    pass


@pytest.mark.timeout(20)
def test_signal_interrupts_next_batch(watcher: _core.Watcher) -> None:
    def raise_alarm(signum: int, frame: FrameType | None) -> None:
        raise _Alarm

    old = signal.signal(signal.SIGALRM, raise_alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        t0 = time.monotonic()
        with pytest.raises(_Alarm):
            watcher.next_batch(10_000)
        assert time.monotonic() - t0 < 5.0  # far below the 10 s the call would block
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.timeout(20)
def test_keyboard_interrupt_from_thread(watcher: _core.Watcher) -> None:
    fired: list[float] = []

    def kill() -> None:
        time.sleep(0.3)
        fired.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)

    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    t = threading.Thread(target=kill)
    try:
        t.start()
        with pytest.raises(KeyboardInterrupt):
            watcher.next_batch(10_000)
        assert time.monotonic() - fired[0] < 5.0  # far below the 10 s the call would block
    finally:
        t.join()
        signal.signal(signal.SIGINT, old)


@pytest.mark.timeout(20)
def test_handler_that_returns_keeps_waiting(handoff: Path, watcher: _core.Watcher) -> None:
    ran: list[float] = []

    def note(signum: int, frame: FrameType | None) -> None:
        ran.append(time.monotonic())

    old = signal.signal(signal.SIGALRM, note)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        t0 = time.monotonic()
        b = watcher.next_batch(800)
        assert b.paths == [] and ran and ran[0] - t0 < 1.0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.timeout(20)
def test_close_idempotent_and_context_manager(handoff: Path) -> None:
    with _core.Watcher(str(handoff), 50) as w:
        assert w.is_alive()
        (handoff / "intent-c.json").write_text("c")
        assert w.next_batch(3000).paths == [str(handoff / "intent-c.json")]
    assert not w.is_alive()
    w.close()
    w.close()
    with pytest.raises(ValueError):
        w.next_batch(10)


@pytest.mark.timeout(20)
def test_usable_from_thread_and_close_wakes_waiter(handoff: Path) -> None:
    w = _core.Watcher(str(handoff), 50)
    got: list[list[str]] = []

    def consume() -> None:
        got.append(w.next_batch(5000).paths)
        got.append(w.next_batch(10_000).paths)  # woken by close() from the main thread

    t = threading.Thread(target=consume)
    t.start()
    time.sleep(0.1)
    (handoff / "intent-t.json").write_text("t")
    assert wait_for(lambda: len(got) == 1)
    t0 = time.monotonic()
    w.close()
    t.join(5)
    assert not t.is_alive()
    assert time.monotonic() - t0 < 5.0  # far below the 10 s the call would block
    assert got == [[str(handoff / "intent-t.json")], []]


@pytest.mark.timeout(20)
def test_set_debounce_and_errors(handoff: Path, watcher: _core.Watcher) -> None:
    watcher.set_debounce(600)
    (handoff / "intent-d.json").write_text("d")
    assert watcher.next_batch(300).paths == []
    assert watcher.pending() == [str(handoff / "intent-d.json")]
    assert watcher.next_batch(3000).paths == [str(handoff / "intent-d.json")]
    with pytest.raises(FileNotFoundError) as ei:
        _core.Watcher(str(handoff / "missing"), 10)
    assert ei.value.filename == str(handoff / "missing")
    (handoff / "file").write_text("")
    with pytest.raises(NotADirectoryError):
        _core.Watcher(str(handoff / "file"), 10)
    with pytest.raises(TypeError):
        _core.Watcher(str(handoff))  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        _core.Watcher(str(handoff), 10, debounce_ms=10)  # type: ignore[call-overload]


@pytest.mark.timeout(20)
def test_constructor_forms(handoff: Path) -> None:
    """``Watcher(dir, debounce_ms)``, the keyword form, and the deprecated form (a warning; patterns ignored)."""
    with pytest.warns(DeprecationWarning, match="patterns are ignored"):
        old = _core.Watcher(str(handoff), ["intent-*.json"], 50)
    for w in (_core.Watcher(str(handoff), 50), _core.Watcher(handoff, debounce_ms=50), old):
        with w:
            (handoff / "notes.txt").write_text("n")
            assert w.next_batch(3000).paths == [str(handoff / "notes.txt")]
            (handoff / "notes.txt").unlink()


@pytest.mark.timeout(20)
def test_fileno_readable_only_while_a_batch_is_ready(handoff: Path, watcher: _core.Watcher) -> None:
    fd = watcher.fileno()
    assert fd == watcher.fileno() and fd > 2
    assert os.get_inheritable(fd) is False
    assert os.get_blocking(fd) is False
    assert not readable(watcher)
    empty = watcher.take_batch()  # never blocks
    assert (empty.paths, empty.rescan) == ([], False)
    (handoff / "intent-f.json").write_text("f")
    assert readable(watcher, 5.0)
    assert readable(watcher)  # stays readable until taken
    b = watcher.take_batch()
    assert b.paths == [str(handoff / "intent-f.json")] and b.events >= 1
    assert not readable(watcher)
    assert watcher.take_batch().paths == []
    # next_batch takes through the same state and rearms too
    (handoff / "intent-g.json").write_text("g")
    assert readable(watcher, 5.0)
    assert watcher.next_batch(0).paths == [str(handoff / "intent-g.json")]
    assert not readable(watcher)


@pytest.mark.timeout(20)
def test_fileno_in_one_wait_with_other_descriptors(handoff: Path, watcher: _core.Watcher) -> None:
    """The supervisor's one wait: the watcher beside a pipe in ``multiprocessing.connection.wait``."""
    from multiprocessing.connection import wait

    r, w = os.pipe()
    try:
        fds = [watcher.fileno(), r]
        assert wait(fds, timeout=0.2) == []
        os.write(w, b"x")
        assert wait(fds, timeout=5) == [r]
        os.read(r, 1)
        (handoff / "intent-w.json").write_text("w")
        assert wait(fds, timeout=5) == [watcher.fileno()]
        assert watcher.take_batch().paths == [str(handoff / "intent-w.json")]
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.timeout(30)
def test_fileno_readable_on_liveness_change(handoff: Path, watcher: _core.Watcher) -> None:
    handoff.rmdir()
    assert readable(watcher, 5.0)
    assert watcher.take_batch().rescan
    assert wait_for(lambda: not watcher.is_alive())
    # losing the watch is a change the caller sees through the descriptor, then it rearms
    if readable(watcher):
        watcher.take_batch()
    assert not readable(watcher)
    handoff.mkdir()
    assert readable(watcher, 5.0)
    assert watcher.is_alive()
    assert watcher.take_batch().rescan
    assert not readable(watcher)
    watcher.close()
    assert readable(watcher)  # closing is a liveness change too; the descriptor stays valid
    with pytest.raises(ValueError):
        watcher.take_batch()
