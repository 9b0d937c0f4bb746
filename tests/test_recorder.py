"""The recorder thread on real files and a real SQLite state: record, then move; answers as data."""

from __future__ import annotations

import contextlib
import json
import os
import select
import time
from collections.abc import Iterator
from pathlib import Path

from conductor_loop.layout import Layout
from conductor_loop.recorder import Recorder
from conductor_loop.records import Filing, GroupRecorded, Outcome, WorkResult
from conductor_loop.state import StateStore


def result(layout: Layout, name: str, outcome: Outcome = Outcome.SUCCESS) -> WorkResult:
    path = os.path.join(layout.root, name)
    Path(path).write_text("{}")
    st = os.lstat(path)
    key = (st.st_ino, st.st_size, st.st_mtime_ns)
    r = WorkResult(path, outcome, "done", 1, 1, sha256="a" * 64, size=2, stat_key=key)
    r.planned = layout.planned(path, outcome)
    r.doc = {"intent_file": name, "status": outcome.value, "moved_to": r.planned}
    return r


def answers(rec: Recorder) -> list[GroupRecorded]:
    got: list[GroupRecorded] = []
    while not got:
        assert select.select([rec.fileno()], [], [], 30)[0], "no answer from the recorder"
        got = rec.answers()
    return got


@contextlib.contextmanager
def running(tmp_path: Path) -> Iterator[tuple[Layout, Recorder]]:
    """A made handoff and a started recorder (stopped and closed after)."""
    layout = Layout(str(tmp_path / "handoff"))
    layout.make_dirs()
    out = tmp_path / "out"
    out.mkdir()
    rec = Recorder(layout, str(out))
    rec.start_and_wait()
    try:
        yield layout, rec
    finally:
        rec.stop()
        rec.close()


def test_record_then_move_and_answer_as_data(tmp_path: Path) -> None:
    with running(tmp_path) as (layout, rec):
        ok = result(layout, "intent-ok.json")
        bad = result(layout, "intent-bad.json", Outcome.FAILED)
        bad.detail = "why it failed\n"
        changed = result(layout, "intent-changed.json")
        rewritten = result(layout, "intent-rewritten.json")
        Path(rewritten.path).write_text('{"new": 1}')
        gone = result(layout, "intent-gone.json")
        os.unlink(gone.path)
        Path(layout.processed, "intent-ok.json").write_text("in the way")
        rec.submit([ok, bad, changed, rewritten, gone], changed=[changed.path])
        assert rec.pending == 1
        (answer,) = answers(rec)
        assert rec.pending == 0 and answer.error is None
        kinds = {os.path.basename(f.result.path): f.kind for f in answer.filed}
        assert kinds == {"intent-ok.json": Filing.FILED, "intent-bad.json": Filing.FILED,
                         "intent-changed.json": Filing.CHANGED, "intent-rewritten.json": Filing.CHANGED,
                         "intent-gone.json": Filing.GONE}
        moved = next(f.moved_to for f in answer.filed if f.result is ok)
        assert moved is not None and moved != ok.planned  # conflict suffix: the status says where it went
        assert json.loads(Path(layout.status_path("intent-ok.json")).read_text())["moved_to"] == moved
        assert Path(layout.error_log_path("intent-bad.json")).read_text() == "why it failed\n"
        assert Path(changed.path).exists() and Path(rewritten.path).exists()
    with StateStore(layout.root, readonly=True) as state:
        row = state.get(ok.path)
        assert row is not None and row.status == "success" and row.filed_at is not None
        assert state.counts()["failed"] == 2  # the failure, and the intent that vanished (README, "Status files")
        vanished = state.get(gone.path)
        assert vanished is not None and vanished.status == "failed" and vanished.moved_to is None
    doc = json.loads(Path(layout.status_path("intent-gone.json")).read_text())
    assert doc["status"] == "failed" and doc["moved_to"] is None
    assert doc["message"].startswith("intent vanished while porch ran")


def test_same_bytes_are_filed_new_bytes_fail_on_their_last_run(tmp_path: Path) -> None:
    import hashlib
    import time

    layout = Layout(str(tmp_path / "handoff"))
    layout.make_dirs()
    rec = Recorder(layout, str(tmp_path))
    rec.start_and_wait()
    try:
        touched, rewritten, last = (result(layout, n) for n in ("intent-t.json", "intent-r.json", "intent-l.json"))
        for r in (touched, rewritten, last):
            r.sha256 = hashlib.sha256(b"{}").hexdigest()
        later = time.time() + 5
        os.utime(touched.path, (later, later))
        Path(rewritten.path).write_text("{}")
        Path(last.path).write_text('{"new": 1}')
        rec.submit([touched, rewritten, last], changed=[rewritten.path], last_runs={last.path: 3})
        (answer,) = answers(rec)
    finally:
        rec.stop()
        rec.close()
    kinds = {os.path.basename(f.result.path): (f.kind, f.result.outcome) for f in answer.filed}
    assert kinds == {"intent-t.json": (Filing.FILED, Outcome.SUCCESS), "intent-r.json": (Filing.FILED, Outcome.SUCCESS),
                     "intent-l.json": (Filing.FILED, Outcome.FAILED)}
    assert Path(layout.failed, "intent-l.json").read_text() == '{"new": 1}'
    doc = json.loads(Path(layout.status_path("intent-l.json")).read_text())
    assert doc["status"] == "failed" and "on 3 runs in a row" in doc["message"]
    assert doc["sha256"] == hashlib.sha256(b'{"new": 1}').hexdigest()


def _meta(layout: Layout, key: str) -> object:
    with StateStore(layout.root, readonly=True) as state:
        return state.get_meta(key)


def test_published_meta_is_written_by_the_recorder_idle_or_with_the_next_group(tmp_path: Path) -> None:
    with running(tmp_path) as (layout, rec):
        rec.publish("live", {"queue": 3})  # nothing in hand: written at once, on its own
        deadline = time.monotonic() + 30
        while _meta(layout, "live") != {"queue": 3}:
            assert time.monotonic() < deadline, "the idle recorder never wrote the published value"
            time.sleep(0.01)
        ok = result(layout, "intent-ok.json")
        rec.submit([ok])
        rec.publish("live", {"queue": 0})  # a group in hand: it rides along with that group's commit
        (answer,) = answers(rec)
        assert answer.error is None
        assert _meta(layout, "live") == {"queue": 0}
