"""Start-up recovery on real files and a real SQLite state (no loop, no processes)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from conductor_loop import _core
from conductor_loop.layout import Layout
from conductor_loop.recovery import Recovery, finish_interrupted_moves, own_copy, remove_stale_temps
from conductor_loop.state import Outcome, StateStore
from conftest import intent_body


def make_layout(tmp_path: Path) -> Layout:
    layout = Layout(str(tmp_path / "handoff"))
    layout.make_dirs()
    return layout


def intent(layout: Layout, name: str) -> tuple[str, str]:
    path = os.path.join(layout.root, name)
    data = json.dumps(intent_body()).encode()
    Path(path).write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def status(layout: Layout, name: str, sha: str, outcome: str = "success") -> None:
    Path(layout.status_path(name)).write_text(json.dumps({"intent_file": name, "status": outcome, "sha256": sha}))


def test_interrupted_cross_fs_moves_are_finished_or_dropped(tmp_path: Path) -> None:
    layout = make_layout(tmp_path)
    intent(layout, "intent-whole.json")
    temp_whole = Path(layout.processed, f".intent-whole.json{_core.MOVE_TEMP_MARKER}1-abc.tmp")
    temp_gone = Path(layout.failed, f".intent-gone.json{_core.MOVE_TEMP_MARKER}1-abc.tmp")
    temp_whole.write_text("{}")
    temp_gone.write_text("{}")
    notes = finish_interrupted_moves(layout, layout.processed) + finish_interrupted_moves(layout, layout.failed)
    assert not temp_whole.exists()  # the source is whole: dropped, the move is redone later
    assert Path(layout.failed, "intent-gone.json").exists()  # the source is gone: renamed into place
    assert sorted(n.fields["intent"] for n in notes) == ["intent-gone.json", "intent-whole.json"]


def test_stale_atomic_temps_are_removed_final_names_kept(tmp_path: Path) -> None:
    layout = make_layout(tmp_path)
    stale = Path(layout.status, f".intent-a.json.status{_core.ATOMIC_TEMP_MARKER}1-x.tmp")
    stale.write_text("{}")
    keep = Path(layout.status, "intent-a.json.status")
    keep.write_text("{}")
    assert remove_stale_temps(layout) == {"intent-a.json.status"}  # what is there, for step 3
    assert not stale.exists() and keep.exists()


def test_status_file_written_before_a_crash_files_the_intent_without_running_it(tmp_path: Path) -> None:
    layout = make_layout(tmp_path)
    done, sha = intent(layout, "intent-done.json")
    status(layout, "intent-done.json", sha)
    changed, _ = intent(layout, "intent-changed.json")
    status(layout, "intent-changed.json", "0" * 64)  # another content: runs again
    with StateStore(layout.root) as state:
        rec = Recovery(layout, state, 1 << 20)
        assert rec.run([done, changed]) == 1
        row = state.get(done)
        assert row is not None and row.status == "success" and row.filed_at is not None
    assert Path(layout.processed, "intent-done.json").exists()
    assert Path(changed).exists()
    assert [n.event for n in rec.notes] == ["intent.recovered"]


def test_a_status_file_under_a_shortened_name_is_found(tmp_path: Path) -> None:
    """Step 3 reads the status files step 2 saw; a long intent name's status file has a shortened name."""
    layout = make_layout(tmp_path)
    name = "intent-" + "x" * 240 + ".json"
    done, sha = intent(layout, name)
    status(layout, name, sha)
    assert len(os.path.basename(layout.status_path(name))) <= 255
    others = [intent(layout, f"intent-new-{i}.json")[0] for i in range(3)]  # no status file: not opened
    with StateStore(layout.root) as state:
        assert Recovery(layout, state, 1 << 20).run([done, *others]) == 1
    assert Path(layout.processed, name).exists()
    assert all(Path(p).exists() for p in others)


def test_a_status_of_an_earlier_filed_run_is_a_re_drop_not_a_recorded_outcome(tmp_path: Path) -> None:
    layout = make_layout(tmp_path)
    path, sha = intent(layout, "intent-a.json")
    status(layout, "intent-a.json", sha, "failed")
    with StateStore(layout.root) as state:
        state.record([Outcome(path, sha, 10, "failed", "bad", 1, 1.0, None, layout.planned(path, "failed"))])
        state.mark_filed([(path, layout.planned(path, "failed"))])
        assert Recovery(layout, state, 1 << 20).run([path]) == 0
    assert Path(path).exists()  # queued again by the loop, never filed unseen


def test_own_copy_recognised_by_hash(tmp_path: Path) -> None:
    layout = make_layout(tmp_path)
    path, sha = intent(layout, "intent-a.json")
    copy = Path(layout.processed, "intent-a.20260115T101502.123Z.json")
    copy.write_bytes(Path(path).read_bytes())
    Path(layout.processed, "intent-a.json").write_text("other content")
    assert own_copy(path, layout.processed, sha) == str(copy)
    assert not Path(path).exists()
