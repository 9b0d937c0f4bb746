"""``_core.Anchor``: the loop's writes and moves below the handoff never follow a symbolic link there.

Each test swaps a sub-directory for a link *after* the anchor was opened (as a producer would while the
loop runs) and calls the write or move the loop makes: it must raise ``LinkInPath`` naming the directory,
and nothing may appear in the link's target (docs/SECURITY.md).
"""

from __future__ import annotations

import errno
import gc
import os
import shutil
from pathlib import Path

import pytest

from conductor_loop import _core
from conductor_loop.filing import write_error_log, write_status
from conductor_loop.layout import Layout


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A handoff with its sub-directories, and ``elsewhere`` beside it for links to point to."""
    h = tmp_path / "handoff"
    for d in ("processed", "failed", "status"):
        (h / d).mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (h / "intent-a.json").write_text("{}")
    return h


def swap(root: Path, sub: str) -> Path:
    """Replace ``root/sub`` by a link to ``elsewhere``; returns ``elsewhere``."""
    target = root.parent / "elsewhere"
    shutil.rmtree(root / sub)
    os.symlink(target, root / sub)
    return target


def test_a_move_into_a_linked_processed_dir_is_refused(root: Path) -> None:
    anchor = _core.Anchor(str(root))
    target = swap(root, "processed")
    with pytest.raises(_core.LinkInPath) as info:
        anchor.move_noclobber(str(root / "intent-a.json"), str(root / "processed"))
    assert info.value.errno == errno.ELOOP and info.value.filename == str(root / "processed")
    assert isinstance(info.value, OSError) and "symbolic link" in str(info.value)
    assert list(target.iterdir()) == []
    assert (root / "intent-a.json").read_text() == "{}"


def test_status_files_and_error_logs_are_never_written_through_a_link(root: Path) -> None:
    layout = Layout(str(root))
    layout.anchor.fsync_dir(layout.status)  # opened before the swap, as in the loop
    target = swap(root, "status")
    with pytest.raises(_core.LinkInPath):
        write_status(layout, {"intent_file": "intent-a.json", "status": "success"})
    with pytest.raises(_core.LinkInPath):
        layout.anchor.fsync_dir(layout.status)
    swap(root, "failed")
    with pytest.raises(_core.LinkInPath):
        write_error_log(layout, "intent-a.json", "why", fsync=True)
    assert list(target.iterdir()) == []


def test_a_move_out_of_a_linked_dir_is_refused(root: Path) -> None:
    anchor = _core.Anchor(str(root))
    target = swap(root, "failed")
    (target / "intent-b.json").write_text("planted")
    with pytest.raises(_core.LinkInPath):
        anchor.move_noclobber(str(root / "failed" / "intent-b.json"), str(root))
    assert not (root / "intent-b.json").exists()
    assert [p.name for p in target.iterdir()] == ["intent-b.json"]


def test_a_file_in_place_of_a_directory_is_refused(root: Path) -> None:
    anchor = _core.Anchor(str(root))
    shutil.rmtree(root / "status")
    (root / "status").write_text("")
    with pytest.raises(_core.LinkInPath) as info:
        anchor.write_atomic(str(root / "status" / "x.status"), b"x", False)
    assert info.value.errno == errno.ENOTDIR


def test_the_configured_root_may_be_a_link(root: Path, tmp_path: Path) -> None:
    os.symlink(root, tmp_path / "via")
    layout = Layout(str(tmp_path / "via"))
    path = write_status(layout, {"intent_file": "intent-a.json", "status": "success"}, fsync=True)
    assert path == str(tmp_path / "via" / "status" / "intent-a.json.status")
    assert (root / "status" / "intent-a.json.status").exists()
    moved = layout.anchor.move_noclobber(str(tmp_path / "via" / "intent-a.json"), layout.processed)
    assert moved == os.path.join(layout.processed, "intent-a.json")
    assert layout.anchor is Layout(str(tmp_path / "via")).anchor  # one per handoff and process


def test_paths_must_stay_below_the_anchor(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(root.parent)
    anchor = _core.Anchor("handoff")
    anchor.write_atomic("handoff/status/x.status", b"x")  # relative to the current directory, as by path
    assert (root / "status" / "x.status").read_bytes() == b"x"
    for bad in (str(root.parent / "elsewhere" / "x"), str(root / "status" / ".." / ".." / "x"), "../x"):
        with pytest.raises(ValueError, match="below the anchor"):
            anchor.write_atomic(bad, b"x")
    assert list((root.parent / "elsewhere").iterdir()) == []
    assert anchor.path == str(root) and repr(anchor).startswith("Anchor(")


def test_a_handoff_made_again_is_opened_again(root: Path) -> None:
    anchor = _core.Anchor(str(root))
    shutil.rmtree(root)
    with pytest.raises(FileNotFoundError):
        anchor.write_atomic(str(root / "status" / "x.status"), b"x")
    (root / "processed").mkdir(parents=True)
    (root / "intent-c.json").write_text("{}")
    assert anchor.move_noclobber(str(root / "intent-c.json"), str(root / "processed")) == str(
        root / "processed" / "intent-c.json"
    )
    anchor.reopen()
    anchor.fsync_dir(str(root))


def test_unlink_through_a_link_removes_nothing(root: Path) -> None:
    anchor = _core.Anchor(str(root))
    (root / "failed" / "intent-a.json.error.log").write_text("why")
    anchor.unlink(str(root / "failed" / "intent-a.json.error.log"))
    assert not (root / "failed" / "intent-a.json.error.log").exists()
    target = swap(root, "failed")
    (target / "intent-old.json").write_text("someone else's")
    with pytest.raises(_core.LinkInPath):
        anchor.unlink(str(root / "failed" / "intent-old.json"))
    assert (target / "intent-old.json").read_text() == "someone else's"


def test_a_process_keeps_only_a_few_handoffs_open(tmp_path: Path) -> None:
    layouts = [Layout(str(tmp_path / f"h{i}")) for i in range(12)]
    for lay in layouts:
        os.mkdir(lay.root)
        assert lay.anchor.path == lay.root
    assert layouts[-1].anchor is Layout(layouts[-1].root).anchor
    gc.collect()
    roots = {lay.root for lay in layouts}
    held = [fd for fd in os.listdir("/proc/self/fd") if _target(fd) in roots]
    assert 1 <= len(held) <= 8


def _target(fd: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""
