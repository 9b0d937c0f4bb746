"""Start-up recovery: what a crash or a kill left behind is finished before the loop takes new work.

In order (docs/ARCHITECTURE.md, "Durability and crash recovery"):

1. interrupted cross-filesystem moves: a hidden ``.NAME.cl-move-PID-RAND.tmp`` in ``processed/`` or
   ``failed/`` is deleted when the source is still whole, else renamed into place;
2. temp files of interrupted atomic writes in ``status/`` are removed (the executor cleans its own
   output directory through its ``recover`` hook, called by the loop);
3. an intent still in the handoff whose final outcome was recorded, in the state or in its status
   file, for exactly its current content is only moved, never run again (its own copy is recognised
   by hash when a cross-filesystem move had already put it in place);
4. rows recorded but never marked filed whose file has left the handoff are marked filed.

Each step reports what it did as :class:`~conductor_loop.telemetry.Note` events.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Sequence

from conductor_loop import _core
from conductor_loop.layout import Layout, filed_run, status_name
from conductor_loop.state import IntentRow, StateStore
from conductor_loop.state import Outcome as Recorded
from conductor_loop.telemetry import Note

#: Leftover of an interrupted cross-filesystem move (see rust/fsops.rs).
_MOVE_TEMP = re.compile(r"^\.(?P<name>.+)\.cl-move-\d+-[0-9a-z]+\.tmp$")


def finish_interrupted_moves(layout: Layout, dest: str) -> list[Note]:
    """Step 1 for one filing directory."""
    with os.scandir(dest) as it:
        leftovers = [(e.path, m.group("name")) for e in it if (m := _MOVE_TEMP.match(e.name))]
    notes = []
    for temp, name in leftovers:
        if os.path.lexists(os.path.join(layout.root, name)):
            layout.anchor.unlink(temp)  # the source is whole: the move is simply redone later
        else:
            layout.anchor.move_noclobber(temp, dest, name)
        notes.append(Note("move.recovered", {"intent": name, "temp": temp}))
    return notes


def remove_stale_temps(layout: Layout) -> set[str]:
    """Step 2: remove temp files of atomic writes a crash left in ``status/`` (never a final name). Returns
    the names of the other files seen there: step 3 reads only the status files that exist (no worker runs
    yet, so none appears meanwhile), instead of trying to open one per candidate."""
    present: set[str] = set()
    with contextlib.suppress(FileNotFoundError), os.scandir(layout.status) as it:
        for e in it:
            if e.name.startswith(".") and _core.ATOMIC_TEMP_MARKER in e.name and e.name.endswith(".tmp"):
                with contextlib.suppress(FileNotFoundError):
                    layout.anchor.unlink(e.path)
            else:
                present.add(e.name)
    return present


def recorded_in_state(row: IntentRow | None) -> bool:
    """The state records a final outcome of this intent that was not filed yet."""
    return bool(row is not None and row.filed_at is None and row.status in ("success", "skipped", "failed")
                and row.sha256)


def recorded_outcome(row: IntentRow | None, final: tuple[str, str, str] | None) -> tuple[str, str, str, bool] | None:
    """(status, sha256, message, from status file) of a recorded but unfiled intent, if any: from its
    ``row``, else from ``final``, what its status file records (:meth:`Layout.final_statuses`)."""
    if row is not None and recorded_in_state(row):
        assert row.sha256 is not None
        return row.status, row.sha256, row.message, False
    if final is None:
        return None
    status, sha, message = final
    if filed_run(row, sha):
        return None  # that status belongs to an earlier, filed run: this is a re-drop
    return status, sha, message, True


def own_copy(src: str, dest: str, sha: str) -> str | None:
    """A file in ``dest`` that is this intent's own earlier copy (interrupted cross-fs move)."""
    name = os.path.basename(src)
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    size = os.lstat(src).st_size
    try:
        with os.scandir(dest) as it:
            names = [e.name for e in it if e.name == name or e.name.startswith(stem + ".")]
    except FileNotFoundError:
        return None
    for n in names:
        cand = os.path.join(dest, n)
        if ext and not n.endswith("." + ext):
            continue
        try:
            if os.lstat(cand).st_size == size and _core.sha256_file(cand)[0] == sha:
                os.unlink(src)
                return cand
        except OSError:
            continue
    return None


class Recovery:
    """Runs the recovery steps for one handoff with an open state."""

    def __init__(self, layout: Layout, state: StateStore, max_file_size: int) -> None:
        self.layout = layout
        self.state = state
        self.max_file_size = max_file_size
        self.notes: list[Note] = []

    def run(self, candidates: Sequence[str]) -> int:
        """Steps 1 to 4; ``candidates``: the intents in the handoff. Returns how many were filed."""
        for d in self.layout.filing_dirs:
            self.notes += finish_interrupted_moves(self.layout, d)
        status_files = remove_stale_temps(self.layout)
        finished = self._file_recorded(candidates, status_files)
        gone = [(r.path, r.moved_to or "") for r in self.state.unfiled() if not os.path.lexists(r.path)]
        if gone:
            self.state.mark_filed(gone)
        return finished

    def _file_recorded(self, candidates: Sequence[str], status_files: set[str]) -> int:
        rows = self.state.get_many(list(candidates))
        unrecorded = [p for p in candidates if not recorded_in_state(rows.get(p))]
        probe = [p for p in unrecorded  # their status files, those that exist, in one batch
                 if status_name(os.path.basename(p)) in status_files] if status_files else []
        finals = dict(zip(probe, self.layout.final_statuses([os.path.basename(p) for p in probe]), strict=True))
        finished: list[tuple[str, str]] = []
        late: list[Recorded] = []
        for path in candidates:
            recorded = recorded_outcome(rows.get(path), finals.get(path))
            if recorded is None:
                continue
            status, sha, message, from_status_file = recorded
            try:
                current, size = _core.sha256_file(path, self.max_file_size)
            except OSError:
                continue
            if current != sha:
                continue
            dest = self.layout.destination(status)
            if from_status_file:
                late.append(Recorded(path, sha, size, status, message, None, None, None, None))
            final = own_copy(path, dest, sha) or self.layout.anchor.move_noclobber(path, dest)
            finished.append((path, final))
            self.notes.append(Note("intent.recovered", {"intent": os.path.basename(path), "sha256": sha,
                                                        "moved_to": final}))
        if late:
            self.state.record(late)
        if finished:
            self.layout.anchor.fsync_dir(self.layout.root)
            self.state.mark_filed(finished)
        return len(finished)
