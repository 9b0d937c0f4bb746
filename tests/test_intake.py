"""Intake as plain state: young files, their look-again time, once mode's give-up (no processes); and the
survey it decides from, on real files."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from conductor_loop.intake import DEFAULT_PRIORITY, Facts, Intake, peek_priority, survey
from fakeclock import FakeClock


class Files:
    """A fake directory for the survey: mtimes (absent: gone), writer answers, priorities; counts calls."""

    def __init__(self) -> None:
        self.mtimes: dict[str, float] = {}
        self.writing: dict[str, bool | None] = {}
        self.priority: dict[str, int] = {}
        self.asked: list[list[str]] = []

    def facts(self, paths: Sequence[str]) -> list[Facts]:
        self.asked.append(list(paths))
        return [Facts(self.mtimes.get(p), self.writing.get(p, False), self.priority.get(p, DEFAULT_PRIORITY))
                for p in paths]


def intake(debounce: float = 0.5) -> tuple[Intake, FakeClock, Files]:
    clock, files = FakeClock(), Files()
    return Intake(debounce, clock, files.facts), clock, files


def test_old_files_are_settled_new_ones_young_until_quiet() -> None:
    i, clock, files = intake()
    files.mtimes.update({"/h/old": clock.wall - 10, "/h/new": clock.wall - 0.1})
    files.priority["/h/old"] = 8
    assert i.settled(list(files.mtimes)) == {"/h/old": 8}
    assert set(i.young) == {"/h/new"}
    assert i.next_look() == pytest.approx(0.4 + 0.001 + 0.005)
    assert i.due() == []
    clock.advance(0.41)
    assert i.due() == ["/h/new"]
    assert i.settled(i.due()) == {"/h/new": DEFAULT_PRIORITY}
    assert not i.young


def test_pending_in_the_watcher_stays_young_known_and_gone_are_dropped() -> None:
    i, clock, files = intake()
    files.mtimes.update({"/h/open": clock.wall - 10, "/h/queued": clock.wall - 10})
    i.young["/h/queued"] = 0.0
    i.young["/h/gone"] = 0.0
    got = i.settled(["/h/open", "/h/queued", "/h/gone"], pending={"/h/open"}, known=lambda p: p == "/h/queued")
    assert got == {} and set(i.young) == {"/h/open"}
    assert files.asked == [["/h/open", "/h/gone"]]  # a known path is not even looked at
    i.forget("/h/open")
    assert not i.young


def test_nothing_to_look_at_asks_nothing() -> None:
    i, _clock, files = intake()
    assert i.settled(["/h/a"], known=lambda _p: True) == {}
    assert i.settled([]) == {}
    assert files.asked == []


def test_once_mode_gives_young_files_up_after_max_5s_10x_debounce() -> None:
    i, clock, _ = intake(debounce=0.2)
    assert i.give_up_after == 5.0
    assert Intake(1.0).give_up_after == 10.0
    assert not i.waited_out(working=False)  # nothing young
    i.young["/h/open"] = clock.wall + 100
    assert not i.waited_out(working=False)  # the wait starts
    clock.advance(4.9)
    assert not i.waited_out(working=False)
    assert not i.waited_out(working=True)  # other work: the wait starts afresh
    clock.advance(4.9)
    assert not i.waited_out(working=False)
    clock.advance(5.0)
    assert i.waited_out(working=False)


def test_a_quiet_file_still_open_for_writing_stays_young_and_no_lease_is_reported_once() -> None:
    i, clock, files = intake()
    files.writing.update({"/h/open": True, "/h/done": False, "/h/nfs": None, "/h/nfs2": None})
    files.mtimes.update({p: clock.wall - 10 for p in files.writing})
    assert list(i.settled(list(files.writing))) == ["/h/done", "/h/nfs", "/h/nfs2"]
    assert set(i.young) == {"/h/open"}
    assert i.lease_unavailable() == "/h/nfs" and i.lease_unavailable() is None
    files.writing["/h/open"] = False  # its writer closed it
    clock.advance(0.5)
    assert list(i.settled(i.due())) == ["/h/open"]
    i.settled(["/h/nfs2"])
    assert i.lease_unavailable() is None  # said once per run


def test_a_young_file_open_for_writing_waits_for_its_quiet_period_not_its_writer() -> None:
    i, clock, files = intake()
    files.mtimes["/h/new"] = clock.wall - 0.1
    files.writing["/h/new"] = True
    assert i.settled(["/h/new"]) == {}
    assert i.young["/h/new"] == pytest.approx(clock.wall + 0.4 + 0.001)


# -- the survey, on real files (rust/survey.rs) ------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "want"),
    [
        (b'{"priority": 9}', 9),
        (b'{"priority":0, "x": 1}', 0),
        (b'{"priority": 11}', DEFAULT_PRIORITY),
        (b'{"priority": "high", "spec": {"priority": 2}}', 2),
        (b'{"priority": 1000}', DEFAULT_PRIORITY),
        (b'{"priority": 7x}', DEFAULT_PRIORITY),
        (b"not json at all", DEFAULT_PRIORITY),
        (b"", DEFAULT_PRIORITY),
        (b" " * 70000 + b'{"priority": 1}', DEFAULT_PRIORITY),  # beyond the first 64 KiB
    ],
)
def test_the_priority_hint_is_read_from_the_first_bytes(tmp_path: Path, body: bytes, want: int) -> None:
    p = tmp_path / "intent-a.json"
    p.write_bytes(body)
    assert peek_priority(str(p)) == want
    assert survey([str(p)])[0].priority == want


def test_survey_reports_mtime_writer_and_gone_in_order(tmp_path: Path) -> None:
    done, held, gone = tmp_path / "intent-done.json", tmp_path / "intent-held.json", tmp_path / "intent-gone.json"
    done.write_bytes(b'{"priority": 3}')
    os.utime(done, (1_000_000_000.25, 1_000_000_000.25))
    with open(held, "wb") as w:
        w.write(b'{"half":')
        got = survey([str(done), str(held), str(gone), str(tmp_path / "no-dir" / "intent-x.json")])
    assert got[0] == Facts(pytest.approx(1_000_000_000.25), False, 3)
    assert got[1].writing is True and got[1].mtime is not None
    assert got[2] == got[3] == Facts(None, False, DEFAULT_PRIORITY)


def test_survey_never_follows_a_link_or_blocks_on_a_fifo(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    target.write_bytes(b'{"priority": 1}')
    link, fifo = tmp_path / "intent-link.json", tmp_path / "intent-fifo.json"
    link.symlink_to(target)
    os.mkfifo(fifo)
    done = threading.Event()
    result: list[list[Facts]] = []

    def run() -> None:
        result.append(survey([str(link), str(fifo)]))
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(10), "the survey blocked on a FIFO"
    for facts in result[0]:
        assert facts.mtime is not None  # reported (the worker fails it with a reason), not dropped as gone
        assert (facts.writing, facts.priority) == (False, DEFAULT_PRIORITY)


def test_a_large_batch_answers_in_input_order(tmp_path: Path) -> None:
    paths = []
    for k in range(2000):
        p = tmp_path / f"intent-{k}.json"
        if k % 5:
            p.write_bytes(b'{"priority": %d}' % (k % 11))
        paths.append(str(p))
    got = survey(paths)
    assert [f.priority if f.mtime is not None else None for f in got] == [
        (k % 11) if k % 5 else None for k in range(2000)
    ]
